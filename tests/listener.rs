//! The removal listener: told once for every entry that leaves, with the
//! right cause, after the lock is released, on the thread that did the work;
//! a panicking listener loses no other notification and breaks nothing.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use shardcache::{Cache, CacheBuilder, ManualClock, RemovalCause};

const SECOND: Duration = Duration::from_secs(1);

/// What the listener was told: (key, value, cause, thread name).
type Log = Arc<Mutex<Vec<(u32, u32, RemovalCause, Option<String>)>>>;

/// A builder whose listener appends to the returned log.
fn logged(clock: &ManualClock) -> (CacheBuilder<u32, u32>, Log) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let builder =
        Cache::builder()
            .clock(clock.clone())
            .removal_listener(move |key, value, cause| {
                let name = thread::current().name().map(str::to_owned);
                sink.lock().unwrap().push((key, value, cause, name));
            });
    (builder, log)
}

fn causes(log: &Log) -> Vec<(u32, u32, RemovalCause)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|&(k, v, c, _)| (k, v, c))
        .collect()
}

/// Every path an entry can leave by, on an unbounded and on a bounded cache.
fn every_cause(bounded: bool) {
    use RemovalCause::*;
    let clock = ManualClock::new();
    let (builder, log) = logged(&clock);
    let builder = if bounded {
        builder.max_capacity(1 << 20)
    } else {
        builder
    };
    let cache = builder.build();
    cache.insert(1, 10);
    cache.insert(1, 11); // replaced
    cache.insert_with_ttl(1, 12, SECOND); // replaced, and moved to the TTL table
    assert_eq!(cache.remove(&1), Some(12)); // removed: the caller gets it too
    cache.insert_with_ttl(2, 20, SECOND);
    cache.insert_with_ttl(3, 30, SECOND);
    cache.insert_with_ttl(4, 40, SECOND);
    clock.advance(2 * SECOND);
    assert_eq!(cache.get(&2), None); // expired, found by a lookup
    assert_eq!(cache.remove(&3), None); // expired, found by remove
    assert_eq!(cache.remove_expired(), 1); // expired, swept
    cache.insert(5, 50);
    cache.insert(6, 60);
    cache.clear();
    let mut told = causes(&log);
    let cleared = told.split_off(told.len() - 2);
    assert_eq!(
        told,
        [
            (1, 10, Replaced),
            (1, 11, Replaced),
            (1, 12, Removed),
            (2, 20, Expired),
            (3, 30, Expired),
            (4, 40, Expired),
        ]
    );
    let mut cleared: Vec<_> = cleared.into_iter().collect();
    cleared.sort_unstable_by_key(|&(key, ..)| key);
    assert_eq!(cleared, [(5, 50, Cleared), (6, 60, Cleared)]);
    let names = log.lock().unwrap();
    assert!(
        names
            .iter()
            .all(|(.., name)| name.as_deref() != Some("shardcache-janitor")),
        "all on the caller's thread"
    );
}

#[test]
fn every_cause_unbounded() {
    every_cause(false);
}

#[test]
fn every_cause_bounded() {
    every_cause(true);
}

#[test]
fn eviction_tells_evicted_or_expired() {
    use RemovalCause::*;
    let clock = ManualClock::new();
    let (builder, log) = logged(&clock);
    let cache = builder.max_capacity(3).shards(1).build();
    cache.insert_with_ttl(1, 10, SECOND);
    cache.insert(2, 20);
    cache.insert(3, 30);
    clock.advance(2 * SECOND);
    cache.insert(4, 40); // room made by the expired 1
    cache.insert(5, 50); // room made by evicting a live entry
    let told = causes(&log);
    assert_eq!(told[0], (1, 10, Expired));
    assert_eq!(told[1].2, Evicted);
    assert_eq!(told.len(), 2);
    // Too heavy for the cache: not stored, and told at once.
    let (builder, log) = logged(&clock);
    let heavy = builder
        .max_capacity(10)
        .weigher(|_, value: &u32| *value)
        .build();
    heavy.insert(7, 5);
    heavy.insert(7, 11);
    assert_eq!(causes(&log), [(7, 5, Replaced), (7, 11, Evicted)]);
}

#[test]
fn the_janitor_tells_on_its_own_thread() {
    let clock = ManualClock::new();
    let (sender, told) = mpsc::channel();
    let sender = Mutex::new(sender);
    let cache: Cache<u32, u32> = Cache::builder()
        .clock(clock.clone())
        .cleanup_interval(Duration::from_millis(1))
        .removal_listener(move |key, _, cause| {
            let name = thread::current().name().map(str::to_owned);
            let _ = sender.lock().unwrap().send((key, cause, name));
        })
        .build();
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    let (key, cause, name) = told
        .recv_timeout(Duration::from_secs(30))
        .expect("the janitor swept nothing");
    assert_eq!((key, cause), (1, RemovalCause::Expired));
    assert_eq!(name.as_deref(), Some("shardcache-janitor"));
}

/// A listener that panics on odd values.
fn panicky(told: &Arc<AtomicUsize>) -> impl Fn(u32, u32, RemovalCause) + Send + Sync {
    let told = Arc::clone(told);
    move |_, value, _| {
        told.fetch_add(1, Ordering::Relaxed);
        assert!(value % 2 == 0, "listener panics on odd values");
    }
}

#[test]
fn a_panicking_listener_loses_no_notification_and_breaks_nothing() {
    for bounded in [false, true] {
        let told = Arc::new(AtomicUsize::new(0));
        let mut builder = Cache::builder().shards(4).removal_listener(panicky(&told));
        if bounded {
            builder = builder.max_capacity(1 << 20);
        }
        let cache: Cache<u32, u32> = builder.build();
        for key in 0..100 {
            cache.insert(key, key);
        }
        let replaced = catch_unwind(AssertUnwindSafe(|| cache.insert(1, 2)));
        assert!(replaced.is_err(), "the panic reaches the caller");
        assert_eq!(cache.get(&1), Some(2), "the insert happened");
        let removed = catch_unwind(AssertUnwindSafe(|| cache.remove(&3)));
        assert!(removed.is_err());
        assert_eq!(cache.get(&3), None, "the remove happened");
        told.store(0, Ordering::Relaxed);
        let cleared = catch_unwind(AssertUnwindSafe(|| cache.clear()));
        assert!(cleared.is_err());
        assert_eq!(told.load(Ordering::Relaxed), 99, "every entry was told");
        assert!(cache.is_empty(), "every shard was cleared");
        cache.insert(7, 8);
        assert_eq!(cache.get(&7), Some(8), "still usable");
    }
}

#[test]
fn a_panicking_listener_does_not_stop_the_janitor() {
    let clock = ManualClock::new();
    let told = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u32, u32> = Cache::builder()
        .clock(clock.clone())
        .shards(1)
        .cleanup_interval(Duration::from_millis(1))
        .removal_listener(panicky(&told))
        .build();
    for round in 0..3 {
        cache.insert_with_ttl(round, 1, SECOND); // odd: the listener panics
        cache.insert_with_ttl(round + 100, 2, SECOND);
        clock.advance(2 * SECOND);
        let mut waited = 0;
        while told.load(Ordering::Relaxed) < 2 * (round as usize + 1) {
            assert!(waited < 30_000, "the janitor stopped sweeping");
            thread::sleep(Duration::from_millis(1));
            waited += 1;
        }
    }
    assert!(cache.is_empty());
}

#[test]
fn the_listener_may_use_the_cache() {
    static CACHE: OnceLock<Cache<u32, u32>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        Cache::builder()
            .max_capacity(4)
            .shards(1)
            .removal_listener(|key, value, _| {
                let cache = CACHE.get().expect("built");
                // Reads and writes the shard whose lock the eviction held.
                let _ = cache.get(&key);
                if key < 1000 {
                    cache.insert(key + 1000, value);
                }
            })
            .build()
    });
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        for key in 0..20 {
            cache.insert(key, key);
        }
        cache.remove(&19);
        cache.clear();
        done.send(()).expect("test thread is waiting");
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("deadlock: the listener ran under a lock");
}

/// Random operations on caches of every kind: every value inserted is told
/// to the listener exactly once by the time the cache is cleared (values
/// are unique, so each telling names one insert).
#[test]
fn every_value_that_leaves_is_told_exactly_once() {
    let ops = if cfg!(miri) { 300 } else { 20_000 };
    for capacity in [None, Some(8), Some(64)] {
        let clock = ManualClock::new();
        let (builder, log) = logged(&clock);
        let builder = builder.shards(2);
        let cache = match capacity {
            Some(n) => builder.max_capacity(n).build(),
            None => builder.build(),
        };
        let mut state = 0x9e37_79b9_u64;
        let mut inserted = Vec::new();
        let mut returned = Vec::new();
        for value in 0..ops {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = (state % 32) as u32;
            match state >> 60 {
                0..=7 => cache.insert(key, value),
                8..=10 => cache.insert_with_ttl(key, value, SECOND),
                11 => returned.extend(cache.remove(&key)),
                12 => clock.advance(SECOND / 2),
                13 => drop(cache.remove_expired()),
                _ => drop(cache.get(&key)),
            }
            if state >> 60 <= 10 {
                inserted.push(value);
            }
        }
        cache.clear();
        let mut told: HashMap<u32, usize> = HashMap::new();
        for (_, value, _) in causes(&log) {
            *told.entry(value).or_default() += 1;
        }
        assert!(told.values().all(|&n| n == 1), "a value told twice");
        let mut told: Vec<u32> = told.into_keys().collect();
        told.sort_unstable();
        assert_eq!(told, inserted, "every inserted value is told once");
        for value in returned {
            assert!(told.binary_search(&value).is_ok(), "removed but not told");
        }
        assert!(cache.is_empty());
    }
}
