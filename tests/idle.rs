//! `CacheBuilder::time_to_idle`: an entry neither read nor written for
//! `tti` expires, with a TTL too whichever ends first. Time is a
//! `ManualClock`: no test sleeps for expiry (the janitor test polls for the
//! real janitor thread's turn, as `tests/janitor.rs` does).
//!
//! Every test runs on an unbounded and on a bounded cache: they keep their
//! deadlines in different places (the entry; a column beside the slab).

mod common;

use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::eventually;
use shardcache::{Cache, CacheBuilder, Clock, Compute, ManualClock, RemovalCause};

/// The time-to-idle of every test, and its step (a 32nd of it): a read
/// moves the idle deadline at most once per step.
const TTI: Duration = Duration::from_secs(32);
const STEP: Duration = Duration::from_secs(1);
const NS: Duration = Duration::from_nanos(1);

type Told = Arc<Mutex<Vec<(u32, u32, RemovalCause)>>>;

/// A TTI cache on `clock`: bounded (with room for everything) or not,
/// counting stats, telling `told` what leaves.
fn cache(clock: &ManualClock, bounded: bool, told: &Told) -> Cache<u32, u32> {
    let told = Arc::clone(told);
    // Few shards: Miri runs each test in seconds.
    let builder = Cache::builder()
        .shards(4)
        .time_to_idle(TTI)
        .clock(clock.clone())
        .record_stats(true)
        .removal_listener(move |key, value, cause| told.lock().unwrap().push((key, value, cause)));
    let builder = if bounded {
        builder.max_capacity(1000)
    } else {
        builder
    };
    builder.build()
}

/// Runs `test` on an unbounded and a bounded TTI cache.
fn both(test: impl Fn(&ManualClock, &Cache<u32, u32>, &Told)) {
    for bounded in [false, true] {
        let clock = ManualClock::new();
        let told = Told::default();
        test(&clock, &cache(&clock, bounded, &told), &told);
    }
}

#[test]
fn a_read_before_tti_keeps_an_entry_and_idleness_past_tti_expires_it() {
    both(|clock, cache, told| {
        cache.insert(1, 10);
        cache.insert(2, 20);
        clock.advance(TTI - NS);
        assert_eq!(cache.get(&1), Some(10), "read at tti - 1 ns");
        clock.advance(NS);
        assert_eq!(cache.get(&2), Some(20), "live up to and including tti");
        clock.advance(NS);
        assert_eq!(cache.get(&1), Some(10), "the read kept it");
        // Each first read stored its time + tti + step (1's second read,
        // 1 ns after its first, moved nothing): both are live for tti after
        // their last read, and gone once tti and one step have passed.
        clock.advance(TTI - NS);
        assert_eq!(cache.len(), 2);
        clock.advance(STEP + NS);
        assert_eq!(cache.get(&2), None, "idle for tti + a step");
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.stats().expirations, 2);
        let causes: Vec<_> = told.lock().unwrap().iter().map(|t| t.2).collect();
        assert_eq!(causes, [RemovalCause::Expired; 2]);
    });
}

#[test]
fn a_write_restarts_the_idle_time_exactly() {
    both(|clock, cache, told| {
        cache.insert(1, 10);
        clock.advance(TTI / 2);
        cache.insert(1, 11);
        clock.advance(TTI);
        assert_eq!(cache.iter().count(), 1, "live tti after the write");
        clock.advance(NS);
        assert_eq!(cache.get(&1), None, "and gone 1 ns later");
        let told = told.lock().unwrap();
        assert_eq!(
            *told,
            [
                (1, 10, RemovalCause::Replaced),
                (1, 11, RemovalCause::Expired)
            ]
        );
    });
}

#[test]
fn contains_key_and_iter_do_not_keep_an_entry_alive() {
    both(|clock, cache, _| {
        cache.insert(1, 10);
        for _ in 0..4 {
            clock.advance(TTI / 4);
            assert!(cache.contains_key(&1));
            assert_eq!(cache.iter().collect::<Vec<_>>(), [(1, 10)]);
        }
        clock.advance(NS);
        assert!(!cache.contains_key(&1), "idle: contains_key is no read");
        assert_eq!(cache.get(&1), None);
    });
}

#[test]
fn loading_hits_and_compute_keep_an_entry_alive() {
    both(|clock, cache, _| {
        cache.insert(1, 10);
        cache.insert(2, 20);
        cache.insert(3, 30);
        for _ in 0..3 {
            clock.advance(TTI - NS);
            let hit = cache.get_or_insert_with(1, || unreachable!("a hit"));
            assert_eq!(hit, 10);
            let hit = cache.try_get_or_insert_with(2, || Err::<u32, ()>(()));
            assert_eq!(hit, Ok(20));
            assert_eq!(cache.compute(3, |_| Compute::Keep), Some(30));
        }
        clock.advance(TTI + STEP + NS);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), None);
        assert_eq!(
            cache.compute(3, |old| Compute::Put(old.map_or(0, |_| 1))),
            Some(0)
        );
    });
}

#[test]
fn with_a_ttl_the_earlier_deadline_wins() {
    both(|clock, cache, _| {
        // The TTL ends first: reads do not carry it past its TTL.
        cache.insert_with_ttl(1, 10, TTI * 2);
        // The idle time ends first: the TTL does not keep it.
        cache.insert_with_ttl(2, 20, TTI * 10);
        for _ in 0..4 {
            clock.advance(TTI / 2);
            assert_eq!(cache.get(&1), Some(10));
        }
        assert_eq!(cache.get(&2), None, "idle for 2 tti, 8 tti before its TTL");
        clock.advance(NS);
        assert_eq!(cache.get(&1), None, "its TTL ended, read or not");
    });
}

/// The step rule, seen from outside: a read within a step of the last
/// stored one moves nothing. The first read after a write stores
/// `now + tti + step`; if the reads that follow within the step stored
/// too, the entry would outlive that deadline.
#[test]
fn reads_within_a_step_store_nothing() {
    both(|clock, cache, _| {
        cache.insert(1, 10);
        clock.advance(NS);
        assert_eq!(cache.get(&1), Some(10), "stores 1 ns + tti + step");
        clock.advance(STEP - 2 * NS);
        let reads = if cfg!(miri) { 20 } else { 10_000 };
        let start = Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    start.wait();
                    for _ in 0..reads {
                        assert_eq!(cache.get(&1), Some(10));
                    }
                });
            }
        });
        // Still within the step of the first read's store.
        clock.advance(TTI + STEP - (STEP - 2 * NS) + NS);
        assert_eq!(cache.get(&1), None, "a read within the step moved it");
    });
}

#[test]
fn the_sweep_removes_idle_entries_with_exact_stats() {
    both(|clock, cache, told| {
        for key in 0..10 {
            cache.insert(key, key);
        }
        clock.advance(TTI / 2);
        for key in 0..5 {
            assert_eq!(cache.get(&key), Some(key));
        }
        clock.advance(TTI / 2 + NS);
        assert_eq!(cache.remove_expired(), 5);
        assert_eq!(cache.len(), 5);
        let stats = cache.stats();
        assert_eq!((stats.expirations, stats.hits, stats.inserts), (5, 5, 10));
        let told = told.lock().unwrap();
        let mut gone: Vec<u32> = told.iter().map(|t| t.0).collect();
        gone.sort_unstable();
        assert_eq!(gone, [5, 6, 7, 8, 9]);
        assert!(told.iter().all(|t| t.2 == RemovalCause::Expired));
    });
}

#[test]
fn the_janitor_sweeps_idle_entries() {
    for bounded in [false, true] {
        let clock = ManualClock::new();
        let builder: CacheBuilder<u32, u32> = Cache::builder()
            .shards(4)
            .time_to_idle(TTI)
            .clock(clock.clone())
            .cleanup_interval(Duration::from_millis(2));
        let cache = if bounded {
            builder.max_capacity(100).build()
        } else {
            builder.build()
        };
        for key in 0..20 {
            cache.insert(key, key);
        }
        clock.advance(TTI);
        for key in 0..10 {
            assert_eq!(cache.get(&key), Some(key));
        }
        clock.advance(NS);
        eventually("the janitor swept the idle entries", || cache.len() == 10);
        assert!((0..10).all(|key| cache.get(&key) == Some(key)));
        cache.close();
    }
}

#[test]
fn a_bounded_cache_evicts_an_idle_entry_as_expired() {
    let clock = ManualClock::new();
    let told = Told::default();
    let listener = Arc::clone(&told);
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(2)
        .shards(1)
        .time_to_idle(TTI)
        .clock(clock.clone())
        .removal_listener(move |k, v, cause| listener.lock().unwrap().push((k, v, cause)))
        .build();
    cache.insert(1, 10);
    cache.insert(2, 20);
    clock.advance(TTI);
    assert_eq!(cache.get(&2), Some(20));
    clock.advance(NS);
    cache.insert(3, 30);
    assert_eq!(*told.lock().unwrap(), [(1, 10, RemovalCause::Expired)]);
    assert_eq!(cache.get(&2), Some(20));
}

#[test]
fn a_time_to_idle_too_long_for_the_clock_never_expires() {
    for tti in [
        Duration::MAX,
        Duration::from_nanos(u64::MAX),
        Duration::ZERO,
    ] {
        let clock = ManualClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .time_to_idle(tti)
            .clock(clock.clone())
            .build();
        cache.insert(1, 10);
        clock.advance(Duration::from_secs(1 << 40));
        assert_eq!(cache.get(&1), Some(10), "{tti:?}");
        clock.advance(Duration::MAX);
        assert_eq!(cache.get(&1), Some(10), "{tti:?}");
    }
    // A tti that fits, with a clock near its end: the deadline saturates.
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_idle(TTI)
        .clock(clock.clone())
        .build();
    clock.advance(Duration::from_nanos(u64::MAX - 10));
    cache.insert(1, 10);
    clock.advance(Duration::MAX);
    assert_eq!(cache.get(&1), Some(10));
}

/// Where `now + tti` passes the clock's range the idle deadline is none,
/// but the TTL still ends the entry: a read must not move the deadline past
/// it (it did, to `u64::MAX - 1`, when the entry was the first with a TTL:
/// found by the model check, `tests/model_check.rs` `idle_case`).
#[test]
fn a_ttl_ends_an_entry_whose_idle_deadline_passes_the_clock() {
    // A tti that never ends from the first nanosecond on; and one that
    // fits, with a clock near its end.
    for (tti, start) in [
        (Duration::from_nanos(u64::MAX - 1), NS),
        (TTI, Duration::from_nanos(u64::MAX - 10)),
    ] {
        for capacity in [None, Some(100)] {
            let clock = ManualClock::new();
            let builder = Cache::builder().time_to_idle(tti).clock(clock.clone());
            let cache: Cache<u32, u32> = match capacity {
                Some(max) => builder.max_capacity(max).build(),
                None => builder.build(),
            };
            clock.advance(start);
            cache.insert_with_ttl(1, 10, 5 * NS);
            cache.insert(2, 20);
            assert_eq!(cache.get(&1), Some(10), "{tti:?} {capacity:?}");
            clock.advance(5 * NS);
            assert_eq!(cache.get(&1), Some(10), "at the TTL: {tti:?} {capacity:?}");
            clock.advance(NS);
            assert_eq!(cache.get(&1), None, "past the TTL: {tti:?} {capacity:?}");
            assert_eq!(cache.get(&2), Some(20), "never idle: {tti:?} {capacity:?}");
        }
    }
}

#[cfg(feature = "async")]
#[test]
fn an_async_loading_hit_keeps_an_entry_alive() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    both(|clock, cache, _| {
        cache.insert(1, 10);
        for _ in 0..3 {
            clock.advance(TTI - NS);
            let hit = runtime.block_on(cache.get_or_insert_with_async(1, async { 99 }));
            assert_eq!(hit, 10);
        }
        clock.advance(TTI + STEP + NS);
        assert_eq!(cache.get(&1), None);
    });
}

/// Each entry keeps its own TTL next to its idle deadline while others
/// leave around it (one by one, which moves the last entry into the hole,
/// and in bulk, which compacts): the TTL still ends each one on time.
#[test]
fn each_entry_keeps_its_own_ttl_as_others_leave() {
    both(|clock, cache, _| {
        let ttl = |key: u32| TTI + Duration::from_secs(8 + u64::from(key));
        for key in 0..20 {
            cache.insert_with_ttl(key, key, ttl(key));
        }
        for key in (0..20).step_by(4) {
            assert_eq!(cache.remove(&key), Some(key));
        }
        cache.retain(|key, _| key % 4 != 2);
        assert_eq!(cache.len(), 10);
        clock.advance(TTI - NS);
        for key in (1..20).step_by(2) {
            assert_eq!(
                cache.get(&key),
                Some(key),
                "read: its idle time starts over"
            );
        }
        for key in (1..20).step_by(2) {
            let now = Duration::from_nanos(clock.now_nanos());
            clock.advance(ttl(key) - now);
            assert_eq!(cache.get(&key), Some(key), "live up to its TTL");
            clock.advance(NS);
            assert_eq!(cache.get(&key), None, "and no later, read or not");
        }
    });
}

#[test]
#[should_panic(expected = "set_max_capacity on an unbounded cache")]
fn an_unbounded_cache_with_a_time_to_idle_stays_unbounded() {
    let cache: Cache<u32, u32> = Cache::builder().time_to_idle(TTI).build();
    assert_eq!(cache.max_capacity(), None);
    cache.set_max_capacity(10);
}

#[test]
fn after_clear_entries_still_idle_out() {
    // What a write stamps is fixed when the shards are built; emptying
    // them keeps it.
    both(|clock, cache, _| {
        cache.insert(1, 10);
        cache.clear();
        cache.insert(2, 20);
        clock.advance(TTI + NS);
        assert_eq!(cache.get(&2), None, "idle for tti: expired");
        assert_eq!(cache.len(), 0);
    });
}
