//! The subjects: shardcache's `Cache` (with and without TTL), its single-lock
//! baseline, the two maps an engineer would write by hand, and five crates an
//! engineer would otherwise pick. Each one is built with the same fixed-seed
//! hasher and wrapped in [`ConcurrentMap`], so the runner is monomorphised
//! for every subject and no dynamic call sits on the timed path.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::ValueEnum;
use shardcache::baseline::SingleLockCache;
use shardcache::Cache;

use super::run::Measure;
use super::workload::Value;

/// The hasher every subject that accepts one gets.
pub type Hasher = ahash::RandomState;

/// A fixed-seed [`Hasher`]: the same hash function, with the same seeds, in
/// every subject and every run.
pub fn hasher() -> Hasher {
    ahash::RandomState::with_seeds(
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    )
}

/// The TTL of every entry of the `Cache+TTL` subject: far enough in the
/// future that nothing expires, so every `get` pays the expiry check and
/// nothing else.
pub const FAR_FUTURE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What the runner needs from a subject: a `get` that clones the value out,
/// and an insert that overwrites.
pub trait ConcurrentMap<V>: Send + Sync {
    fn get(&self, key: u64) -> Option<V>;
    fn insert(&self, key: u64, value: V);
    /// Finishes work a subject defers (moka buffers its writes).
    fn settle(&self) {}
}

impl<V: Value> ConcurrentMap<V> for Cache<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        Cache::insert(self, key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for SingleLockCache<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        SingleLockCache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        SingleLockCache::insert(self, key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for RwLock<HashMap<u64, V, Hasher>> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        let map = self.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&key).cloned()
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        let mut map = self.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for Mutex<HashMap<u64, V, Hasher>> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        let map = self.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&key).cloned()
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        let mut map = self.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for dashmap::DashMap<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        dashmap::DashMap::get(self, &key).map(|entry| entry.value().clone())
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        dashmap::DashMap::insert(self, key, value);
    }
}

/// One `pin()` per operation, as a caller without a long-lived guard does.
impl<V: Value> ConcurrentMap<V> for papaya::HashMap<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        self.pin().get(&key).cloned()
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        self.pin().insert(key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for scc::HashMap<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        self.read_sync(&key, |_, value| value.clone())
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        self.upsert_sync(key, value);
    }
}

type QuickCache<V> = quick_cache::sync::Cache<u64, V, quick_cache::UnitWeighter, Hasher>;

impl<V: Value> ConcurrentMap<V> for QuickCache<V> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        quick_cache::sync::Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

impl<V: Value> ConcurrentMap<V> for moka::sync::Cache<u64, V, Hasher> {
    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        moka::sync::Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        moka::sync::Cache::insert(self, key, value);
    }

    fn settle(&self) {
        self.run_pending_tasks();
    }
}

/// A subject to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `Cache::builder().build()`: the default shard count, no TTL.
    Cache,
    /// `Cache` whose entries all carry [`FAR_FUTURE_TTL`].
    CacheTtl,
    /// `shardcache::baseline::SingleLockCache`.
    SingleLock,
    /// `std::sync::RwLock<std::collections::HashMap>`.
    RwLockHashMap,
    /// `std::sync::Mutex<std::collections::HashMap>`.
    MutexHashMap,
    DashMap,
    /// `papaya::HashMap`, one `pin()` per operation.
    Papaya,
    /// `scc::HashMap`.
    Scc,
    /// `quick_cache::sync::Cache`, sized so that nothing is evicted.
    QuickCache,
    /// `moka::sync::Cache`, sized so that nothing is evicted.
    Moka,
    /// `Cache` with this many shards, for the shard sweep.
    CacheShards(usize),
}

impl Subject {
    /// The named subjects, in table order.
    pub const ALL: [Subject; 10] = [
        Subject::Cache,
        Subject::CacheTtl,
        Subject::SingleLock,
        Subject::RwLockHashMap,
        Subject::MutexHashMap,
        Subject::DashMap,
        Subject::Papaya,
        Subject::Scc,
        Subject::QuickCache,
        Subject::Moka,
    ];

    /// The crates an engineer would pick instead of shardcache.
    pub const PEERS: [Subject; 5] = [
        Subject::DashMap,
        Subject::Papaya,
        Subject::Scc,
        Subject::QuickCache,
        Subject::Moka,
    ];

    /// The designs sharding replaces.
    pub const SINGLE_LOCKS: [Subject; 3] = [
        Subject::SingleLock,
        Subject::RwLockHashMap,
        Subject::MutexHashMap,
    ];

    /// Name on the command line; the shard sweep's subjects have none.
    fn flag(self) -> Option<&'static str> {
        Some(match self {
            Subject::Cache => "cache",
            Subject::CacheTtl => "cache-ttl",
            Subject::SingleLock => "single-lock",
            Subject::RwLockHashMap => "rwlock",
            Subject::MutexHashMap => "mutex",
            Subject::DashMap => "dashmap",
            Subject::Papaya => "papaya",
            Subject::Scc => "scc",
            Subject::QuickCache => "quick-cache",
            Subject::Moka => "moka",
            Subject::CacheShards(_) => return None,
        })
    }

    /// Builds the subject, empty, for a key space of `keys` keys. Only the
    /// two bounded caches use `keys`: they get room for twice as many
    /// entries, so that none is ever evicted.
    pub fn build<V: Value>(self, keys: usize) -> Box<dyn Measure<V>> {
        let room = 2 * keys;
        match self {
            Subject::Cache => Box::new(Cache::builder().hasher(hasher()).build()),
            Subject::CacheTtl => Box::new(
                Cache::builder()
                    .hasher(hasher())
                    .default_ttl(FAR_FUTURE_TTL)
                    .build(),
            ),
            Subject::SingleLock => Box::new(Cache::builder().hasher(hasher()).build_single_lock()),
            Subject::RwLockHashMap => Box::new(RwLock::new(HashMap::with_hasher(hasher()))),
            Subject::MutexHashMap => Box::new(Mutex::new(HashMap::with_hasher(hasher()))),
            Subject::DashMap => Box::new(dashmap::DashMap::with_hasher(hasher())),
            Subject::Papaya => Box::new(papaya::HashMap::builder().hasher(hasher()).build()),
            Subject::Scc => Box::new(scc::HashMap::with_hasher(hasher())),
            Subject::QuickCache => Box::new(QuickCache::<V>::with(
                keys,
                room as u64,
                quick_cache::UnitWeighter,
                hasher(),
                quick_cache::sync::DefaultLifecycle::default(),
            )),
            Subject::Moka => Box::new(
                moka::sync::Cache::builder()
                    .max_capacity(room as u64)
                    .build_with_hasher(hasher()),
            ),
            Subject::CacheShards(shards) => {
                Box::new(Cache::builder().hasher(hasher()).shards(shards).build())
            }
        }
    }
}

impl fmt::Display for Subject {
    /// The label in tables, the plot and the JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Cache => f.write_str("Cache"),
            Subject::CacheTtl => f.write_str("Cache+TTL"),
            Subject::SingleLock => f.write_str("SingleLockCache"),
            Subject::RwLockHashMap => f.write_str("RwLock<HashMap>"),
            Subject::MutexHashMap => f.write_str("Mutex<HashMap>"),
            Subject::DashMap => f.write_str("dashmap"),
            Subject::Papaya => f.write_str("papaya"),
            Subject::Scc => f.write_str("scc"),
            Subject::QuickCache => f.write_str("quick_cache"),
            Subject::Moka => f.write_str("moka"),
            Subject::CacheShards(n) => write!(f, "{n} shards"),
        }
    }
}

impl ValueEnum for Subject {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Subject::Cache => "shardcache::Cache, default build, entries without TTL",
            Subject::CacheTtl => "shardcache::Cache, every entry with a TTL a day away",
            Subject::SingleLock => "shardcache::baseline::SingleLockCache",
            Subject::RwLockHashMap => "std RwLock<HashMap>",
            Subject::MutexHashMap => "std Mutex<HashMap>",
            Subject::DashMap => "dashmap::DashMap",
            Subject::Papaya => "papaya::HashMap, one pin() per operation",
            Subject::Scc => "scc::HashMap",
            Subject::QuickCache => "quick_cache::sync::Cache, room for twice the keys",
            Subject::Moka => "moka::sync::Cache, room for twice the keys",
            Subject::CacheShards(_) => "",
        };
        self.flag().map(|flag| PossibleValue::new(flag).help(help))
    }
}

/// Shard counts of the shard sweep: 1, 2, 4, ... 1024.
pub const SHARD_SWEEP: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
