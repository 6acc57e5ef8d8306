//! Memory follows the contents: a shard's tables shrink when removals or
//! expiry sweeps leave them below a quarter full, never below the room
//! `initial_capacity` asked for, without reallocating back and forth under
//! an insert/remove mix, and without losing an entry when `Hash` panics
//! during the shrink.
//!
//! Memory is measured by `allocation_counter`, which counts the bytes and
//! allocations of the measuring thread only, so tests running beside each
//! other do not see each other's. Each test does all its work on its own
//! thread (no janitor).

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use allocation_counter::measure;
use shardcache::{Cache, ManualClock};

/// Bytes that `f` allocated and did not free.
fn bytes(f: impl FnOnce()) -> i64 {
    measure(f).bytes_current
}

/// Allocations (and reallocations) that `f` made.
fn allocations(f: impl FnOnce()) -> u64 {
    measure(f).count_total
}

/// Entries per test: Miri runs ~1000x slower.
const N: u64 = if cfg!(miri) { 300 } else { 20_000 };

/// What a table keeps when emptied: tables with room for at most 32
/// entries never shrink. Generous: a few KB per shard.
const SLACK: i64 = 4096;

const SHARDS: usize = 2;

fn unbounded() -> Cache<u64, u64> {
    Cache::builder().shards(SHARDS).build()
}

fn bounded() -> Cache<u64, u64> {
    Cache::builder().shards(SHARDS).max_capacity(4 * N).build()
}

/// Fills `cache` with `N` entries and removes them all; returns the bytes
/// the cache gained when full, and still held once emptied.
fn fill_and_remove(cache: &Cache<u64, u64>) -> (i64, i64) {
    let mut full = 0;
    let emptied = bytes(|| {
        full = bytes(|| (0..N).for_each(|i| cache.insert(i, i)));
        for i in 0..N {
            assert_eq!(cache.remove(&i), Some(i));
        }
    });
    (full, emptied)
}

#[test]
fn removing_every_entry_gives_the_memory_back() {
    let cache = unbounded();
    let (full, emptied) = fill_and_remove(&cache);
    assert!(full > 16 * N as i64, "{full}");
    assert!(
        emptied <= SLACK * SHARDS as i64,
        "{emptied} bytes still held of {full}"
    );
    // And the cache still works.
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
}

#[test]
fn a_bounded_cache_gives_the_memory_back_too() {
    let cache = bounded();
    warm_up(&cache, N);
    let (full, emptied) = fill_and_remove(&cache);
    assert!(full > 24 * N as i64, "{full}");
    assert!(
        emptied <= SLACK * SHARDS as i64,
        "{emptied} bytes still held of {full}"
    );
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
}

/// Fills a bounded `cache` with `n` entries and removes them. Its sketch
/// (sized on the first insert) and its ghost (grown with the entries, up
/// to the capacity) keep their size, a few bytes per entry of capacity:
/// what follows measures the table, the slab and the deadlines.
fn warm_up(cache: &Cache<u64, u64>, n: u64) {
    (0..n).for_each(|i| cache.insert(i, i));
    (0..n).for_each(|i| {
        cache.remove(&i);
    });
}

/// Fills `cache` with `N` entries that expire, lets them expire and sweeps;
/// returns the bytes the cache gained when full, and still held after the
/// sweep.
fn fill_and_sweep(cache: &Cache<u64, u64>, clock: &ManualClock) -> (i64, i64) {
    let mut full = 0;
    let swept = bytes(|| {
        full = bytes(|| (0..N).for_each(|i| cache.insert(i, i)));
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.remove_expired(), N as usize);
    });
    (full, swept)
}

#[test]
fn a_sweep_of_expired_entries_gives_the_memory_back() {
    for max_capacity in [None, Some(4 * N)] {
        let clock = ManualClock::new();
        let mut builder = Cache::builder()
            .shards(SHARDS)
            .clock(clock.clone())
            .default_ttl(Duration::from_secs(1));
        if let Some(max) = max_capacity {
            builder = builder.max_capacity(max);
        }
        let cache: Cache<u64, u64> = builder.build();
        warm_up(&cache, N);
        let (full, swept) = fill_and_sweep(&cache, &clock);
        assert!(full > 16 * N as i64, "{max_capacity:?}");
        // An emptied table needs no hasher to shrink: the sweep frees it.
        assert!(
            swept <= SLACK * SHARDS as i64,
            "{max_capacity:?}: {swept} bytes still held of {full}"
        );
    }
}

#[test]
fn a_sweep_that_leaves_a_few_entries_shrinks_at_the_next_removal() {
    let clock = ManualClock::new();
    let cache: Cache<u64, u64> = Cache::builder().shards(1).clock(clock.clone()).build();
    // The shard's lock is allocated on its first write: not counted here.
    cache.insert(u64::MAX, 0);
    cache.remove(&u64::MAX);
    let (mut full, mut swept) = (0, 0);
    let held = bytes(|| {
        full = bytes(|| {
            for i in 0..N {
                cache.insert_with_ttl(i, i, Duration::from_secs(1));
            }
            for i in N..N + 10 {
                cache.insert_with_ttl(i, i, Duration::from_secs(10));
            }
        });
        clock.advance(Duration::from_secs(2));
        swept = bytes(|| assert_eq!(cache.remove_expired(), N as usize));
        assert_eq!(cache.remove(&N), Some(N));
    });
    // The sweep has no hasher: a table it leaves sparse but not empty keeps
    // its room until the shard's next removal.
    assert_eq!(swept, 0);
    assert!(held <= SLACK, "{held} of {full}");
    assert!((N + 1..N + 10).all(|i| cache.get(&i) == Some(i)));
}

#[test]
fn tables_keep_the_room_initial_capacity_asked_for() {
    for max_capacity in [None, Some(4 * N)] {
        let mut builder = Cache::builder().shards(SHARDS).initial_capacity(N as usize);
        if let Some(max) = max_capacity {
            builder = builder.max_capacity(max);
        }
        let cache: Cache<u64, u64> = builder.build();
        warm_up(&cache, 2 * N);
        // Room for twice as many, then none: back to what was asked for.
        let mut grew = 0;
        let held = bytes(|| {
            grew = bytes(|| (0..2 * N).for_each(|i| cache.insert(i, i)));
            (0..2 * N).for_each(|i| {
                cache.remove(&i);
            });
        });
        assert!(grew > 16 * N as i64, "{max_capacity:?}");
        assert_eq!(held, 0, "{max_capacity:?}");
    }
}

#[test]
fn an_insert_remove_mix_at_the_shrink_threshold_does_not_reallocate() {
    for cache in [unbounded(), bounded()] {
        for i in 0..N {
            cache.insert(i, i);
        }
        // Remove until a removal reallocates: the shrink threshold.
        let mut next = 0;
        while allocations(|| {
            cache.remove(&next);
        }) == 0
        {
            next += 1;
            assert!(next < N, "nothing shrank");
        }
        // Put it back and take it out again, and again. `u64` entries
        // allocate nothing of their own: any allocation is a table's.
        let mix = allocations(|| {
            for _ in 0..N {
                cache.insert(next, 0);
                cache.remove(&next);
            }
        });
        assert_eq!(mix, 0, "shrink-grow thrash");
        // And at the grow threshold: insert until a table grows.
        let mut key = N;
        while allocations(|| cache.insert(key, key)) == 0 {
            key += 1;
        }
        let mix = allocations(|| {
            for _ in 0..N {
                cache.remove(&key);
                cache.insert(key, key);
            }
        });
        assert_eq!(mix, 0, "grow-shrink thrash");
    }
}

thread_local! {
    /// Hashes that may run before one panics (`usize::MAX`: none does).
    static HASHES_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Hashes run so far.
    static HASHES: Cell<usize> = const { Cell::new(0) };
    /// Values dropped so far.
    static DROPS: Cell<usize> = const { Cell::new(0) };
}

/// A key whose `Hash` panics on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        HASHES.with(|n| n.set(n.get() + 1));
        let left = HASHES_LEFT.with(Cell::get);
        if left == 0 {
            HASHES_LEFT.with(|n| n.set(usize::MAX));
            panic!("Hash panics during the shrink");
        }
        HASHES_LEFT.with(|n| n.set(left.saturating_sub(1)));
        self.0.hash(state);
    }
}

/// A value that counts its drops.
#[derive(Debug, PartialEq, Eq)]
struct Value(u64);

impl Clone for Value {
    fn clone(&self) -> Self {
        Value(self.0)
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        DROPS.with(|n| n.set(n.get() + 1));
    }
}

fn hashes() -> usize {
    HASHES.with(Cell::get)
}

fn drops() -> usize {
    DROPS.with(Cell::get)
}

/// Removes keys from 0 up until a removal hashes the other keys (a shrink),
/// and returns that key: the removal that shrinks.
fn find_the_shrinking_removal(cache: &Cache<Key, Value>, n: u64) -> u64 {
    for i in 0..n {
        let before = hashes();
        cache.remove(&Key(i));
        // A removal hashes its key, and in a bounded shard the key moved
        // into the hole: a shrink hashes every key left.
        if hashes() - before > 2 {
            return i;
        }
    }
    panic!("no removal shrank");
}

#[test]
fn a_hash_that_panics_during_a_shrink_loses_and_drops_nothing() {
    let n = if cfg!(miri) { 200 } else { 2000 };
    let build = |bounded: bool| {
        let builder = Cache::builder().shards(1);
        if bounded {
            builder.max_capacity(4 * n).build()
        } else {
            builder.build()
        }
    };
    for bounded in [false, true] {
        let fill = |cache: &Cache<Key, Value>| {
            for i in 0..n {
                cache.insert(Key(i), Value(i));
            }
        };
        // Learn which removal shrinks, on a twin of the cache.
        let twin = build(bounded);
        fill(&twin);
        let shrinking = find_the_shrinking_removal(&twin, n);
        let cache = build(bounded);
        fill(&cache);
        for i in 0..shrinking {
            assert_eq!(cache.remove(&Key(i)), Some(Value(i)));
        }
        // The removal hashes its key (1), the shrink moves two entries (2,
        // 3), and the third one's hash panics.
        HASHES_LEFT.with(|n| n.set(3));
        let drops_before = drops();
        let result = catch_unwind(AssertUnwindSafe(|| cache.remove(&Key(shrinking))));
        assert!(
            result.is_err(),
            "bounded {bounded}: the shrink did not hash"
        );
        // Nothing was dropped, under the lock or after it, and nothing lost.
        assert_eq!(drops(), drops_before, "bounded {bounded}");
        assert_eq!(cache.len() as u64, n - shrinking, "bounded {bounded}");
        for i in shrinking..n {
            assert_eq!(cache.get(&Key(i)), Some(Value(i)), "bounded {bounded}");
        }
        // The cache still works, and the next removal shrinks.
        let before = hashes();
        assert_eq!(cache.remove(&Key(shrinking)), Some(Value(shrinking)));
        assert!(hashes() - before > 2, "bounded {bounded}: shrank");
        cache.insert(Key(n), Value(n));
        assert_eq!(cache.get(&Key(n)), Some(Value(n)));
        for i in shrinking + 1..=n {
            assert_eq!(cache.remove(&Key(i)), Some(Value(i)));
        }
        assert!(cache.is_empty());
    }
}
