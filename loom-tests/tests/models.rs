//! loom models of shardcache's concurrent paths.
//!
//! Run them with the library switched onto loom's locks, atomics and threads:
//!
//! ```text
//! cd loom-tests
//! RUSTFLAGS="--cfg shardcache_loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release
//! ```
//!
//! Every model lists the outcomes it allows. Each execution asserts that its
//! outcome is one of them, and after all executions the model asserts that
//! every allowed outcome was reached, so a list cannot silently contain
//! outcomes the exploration never produced. See `docs/TESTING.md`.
//!
//! Every racing operation runs on a spawned thread, a thread that advances
//! the clock is spawned first, and the model's own thread only sets up, joins
//! and checks. Otherwise loom 0.7's DPOR misses interleavings around
//! `ManualClock::advance` (a load, then a compare-exchange; tokio-rs/loom#392
//! and #166): the clock thread never runs before another thread's clock
//! read. The reachability check above shows, for each model and bound, that
//! the exploration reached every allowed outcome.
//! (`docs/TESTING.md` has the measurements.)
#![cfg(shardcache_loom)]

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::explore;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use shardcache::{Cache, CacheBuilder, ManualClock};

/// A fixed hasher, so every execution places keys identically.
type Hasher = ahash::RandomState;

type TestCache<V = u32> = Cache<u32, V, Hasher>;

const KEY: u32 = 7;
const OTHER: u32 = 8;
const TTL: Duration = Duration::from_nanos(10);
/// Moves a clock from 0 past the deadline `TTL` of an entry inserted at 0.
const PAST_TTL: Duration = Duration::from_nanos(11);

/// One shard (so every key meets on one lock), the fixed hasher, the given
/// clock, stats on, no janitor.
fn builder<V>(clock: &ManualClock) -> CacheBuilder<u32, V, Hasher>
where
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .shards(1)
        .record_stats(true)
        .clock(clock.clone())
        .hasher(Hasher::with_seeds(1, 2, 3, 4))
}

/// A cache holding `KEY => 1` inserted at time 0 with TTL `TTL`, and the
/// clock moved to `at`.
fn cache_with_entry_at(at: Duration) -> (Arc<TestCache>, ManualClock) {
    let clock = ManualClock::new();
    let cache = builder(&clock).build();
    cache.insert_with_ttl(KEY, 1, TTL);
    clock.advance(at);
    (Arc::new(cache), clock)
}

/// Runs `f(cache)` on a new loom thread with its own handle to `cache`.
fn spawn<C, T, F>(cache: &Arc<C>, f: F) -> thread::JoinHandle<T>
where
    C: Send + Sync + 'static,
    T: Send + 'static,
    F: FnOnce(&C) -> T + Send + 'static,
{
    let cache = Arc::clone(cache);
    thread::spawn(move || f(&cache))
}

/// Model 1. `get` of an expired entry races with `insert` of a fresh value.
/// The fresh value must survive: `get`'s upgrade to the write lock re-checks
/// that the entry is still there and still expired before removing it.
///
/// Outcome: (what `get` returned, expirations counted).
/// - `(None, 1)`: `get` removed the expired entry, then `insert` ran.
/// - `(None, 0)`: `get` saw it expired under the read lock, `insert`
///   replaced it before `get` took the write lock; the re-check kept it.
/// - `(Some(2), 0)`: `insert` ran first.
#[test]
fn m1_get_of_expired_entry_races_insert() {
    explore(&[(None, 1), (None, 0), (Some(2), 0)], || {
        let (cache, _clock) = cache_with_entry_at(PAST_TTL);
        let reader = spawn(&cache, |cache| cache.get(&KEY));
        let writer = spawn(&cache, |cache| cache.insert(KEY, 2));
        let got = reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(cache.get(&KEY), Some(2), "the fresh value was lost");
        assert_eq!(cache.len(), 1);
        (got, cache.stats().expirations)
    });
}

/// Model 2. Two `get`s of the same expired entry. Both miss, the entry is
/// gone, and it is counted as expired once, whichever `get` removed it.
///
/// Outcome: (first `get`, second `get`, expirations, misses, entries left).
/// Only `(None, None, 1, 2, 0)`.
#[test]
fn m2_two_gets_of_expired_entry() {
    explore(&[(None, None, 1, 2, 0)], || {
        let (cache, _clock) = cache_with_entry_at(PAST_TTL);
        let first = spawn(&cache, |cache| cache.get(&KEY));
        let second = spawn(&cache, |cache| cache.get(&KEY));
        let (first, second) = (first.join().unwrap(), second.join().unwrap());
        let stats = cache.stats();
        (first, second, stats.expirations, stats.misses, cache.len())
    });
}

/// Models 3a and 3b: with the clock at `at`, `get(KEY)` and `remove(KEY)`
/// race; afterwards the entry is gone. Returns (`get`, `remove`, removals,
/// expirations).
fn get_races_remove(at: Duration) -> (Option<u32>, Option<u32>, u64, u64) {
    let (cache, _clock) = cache_with_entry_at(at);
    let reader = spawn(&cache, |cache| cache.get(&KEY));
    let remover = spawn(&cache, |cache| cache.remove(&KEY));
    let got = reader.join().unwrap();
    let removed = remover.join().unwrap();
    assert_eq!(cache.len(), 0);
    let stats = cache.stats();
    (got, removed, stats.removals, stats.expirations)
}

/// Model 3a. `get` races with `remove` of a live entry. Linearizable: `get`
/// is ordered before `remove` (and sees the value) or after it (and misses);
/// `remove` always gets the value.
///
/// Outcome: (`get`, `remove`, removals, expirations).
/// - `(Some(1), Some(1), 1, 0)`: `get` first.
/// - `(None, Some(1), 1, 0)`: `remove` first.
#[test]
fn m3a_get_races_remove() {
    explore(&[(Some(1), Some(1), 1, 0), (None, Some(1), 1, 0)], || {
        get_races_remove(Duration::ZERO)
    });
}

/// Model 3b. `get` races with `remove` of an expired entry. Both return
/// `None`, the entry is gone, and exactly one of them counts the expiration
/// (`get`'s write-lock re-check finds nothing if `remove` got there first).
///
/// Outcome: (`get`, `remove`, removals, expirations). Only
/// `(None, None, 0, 1)`.
#[test]
fn m3b_get_races_remove_of_expired_entry() {
    explore(&[(None, None, 0, 1)], || get_races_remove(PAST_TTL));
}

/// Model 3c. `get` races with `insert_with_ttl` refreshing the entry and
/// with the clock moving past the old deadline (but not the new one). The
/// entry `KEY => 1` has deadline 10 and the clock reads 5; one thread
/// inserts `KEY => 2` with TTL 10 (deadline 15 or later), another advances
/// the clock to 11.
///
/// Outcome: (`get`, expirations).
/// - `(Some(1), 0)`: `get` before both.
/// - `(None, 1)`: after the advance, before the refresh; `get` removed the
///   old entry.
/// - `(None, 0)`: as above, but the refresh landed between `get`'s read
///   lock and its write lock; the re-check kept the new entry.
/// - `(Some(2), 0)`: after the refresh.
///
/// Afterwards `KEY => 2` is always live: a refreshed TTL is never lost.
#[test]
fn m3c_get_races_ttl_refresh() {
    explore(&[(Some(1), 0), (None, 1), (None, 0), (Some(2), 0)], || {
        let (cache, clock) = cache_with_entry_at(Duration::from_nanos(5));
        let ticker = thread::spawn(move || clock.advance(Duration::from_nanos(6)));
        let reader = spawn(&cache, |cache| cache.get(&KEY));
        let writer = spawn(&cache, |cache| cache.insert_with_ttl(KEY, 2, TTL));
        let got = reader.join().unwrap();
        writer.join().unwrap();
        ticker.join().unwrap();
        assert_eq!(cache.get(&KEY), Some(2), "the refreshed value was lost");
        (got, cache.stats().expirations)
    });
}

/// Model 4. One janitor sweep step (the exact function the janitor thread
/// calls) races with `insert` of a fresh value and `get`, all on one shard,
/// over an expired entry. The sweep finds expired entries under the read
/// lock and must re-check them under the write lock.
///
/// Outcome: (entries the sweep removed, `get`, expirations).
/// - `(1, None, 1)`, `(1, Some(2), 1)`: the sweep removed the expired entry
///   first; `get` ran before or after `insert`.
/// - `(0, None, 1)`: `get` removed it first.
/// - `(0, None, 0)`: `get` saw it expired, `insert` replaced it, the
///   re-check kept it.
/// - `(0, Some(2), 0)`: `insert` first; nothing was left to expire.
///
/// Afterwards `KEY => 2` is always there.
#[test]
fn m4_sweep_step_races_insert_and_get() {
    explore(
        &[
            (1, None, 1),
            (1, Some(2), 1),
            (0, None, 1),
            (0, None, 0),
            (0, Some(2), 0),
        ],
        || {
            let (cache, _clock) = cache_with_entry_at(PAST_TTL);
            let sweeper = spawn(&cache, |cache| cache.__sweep_shard(0));
            let writer = spawn(&cache, |cache| cache.insert(KEY, 2));
            let reader = spawn(&cache, |cache| cache.get(&KEY));
            let got = reader.join().unwrap();
            let swept = sweeper.join().unwrap();
            writer.join().unwrap();
            assert_eq!(cache.get(&KEY), Some(2), "the fresh value was lost");
            assert_eq!(cache.len(), 1);
            (swept, got, cache.stats().expirations)
        },
    );
}

/// A value that counts how many of its copies are alive, and panics if more
/// copies are dropped than were made (a double drop).
#[derive(Debug)]
struct Counted {
    live: Arc<AtomicUsize>,
}

impl Counted {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self {
            live: Arc::clone(live),
        }
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Self::new(&self.live)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let before = self.live.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a value was dropped twice");
    }
}

/// A cache with a running janitor (one shard, so its first sweep step is
/// the whole sweep) holding an expired `KEY` and a never-expiring `OTHER`,
/// both [`Counted`] in `live`.
fn cache_with_janitor(live: &Arc<AtomicUsize>) -> Cache<u32, Counted, Hasher> {
    let clock = ManualClock::new();
    let cache = builder(&clock)
        .cleanup_interval(Duration::from_secs(1))
        .build();
    cache.insert_with_ttl(KEY, Counted::new(live), TTL);
    cache.insert(OTHER, Counted::new(live));
    clock.advance(PAST_TTL);
    cache
}

/// Model 5a. `close` races with the janitor thread, which sweeps once and
/// then waits (see `src/janitor.rs`): `close` lands before its sweep, inside
/// it, or while it waits. This is the only cache with cleanup in the model
/// (the process, for the janitor), so `close` must stop and join the thread
/// (no deadlock: loom fails a model whose threads all block), after which
/// nothing changes the cache behind our back, and every value is dropped
/// exactly once.
///
/// Outcome: entries left after `close`.
/// - `2`: stopped before it swept.
/// - `1`: it swept the expired entry (and was stopped inside or after).
#[test]
fn m5a_close_races_janitor() {
    explore(&[1, 2], || {
        let live = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache_with_janitor(&live));
        let closer = {
            let live = Arc::clone(&live);
            spawn(&cache, move |cache| {
                cache.close();
                let left = cache.len();
                // Joined: the janitor has dropped what it removed and holds
                // nothing, so exactly the values in the cache are alive.
                assert_eq!(live.load(Ordering::SeqCst), left, "values leaked");
                assert!(
                    format!("{cache:?}").contains("running: false"),
                    "close left the janitor running"
                );
                left
            })
        };
        let left = closer.join().unwrap();
        assert_eq!(cache.len(), left, "the cache changed after close");
        drop(cache);
        assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
        left
    });
}

/// Model 5c. Two caches share the janitor thread, which sweeps each once
/// and then waits. `close` of the first races with the thread: it lands
/// before the first cache's sweep, inside it, or after, and the thread
/// keeps running for the second cache, so `close` cannot rely on a join. It
/// must wait out a sweep of its cache in progress: once it returns the
/// janitor holds nothing of that cache and never changes it again. The
/// second cache is still swept; dropping it, the last, stops and joins the
/// thread.
///
/// Outcome: (entries left in the first cache after `close`, entries of the
/// second when the model thread looks after `close`): each `2` (not swept
/// yet) or `1` (swept), in any combination.
#[test]
fn m5c_close_of_one_cache_races_the_shared_janitor() {
    explore(&[(1, 1), (1, 2), (2, 1), (2, 2)], || {
        let (live, other_live) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let cache = Arc::new(cache_with_janitor(&live));
        let other = cache_with_janitor(&other_live);
        let closer = {
            let live = Arc::clone(&live);
            spawn(&cache, move |cache| {
                cache.close();
                let left = cache.len();
                // The janitor may still run (for the other cache), but it
                // has let go of this one: exactly its entries are alive.
                assert_eq!(
                    live.load(Ordering::SeqCst),
                    left,
                    "close returned mid-sweep"
                );
                assert!(format!("{cache:?}").contains("running: false"));
                left
            })
        };
        let left = closer.join().unwrap();
        assert!(
            format!("{other:?}").contains("running: true"),
            "closing one cache stopped another's janitor"
        );
        let other_left = other.len();
        assert_eq!(cache.len(), left, "the janitor swept a closed cache");
        assert_eq!(live.load(Ordering::SeqCst), left, "values leaked");
        drop(other);
        assert_eq!(other_live.load(Ordering::SeqCst), 0, "values leaked");
        drop(cache);
        assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
        (left, other_left)
    });
}

/// Model 5b. The cache is dropped while the janitor runs and while another
/// thread reads: whichever thread drops the last `Arc` runs `Cache`'s `Drop`,
/// which stops and joins the janitor. Nothing deadlocks, and once both user
/// threads are done every value has been dropped exactly once.
///
/// Outcome: what the reader got: `Some` (`OTHER` never expires), so only
/// `true`.
#[test]
fn m5b_drop_races_janitor_and_reader() {
    explore(&[true], || {
        let live = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(cache_with_janitor(&live));
        let reader = spawn(&cache, |cache| cache.get(&OTHER).is_some());
        drop(cache);
        let got = reader.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
        got
    });
}

/// Model 6. `ManualClock::advance` past the entry's deadline races with a
/// reader that looks twice and then tells a third thread (with release /
/// acquire) when it saw the entry gone; that thread then looks too. Once
/// expired, the entry never comes back to life, in the same thread or in one
/// that learned of it.
///
/// Outcome: (reader's first `get`, its second, whether the third thread saw
/// the flag, the third thread's `get`). Allowed: the first two are never
/// `(None, Some)`, and a thread that saw the flag gets `None`:
/// every combination of `(Some, Some)`, `(Some, None)`, `(None, None)` with
/// `(false, Some)`, `(false, None)`, plus `(true, None)` where the reader's
/// second `get` was `None`.
#[test]
fn m6_clock_advance_races_readers() {
    const S: Option<u32> = Some(1);
    const N: Option<u32> = None;
    explore(
        &[
            (S, S, false, S),
            (S, S, false, N),
            (S, N, false, S),
            (S, N, false, N),
            (S, N, true, N),
            (N, N, false, S),
            (N, N, false, N),
            (N, N, true, N),
        ],
        || {
            let (cache, clock) = cache_with_entry_at(Duration::ZERO);
            let saw_it_gone = Arc::new(AtomicBool::new(false));
            let ticker = thread::spawn(move || clock.advance(PAST_TTL));
            let reader = {
                let saw_it_gone = Arc::clone(&saw_it_gone);
                spawn(&cache, move |cache| {
                    let first = cache.get(&KEY);
                    let second = cache.get(&KEY);
                    if second.is_none() {
                        saw_it_gone.store(true, Ordering::Release);
                    }
                    (first, second)
                })
            };
            let follower = {
                let saw_it_gone = Arc::clone(&saw_it_gone);
                spawn(&cache, move |cache| {
                    let told = saw_it_gone.load(Ordering::Acquire);
                    (told, cache.get(&KEY))
                })
            };
            let (first, second) = reader.join().unwrap();
            let (told, mine) = follower.join().unwrap();
            ticker.join().unwrap();
            assert_eq!(cache.get(&KEY), None, "expired entry came back");
            (first, second, told, mine)
        },
    );
}

/// A value of the bounded models: a number to check, and a [`Counted`]
/// that catches a value dropped twice or never.
type Valued = (u32, Counted);

type BoundedCache = Cache<u32, Valued, Hasher>;

/// A bounded cache of `capacity` (unit weights) on the shared `builder`,
/// holding `key => key` for each of `keys`, inserted in that order, every
/// value counted in `live`.
fn bounded_cache(capacity: u64, keys: &[u32], live: &Arc<AtomicUsize>) -> Arc<BoundedCache> {
    let cache = builder(&ManualClock::new()).max_capacity(capacity).build();
    for &key in keys {
        put(&cache, key, live);
    }
    Arc::new(cache)
}

/// Inserts `key => key`, counted in `live`.
fn put(cache: &BoundedCache, key: u32, live: &Arc<AtomicUsize>) {
    cache.insert(key, (key, Counted::new(live)));
}

/// What `key` holds now: its number, or `None`. Panics if the value is not
/// the one inserted under `key` (the bounded models insert `key => key`).
fn number(cache: &BoundedCache, key: u32) -> Option<u32> {
    let got = cache.get(&key).map(|(number, _)| number);
    assert!(
        got.is_none_or(|number| number == key),
        "k{key} holds {got:?}"
    );
    got
}

/// What every bounded model ends with: the bound holds, `len` and
/// `weighted_size` agree (unit weights), exactly the stored values are
/// alive, every key holds its own value or nothing, and no value is alive
/// once the cache is gone. Returns the keys present, in `keys` order
/// (reading them counts as hits, so this comes after anything that depends
/// on the policy's state).
fn check_bounded_end(
    cache: Arc<BoundedCache>,
    capacity: u64,
    keys: &[u32],
    live: &Arc<AtomicUsize>,
) -> Vec<u32> {
    assert!(cache.weighted_size() <= capacity, "over capacity");
    assert_eq!(cache.len() as u64, cache.weighted_size());
    assert_eq!(live.load(Ordering::SeqCst), cache.len(), "values leaked");
    let present: Vec<u32> = keys
        .iter()
        .copied()
        .filter(|&key| number(&cache, key).is_some())
        .collect();
    assert_eq!(
        present.len(),
        cache.len(),
        "len counts entries no key finds"
    );
    drop(cache);
    assert_eq!(live.load(Ordering::SeqCst), 0, "values leaked");
    present
}

/// Model 7a. A hit races with inserts that evict the entry it reads.
/// Capacity 1, one shard, `7` stored; one thread reads `7` (under the read
/// lock: a clone of the value, then a relaxed load and store of the
/// entry's frequency), the other inserts `8`, then `9`. With capacity 1 the
/// insert of `8` evicts `7` whether or not it was read (a hit only moves it
/// to the main queue, which then gives it up), so the read returns `7`'s
/// own value if it came first and nothing after; never another value, and
/// never one dropped under it (loom tracks the shard's cell: a read
/// overlapping the eviction is a causality violation, and [`Counted`]
/// catches a double drop).
///
/// Outcome: (the read's result, evictions, hits, misses). Afterwards only
/// `9` is stored.
/// - `(Some(7), 2, 1, 0)`: the read came before the insert of `8`.
/// - `(None, 2, 0, 1)`: after it.
#[test]
fn m7a_hit_races_eviction_of_its_entry() {
    explore(&[(Some(7), 2, 1, 0), (None, 2, 0, 1)], || {
        let live = Arc::new(AtomicUsize::new(0));
        let cache = bounded_cache(1, &[KEY], &live);
        let reader = spawn(&cache, |cache| number(cache, KEY));
        let writer = {
            let live = Arc::clone(&live);
            spawn(&cache, move |cache| {
                put(cache, 8, &live);
                put(cache, 9, &live);
            })
        };
        let got = reader.join().unwrap();
        writer.join().unwrap();
        let stats = cache.stats();
        let outcome = (got, stats.evictions, stats.hits, stats.misses);
        let present = check_bounded_end(cache, 1, &[KEY, 8, 9], &live);
        assert_eq!(present, [9]);
        outcome
    });
}

/// Model 7b. A hit decides the victim. Capacity 3, one shard (small queue
/// 1, main 2), `9`, `10` and `7` stored in that order: the cold shard puts
/// `9` and `10` in main and `7` in the small queue. One thread reads `7`,
/// the other inserts `8`, which must evict one entry. Eviction looks at the
/// small queue's head, `7`: if the hit's frequency bump (a relaxed store,
/// under the read lock) is visible, `7` moves to main, which is then over
/// its share and evicts its oldest, `9`; if not, `7` goes. The write lock
/// orders the bump: a read that returned the value came before the insert,
/// so its bump must be seen; one that did not came after the eviction.
///
/// Outcome: (the read's result, keys present afterwards).
/// - `(Some(7), [7, 8, 10])`: the read first, its bump saved `7`.
/// - `(None, [8, 9, 10])`: the insert first, `7` evicted.
#[test]
fn m7b_hit_decides_the_victim() {
    explore(&[(Some(7), vec![7, 8, 10]), (None, vec![8, 9, 10])], || {
        let live = Arc::new(AtomicUsize::new(0));
        let cache = bounded_cache(3, &[9, 10, KEY], &live);
        let reader = spawn(&cache, |cache| number(cache, KEY));
        let writer = {
            let live = Arc::clone(&live);
            spawn(&cache, move |cache| put(cache, 8, &live))
        };
        let got = reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(cache.stats().evictions, 1, "one entry evicted");
        (got, check_bounded_end(cache, 3, &[KEY, 8, 9, 10], &live))
    });
}

/// Model 8. Two inserts of new keys race in a full shard, each evicting to
/// make room. Capacity 2, one shard (small queue 1, main 1), `7` then `9`
/// stored: `7` in main, `9` in the small queue. One thread inserts `8`, the
/// other `10`, and each then checks the bound. Whatever the order, each
/// insert evicts the small queue's only entry and takes its place: the
/// first evicts `9`, the second evicts the first, and `7` stays in main.
///
/// Outcome: the one of `8` and `10` left afterwards.
/// - `10`: `8` was inserted first.
/// - `8`: `10` was inserted first.
///
/// Every execution: `weighted_size() <= 2` after each insert and at the
/// end, `len == weighted_size`, two evictions, every key holds its own
/// value or nothing, and the evicted values were dropped once each.
#[test]
fn m8_inserts_race_eviction_in_one_shard() {
    explore(&[8, 10], || {
        let live = Arc::new(AtomicUsize::new(0));
        let cache = bounded_cache(2, &[KEY, 9], &live);
        let inserters: Vec<_> = [8, 10]
            .into_iter()
            .map(|key| {
                let live = Arc::clone(&live);
                spawn(&cache, move |cache| {
                    put(cache, key, &live);
                    assert!(cache.weighted_size() <= 2, "over capacity after an insert");
                })
            })
            .collect();
        for inserter in inserters {
            inserter.join().unwrap();
        }
        assert_eq!(cache.stats().evictions, 2, "one entry evicted per insert");
        assert_eq!((cache.len(), cache.weighted_size()), (2, 2));
        let present = check_bounded_end(cache, 2, &[KEY, 8, 9, 10], &live);
        assert_eq!(present.len(), 2);
        assert!(present.contains(&KEY), "main keeps 7");
        present[1]
    });
}

/// A cache of one shard holding `KEY => 1`, no TTL.
fn cache_with_live_entry() -> Arc<TestCache> {
    let clock = ManualClock::new();
    let cache = builder(&clock).build();
    cache.insert(KEY, 1);
    Arc::new(cache)
}

/// Model 9a. A writer parks behind a reader and is woken. One thread reads
/// `KEY` (one read lock), the other overwrites it. Under loom the writer
/// never spins: if it finds the reader's count nonzero it raises `PARKED`,
/// re-checks the count with a read-modify-write and sleeps on the slot's
/// condvar; the reader's unlock, bringing the count to zero, must see
/// `PARKED` and wake it. A lost wake-up leaves the writer asleep forever,
/// which loom reports as a deadlock.
///
/// Outcome: what the read returned.
/// - `Some(1)`: the read came first (the writer may have parked behind it).
/// - `Some(2)`: the write came first.
#[test]
fn m9a_writer_parks_behind_a_reader() {
    explore(&[Some(1), Some(2)], || {
        let cache = cache_with_live_entry();
        let reader = spawn(&cache, |cache| cache.get(&KEY));
        let writer = spawn(&cache, |cache| cache.insert(KEY, 2));
        let got = reader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(cache.get(&KEY), Some(2), "the write was lost");
        got
    });
}

/// Model 9b. A writer parks behind one reader while another reader steps
/// aside. Two readers of `KEY` on one reader stripe (under loom a thread's
/// stripe is its number: threads 1 and 3 share a counter of the two
/// stripes of the 2-core machine) and a writer between them. A reader
/// that arrives while `WRITING` is up undoes its count, which may be the
/// one that brings the counter to zero: that decrement must wake the
/// parked writer too, and the reader then sleeps on the writers' mutex and
/// retries. Only the decrement that reaches zero wakes; if it missed
/// `PARKED`, loom reports the deadlock.
///
/// Outcome: (first read, second read); every combination occurs.
#[test]
fn m9b_writer_parks_while_a_reader_steps_aside() {
    let all = [
        (Some(1), Some(1)),
        (Some(1), Some(2)),
        (Some(2), Some(1)),
        (Some(2), Some(2)),
    ];
    explore(&all, || {
        let cache = cache_with_live_entry();
        let first = spawn(&cache, |cache| cache.get(&KEY));
        let writer = spawn(&cache, |cache| cache.insert(KEY, 2));
        let second = spawn(&cache, |cache| cache.get(&KEY));
        let got = (first.join().unwrap(), second.join().unwrap());
        writer.join().unwrap();
        assert_eq!(cache.get(&KEY), Some(2), "the write was lost");
        got
    });
}
