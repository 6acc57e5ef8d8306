//! Counters of what a near cache did.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one [`NearCache`](crate::NearCache) instance's counters,
/// from [`NearCache::stats`](crate::NearCache::stats).
///
/// ```
/// use shardcache_redis::NearStats;
///
/// let stats = NearStats { l1_hits: 98, l2_hits: 1, loads: 1, ..NearStats::default() };
/// assert_eq!(stats.l1_hit_ratio(), 0.98);
/// assert_eq!(stats.redis_reads_saved(), 0.98);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearStats {
    /// Reads answered from this instance's memory (L1).
    pub l1_hits: u64,
    /// Reads that went to Redis and found the key (L2).
    pub l2_hits: u64,
    /// Loader runs: the key was in neither tier, or Redis was unavailable
    /// and the cache is built with [`Unavailable::Load`](crate::Unavailable::Load).
    pub loads: u64,
    /// Keys Redis told this instance to drop.
    pub invalidations: u64,
    /// Whole-L1 flushes because the connection broke or timed out: it may
    /// have missed invalidations while it was down.
    pub reconnect_flushes: u64,
    /// Whole-L1 flushes because the server was flushed (`FLUSHALL`,
    /// `FLUSHDB`).
    pub server_flushes: u64,
    /// Reads that waited for another caller's Redis read of the same key,
    /// saw an invalidation of that key arrive meanwhile, and read again
    /// (see "The race" in the crate docs).
    pub rereads: u64,
}

impl NearStats {
    /// Reads answered from L1 over all reads, in `[0, 1]`; 0 with no reads.
    ///
    /// ```
    /// use shardcache_redis::NearStats;
    ///
    /// assert_eq!(NearStats::default().l1_hit_ratio(), 0.0);
    /// ```
    pub fn l1_hit_ratio(&self) -> f64 {
        ratio(self.l1_hits, self.l1_hits + self.l2_hits + self.loads)
    }

    /// The share of reads that did not go to Redis: L1 hits over all reads.
    /// Without the near cache every read is a Redis read.
    ///
    /// ```
    /// use shardcache_redis::NearStats;
    ///
    /// let stats = NearStats { l1_hits: 3, l2_hits: 1, ..NearStats::default() };
    /// assert_eq!(stats.redis_reads_saved(), 0.75);
    /// ```
    pub fn redis_reads_saved(&self) -> f64 {
        self.l1_hit_ratio()
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The live counters behind [`NearStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) reconnect_flushes: AtomicU64,
    pub(crate) server_flushes: AtomicU64,
    pub(crate) rereads: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> NearStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NearStats {
            l1_hits: get(&self.l1_hits),
            l2_hits: get(&self.l2_hits),
            loads: get(&self.loads),
            invalidations: get(&self.invalidations),
            reconnect_flushes: get(&self.reconnect_flushes),
            server_flushes: get(&self.server_flushes),
            rereads: get(&self.rereads),
        }
    }
}
