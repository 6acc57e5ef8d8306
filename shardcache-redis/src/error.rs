//! What a call can fail with.

use std::fmt;

/// A boxed error: what a loader or a [`Codec`](crate::Codec) may fail with.
///
/// ```
/// use shardcache_redis::BoxError;
///
/// let error: BoxError = "database down".into();
/// assert_eq!(error.to_string(), "database down");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`NearCache`](crate::NearCache) call failed.
///
/// ```
/// use shardcache_redis::Error;
///
/// let error = Error::Unavailable(None);
/// assert_eq!(error.to_string(), "redis is unavailable (reconnecting)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached: no connection with invalidations is up
    /// (`None`: it is being re-established in the background), or a command
    /// failed or timed out (the error). Reads return it only when the cache
    /// is built with [`Unavailable::Error`](crate::Unavailable::Error);
    /// writes always do.
    Unavailable(Option<redis::RedisError>),
    /// Redis answered with an error (a wrong type, an ACL refusal).
    Redis(redis::RedisError),
    /// The loader failed; nothing was stored.
    Loader(crate::BoxError),
    /// The codec could not encode a value or decode what Redis held.
    Codec(crate::BoxError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(None) => f.write_str("redis is unavailable (reconnecting)"),
            Error::Unavailable(Some(e)) => write!(f, "redis is unavailable: {e}"),
            Error::Redis(e) => write!(f, "redis error: {e}"),
            Error::Loader(e) => write!(f, "loader failed: {e}"),
            Error::Codec(e) => write!(f, "codec error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unavailable(Some(e)) | Error::Redis(e) => Some(e),
            Error::Loader(e) | Error::Codec(e) => Some(&**e),
            Error::Unavailable(None) => None,
        }
    }
}

/// Whether a failed command means the connection can no longer be trusted
/// to deliver invalidations (it broke, or the server stopped answering).
pub(crate) fn breaks_link(error: &redis::RedisError) -> bool {
    error.is_timeout()
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
}

/// A command's error as a call's error.
pub(crate) fn from_redis(error: redis::RedisError) -> Error {
    if breaks_link(&error) {
        Error::Unavailable(Some(error))
    } else {
        Error::Redis(error)
    }
}
