//! The janitor thread, shutdown, and where values are dropped (also those a
//! bounded cache evicts).
//!
//! Expiry is driven by `ManualClock`; the only waiting is a bounded poll
//! for the real janitor thread to get its turn.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{eventually, CacheApi};
use shardcache::{Cache, ManualClock};

const SECOND: Duration = Duration::from_secs(1);

fn janitor_removes_expired_entries<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(
        Cache::builder()
            .shards(4)
            .clock(clock.clone())
            .cleanup_interval(Duration::from_millis(2)),
    );
    for key in 0..100 {
        let ttl = if key < 60 { SECOND } else { Duration::ZERO };
        cache.insert_with_ttl(key, key, ttl);
    }
    clock.advance(2 * SECOND);
    eventually("the janitor swept every shard", || cache.len() == 40);
    assert!((60..100).all(|key| cache.get(&key) == Some(key)));
    cache.close();
}

/// Two caches on one (shared) janitor: each is swept on its own interval.
/// The quick one is swept again and again while the hourly one, due much
/// later, is left alone; the janitor never waits for the later deadline.
fn caches_are_swept_on_their_own_intervals<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let build = |interval| {
        C::build(
            Cache::builder()
                .shards(4)
                .clock(clock.clone())
                .cleanup_interval(interval),
        )
    };
    let hourly = build(Duration::from_secs(3600));
    let quick = build(Duration::from_millis(2));
    let keys = if cfg!(miri) { 8 } else { 100 };
    for key in 0..keys {
        hourly.insert_with_ttl(key, key, SECOND);
    }
    for round in 0..3 {
        for key in 0..keys {
            quick.insert_with_ttl(key, key, SECOND);
        }
        clock.advance(2 * SECOND);
        eventually(&format!("sweep {round} of the quick cache"), || {
            quick.is_empty()
        });
    }
    assert_eq!(hourly.len(), keys as usize, "the hourly cache was swept");
    hourly.close();
    // Still swept once the other cache is gone.
    quick.insert_with_ttl(0, 0, SECOND);
    clock.advance(2 * SECOND);
    eventually("a sweep after the other cache closed", || quick.is_empty());
}

fn close_returns_promptly_with_a_long_interval<C: CacheApi<u32, u32> + 'static>() {
    let cache = C::build(Cache::builder().cleanup_interval(Duration::from_secs(3600)));
    let (done, closed) = mpsc::channel();
    std::thread::spawn(move || {
        cache.close();
        done.send(()).expect("test thread is waiting");
    });
    closed
        .recv_timeout(Duration::from_secs(30))
        .expect("close waited for the hour-long interval instead of waking the janitor");
}

fn dropping_stops_the_janitor<C: CacheApi<u32, u32> + 'static>() {
    let cache = C::build(Cache::builder().cleanup_interval(Duration::from_secs(3600)));
    let (done, dropped) = mpsc::channel();
    std::thread::spawn(move || {
        drop(cache);
        done.send(()).expect("test thread is waiting");
    });
    dropped
        .recv_timeout(Duration::from_secs(30))
        .expect("drop did not stop the janitor");
}

/// A value whose `Drop` reads the cache it was stored in. Dropped under that
/// cache's lock, it would deadlock; the tests run each path on a helper
/// thread and fail if it does not finish.
struct Reentrant {
    cache: &'static OnceLock<Cache<u32, Arc<Reentrant>>>,
    drops: &'static AtomicUsize,
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.get() {
            // Read-locks the cache's only shard: blocks forever if this
            // thread holds its write lock.
            let _ = cache.contains_key(&0);
            let _ = cache.len();
        }
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn values_are_dropped_after_the_lock_is_released() {
    static CACHE: OnceLock<Cache<u32, Arc<Reentrant>>> = OnceLock::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let value = || {
        Arc::new(Reentrant {
            cache: &CACHE,
            drops: &DROPS,
        })
    };
    let cache = CACHE.get_or_init(|| Cache::builder().shards(1).clock(clock.clone()).build());

    let (done, finished) = mpsc::channel();
    let worker_clock = clock.clone();
    std::thread::spawn(move || {
        let step = |name: &'static str| done.send(name).expect("test thread is waiting");
        cache.insert(1, value());
        cache.insert(1, value()); // replace drops the old value
        step("insert");
        drop(cache.remove(&1)); // the returned value is the caller's
        step("remove");
        cache.insert_with_ttl(2, value(), SECOND);
        worker_clock.advance(2 * SECOND);
        assert!(cache.get(&2).is_none()); // lazy expiry drops it
        step("get of an expired entry");
        cache.insert_with_ttl(3, value(), SECOND);
        worker_clock.advance(2 * SECOND);
        assert_eq!(cache.remove_expired(), 1);
        step("remove_expired");
        cache.insert(4, value());
        cache.clear();
        step("clear");
    });
    for expected in [
        "insert",
        "remove",
        "get of an expired entry",
        "remove_expired",
        "clear",
    ] {
        let got = finished
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("deadlock: a value was dropped under a lock after `{expected}`")
            });
        assert_eq!(got, expected);
    }
    assert!(DROPS.load(Ordering::Relaxed) >= 5);
}

#[test]
fn evicted_values_are_dropped_after_the_lock_is_released() {
    static CACHE: OnceLock<Cache<u32, Arc<Reentrant>>> = OnceLock::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let value = || {
        Arc::new(Reentrant {
            cache: &CACHE,
            drops: &DROPS,
        })
    };
    let cache = CACHE.get_or_init(|| {
        Cache::builder()
            .max_capacity(4)
            .shards(1)
            .clock(clock.clone())
            .weigher(|key, _| if *key == 99 { 5 } else { 1 })
            .build()
    });
    let (done, finished) = mpsc::channel();
    let worker_clock = clock.clone();
    std::thread::spawn(move || {
        for key in 0..8 {
            cache.insert(key, value()); // the last four each evict one
        }
        cache.insert(99, value()); // too heavy: dropped at once
        cache.insert_with_ttl(7, value(), SECOND);
        worker_clock.advance(2 * SECOND);
        cache.insert(8, value()); // makes room by evicting the expired 7
        cache.remove_expired();
        done.send(()).expect("test thread is waiting");
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("deadlock: an evicted value was dropped under the lock");
    assert!(DROPS.load(Ordering::Relaxed) >= 6);
}

common::suite!(
    janitor_removes_expired_entries,
    caches_are_swept_on_their_own_intervals,
    close_returns_promptly_with_a_long_interval,
    dropping_stops_the_janitor,
);
