//! [`NearCache`]: the read path (L1, then one `GET` per key per instance,
//! then the loader) and the write path (Redis, then L1).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{breaks_link, from_redis};
use crate::link::{Entry, Shared};
use crate::stats::Counters;
use crate::{BoxError, Codec, Error, NearCacheBuilder, NearStats, Postcard, Unavailable};

/// A bounded in-memory cache (L1, a [`shardcache::Cache`]) in front of
/// Redis (L2), kept coherent with it by Redis's invalidation messages:
/// when any client changes a key this instance read, Redis tells this
/// instance and it drops its copy. Cloning is cheap and shares the cache
/// and its connection.
///
/// ```no_run
/// # async fn run() -> Result<(), shardcache_redis::Error> {
/// use shardcache_redis::NearCache;
///
/// let cache: NearCache<String> = NearCache::builder("redis://127.0.0.1:6379").build().await?;
/// let name = cache
///     .get_or_load("user:7:name", || async { Ok::<_, std::io::Error>("ada".to_owned()) })
///     .await?;
/// assert_eq!(*name, "ada");
/// cache.set("user:7:name", &"grace".to_owned()).await?;
/// # Ok(()) }
/// ```
pub struct NearCache<V, C = Postcard> {
    shared: Arc<Shared<V>>,
    codec: Arc<C>,
    ttl: Option<Duration>,
    unavailable: Unavailable,
}

impl<V, C> Clone for NearCache<V, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            codec: Arc::clone(&self.codec),
            ttl: self.ttl,
            unavailable: self.unavailable,
        }
    }
}

impl<V: Send + Sync + 'static, C> std::fmt::Debug for NearCache<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("l1_len", &self.shared.l1.len())
            .field("ttl", &self.ttl)
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

/// Why a `GET` flight ended without a value to store in L1.
enum Skip<V> {
    /// This caller's answer, stored nowhere: a value the loader gave that
    /// Redis then did not keep, or `None` (the key is missing and there is
    /// no loader).
    Value(Option<Arc<V>>),
    /// The loader's value was written to Redis; read it back, so that L1
    /// holds it only with tracking on.
    Reread,
    /// Redis cannot be reached.
    Unavailable(Option<redis::RedisError>),
    Failed(Error),
}

impl<V: Send + Sync + 'static> NearCache<V> {
    /// A builder for a cache over the Redis server at `url`
    /// (`redis://[user:password@]host:port[/db]`).
    ///
    /// ```
    /// use shardcache_redis::NearCache;
    ///
    /// let builder = NearCache::<u64>::builder("redis://127.0.0.1:6379").max_capacity(100);
    /// # drop(builder);
    /// ```
    pub fn builder(url: &str) -> NearCacheBuilder<V> {
        NearCacheBuilder::new(url)
    }
}

impl<V, C> NearCache<V, C>
where
    V: Send + Sync + 'static,
    C: Codec<V>,
{
    pub(crate) fn from_parts(
        shared: Arc<Shared<V>>,
        codec: Arc<C>,
        ttl: Option<Duration>,
        unavailable: Unavailable,
    ) -> Self {
        Self {
            shared,
            codec,
            ttl,
            unavailable,
        }
    }

    /// The value under `key`: from L1; else from Redis (one `GET` per key
    /// per instance at a time: concurrent callers for the key wait for it);
    /// else from `loader`, whose value is written to Redis (`SET NX`, with
    /// the default TTL, so a value someone wrote meanwhile is kept) and then
    /// read back into L1.
    ///
    /// A value returned was current at some point during the call: if an
    /// invalidation of the key arrives while the `GET` is in flight, its
    /// reply is not stored, and callers who started after the invalidation
    /// read again. While Redis cannot be reached, the call fails or goes to
    /// the loader, as [`when_unavailable`](NearCacheBuilder::when_unavailable)
    /// says. If `loader` fails, its error is returned and nothing is stored;
    /// if it panics, the panic reaches this caller, and callers waiting for
    /// the key start over.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// let stock = cache
    ///     .get_or_load("stock:42", || async { Ok::<_, std::io::Error>(17) })
    ///     .await?;
    /// assert_eq!(*stock, 17);
    /// # Ok(()) }
    /// ```
    pub async fn get_or_load<F, Fut, E>(&self, key: &str, loader: F) -> Result<Arc<V>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        match self.read(key, Some(loader)).await? {
            Some(value) => Ok(value),
            // The loader ran and failed (an error), or gave a value.
            None => unreachable!("a read with a loader always ends with a value or an error"),
        }
    }

    /// The value under `key` in L1 or Redis, `None` if Redis has none; as
    /// [`get_or_load`](Self::get_or_load) with no loader. While Redis cannot
    /// be reached it fails with [`Error::Unavailable`] (there is nothing to
    /// load from).
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("visits", &1).await?;
    /// assert_eq!(cache.get("visits").await?.as_deref(), Some(&1));
    /// assert_eq!(cache.get("no such key").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: &str) -> Result<Option<Arc<V>>, Error> {
        type NoLoader<V> = fn() -> std::future::Ready<Result<V, BoxError>>;
        self.read(key, None::<NoLoader<V>>).await
    }

    /// Writes `value` to Redis under `key` (with the default TTL), then
    /// drops this instance's copy; other instances drop theirs when Redis's
    /// invalidation reaches them. The next read here is an L2 hit: a write
    /// does not make Redis track the key for this connection, so only a
    /// read may fill L1. If the command fails or times out, this instance's
    /// copy is dropped all the same (the write may have happened).
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<String>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("greeting", &"hello".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, key: &str, value: &V) -> Result<(), Error> {
        let bytes = self.codec.encode(value).map_err(Error::Codec)?;
        let mut command = redis::cmd("SET");
        command.arg(key).arg(bytes);
        if let Some(ttl) = self.ttl {
            command.arg("PX").arg(millis(ttl));
        }
        self.write(key, command).await.map(drop)
    }

    /// Deletes `key` from Redis, then from this instance's L1; other
    /// instances drop it when Redis's invalidation reaches them. Returns
    /// whether Redis had it.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("session:1", &5).await?;
    /// assert!(cache.remove("session:1").await?);
    /// assert!(!cache.remove("session:1").await?);
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, key: &str) -> Result<bool, Error> {
        let mut command = redis::cmd("DEL");
        command.arg(key);
        let deleted = self.write(key, command).await?;
        let deleted: i64 = redis::from_redis_value(deleted)
            .map_err(|e| Error::Redis(redis::RedisError::from(e)))?;
        Ok(deleted > 0)
    }

    /// Drops `key` from this instance's L1 only, leaving Redis as it is:
    /// the next read here goes to Redis.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("k", &1).await?;
    /// cache.get("k").await?; // from Redis, now in L1
    /// cache.evict_local("k");
    /// cache.get("k").await?; // from Redis again
    /// assert_eq!(cache.stats().l2_hits, 2);
    /// # Ok(()) }
    /// ```
    pub fn evict_local(&self, key: &str) {
        self.shared.drop_key(key);
    }

    /// The number of entries in this instance's L1.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("k", &1).await?;
    /// cache.get("k").await?;
    /// assert_eq!(cache.local_len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn local_len(&self) -> usize {
        self.shared.l1.len()
    }

    /// Whether a connection with invalidations on is up. While it is not,
    /// L1 is empty and reads behave as
    /// [`when_unavailable`](NearCacheBuilder::when_unavailable) says.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) {
    /// if !cache.is_connected() {
    ///     eprintln!("redis is down; reads go to the loader");
    /// }
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.shared.is_connected()
    }

    /// This instance's counters since it was built.
    ///
    /// ```no_run
    /// # async fn run(cache: shardcache_redis::NearCache<u64>) -> Result<(), shardcache_redis::Error> {
    /// cache.set("k", &1).await?;
    /// cache.get("k").await?;
    /// cache.get("k").await?;
    /// let stats = cache.stats();
    /// assert_eq!((stats.l2_hits, stats.l1_hits), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> NearStats {
        self.shared.stats.snapshot()
    }

    /// Runs a write command for `key` on the tracking connection, then drops
    /// the key from L1 whatever the outcome.
    async fn write(&self, key: &str, command: redis::Cmd) -> Result<redis::Value, Error> {
        let Some((id, mut conn)) = self.shared.connection() else {
            return Err(Error::Unavailable(None));
        };
        let result = command.query_async::<redis::Value>(&mut conn).await;
        self.shared.drop_key(key);
        result.map_err(|e| {
            if breaks_link(&e) {
                self.shared.broken(id);
            }
            from_redis(e)
        })
    }

    /// The read path shared by [`get`](Self::get) and
    /// [`get_or_load`](Self::get_or_load).
    async fn read<F, Fut, E>(
        &self,
        key: &str,
        mut loader: Option<F>,
    ) -> Result<Option<Arc<V>>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        let shared = &*self.shared;
        if let Some(entry) = shared.l1.get(key) {
            Counters::bump(&shared.stats.l1_hits);
            return Ok(Some(entry.value));
        }
        let start = shared.stamp(key);
        let mut loaded = None;
        loop {
            let mut led = false;
            let flight = self.fetch(key, &mut loader, &mut loaded, &mut led);
            match shared
                .l1
                .try_get_or_insert_with_async(key.to_owned(), flight)
                .await
            {
                // A leader's own GET was sent after this call started.
                Ok(entry) if led => return Ok(Some(entry.value)),
                // Another caller's value, read from memory.
                Ok(entry) if entry.stamp.covers(start) => {
                    Counters::bump(&shared.stats.l1_hits);
                    return Ok(Some(entry.value));
                }
                Ok(_) => {
                    // Another caller's GET, sent before an invalidation of
                    // the key that this call may have been told about (it
                    // came after this call started). What L1 holds now is
                    // current; else read again: the next flight starts
                    // after this call did.
                    if let Some(entry) = shared.l1.get(key) {
                        Counters::bump(&shared.stats.l1_hits);
                        return Ok(Some(entry.value));
                    }
                    Counters::bump(&shared.stats.rereads);
                }
                Err(Skip::Reread) => {}
                Err(Skip::Value(value)) => return Ok(value),
                Err(Skip::Unavailable(error)) => {
                    return self.unavailable(error, loader, loaded).await;
                }
                Err(Skip::Failed(error)) => return Err(error),
            }
        }
    }

    /// One flight: `GET` the key; on a miss, run the loader and write its
    /// value to Redis. Runs only for the caller that leads the key's flight.
    async fn fetch<F, Fut, E>(
        &self,
        key: &str,
        loader: &mut Option<F>,
        loaded: &mut Option<Arc<V>>,
        led: &mut bool,
    ) -> Result<Entry<V>, Skip<V>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        *led = true;
        let shared = &*self.shared;
        // Taken before the connection and before the GET is sent: an
        // invalidation or flush applied after this may concern the value
        // the GET returns, and one applied before it is older than the
        // connection and the GET.
        let stamp = shared.stamp(key);
        let Some((id, mut conn)) = shared.connection() else {
            return Err(Skip::Unavailable(None));
        };
        let broken = |error: redis::RedisError| {
            if breaks_link(&error) {
                shared.broken(id);
                Skip::Unavailable(Some(error))
            } else {
                Skip::Failed(Error::Redis(error))
            }
        };
        let reply: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(broken)?;
        #[cfg(test)]
        crate::near::tests::pause_after_get(shared, key).await;
        if let Some(bytes) = reply {
            let value = self
                .codec
                .decode(&bytes)
                .map_err(|e| Skip::Failed(Error::Codec(e)))?;
            Counters::bump(&shared.stats.l2_hits);
            return Ok(Entry {
                value: Arc::new(value),
                stamp,
            });
        }
        // A miss. A second one, after this caller loaded and wrote the
        // value: it expired or was deleted meanwhile; return what it loaded.
        if let Some(value) = loaded.take() {
            return Err(Skip::Value(Some(value)));
        }
        let Some(load) = loader.take() else {
            return Err(Skip::Value(None));
        };
        Counters::bump(&shared.stats.loads);
        let value = load()
            .await
            .map_err(|e| Skip::Failed(Error::Loader(e.into())))?;
        let value = Arc::new(value);
        let bytes = self
            .codec
            .encode(&value)
            .map_err(|e| Skip::Failed(Error::Codec(e)))?;
        let mut set = redis::cmd("SET");
        set.arg(key).arg(bytes).arg("NX");
        if let Some(ttl) = self.ttl {
            set.arg("PX").arg(millis(ttl));
        }
        // The value's own write invalidates the GET's tracking of the key
        // (Redis notifies the writer too), so it is read back in the next
        // flight rather than stored from here.
        match set.query_async::<redis::Value>(&mut conn).await {
            Ok(_) => {
                *loaded = Some(value);
                Err(Skip::Reread)
            }
            Err(error) => {
                if breaks_link(&error) {
                    shared.broken(id);
                }
                Err(Skip::Value(Some(value)))
            }
        }
    }

    /// A read's answer while Redis cannot be reached.
    async fn unavailable<F, Fut, E>(
        &self,
        error: Option<redis::RedisError>,
        loader: Option<F>,
        loaded: Option<Arc<V>>,
    ) -> Result<Option<Arc<V>>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Into<BoxError>,
    {
        if let Some(value) = loaded {
            return Ok(Some(value));
        }
        match (self.unavailable, loader) {
            (Unavailable::Load, Some(load)) => {
                Counters::bump(&self.shared.stats.loads);
                let value = load().await.map_err(|e| Error::Loader(e.into()))?;
                Ok(Some(Arc::new(value)))
            }
            _ => Err(Error::Unavailable(error)),
        }
    }
}

/// A TTL as Redis's `PX` milliseconds: at least 1, and at most what Redis
/// accepts (longer is as good as never expiring).
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis().clamp(1, i64::MAX as u128 / 2)) as u64
}

#[cfg(test)]
pub(crate) mod tests;
