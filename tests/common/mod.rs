//! One interface over every cache type, so every semantic test, the model
//! check and the fuzz targets run unchanged on `Cache` (unbounded and
//! bounded) and on the single-lock baseline. Included by the test crates with `mod common;` and
//! by the fuzz targets with `#[path = "../../tests/common/mod.rs"]`.

#![allow(dead_code)]

use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, CacheBuilder, Clock, ManualClock, Stats};

/// The operations both cache types share.
pub trait CacheApi<K, V>: Send + Sync {
    /// Builds this cache type from a builder.
    fn build(builder: CacheBuilder<K, V>) -> Self
    where
        Self: Sized;
    fn insert(&self, key: K, value: V);
    fn insert_with_ttl(&self, key: K, value: V, ttl: Duration);
    fn get(&self, key: &K) -> Option<V>;
    fn contains_key(&self, key: &K) -> bool;
    fn remove(&self, key: &K) -> Option<V>;
    fn remove_expired(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool;
    fn clear(&self);
    fn shard_count(&self) -> usize;
    fn stats(&self) -> Stats;
    fn close(&self);
}

macro_rules! impl_cache_api {
    ($ty:ident $(. $field:tt)?, $builder:ident => $build:expr) => {
        impl<K, V> CacheApi<K, V> for $ty<K, V>
        where
            K: Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            fn build($builder: CacheBuilder<K, V>) -> Self {
                $build
            }
            fn insert(&self, key: K, value: V) {
                self$(.$field)?.insert(key, value)
            }
            fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
                self$(.$field)?.insert_with_ttl(key, value, ttl)
            }
            fn get(&self, key: &K) -> Option<V> {
                self$(.$field)?.get(key)
            }
            fn contains_key(&self, key: &K) -> bool {
                self$(.$field)?.contains_key(key)
            }
            fn remove(&self, key: &K) -> Option<V> {
                self$(.$field)?.remove(key)
            }
            fn remove_expired(&self) -> usize {
                self$(.$field)?.remove_expired()
            }
            fn len(&self) -> usize {
                self$(.$field)?.len()
            }
            fn is_empty(&self) -> bool {
                self$(.$field)?.is_empty()
            }
            fn clear(&self) {
                self$(.$field)?.clear()
            }
            fn shard_count(&self) -> usize {
                self$(.$field)?.shard_count()
            }
            fn stats(&self) -> Stats {
                self$(.$field)?.stats()
            }
            fn close(&self) {
                self$(.$field)?.close()
            }
        }
    };
}

/// A bounded `Cache` whose capacity no test reaches: it must keep every
/// promise the unbounded one makes, through the other kind of shard.
#[derive(Debug)]
pub struct Roomy<K, V>(pub Cache<K, V>);

/// The capacity of [`Roomy`].
pub const ROOMY: u64 = 1 << 40;

impl_cache_api!(Cache, builder => builder.build());
impl_cache_api!(Roomy.0, builder => Roomy(builder.max_capacity(ROOMY).build()));
impl_cache_api!(SingleLockCache, builder => builder.build_single_lock());

/// Instantiates generic tests for every cache type: `suite!(a, b)` makes
/// `sharded::a` run `a::<Cache<_, _>>()`, `bounded::a` run it on a bounded
/// cache that never fills ([`Roomy`]), and `single_lock::a` on
/// `SingleLockCache`; the same for `b`.
#[allow(unused_macros)] // model_check and the fuzz targets include this file too
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sharded {
            $( #[test] fn $test() { super::$test::<shardcache::Cache<_, _>>(); } )*
        }
        mod bounded {
            $( #[test] fn $test() { super::$test::<super::common::Roomy<_, _>>(); } )*
        }
        mod single_lock {
            $( #[test] fn $test() { super::$test::<shardcache::baseline::SingleLockCache<_, _>>(); } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use suite;

/// A clock that stands still at zero and counts its readings.
#[derive(Debug, Clone, Default)]
pub struct CountingClock(Arc<AtomicUsize>);

impl CountingClock {
    /// How many times the clock has been read.
    pub fn reads(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clock for CountingClock {
    fn now_nanos(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed);
        0
    }
}

/// Polls `done` until it holds, for at most 30 s: the bounded wait for a
/// real janitor thread to get its turn (expiry itself is driven by a
/// `ManualClock`).
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Builds, once, into `cell`, a cache from `builder` whose janitor sweeps
/// every millisecond and whose removal listener closes the cache itself,
/// counting in `closed`: the listener runs on the janitor thread, so the
/// close does too.
pub fn self_closing_cache(
    cell: &'static OnceLock<Cache<u32, u32>>,
    closed: &'static AtomicUsize,
    builder: CacheBuilder<u32, u32>,
) -> &'static Cache<u32, u32> {
    cell.get_or_init(|| {
        builder
            .cleanup_interval(Duration::from_millis(1))
            .removal_listener(move |_, _, _| {
                cell.get().expect("built").close();
                closed.fetch_add(1, Ordering::SeqCst);
            })
            .build()
    })
}

/// A value that owns the cache it is stored in: it is never read, only
/// held, so that dropping the value drops the cache, on whichever thread
/// drops it.
#[derive(Clone)]
pub struct Owner(#[allow(dead_code)] Arc<Cache<u32, Owner>>);

/// A cache on `clock` with a janitor sweeping every millisecond, whose only
/// reference is held by its one entry, which expires one second from now:
/// the janitor's sweep of it drops the cache on the janitor thread. Returns
/// a `Weak` to watch for that.
pub fn cache_held_by_its_entry(clock: &ManualClock) -> Weak<Cache<u32, Owner>> {
    let cache: Arc<Cache<u32, Owner>> = Arc::new(
        Cache::builder()
            .clock(clock.clone())
            // Two shards: the janitor reaches the entry within two steps,
            // where among the default shards it takes up to one step per
            // shard, which Miri interprets for tens of virtual seconds.
            .shards(2)
            .cleanup_interval(Duration::from_millis(1))
            .build(),
    );
    let weak = Arc::downgrade(&cache);
    cache.insert_with_ttl(1, Owner(Arc::clone(&cache)), Duration::from_secs(1));
    weak
}

/// A caught panic's message (`""` if it is not a string).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("")
}

/// Checks the callers of a loader cycle (`tests/loading_cycles.rs`,
/// `tests/loading_async.rs`): each got a value or panicked (`Err` with the
/// message), and at least one panicked, every panic being the documented
/// cycle panic naming `loaders` loaders.
pub fn check_cycle(outcomes: &[Result<u32, String>], loaders: usize) {
    let panics: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!panics.is_empty(), "no caller panicked: {outcomes:?}");
    for message in panics {
        assert!(
            message.starts_with("shardcache: loader cycle: the loader `")
                && message.matches("loader `").count() == loaders,
            "{message}"
        );
    }
}
