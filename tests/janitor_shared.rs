//! One janitor thread for the whole process: every cache with a cleanup
//! interval is swept by it, it starts with the first such cache and is
//! stopped and joined when the last one goes.
//!
//! Its own test binary with a single test function, because it counts the
//! process's threads (`/proc/self/task`, Linux only): tests of one binary
//! run in parallel threads, and their caches would start janitors of their
//! own. Expiry is driven by `ManualClock`; the only waiting is the bounded
//! poll of `tests/common` for the janitor thread to get its turn.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use common::{cache_held_by_its_entry, eventually, self_closing_cache};
use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, ManualClock};

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

/// Caches with a cleanup interval built at once.
const CACHES: usize = 2000;

/// The janitor's name as the kernel keeps it: `shardcache-janitor` cut to
/// the 15 bytes of a Linux thread name.
const JANITOR_NAME: &str = "shardcache-jani";

/// Names of the process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task lists the process's threads")
        .filter_map(|task| {
            // A thread may exit between the listing and the read.
            std::fs::read_to_string(task.ok()?.path().join("comm")).ok()
        })
        .map(|name| name.trim_end().to_owned())
        .collect()
}

fn janitor_threads() -> usize {
    thread_names().iter().filter(|n| *n == JANITOR_NAME).count()
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "reads /proc, which Miri's isolation forbids")]
fn every_cache_shares_one_janitor_thread_that_ends_with_the_last() {
    assert_eq!(janitor_threads(), 0, "a janitor before any cache");
    let before = thread_names().len();

    // No cleanup interval, no janitor.
    let plain: Cache<u32, u32> = Cache::new();
    assert_eq!(janitor_threads(), 0, "a cache without cleanup started one");

    // Many caches with cleanup, of both kinds, each on its own interval.
    let clock = ManualClock::new();
    let caches: Vec<Cache<u32, u32>> = (0..CACHES)
        .map(|i| {
            Cache::builder()
                .shards(1)
                .clock(clock.clone())
                // Every tenth cache is swept often, the others hourly.
                .cleanup_interval(if i % 10 == 0 {
                    Duration::from_millis(2)
                } else {
                    HOUR
                })
                .build()
        })
        .collect();
    let single: Vec<SingleLockCache<u32, u32>> = (0..CACHES / 10)
        .map(|_| {
            SingleLockCache::builder()
                .clock(clock.clone())
                .cleanup_interval(Duration::from_millis(2))
                .build()
        })
        .collect();
    // A new thread names itself once it runs.
    eventually("the janitor thread named itself", || janitor_threads() >= 1);
    let janitors = janitor_threads();
    let threads = thread_names().len();
    assert_eq!(
        janitors,
        1,
        "{} caches with cleanup run {janitors} janitor threads",
        CACHES + CACHES / 10
    );
    assert!(
        threads <= before + 1,
        "{threads} threads with the caches, {before} before"
    );
    assert!(format!("{:?}", caches[0]).contains("running: true"));

    // The shared thread sweeps each cache on its own interval.
    for (i, cache) in caches.iter().enumerate() {
        cache.insert_with_ttl(i as u32, 0, SECOND);
    }
    for cache in &single {
        cache.insert_with_ttl(0, 0, SECOND);
    }
    clock.advance(2 * SECOND);
    eventually("every fast cache was swept", || {
        caches.iter().step_by(10).all(|c| c.is_empty()) && single.iter().all(|c| c.is_empty())
    });
    let hourly_left = caches.iter().filter(|c| !c.is_empty()).count();
    assert_eq!(
        hourly_left,
        CACHES - CACHES / 10,
        "an hourly cache was swept"
    );

    // Closing or dropping all but one leaves the thread running.
    let (last, rest) = caches.split_last().expect("caches");
    for cache in rest {
        cache.close();
    }
    drop(single);
    assert_eq!(janitor_threads(), 1);
    assert!(format!("{:?}", rest[0]).contains("running: false"));
    assert!(format!("{last:?}").contains("running: true"));

    // The last one stops it, and joins it.
    drop(caches);
    eventually("the janitor thread is gone", || janitor_threads() == 0);
    assert_eq!(thread_names().len(), before, "threads left behind");

    // A later cache starts a new one.
    let later: Cache<u32, u32> = Cache::builder().cleanup_interval(HOUR).build();
    eventually("a later cache started a janitor", || janitor_threads() == 1);
    later.close();
    eventually("close stopped the janitor", || janitor_threads() == 0);
    later.close();
    drop(later);

    handles_share_one_cache_and_its_janitor(&clock);
    last_cache_closed_by_its_listener_stops_the_thread();
    last_cache_dropped_on_the_janitor_thread_stops_the_thread();
    drop(plain);
}

/// Clones of a cache are handles to it: dropping one keeps the cache and
/// its janitor for the others, the last drop stops the janitor, and
/// `close` on any handle closes it for every handle.
fn handles_share_one_cache_and_its_janitor(clock: &ManualClock) {
    let first: Cache<u32, u32> = Cache::builder()
        .clock(clock.clone())
        .cleanup_interval(Duration::from_millis(2))
        .build();
    let second = first.clone();
    eventually("the cache started a janitor", || janitor_threads() == 1);
    drop(first);
    second.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    eventually("the janitor sweeps for the remaining handle", || {
        second.is_empty()
    });
    assert_eq!(janitor_threads(), 1);
    drop(second);
    eventually("the last handle stopped the janitor", || {
        janitor_threads() == 0
    });

    let first: Cache<u32, u32> = Cache::builder().cleanup_interval(HOUR).build();
    let second = first.clone();
    eventually("the cache started a janitor", || janitor_threads() == 1);
    second.close();
    eventually("close on one handle stopped the janitor", || {
        janitor_threads() == 0
    });
    assert!(format!("{first:?}").contains("running: false"));
    first.insert(2, 2);
    assert_eq!(second.get(&2), Some(2), "both handles still work");
}

/// The only cache with cleanup is closed by its own listener, on the
/// janitor thread: the thread must not join itself, and ends after the sweep.
fn last_cache_closed_by_its_listener_stops_the_thread() {
    static CACHE: OnceLock<Cache<u32, u32>> = OnceLock::new();
    static CLOSED: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let cache = self_closing_cache(&CACHE, &CLOSED, Cache::builder().clock(clock.clone()));
    eventually("the janitor started", || janitor_threads() == 1);
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    eventually("the listener closed the cache", || {
        CLOSED.load(Ordering::SeqCst) == 1
    });
    eventually("the janitor thread ended", || janitor_threads() == 0);
    assert!(format!("{cache:?}").contains("running: false"));
}

/// The only cache with cleanup is dropped by a value its janitor sweeps.
fn last_cache_dropped_on_the_janitor_thread_stops_the_thread() {
    let clock = ManualClock::new();
    // Registered, and alive through its entry until the clock moves.
    let weak = cache_held_by_its_entry(&clock);
    eventually("the janitor started", || janitor_threads() == 1);
    clock.advance(2 * SECOND);
    eventually("the janitor dropped the cache", || weak.upgrade().is_none());
    eventually("the janitor thread ended", || janitor_threads() == 0);
}
