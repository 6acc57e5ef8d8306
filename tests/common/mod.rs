//! One interface over both cache types, so every semantic test, the model
//! check and the fuzz targets run unchanged on `Cache` and on the
//! single-lock baseline. Included by the test crates with `mod common;` and
//! by the fuzz targets with `#[path = "../../tests/common/mod.rs"]`.

#![allow(dead_code)]

use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, CacheBuilder, Clock, Stats};

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
    ($ty:ident, $build:ident) => {
        impl<K, V> CacheApi<K, V> for $ty<K, V>
        where
            K: Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            fn build(builder: CacheBuilder<K, V>) -> Self {
                builder.$build()
            }
            fn insert(&self, key: K, value: V) {
                $ty::insert(self, key, value)
            }
            fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
                $ty::insert_with_ttl(self, key, value, ttl)
            }
            fn get(&self, key: &K) -> Option<V> {
                $ty::get(self, key)
            }
            fn contains_key(&self, key: &K) -> bool {
                $ty::contains_key(self, key)
            }
            fn remove(&self, key: &K) -> Option<V> {
                $ty::remove(self, key)
            }
            fn remove_expired(&self) -> usize {
                $ty::remove_expired(self)
            }
            fn len(&self) -> usize {
                $ty::len(self)
            }
            fn is_empty(&self) -> bool {
                $ty::is_empty(self)
            }
            fn clear(&self) {
                $ty::clear(self)
            }
            fn shard_count(&self) -> usize {
                $ty::shard_count(self)
            }
            fn stats(&self) -> Stats {
                $ty::stats(self)
            }
            fn close(&self) {
                $ty::close(self)
            }
        }
    };
}

impl_cache_api!(Cache, build);
impl_cache_api!(SingleLockCache, build_single_lock);

/// Instantiates generic tests for both cache types: `suite!(a, b)` makes
/// `sharded::a` run `a::<Cache<_, _>>()` and `single_lock::a` run
/// `a::<SingleLockCache<_, _>>()`, and the same for `b`.
#[allow(unused_macros)] // model_check and the fuzz targets include this file too
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sharded {
            $( #[test] fn $test() { super::$test::<shardcache::Cache<_, _>>(); } )*
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
