//! loom models of `Cache::compute` (`src/compute.rs`): a compute racing an
//! insert of its key, and a compute racing the eviction of its key.
//!
//! ```text
//! cd loom-tests
//! RUSTFLAGS="--cfg shardcache_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test compute
//! ```
//!
//! The same rules as the other models: every model lists the outcomes it
//! allows, each execution asserts its outcome is one of them, and every
//! allowed outcome must be reached. One shard and a fixed hasher.
#![cfg(shardcache_loom)]

mod common;

use common::explore;
use loom::sync::Arc;
use loom::thread;
use shardcache::{Cache, Compute, ManualClock};

type Hasher = ahash::RandomState;

type TestCache = Cache<u32, u32, Hasher>;

const KEY: u32 = 7;

/// One shard, the fixed hasher, a manual clock, stats on; bounded to
/// `capacity` entries if given. `KEY => 10` is stored.
fn cache_with_key(capacity: Option<u64>) -> Arc<TestCache> {
    let builder = Cache::builder()
        .shards(1)
        .record_stats(true)
        .clock(ManualClock::new())
        .hasher(Hasher::with_seeds(1, 2, 3, 4));
    let builder = match capacity {
        Some(capacity) => builder.max_capacity(capacity),
        None => builder,
    };
    let cache = Arc::new(builder.build());
    cache.insert(KEY, 10);
    cache
}

fn spawn<T, F>(cache: &Arc<TestCache>, f: F) -> thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&TestCache) -> T + Send + 'static,
{
    let cache = Arc::clone(cache);
    thread::spawn(move || f(&cache))
}

fn increment(n: Option<&u32>) -> Compute<u32> {
    Compute::Put(n.map_or(1, |n| n + 1))
}

/// Model C1. `compute(KEY, +1)` races `insert(KEY, 100)`. No update is
/// lost: either the compute came first (whole, or superseded while `f`
/// ran: it happened just before the insert) and the insert's 100 stays, or
/// the insert came first and the compute adds to it.
///
/// Outcome: (what `compute` returned, what is cached after, inserts).
/// - `(11, 100, 3)`: the compute stored 11, then the insert replaced it.
/// - `(11, 100, 2)`: the insert came while `f` ran: the compute stored
///   nothing.
/// - `(101, 101, 3)`: the insert came first.
#[test]
fn c1_compute_races_insert() {
    explore(&[(11, 100, 3), (11, 100, 2), (101, 101, 3)], || {
        let cache = cache_with_key(None);
        let computing = spawn(&cache, |cache| cache.compute(KEY, increment));
        let writer = spawn(&cache, |cache| cache.insert(KEY, 100));
        let got = computing.join().unwrap().expect("a Put returns its value");
        writer.join().unwrap();
        let after = cache.get(&KEY).expect("nothing removes the key");
        (got, after, cache.stats().inserts)
    });
}

/// Model C2. On a cache bounded to one entry, `compute(KEY, +1)` races
/// `insert(8, 80)`, which evicts one of the two. The compute never sees a
/// value that is gone, and whatever it stores is its own result.
///
/// Outcome: (what `compute` returned, `KEY`'s value after, 8's value after).
/// - `(11, None, Some(80))`: the compute stored 11, then the insert
///   evicted it.
/// - `(1, Some(1), None)`: the insert evicted 10 first; `f` saw nothing,
///   and the compute's 1 evicted 80.
/// - `(11, Some(11), None)`: the compute's 11 went in while the insert
///   was on its way (it read 10 first) or after the insert, evicting 80.
#[test]
fn c2_compute_races_eviction() {
    explore(
        &[(11, None, Some(80)), (1, Some(1), None), (11, Some(11), None)],
        || {
            let cache = cache_with_key(Some(1));
            let computing = spawn(&cache, |cache| cache.compute(KEY, increment));
            let writer = spawn(&cache, |cache| cache.insert(8, 80));
            let got = computing.join().unwrap().expect("a Put returns its value");
            writer.join().unwrap();
            assert!(cache.len() <= 1, "the bound holds");
            (got, cache.get(&KEY), cache.get(&8))
        },
    );
}
