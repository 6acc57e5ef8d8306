//! Counters: [`Stats`], and the per-shard read counters behind it.

use std::ops::AddAssign;

use crate::shard::WriteCounts;
use crossbeam_utils::CachePadded;

use crate::sync::{reader_stripe, AtomicU64, Ordering};

/// A snapshot of a cache's counters, summed over its shards.
///
/// Counting is off by default: the read counters would add an atomic
/// increment to every `get` (measured in [docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md)). Turn it on with
/// [`CacheBuilder::record_stats`](crate::CacheBuilder::record_stats);
/// without it every field is zero.
///
/// The snapshot is not atomic across shards: under concurrent use the fields
/// may come from slightly different moments.
///
/// ```
/// use shardcache::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder().record_stats(true).build();
/// cache.insert(1, 10);
/// cache.get(&1);
/// cache.get(&2);
/// let stats = cache.stats();
/// assert_eq!((stats.inserts, stats.hits, stats.misses), (1, 1, 1));
/// assert_eq!(stats.hit_ratio(), 0.5);
///
/// // A load is a lookup, then (on a miss) an insert; `remove_if` removes.
/// cache.get_or_insert_with(3, || 30);
/// cache.remove_if(&3, |_| true);
/// let stats = cache.stats();
/// assert_eq!((stats.misses, stats.inserts, stats.removals), (2, 2, 1));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups that found a live entry: `get`, `contains_key`, and the
    /// lookup of a loading method (`get_or_insert_with` and the others) and
    /// of `compute`.
    pub hits: u64,
    /// Lookups that found nothing, or an expired entry.
    pub misses: u64,
    /// Values stored, under new keys or replacing: by `insert` and
    /// `insert_with_ttl`, by a loading method (the value its `init` made),
    /// and by a `compute` that returns `Put`.
    pub inserts: u64,
    /// Live entries taken out by `remove`, `remove_if`, `retain`, and a
    /// `compute` that returns `Remove`. `clear` is not counted.
    pub removals: u64,
    /// Expired entries removed, lazily by a lookup, `remove`, `remove_if`
    /// or `retain`, by a sweep (`remove_expired` or the janitor), or by
    /// eviction in a bounded cache (which removes expired entries before
    /// live ones).
    pub expirations: u64,
    /// Live entries a bounded cache removed to make room, plus entries not
    /// stored because they were heavier than a shard may hold
    /// ([`CacheBuilder::max_capacity`](crate::CacheBuilder::max_capacity)).
    pub evictions: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 when there were no lookups.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().record_stats(true).build();
    /// assert_eq!(cache.stats().hit_ratio(), 0.0, "no lookups yet");
    /// cache.insert(1, 1);
    /// for key in [1, 1, 1, 2] {
    ///     cache.get(&key);
    /// }
    /// assert_eq!(cache.stats().hit_ratio(), 0.75);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

impl AddAssign<WriteCounts> for Stats {
    fn add_assign(&mut self, counts: WriteCounts) {
        self.inserts += counts.inserts;
        self.removals += counts.removals;
        self.expirations += counts.expirations;
        self.evictions += counts.evictions;
    }
}

/// Hits and misses, one pair of counters per reader stripe (see
/// `locks.rs`), so threads counting lookups do not write the same line.
#[derive(Debug)]
pub(crate) struct ReadCounters {
    stripes: Box<[CachePadded<[AtomicU64; 2]>]>,
}

impl ReadCounters {
    /// Counters for `stripes` stripes (a power of two).
    pub(crate) fn new(stripes: usize) -> Self {
        debug_assert!(stripes.is_power_of_two());
        let stripes = (0..stripes)
            .map(|_| CachePadded::new([AtomicU64::new(0), AtomicU64::new(0)]))
            .collect();
        Self { stripes }
    }

    #[inline]
    pub(crate) fn record(&self, hit: bool) {
        let stripe = &self.stripes[reader_stripe() & (self.stripes.len() - 1)];
        stripe[usize::from(hit)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_to(&self, stats: &mut Stats) {
        for stripe in self.stripes.iter() {
            stats.misses += stripe[0].load(Ordering::Relaxed);
            stats.hits += stripe[1].load(Ordering::Relaxed);
        }
    }
}
