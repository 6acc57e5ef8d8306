//! loom models of `Cache::compute` (`src/compute.rs`): a compute racing an
//! insert of its key (c1), a compute racing the eviction of its key (c2),
//! and a compute racing an insert of another key that evicts, with a
//! weigher and a removal listener (c3a, c3b).
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
use shardcache::{Cache, Compute, ManualClock, RemovalCause};

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
        &[
            (11, None, Some(80)),
            (1, Some(1), None),
            (11, Some(11), None),
        ],
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

/// What the removal listener of c3a and c3b was told: (key, value, cause).
/// A std mutex, not loom's: it is test bookkeeping, held with no loom
/// operation inside, so loom never switches threads while it is held, and
/// loom's would only multiply the executions.
type Log = std::sync::Arc<std::sync::Mutex<Vec<(u32, u32, &'static str)>>>;

fn cause_name(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Evicted => "evicted",
        RemovalCause::Replaced => "replaced",
        RemovalCause::Removed => "removed",
        RemovalCause::Expired => "expired",
        RemovalCause::Cleared => "cleared",
        _ => "other",
    }
}

/// (what `compute` returned, the entries present, what the listener was
/// told), each sorted.
type Evicting = (u32, Vec<(u32, u32)>, Vec<(u32, u32, &'static str)>);

/// Models C3a and C3b. One shard of capacity 3, weigher `value % 10`,
/// holding `KEY => 11` (weight 1) then `9 => 91` (weight 1), both in the
/// main queue (a cold shard fills it first). `compute(KEY, +1)` (12,
/// weight 2) races `insert(8, inserted)` of another key, heavy enough that
/// the two do not both fit. Whatever the order, every execution asserts:
///
/// - `weighted_size` is exactly the weight of the entries present, at most
///   3; `len` their number; `stats` counts four inserts and one eviction
///   per value told `evicted`;
/// - nothing is lost: each value made (11, 91, `inserted` and the
///   compute's) is present or was told to the listener, exactly once;
/// - the compute's result was stored whole: it is `KEY`'s value now, or
///   the listener was told it was evicted.
fn compute_races_an_evicting_insert(inserted: u32) -> Evicting {
    let log = Log::default();
    let sink = std::sync::Arc::clone(&log);
    let cache: Arc<TestCache> = Arc::new(
        Cache::builder()
            .shards(1)
            .record_stats(true)
            .clock(ManualClock::new())
            .hasher(Hasher::with_seeds(1, 2, 3, 4))
            .max_capacity(3)
            .weigher(|_, value: &u32| value % 10)
            .removal_listener(move |key, value, cause| {
                sink.lock().unwrap().push((key, value, cause_name(cause)));
            })
            .build(),
    );
    cache.insert(KEY, 11);
    cache.insert(9, 91);
    let computing = spawn(&cache, |cache| cache.compute(KEY, increment));
    let writer = spawn(&cache, move |cache| cache.insert(8, inserted));
    let got = computing.join().unwrap().expect("a Put returns its value");
    writer.join().unwrap();

    // `iter` reads without counting hits.
    let mut present: Vec<(u32, u32)> = cache.iter().collect();
    present.sort_unstable();
    let mut told = std::mem::take(&mut *log.lock().unwrap());
    told.sort_unstable();
    let weight: u64 = present.iter().map(|&(_, v)| u64::from(v % 10)).sum();
    assert_eq!(cache.weighted_size(), weight, "weighted_size is exact");
    assert!(weight <= 3, "the bound holds");
    assert_eq!(cache.len(), present.len());
    let stats = cache.stats();
    let evicted = told.iter().filter(|t| t.2 == "evicted").count() as u64;
    assert_eq!((stats.inserts, stats.evictions), (4, evicted));
    let mut values: Vec<u32> = present
        .iter()
        .map(|p| p.1)
        .chain(told.iter().map(|t| t.1))
        .collect();
    values.sort_unstable();
    let mut made = vec![11, 91, inserted, got];
    made.sort_unstable();
    assert_eq!(values, made, "a value was lost or told twice");
    assert!(
        present.contains(&(KEY, got)) || told.contains(&(KEY, got, "evicted")),
        "the compute's {got} was neither stored nor told evicted"
    );
    (got, present, told)
}

/// Model C3a: the insert is `8 => 82` (weight 2).
///
/// - `(1, [(7, 1), (9, 91)], [(7, 11, evicted), (8, 82, evicted)])`: the
///   insert came first and evicted 11 (main's oldest, never read); `f` saw
///   nothing and put 1, which evicted 82 (new, in the small queue, unread);
/// - `(12, [(7, 12)], [(7, 11, replaced), (8, 82, evicted), (9, 91,
///   evicted)])`: the insert came while `f` ran, after its read of 11 (a
///   hit, so the insert passed over `KEY` and evicted 91); the compute's
///   12 then replaced 11 and, twice as heavy, evicted 82 (new, unread);
/// - `(12, [(8, 82)], [(7, 11, replaced), (7, 12, evicted), (9, 91,
///   evicted)])`: the compute came first (12 and 91 fill the shard); the
///   insert then evicted 91 and, once `KEY`'s hit was spent, 12.
#[test]
fn c3a_compute_races_an_evicting_insert() {
    explore(
        &[
            (
                1,
                vec![(KEY, 1), (9, 91)],
                vec![(KEY, 11, "evicted"), (8, 82, "evicted")],
            ),
            (
                12,
                vec![(KEY, 12)],
                vec![
                    (KEY, 11, "replaced"),
                    (8, 82, "evicted"),
                    (9, 91, "evicted"),
                ],
            ),
            (
                12,
                vec![(8, 82)],
                vec![
                    (KEY, 11, "replaced"),
                    (KEY, 12, "evicted"),
                    (9, 91, "evicted"),
                ],
            ),
        ],
        || compute_races_an_evicting_insert(82),
    );
}

/// Model C3b: the insert is `8 => 83` (weight 3, the whole capacity), so it
/// evicts everything else, the computed key included.
///
/// - `(1, [(7, 1)], [(7, 11, evicted), (8, 83, evicted), (9, 91,
///   evicted)])`: the insert came first; `f` saw nothing and its 1
///   evicted 83;
/// - `(12, [(7, 12)], [(7, 11, evicted), (8, 83, evicted), (9, 91,
///   evicted)])`: the insert evicted `KEY` while `f` ran (after its read):
///   the compute still stores 12 whole, into the now absent key (nothing
///   to replace: 11 was told `evicted`), and 12 evicts 83;
/// - `(12, [(8, 83)], [(7, 11, replaced), (7, 12, evicted), (9, 91,
///   evicted)])`: the compute came first; the insert then evicted its 12.
#[test]
fn c3b_compute_races_an_insert_that_evicts_its_key() {
    let all_evicted = vec![(KEY, 11, "evicted"), (8, 83, "evicted"), (9, 91, "evicted")];
    explore(
        &[
            (1, vec![(KEY, 1)], all_evicted.clone()),
            (12, vec![(KEY, 12)], all_evicted),
            (
                12,
                vec![(8, 83)],
                vec![
                    (KEY, 11, "replaced"),
                    (KEY, 12, "evicted"),
                    (9, 91, "evicted"),
                ],
            ),
        ],
        || compute_races_an_evicting_insert(83),
    );
}
