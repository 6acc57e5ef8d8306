//! How values become the bytes stored in Redis.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::BoxError;

/// Turns values into the bytes stored in Redis and back. Every instance
/// that shares keys must use the same codec.
///
/// The default, [`Postcard`], fits any serde type. A codec of your own
/// suits values that already are bytes, or a format other services read:
///
/// ```
/// use shardcache_redis::{BoxError, Codec};
///
/// /// Strings stored as their UTF-8 bytes, readable by `redis-cli`.
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
///         Ok(value.as_bytes().to_vec())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
///         Ok(String::from_utf8(bytes.to_vec())?)
///     }
/// }
///
/// assert_eq!(Utf8.decode(&Utf8.encode(&"é".to_owned()).unwrap()).unwrap(), "é");
/// ```
pub trait Codec<V>: Send + Sync + 'static {
    /// The bytes of `value`.
    ///
    /// ```
    /// use shardcache_redis::{Codec, Postcard};
    ///
    /// assert_eq!(Postcard.encode(&300u32).unwrap(), [0xac, 0x02]);
    /// ```
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError>;

    /// The value `bytes` hold; an error if they are not one.
    ///
    /// ```
    /// use shardcache_redis::{Codec, Postcard};
    ///
    /// let value: u32 = Postcard.decode(&[0xac, 0x02]).unwrap();
    /// assert_eq!(value, 300);
    /// ```
    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError>;
}

/// The default codec: [postcard](https://docs.rs/postcard), a compact
/// serde format (variable-length integers, no field names), so a small
/// struct costs a few bytes in Redis and on the wire.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use shardcache_redis::{Codec, Postcard};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// let user = User { id: 7, name: "ada".into() };
/// let bytes = Postcard.encode(&user).unwrap();
/// assert_eq!(bytes.len(), 5);
/// assert_eq!(Postcard.decode(&bytes).ok(), Some(user));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<V: Serialize + DeserializeOwned> Codec<V> for Postcard {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_stdvec(value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}
