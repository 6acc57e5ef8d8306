//! The connection to Redis and what keeps L1 coherent with it: tracking
//! turned on, invalidation pushes applied, a broken connection flushed and
//! re-established in the background.
//!
//! Every read, write and invalidation of an instance goes over one RESP3
//! connection with `CLIENT TRACKING on`. redis-rs hands each push message
//! to [`Shared::on_push`] synchronously on the task that reads the socket,
//! before it hands over any reply that came after it on the wire: an
//! invalidation sent by the server before a `GET` reply is applied before
//! that reply reaches its caller.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};
use shardcache::Cache;
use tokio::sync::Notify;

use crate::stats::Counters;
use crate::Invalidation;

/// Stripes of the per-key invalidation counters (see [`Stamp`]).
const STRIPES: usize = 1024;

/// What L1 holds for a key: the value, and when the `GET` that read it was
/// sent.
pub(crate) struct Entry<V> {
    pub(crate) value: Arc<V>,
    pub(crate) stamp: Stamp,
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            stamp: self.stamp,
        }
    }
}

/// A point in this instance's invalidation history: the count of
/// invalidations applied to a key's stripe, and of whole-L1 flushes.
/// A value read from Redis carries the stamp taken before its `GET` was
/// sent; a caller may return it only if no invalidation of the key has been
/// applied between that and the caller's own start ([`Stamp::covers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    key: u64,
    epoch: u64,
}

impl Stamp {
    /// Whether a value read at `self` is as new as anything a caller that
    /// started at `start` may have been told about.
    pub(crate) fn covers(self, start: Stamp) -> bool {
        self.key >= start.key && self.epoch >= start.epoch
    }
}

/// The hook set with [`NearCacheBuilder::on_invalidation`](crate::NearCacheBuilder::on_invalidation).
pub(crate) type Hook = Box<dyn Fn(Invalidation<'_>) + Send + Sync>;

/// Settings the link needs.
pub(crate) struct LinkConfig {
    pub(crate) client: redis::Client,
    pub(crate) timeout: Duration,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) on_invalidation: Option<Hook>,
}

/// The connection in use.
struct Live {
    id: u64,
    conn: MultiplexedConnection,
}

/// State shared by a near cache's handles, its connection's push handler
/// and its reconnect task.
pub(crate) struct Shared<V> {
    pub(crate) l1: Cache<String, Entry<V>>,
    pub(crate) stats: Counters,
    pub(crate) config: LinkConfig,
    live: Mutex<Option<Live>>,
    next_id: AtomicU64,
    stripes: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
    epoch: AtomicU64,
    /// Wakes the reconnect task: the link broke, or the cache is dropped.
    wake: Arc<Notify>,
    #[cfg(test)]
    pub(crate) hook: Mutex<Option<crate::near::tests::Pause>>,
}

impl<V: Send + Sync + 'static> Shared<V> {
    pub(crate) fn new(l1: Cache<String, Entry<V>>, config: LinkConfig) -> Self {
        Self {
            l1,
            stats: Counters::default(),
            config,
            live: Mutex::new(None),
            next_id: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
            epoch: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            #[cfg(test)]
            hook: Mutex::new(None),
        }
    }

    fn live(&self) -> MutexGuard<'_, Option<Live>> {
        // Nothing panics while it is held.
        self.live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn stripe(&self, key: &str) -> &AtomicU64 {
        &self.stripes[self.hasher.hash_one(key) as usize % STRIPES]
    }

    /// Where the key's invalidation history stands now.
    pub(crate) fn stamp(&self, key: &str) -> Stamp {
        Stamp {
            key: self.stripe(key).load(Ordering::SeqCst),
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// The connection with invalidations on, and its id; `None` while it
    /// is being re-established.
    pub(crate) fn connection(&self) -> Option<(u64, MultiplexedConnection)> {
        self.live().as_ref().map(|l| (l.id, l.conn.clone()))
    }

    /// Whether a connection with invalidations on is up.
    pub(crate) fn is_connected(&self) -> bool {
        self.live().is_some()
    }

    /// Tells the hook, if any. A panic in it is caught and dropped: it
    /// runs on the connection's reader, whose death would break the
    /// connection, and there is no caller to hand the panic to.
    fn tell(&self, event: Invalidation<'_>) {
        if let Some(hook) = &self.config.on_invalidation {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(event)));
        }
    }

    /// Applies one push message of connection `id`. Pushes are applied,
    /// and the hook told, under the lock of the connection in use, so an
    /// instance's invalidations happen one at a time, in the order its hook
    /// sees them; pushes of a connection no longer in use are ignored (L1
    /// was flushed when it was dropped).
    fn on_push(&self, id: u64, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => {
                let live = self.live();
                if live.as_ref().is_none_or(|l| l.id != id) {
                    return;
                }
                match push.data.first() {
                    Some(Value::Array(keys)) => {
                        for key in keys {
                            if let Value::BulkString(bytes) = key {
                                // Keys of this cache are `&str`: any other
                                // cannot be in L1.
                                if let Ok(key) = std::str::from_utf8(bytes) {
                                    self.invalidate(key);
                                }
                            }
                        }
                    }
                    // A null list of keys: the server was flushed.
                    _ => {
                        self.flush();
                        Counters::bump(&self.stats.server_flushes);
                        self.tell(Invalidation::Flushed);
                    }
                }
                drop(live);
            }
            PushKind::Disconnection => self.broken(id),
            _ => {}
        }
    }

    /// Drops `key` from L1 (Redis said so). The stripe's count moves first,
    /// so a caller that joins a `GET` sent before this sees that it must
    /// read again; the removal then marks such a `GET`'s flight superseded,
    /// so its reply is not stored.
    fn invalidate(&self, key: &str) {
        self.drop_key(key);
        Counters::bump(&self.stats.invalidations);
        self.tell(Invalidation::Key(key));
    }

    /// Drops `key` from L1 as an invalidation does: after a write of this
    /// instance, or on request.
    pub(crate) fn drop_key(&self, key: &str) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.l1.remove(key);
    }

    /// Empties L1 the same way [`invalidate`](Self::invalidate) drops a key.
    fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.l1.clear();
    }

    /// Connection `id` broke or stopped answering: it may have missed
    /// invalidations, so it is dropped (nothing reads through it or fills L1
    /// any more), L1 is flushed, and the reconnect task wakes. A second call
    /// for the same connection, or one for a connection already replaced,
    /// does nothing. A read takes its stamp before it takes the connection,
    /// so a read whose stamp is newer than this flush uses a newer
    /// connection.
    pub(crate) fn broken(&self, id: u64) {
        let mut live = self.live();
        if live.as_ref().is_none_or(|l| l.id != id) {
            return;
        }
        *live = None;
        self.flush();
        Counters::bump(&self.stats.reconnect_flushes);
        self.tell(Invalidation::Disconnected);
        drop(live);
        self.wake.notify_one();
    }
}

/// Opens a connection with tracking on, its pushes applied to `shared`,
/// and makes it the one in use.
async fn connect<V: Send + Sync + 'static>(shared: &Arc<Shared<V>>) -> redis::RedisResult<()> {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let dead = Arc::new(AtomicBool::new(false));
    let handler = {
        let shared: Weak<Shared<V>> = Arc::downgrade(shared);
        let dead = Arc::clone(&dead);
        move |push: PushInfo| -> Result<(), ()> {
            if push.kind == PushKind::Disconnection {
                dead.store(true, Ordering::SeqCst);
            }
            let shared = shared.upgrade().ok_or(())?;
            shared.on_push(id, push);
            Ok(())
        }
    };
    let timeout = shared.config.timeout;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_push_sender(handler);
    let setup = async {
        let mut conn = shared
            .config
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .exec_async(&mut conn)
            .await?;
        Ok::<_, redis::RedisError>(conn)
    };
    let conn = match tokio::time::timeout(timeout * 2, setup).await {
        Ok(conn) => conn?,
        Err(_) => {
            return Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        }
    };
    let mut live = shared.live();
    // A disconnection before this point found no connection to drop.
    if dead.load(Ordering::SeqCst) {
        return Err(redis::RedisError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
    }
    *live = Some(Live { id, conn });
    Ok(())
}

/// Connects, then keeps reconnecting whenever the link breaks, waiting
/// between failed attempts with exponential backoff. Ends when the cache
/// is dropped.
pub(crate) async fn connect_first<V: Send + Sync + 'static>(shared: &Arc<Shared<V>>) {
    let first = connect(shared).await;
    let weak = Arc::downgrade(shared);
    let wake = Arc::clone(&shared.wake);
    let (min, max) = shared.config.backoff;
    let mut backoff = if first.is_ok() { None } else { Some(min) };
    tokio::spawn(async move {
        loop {
            match backoff {
                // Up: wait until it breaks or the cache is dropped.
                None => wake.notified().await,
                Some(delay) => {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = wake.notified() => {}
                    }
                }
            }
            let Some(shared) = weak.upgrade() else {
                return;
            };
            if shared.is_connected() {
                backoff = None;
                continue;
            }
            backoff = match connect(&shared).await {
                Ok(()) => None,
                Err(_) => Some(backoff.map_or(min, |d| (d * 2).min(max))),
            };
        }
    });
}

impl<V> Drop for Shared<V> {
    fn drop(&mut self) {
        // The reconnect task finds the cache gone and ends.
        self.wake.notify_one();
    }
}
