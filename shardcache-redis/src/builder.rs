//! Configuring a [`NearCache`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use redis::IntoConnectionInfo;
use shardcache::Cache;

use crate::link::{self, LinkConfig, Shared};
use crate::{Codec, Error, Invalidation, NearCache, Postcard};

/// What reads do while Redis cannot be reached (no connection with
/// invalidations is up, or a command failed or timed out). L1 is empty
/// then: it was flushed when the connection broke, and nothing fills it
/// until invalidations flow again, so no value that might have been
/// invalidated meanwhile is ever served.
///
/// ```
/// use shardcache_redis::{NearCache, Unavailable};
///
/// let builder = NearCache::<String>::builder("redis://127.0.0.1:6379")
///     .when_unavailable(Unavailable::Load);
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unavailable {
    /// Return [`Error::Unavailable`]: the caller decides. The default.
    #[default]
    Error,
    /// Run the loader (the source of truth) and return its value, storing
    /// it nowhere. Reads keep working while Redis is down, at the source's
    /// cost.
    Load,
}

/// Builds a [`NearCache`]: the L1 words of [`shardcache::CacheBuilder`]
/// (`max_capacity`, `default_ttl`, `shards`) and the Redis ones.
///
/// ```no_run
/// # async fn run() -> Result<(), shardcache_redis::Error> {
/// use std::time::Duration;
/// use shardcache_redis::{NearCache, Unavailable};
///
/// let cache: NearCache<String> = NearCache::builder("redis://127.0.0.1:6379")
///     .max_capacity(10_000)
///     .default_ttl(Duration::from_secs(300))
///     .timeout(Duration::from_millis(250))
///     .when_unavailable(Unavailable::Load)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct NearCacheBuilder<V, C = Postcard> {
    url: String,
    codec: C,
    max_capacity: u64,
    ttl: Option<Duration>,
    shards: Option<usize>,
    timeout: Duration,
    backoff: (Duration, Duration),
    unavailable: Unavailable,
    on_invalidation: Option<crate::link::Hook>,
    value: PhantomData<fn() -> V>,
}

impl<V> NearCacheBuilder<V> {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            codec: Postcard,
            max_capacity: 10_000,
            ttl: None,
            shards: None,
            timeout: Duration::from_secs(1),
            backoff: (Duration::from_millis(10), Duration::from_secs(1)),
            unavailable: Unavailable::Error,
            on_invalidation: None,
            value: PhantomData,
        }
    }
}

impl<V, C> NearCacheBuilder<V, C>
where
    V: Send + Sync + 'static,
    C: Codec<V>,
{
    /// The most entries this instance keeps in memory (L1); S3-FIFO picks
    /// what to evict. Redis holds any number. Default 10 000.
    ///
    /// ```
    /// # use shardcache_redis::NearCache;
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379").max_capacity(1_000);
    /// # drop(builder);
    /// ```
    pub fn max_capacity(mut self, max: u64) -> Self {
        self.max_capacity = max;
        self
    }

    /// How long a value this cache writes to Redis lives there (`SET ...
    /// PX`), and the longest it stays in L1, so L1 never outlives Redis's
    /// copy. Default: no TTL.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use shardcache_redis::NearCache;
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379")
    ///     .default_ttl(Duration::from_secs(60));
    /// # drop(builder);
    /// ```
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The number of L1 shards, as [`shardcache::CacheBuilder::shards`].
    ///
    /// ```
    /// # use shardcache_redis::NearCache;
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379").shards(16);
    /// # drop(builder);
    /// ```
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = Some(n);
        self
    }

    /// The longest any Redis command or connection attempt may take.
    /// A command that takes longer fails with [`Error::Unavailable`], and
    /// the connection is treated as broken: L1 is flushed and a new
    /// connection is made in the background. Default 1 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use shardcache_redis::NearCache;
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379")
    ///     .timeout(Duration::from_millis(200));
    /// # drop(builder);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The first and the longest wait between failed reconnection attempts;
    /// each failure doubles it. Default 10 ms to 1 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use shardcache_redis::NearCache;
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379")
    ///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(5));
    /// # drop(builder);
    /// ```
    pub fn reconnect_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.backoff = (first, longest.max(first));
        self
    }

    /// What reads do while Redis cannot be reached; see [`Unavailable`].
    ///
    /// ```
    /// # use shardcache_redis::{NearCache, Unavailable};
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379")
    ///     .when_unavailable(Unavailable::Error);
    /// # drop(builder);
    /// ```
    pub fn when_unavailable(mut self, behaviour: Unavailable) -> Self {
        self.unavailable = behaviour;
        self
    }

    /// Calls `hook` after each invalidation this instance applies (a key
    /// dropped, or all of L1 flushed), one at a time, in the order they
    /// were applied. It runs on the task that reads the connection, under
    /// the lock of the connection, so it must be quick and must not call
    /// the cache (that would deadlock); use it for metrics, such as
    /// invalidation lag. A panic in it is caught and ignored: the
    /// invalidation has been applied, and the connection goes on.
    ///
    /// ```
    /// # use shardcache_redis::{Invalidation, NearCache};
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379")
    ///     .on_invalidation(|event| {
    ///         if let Invalidation::Key(key) = event {
    ///             eprintln!("dropped {key}");
    ///         }
    ///     });
    /// # drop(builder);
    /// ```
    pub fn on_invalidation(
        mut self,
        hook: impl Fn(Invalidation<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_invalidation = Some(Box::new(hook));
        self
    }

    /// Stores values in Redis with `codec` instead of [`Postcard`].
    ///
    /// ```
    /// use shardcache_redis::{BoxError, Codec, NearCache};
    ///
    /// struct Raw;
    /// impl Codec<Vec<u8>> for Raw {
    ///     fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, BoxError> { Ok(value.clone()) }
    ///     fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> { Ok(bytes.to_vec()) }
    /// }
    ///
    /// let builder = NearCache::<Vec<u8>>::builder("redis://127.0.0.1:6379").codec(Raw);
    /// # drop(builder);
    /// ```
    pub fn codec<C2: Codec<V>>(self, codec: C2) -> NearCacheBuilder<V, C2> {
        NearCacheBuilder {
            url: self.url,
            codec,
            max_capacity: self.max_capacity,
            ttl: self.ttl,
            shards: self.shards,
            timeout: self.timeout,
            backoff: self.backoff,
            unavailable: self.unavailable,
            on_invalidation: self.on_invalidation,
            value: PhantomData,
        }
    }

    /// Builds the cache and connects, with tracking on. Call it inside a
    /// tokio runtime: the connection and the reconnect task run on it. If
    /// Redis cannot be reached now, the cache is returned anyway and
    /// connects in the background, reads meanwhile behaving as
    /// [`when_unavailable`](Self::when_unavailable) says; only a malformed
    /// URL is an error.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), shardcache_redis::Error> {
    /// use shardcache_redis::NearCache;
    ///
    /// let cache: NearCache<u64> = NearCache::builder("redis://127.0.0.1:6379").build().await?;
    /// assert!(cache.is_connected());
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<NearCache<V, C>, Error> {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(Error::Redis)?;
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = info.set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(Error::Redis)?;
        let mut l1 = Cache::builder().max_capacity(self.max_capacity);
        if let Some(ttl) = self.ttl {
            l1 = l1.default_ttl(ttl);
        }
        if let Some(shards) = self.shards {
            l1 = l1.shards(shards);
        }
        let shared = Arc::new(Shared::new(
            l1.build(),
            LinkConfig {
                client,
                timeout: self.timeout,
                backoff: self.backoff,
                on_invalidation: self.on_invalidation,
            },
        ));
        link::connect_first(&shared).await;
        Ok(NearCache::from_parts(
            shared,
            Arc::new(self.codec),
            self.ttl,
            self.unavailable,
        ))
    }
}
