//! The subjects: shardcache's `Cache` (with and without TTL or TTI, unbounded and
//! bounded), its single-lock baseline, the two maps an engineer would write
//! by hand, and five crates an engineer would otherwise pick. Each one is
//! built with the same fixed-seed hasher and wrapped in [`ConcurrentMap`], so
//! the runner is monomorphised for every subject and no dynamic call sits on
//! the timed path.
//!
//! Most subjects have room for every key, so every `get` hits. The bounded
//! caches with less room than the key space ([`Subject::read_through`]) are
//! used as a service uses a cache: a `get` that misses is followed by an
//! `insert` of that key, so the workload makes them evict.

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
    /// Whether a `get` that misses is followed by an `insert` of the key
    /// (see [`ReadThrough`]).
    const READ_THROUGH: bool = false;
    fn get(&self, key: u64) -> Option<V>;
    fn insert(&self, key: u64, value: V);
    /// Entries held, once [`settle`](Self::settle)d.
    fn len(&self) -> usize;
    /// Finishes work a subject defers (moka buffers its writes).
    fn settle(&self) {}
}

/// A subject that evicts, used read-through: the runner follows a `get`
/// that misses with an `insert` of the key's value, as a service does that
/// loads what its cache lacks. The branch is compiled only into these
/// subjects' loops.
pub struct ReadThrough<M>(M);

impl<V: Value, M: ConcurrentMap<V>> ConcurrentMap<V> for ReadThrough<M> {
    const READ_THROUGH: bool = true;

    #[inline]
    fn get(&self, key: u64) -> Option<V> {
        self.0.get(key)
    }

    #[inline]
    fn insert(&self, key: u64, value: V) {
        self.0.insert(key, value);
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn settle(&self) {
        self.0.settle();
    }
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

    fn len(&self) -> usize {
        Cache::len(self)
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

    fn len(&self) -> usize {
        SingleLockCache::len(self)
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

    fn len(&self) -> usize {
        self.read().unwrap_or_else(PoisonError::into_inner).len()
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

    fn len(&self) -> usize {
        self.lock().unwrap_or_else(PoisonError::into_inner).len()
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

    fn len(&self) -> usize {
        dashmap::DashMap::len(self)
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

    fn len(&self) -> usize {
        papaya::HashMap::len(self)
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

    fn len(&self) -> usize {
        scc::HashMap::len(self)
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

    fn len(&self) -> usize {
        quick_cache::sync::Cache::len(self)
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

    /// Exact once settled: moka counts entries as it applies its buffered
    /// writes.
    fn len(&self) -> usize {
        usize::try_from(self.entry_count()).unwrap_or(usize::MAX)
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
    /// `Cache` built with a time-to-idle of [`FAR_FUTURE_TTL`]: every `get`
    /// reads the clock and may move the entry's idle deadline.
    CacheTti,
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
    /// `Cache` bounded, sized so that nothing is evicted.
    CacheBoundedFull,
    /// `Cache` bounded to half the key space, read-through.
    CacheBoundedHalf,
    /// `quick_cache::sync::Cache` with room for half the key space,
    /// read-through.
    QuickCacheHalf,
    /// `moka::sync::Cache` with room for half the key space, read-through.
    MokaHalf,
    /// `Cache` bounded to exactly the key space, read-through: the bounded
    /// subject of `--memory`.
    CacheBoundedExact,
    /// `quick_cache::sync::Cache` with room for exactly the key space,
    /// read-through: `--memory`'s peer of [`Subject::CacheBoundedExact`].
    QuickCacheExact,
    /// `Cache` with this many shards, for the shard sweep.
    CacheShards(usize),
    /// `Cache` with this many reader stripes, for the stripe sweep.
    CacheStripes(usize),
}

/// How much room a bounded subject gets, for a key space of `keys` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Room {
    /// Twice the keys: the capacity is split over shards, and the fullest
    /// shard gets more than its share of keys, so exactly `keys` would evict
    /// some.
    Twice,
    /// Half the keys: gets miss and inserts evict.
    Half,
    /// Exactly the keys: the footprint at a given capacity.
    Exact,
}

impl Room {
    fn capacity(self, keys: usize) -> usize {
        match self {
            Room::Twice => 2 * keys,
            Room::Half => (keys / 2).max(1),
            Room::Exact => keys,
        }
    }
}

impl Subject {
    /// The subjects of a throughput run, in table order.
    pub const ALL: [Subject; 14] = [
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
        Subject::CacheBoundedFull,
        Subject::CacheBoundedHalf,
        Subject::QuickCacheHalf,
        Subject::MokaHalf,
    ];

    /// The subjects of `--memory`, in table order: those of [`Self::ALL`]
    /// that hold every key, and the two bounded caches at exactly the key
    /// space.
    pub const MEMORY: [Subject; 12] = [
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
        Subject::CacheBoundedExact,
        Subject::QuickCacheExact,
    ];

    /// Every named subject: what `--subjects` accepts.
    const NAMED: [Subject; 17] = [
        Subject::Cache,
        Subject::CacheTtl,
        Subject::CacheTti,
        Subject::SingleLock,
        Subject::RwLockHashMap,
        Subject::MutexHashMap,
        Subject::DashMap,
        Subject::Papaya,
        Subject::Scc,
        Subject::QuickCache,
        Subject::Moka,
        Subject::CacheBoundedFull,
        Subject::CacheBoundedHalf,
        Subject::QuickCacheHalf,
        Subject::MokaHalf,
        Subject::CacheBoundedExact,
        Subject::QuickCacheExact,
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
            Subject::CacheTti => "cache-tti",
            Subject::SingleLock => "single-lock",
            Subject::RwLockHashMap => "rwlock",
            Subject::MutexHashMap => "mutex",
            Subject::DashMap => "dashmap",
            Subject::Papaya => "papaya",
            Subject::Scc => "scc",
            Subject::QuickCache => "quick-cache",
            Subject::Moka => "moka",
            Subject::CacheBoundedFull => "cache-bounded-full",
            Subject::CacheBoundedHalf => "cache-bounded-half",
            Subject::QuickCacheHalf => "quick-cache-half",
            Subject::MokaHalf => "moka-half",
            Subject::CacheBoundedExact => "cache-bounded-exact",
            Subject::QuickCacheExact => "quick-cache-exact",
            Subject::CacheShards(_) | Subject::CacheStripes(_) => return None,
        })
    }

    /// The room of the bounded subjects; `None` for the unbounded maps.
    fn room(self) -> Option<Room> {
        match self {
            Subject::QuickCache | Subject::Moka | Subject::CacheBoundedFull => Some(Room::Twice),
            Subject::CacheBoundedHalf | Subject::QuickCacheHalf | Subject::MokaHalf => {
                Some(Room::Half)
            }
            Subject::CacheBoundedExact | Subject::QuickCacheExact => Some(Room::Exact),
            Subject::Cache
            | Subject::CacheTtl
            | Subject::CacheTti
            | Subject::SingleLock
            | Subject::RwLockHashMap
            | Subject::MutexHashMap
            | Subject::DashMap
            | Subject::Papaya
            | Subject::Scc
            | Subject::CacheShards(_)
            | Subject::CacheStripes(_) => None,
        }
    }

    /// The most entries the subject holds with a key space of `keys` keys;
    /// `None` for the unbounded maps.
    pub fn capacity(self, keys: usize) -> Option<usize> {
        self.room().map(|room| room.capacity(keys))
    }

    /// Whether the subject has room for fewer entries than the key space
    /// (it may evict), and is therefore used read-through: a `get` that
    /// misses is followed by an `insert` of the key (see [`ReadThrough`]).
    pub fn read_through(self) -> bool {
        matches!(self.room(), Some(Room::Half | Room::Exact))
    }

    /// Builds the subject, empty, for a key space of `keys` keys. Only the
    /// bounded caches use `keys`, for their capacity (see
    /// [`capacity`](Self::capacity)).
    fn build<V: Value>(self, keys: usize) -> Box<dyn Measure<V>> {
        let capacity = self.capacity(keys).unwrap_or(0);
        let bounded_cache = || {
            Cache::builder()
                .max_capacity(capacity as u64)
                .hasher(hasher())
                .build()
        };
        // quick_cache also takes the number of entries it will hold.
        let quick_cache = || {
            QuickCache::<V>::with(
                capacity.min(keys),
                capacity as u64,
                quick_cache::UnitWeighter,
                hasher(),
                quick_cache::sync::DefaultLifecycle::default(),
            )
        };
        let moka = || {
            moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(hasher())
        };
        match self {
            Subject::Cache => Box::new(Cache::builder().hasher(hasher()).build()),
            Subject::CacheTtl => Box::new(
                Cache::builder()
                    .hasher(hasher())
                    .default_ttl(FAR_FUTURE_TTL)
                    .build(),
            ),
            Subject::CacheTti => Box::new(
                Cache::builder()
                    .hasher(hasher())
                    .time_to_idle(FAR_FUTURE_TTL)
                    .build(),
            ),
            Subject::SingleLock => Box::new(SingleLockCache::builder().hasher(hasher()).build()),
            Subject::RwLockHashMap => Box::new(RwLock::new(HashMap::with_hasher(hasher()))),
            Subject::MutexHashMap => Box::new(Mutex::new(HashMap::with_hasher(hasher()))),
            Subject::DashMap => Box::new(dashmap::DashMap::with_hasher(hasher())),
            Subject::Papaya => Box::new(papaya::HashMap::builder().hasher(hasher()).build()),
            Subject::Scc => Box::new(scc::HashMap::with_hasher(hasher())),
            Subject::QuickCache => Box::new(quick_cache()),
            Subject::Moka => Box::new(moka()),
            Subject::CacheBoundedFull => Box::new(bounded_cache()),
            Subject::CacheBoundedHalf | Subject::CacheBoundedExact => {
                Box::new(ReadThrough(bounded_cache()))
            }
            Subject::QuickCacheHalf | Subject::QuickCacheExact => {
                Box::new(ReadThrough(quick_cache()))
            }
            Subject::MokaHalf => Box::new(ReadThrough(moka())),
            Subject::CacheShards(shards) => {
                Box::new(Cache::builder().hasher(hasher()).shards(shards).build())
            }
            Subject::CacheStripes(stripes) => {
                Box::new(Cache::builder().hasher(hasher()).__stripes(stripes).build())
            }
        }
    }

    /// Builds the subject for a key space of `keys` keys and fills it: with
    /// every key of `0..keys`, or, for a read-through subject, with the
    /// first keys up to its capacity (for the `-exact` ones, every key).
    /// Returns it with the entries it then holds.
    ///
    /// # Panics
    ///
    /// If a subject with room for every key lost one, or a subject holds
    /// more entries than its capacity once settled.
    pub fn prefilled<V: Value>(self, keys: usize) -> (Box<dyn Measure<V>>, usize) {
        let map = self.build::<V>(keys);
        match self.capacity(keys).filter(|_| self.read_through()) {
            Some(capacity) => {
                let held = map.prefill(capacity.min(keys));
                assert!(
                    held <= capacity,
                    "{self} holds {held} entries after the prefill, over its capacity {capacity}"
                );
                (map, held)
            }
            None => {
                let held = map.prefill(keys);
                assert_eq!(
                    held, keys,
                    "{self} holds {held} of {keys} keys after the prefill"
                );
                (map, held)
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
            Subject::CacheTti => f.write_str("Cache+TTI"),
            Subject::SingleLock => f.write_str("SingleLockCache"),
            Subject::RwLockHashMap => f.write_str("RwLock<HashMap>"),
            Subject::MutexHashMap => f.write_str("Mutex<HashMap>"),
            Subject::DashMap => f.write_str("dashmap"),
            Subject::Papaya => f.write_str("papaya"),
            Subject::Scc => f.write_str("scc"),
            Subject::QuickCache => f.write_str("quick_cache"),
            Subject::Moka => f.write_str("moka"),
            Subject::CacheBoundedFull => f.write_str("Cache-bounded-full"),
            Subject::CacheBoundedHalf => f.write_str("Cache-bounded-half"),
            Subject::QuickCacheHalf => f.write_str("quick_cache-half"),
            Subject::MokaHalf => f.write_str("moka-half"),
            Subject::CacheBoundedExact => f.write_str("Cache-bounded-exact"),
            Subject::QuickCacheExact => f.write_str("quick_cache-exact"),
            Subject::CacheShards(n) => write!(f, "{n} shards"),
            Subject::CacheStripes(n) => write!(f, "{n} stripes"),
        }
    }
}

impl ValueEnum for Subject {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::NAMED
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Subject::Cache => "shardcache::Cache, default build, entries without TTL",
            Subject::CacheTtl => "shardcache::Cache, every entry with a TTL a day away",
            Subject::CacheTti => "shardcache::Cache with a time-to-idle of a day",
            Subject::SingleLock => "shardcache::baseline::SingleLockCache",
            Subject::RwLockHashMap => "std RwLock<HashMap>",
            Subject::MutexHashMap => "std Mutex<HashMap>",
            Subject::DashMap => "dashmap::DashMap",
            Subject::Papaya => "papaya::HashMap, one pin() per operation",
            Subject::Scc => "scc::HashMap",
            Subject::QuickCache => "quick_cache::sync::Cache, room for twice the keys",
            Subject::Moka => "moka::sync::Cache, room for twice the keys",
            Subject::CacheBoundedFull => "shardcache::Cache, max_capacity twice the keys",
            Subject::CacheBoundedHalf => {
                "shardcache::Cache, max_capacity half the keys, read-through"
            }
            Subject::QuickCacheHalf => {
                "quick_cache::sync::Cache, room for half the keys, read-through"
            }
            Subject::MokaHalf => "moka::sync::Cache, room for half the keys, read-through",
            Subject::CacheBoundedExact => {
                "shardcache::Cache, max_capacity exactly the keys, read-through (for --memory)"
            }
            Subject::QuickCacheExact => {
                "quick_cache::sync::Cache, room for exactly the keys, read-through (for --memory)"
            }
            Subject::CacheShards(_) | Subject::CacheStripes(_) => "",
        };
        self.flag().map(|flag| PossibleValue::new(flag).help(help))
    }
}

/// Stripe counts of the stripe sweep: 1, 2, 4, 8, 16.
pub const STRIPE_SWEEP: [usize; 5] = [1, 2, 4, 8, 16];

/// Shard counts of the shard sweep: 1, 2, 4, ... 1024.
pub const SHARD_SWEEP: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
