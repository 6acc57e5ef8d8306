//! The policies compared, and how each one replays a trace.
//!
//! The three caches are replayed as a user calls them: for each request,
//! `if cache.get(&k).is_some() { hit } else { cache.insert(k, k) }`, with
//! `u64` values, every entry of weight 1, a capacity in entries and a
//! fixed-seed `ahash::RandomState` (the seeds decide which shard a key
//! lands in, and feed moka's frequency sketch). The exact policies (LRU,
//! OPT) run on dense ids in [`crate::opt`].

use std::sync::Barrier;
use std::thread;

use crate::opt;
use crate::traces::{mix, Trace};

/// The hasher every cache gets.
pub type Hasher = ahash::RandomState;

/// The four `u64` seeds of hasher number `index`. Seed set 0 is the one of
/// the `compare` harness (`benches/support/subjects.rs`); set `i > 0` is
/// SplitMix64's finaliser applied to `4i, 4i+1, 4i+2, 4i+3`.
pub fn seeds(index: usize) -> [u64; 4] {
    if index == 0 {
        [
            0x243F_6A88_85A3_08D3,
            0x1319_8A2E_0370_7344,
            0xA409_3822_299F_31D0,
            0x082E_FA98_EC4E_6C89,
        ]
    } else {
        let base = 4 * index as u64;
        [mix(base), mix(base + 1), mix(base + 2), mix(base + 3)]
    }
}

fn hasher(seeds: [u64; 4]) -> Hasher {
    let [a, b, c, d] = seeds;
    ahash::RandomState::with_seeds(a, b, c, d)
}

/// A policy whose hit ratio is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// `shardcache::Cache` built with `max_capacity`.
    Shardcache,
    /// The same with `shards(1)`: what the policy does when one shard holds
    /// the whole capacity, the reference for the cost of sharding.
    ShardcacheOneShard,
    /// `moka::sync::Cache`, as a user calls it: moka applies its buffered
    /// reads and writes to its policy on its own, every 64 operations of a
    /// kind or after 300 ms.
    Moka,
    /// `moka::sync::Cache` with `run_pending_tasks()` after every insert
    /// (only with `--moka-sync`): the policy at its exact capacity, no
    /// buffered writes.
    MokaSynced,
    /// `quick_cache::sync::Cache` with the default shard count.
    QuickCache,
    /// An exact LRU.
    Lru,
    /// Belady's MIN: every missed key admitted.
    OptAdmit,
    /// Belady's policy with bypass: the bound.
    Opt,
}

impl Policy {
    /// Column label.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Shardcache => "shardcache",
            Policy::ShardcacheOneShard => "shardcache-1",
            Policy::Moka => "moka",
            Policy::MokaSynced => "moka-sync",
            Policy::QuickCache => "quick_cache",
            Policy::Lru => "LRU",
            Policy::OptAdmit => "OPT-admit",
            Policy::Opt => "OPT",
        }
    }

    /// What it is, for the JSON and the header of the output.
    pub fn describe(self) -> &'static str {
        match self {
            Policy::Shardcache => "shardcache::Cache, builder().max_capacity(n).hasher(h)",
            Policy::ShardcacheOneShard => {
                "shardcache::Cache, builder().max_capacity(n).shards(1).hasher(h)"
            }
            Policy::Moka => {
                "moka::sync::Cache, builder().max_capacity(n).build_with_hasher(h); \
                 no run_pending_tasks() during the replay"
            }
            Policy::MokaSynced => {
                "moka::sync::Cache as moka, plus run_pending_tasks() after every insert"
            }
            Policy::QuickCache => {
                "quick_cache::sync::Cache::with(n, n, UnitWeighter, h, DefaultLifecycle)"
            }
            Policy::Lru => "exact LRU",
            Policy::OptAdmit => {
                "Belady's MIN: on a miss, admit the key, evicting the resident \
                 key requested farthest in the future"
            }
            Policy::Opt => {
                "Belady with bypass: as OPT-admit, but a missed key whose own next \
                 request is at least as far as every resident's is not admitted"
            }
        }
    }

    /// Whether it is a cache with a hasher (and so seeds and threads).
    pub fn is_cache(self) -> bool {
        matches!(
            self,
            Policy::Shardcache
                | Policy::ShardcacheOneShard
                | Policy::Moka
                | Policy::MokaSynced
                | Policy::QuickCache
        )
    }

    /// Whether `--threads` replays it from several threads too.
    pub fn is_threaded(self) -> bool {
        matches!(self, Policy::Shardcache | Policy::Moka | Policy::QuickCache)
    }
}

/// One replay's result.
#[derive(Clone, Copy, Debug)]
pub struct Replayed {
    pub hits: u64,
    /// The cache's shard count, for the sharded caches.
    pub shards: Option<usize>,
    /// Entries the cache holds after the replay (moka: after
    /// `run_pending_tasks()`); none for the exact policies.
    pub final_len: Option<u64>,
}

/// The calls a replay makes.
trait Subject: Sync {
    fn get(&self, key: u64) -> bool;
    fn insert(&self, key: u64);
}

impl Subject for shardcache::Cache<u64, u64, Hasher> {
    fn get(&self, key: u64) -> bool {
        shardcache::Cache::get(self, &key).is_some()
    }

    fn insert(&self, key: u64) {
        shardcache::Cache::insert(self, key, key);
    }
}

impl Subject for moka::sync::Cache<u64, u64, Hasher> {
    fn get(&self, key: u64) -> bool {
        moka::sync::Cache::get(self, &key).is_some()
    }

    fn insert(&self, key: u64) {
        moka::sync::Cache::insert(self, key, key);
    }
}

/// moka with its pending work run after every insert.
struct Synced(moka::sync::Cache<u64, u64, Hasher>);

impl Subject for Synced {
    fn get(&self, key: u64) -> bool {
        self.0.get(&key).is_some()
    }

    fn insert(&self, key: u64) {
        self.0.insert(key, key);
        self.0.run_pending_tasks();
    }
}

type QuickCache = quick_cache::sync::Cache<u64, u64, quick_cache::UnitWeighter, Hasher>;

impl Subject for QuickCache {
    fn get(&self, key: u64) -> bool {
        quick_cache::sync::Cache::get(self, &key).is_some()
    }

    fn insert(&self, key: u64) {
        quick_cache::sync::Cache::insert(self, key, key);
    }
}

/// Hits of `cache` on `keys`, replayed by `threads` threads: thread `t`
/// requests keys `t, t + threads, t + 2 threads, ...`. All start together;
/// with `drift > 0` they also wait for each other after every `drift` of
/// their requests, so that none runs more than `drift` requests ahead of
/// another and the requests stay close to the trace's order.
fn replay(cache: &impl Subject, keys: &[u64], threads: usize, drift: usize) -> u64 {
    let request = |key: &u64| {
        if cache.get(*key) {
            true
        } else {
            cache.insert(*key);
            false
        }
    };
    if threads == 1 {
        return keys.iter().filter(|&key| request(key)).count() as u64;
    }
    let longest = keys.len().div_ceil(threads);
    let (round, rounds) = match drift {
        0 => (longest, 1),
        d => (d, longest.div_ceil(d)),
    };
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, request) = (&barrier, &request);
                scope.spawn(move || {
                    let mut slice = keys.iter().skip(t).step_by(threads);
                    let mut hits = 0;
                    for _ in 0..rounds {
                        barrier.wait();
                        hits += slice
                            .by_ref()
                            .take(round)
                            .filter(|&key| request(key))
                            .count();
                    }
                    hits as u64
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a replay thread panicked"))
            .sum()
    })
}

fn moka(capacity: usize, seeds: [u64; 4]) -> moka::sync::Cache<u64, u64, Hasher> {
    moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .build_with_hasher(hasher(seeds))
}

/// Replays `trace` through `policy` with room for `capacity` entries; the
/// caches get hasher `seeds` and `threads` threads, which wait for each
/// other every `drift` requests (see [`replay`]). `next` is the trace's
/// [`opt::next_uses`].
pub fn run(
    policy: Policy,
    trace: &Trace,
    next: &[u32],
    capacity: usize,
    seeds: [u64; 4],
    threads: usize,
    drift: usize,
) -> Replayed {
    let exact = |hits| Replayed {
        hits,
        shards: None,
        final_len: None,
    };
    match policy {
        Policy::Shardcache | Policy::ShardcacheOneShard => {
            let mut builder = shardcache::Cache::builder().max_capacity(capacity as u64);
            if policy == Policy::ShardcacheOneShard {
                builder = builder.shards(1);
            }
            let cache: shardcache::Cache<u64, u64, Hasher> = builder.hasher(hasher(seeds)).build();
            let hits = replay(&cache, &trace.keys, threads, drift);
            Replayed {
                hits,
                shards: Some(cache.shard_count()),
                final_len: Some(cache.len() as u64),
            }
        }
        Policy::Moka => {
            let cache = moka(capacity, seeds);
            let hits = replay(&cache, &trace.keys, threads, drift);
            cache.run_pending_tasks();
            Replayed {
                hits,
                shards: None,
                final_len: Some(cache.entry_count()),
            }
        }
        Policy::MokaSynced => {
            let cache = Synced(moka(capacity, seeds));
            let hits = replay(&cache, &trace.keys, threads, drift);
            Replayed {
                hits,
                shards: None,
                final_len: Some(cache.0.entry_count()),
            }
        }
        Policy::QuickCache => {
            let cache = QuickCache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                hasher(seeds),
                quick_cache::sync::DefaultLifecycle::default(),
            );
            let hits = replay(&cache, &trace.keys, threads, drift);
            Replayed {
                hits,
                shards: Some(cache.num_shards()),
                final_len: Some(cache.len() as u64),
            }
        }
        Policy::Lru => exact(opt::lru_hits(&trace.ids, trace.distinct, capacity)),
        Policy::OptAdmit => exact(opt::opt_hits(
            &trace.ids,
            next,
            trace.distinct,
            capacity,
            false,
        )),
        Policy::Opt => exact(opt::opt_hits(
            &trace.ids,
            next,
            trace.distinct,
            capacity,
            true,
        )),
    }
}
