//! `Cache::compute`: atomic per key, `f` outside every lock, a racing
//! insert or remove wins, a panicking `f` changes nothing, and the
//! listener and stats are exact.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use shardcache::{Cache, Compute, ManualClock, RemovalCause};

type Log = Arc<Mutex<Vec<(u32, u64, RemovalCause)>>>;

fn logged(bounded: bool) -> (Cache<u32, u64>, Log, ManualClock) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let clock = ManualClock::new();
    let builder = Cache::builder()
        .record_stats(true)
        .clock(clock.clone())
        .removal_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)));
    let builder = if bounded {
        builder.max_capacity(1 << 20)
    } else {
        builder
    };
    (builder.build(), log, clock)
}

fn increment(n: Option<&u64>) -> Compute<u64> {
    Compute::Put(n.copied().unwrap_or(0) + 1)
}

/// The check: 8 threads x 10 000 increments leave 80 000, on both
/// kinds of shard, with `get`, `insert` of other keys and loads racing.
#[test]
fn eight_threads_of_increments_lose_none() {
    // Miri runs each thread switch through its scheduler: fewer threads and
    // increments there, the same races.
    let (threads, per_thread) = if cfg!(miri) { (4u32, 25) } else { (8, 10_000) };
    for bounded in [false, true] {
        let (cache, _log, _clock) = logged(bounded);
        let cache = Arc::new(cache);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let cache = Arc::clone(&cache);
                thread::spawn(move || {
                    for i in 0..per_thread {
                        cache.compute(7, increment);
                        if i % 64 == 0 {
                            let _ = cache.get(&7);
                            cache.insert(1000 + t, i);
                            cache.get_or_insert_with(2000 + t, || 1);
                        }
                    }
                })
            })
            .collect();
        for t in handles {
            t.join().unwrap();
        }
        let total = u64::from(threads) * per_thread;
        assert_eq!(cache.get(&7), Some(total), "bounded: {bounded}");
    }
}

#[test]
fn put_keep_remove_return_what_is_stored_with_listener_and_stats() {
    for bounded in [false, true] {
        let (cache, log, _clock) = logged(bounded);
        assert_eq!(
            cache.compute(1, |old| {
                assert_eq!(old, None);
                Compute::Put(10)
            }),
            Some(10)
        );
        assert_eq!(
            cache.compute(1, |old| {
                assert_eq!(old, Some(&10));
                Compute::Put(11)
            }),
            Some(11)
        );
        assert_eq!(cache.compute(1, |_| Compute::Keep), Some(11));
        assert_eq!(cache.compute(2, |_| Compute::Keep), None);
        assert_eq!(cache.compute(2, |_| Compute::Remove), None);
        assert_eq!(cache.compute(1, |_| Compute::Remove), None);
        assert_eq!(cache.get(&1), None);
        assert_eq!(
            *log.lock().unwrap(),
            [
                (1, 10, RemovalCause::Replaced),
                (1, 11, RemovalCause::Removed)
            ]
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (3, 4), "bounded: {bounded}");
        assert_eq!((stats.inserts, stats.removals), (2, 1));
        assert_eq!(cache.len(), 0);
    }
}

#[test]
fn an_expired_value_is_not_seen_and_leaves_as_expired() {
    let (cache, log, clock) = logged(false);
    cache.insert_with_ttl(1, 5, Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.compute(1, increment), Some(1));
    assert_eq!(*log.lock().unwrap(), [(1, 5, RemovalCause::Expired)]);
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn a_put_gets_a_fresh_ttl_from_expire_after() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u64> = Cache::builder()
        .clock(clock.clone())
        .default_ttl(Duration::from_secs(100))
        .expire_after(|_, v: &u64| Some(Duration::from_secs(*v)))
        .build();
    cache.compute(1, |_| Compute::Put(10));
    clock.advance(Duration::from_secs(9));
    cache.compute(1, |_| Compute::Put(5));
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get(&1), Some(5));
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get(&1), None);
}

#[test]
fn a_panicking_f_changes_nothing_and_waiters_go_on() {
    for bounded in [false, true] {
        let (cache, log, _clock) = logged(bounded);
        cache.insert(1, 1);
        let result = catch_unwind(AssertUnwindSafe(|| {
            cache.compute(1, |_| -> Compute<u64> { panic!("f fails") })
        }));
        assert!(result.is_err());
        assert_eq!(cache.get(&1), Some(1));
        assert!(log.lock().unwrap().is_empty());
        // The flight was abandoned: the key computes and loads again.
        assert_eq!(cache.compute(1, increment), Some(2));
        assert_eq!(cache.get_or_insert_with(2, || 9), 9);
    }
}

/// `f` runs with no lock held: it may read the key and use other keys of
/// the same shard (one shard: every key).
#[test]
fn f_may_use_the_cache() {
    let cache: Cache<u32, u64> = Cache::builder().shards(1).build();
    cache.insert(1, 1);
    let stored = cache.compute(1, |old| {
        assert_eq!(cache.get(&1), old.copied());
        cache.insert(2, 2);
        cache.compute(3, |_| Compute::Put(3));
        Compute::Put(old.copied().unwrap_or(0) + cache.get(&2).unwrap())
    });
    assert_eq!(stored, Some(3));
    assert_eq!((cache.get(&1), cache.get(&3)), (Some(3), Some(3)));
}

/// A compute of the key inside its own `f` would wait for itself: it
/// panics, and the cache stays usable.
#[test]
fn computing_the_same_key_from_f_panics_instead_of_hanging() {
    let cache: Cache<u32, u64> = Cache::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        cache.compute(1, |_| {
            cache.compute(1, increment);
            Compute::Keep
        })
    }));
    assert!(result.is_err());
    let result = catch_unwind(AssertUnwindSafe(|| {
        cache.compute(1, |_| Compute::Put(cache.get_or_insert_with(1, || 5)))
    }));
    assert!(result.is_err());
    assert_eq!(cache.compute(1, increment), Some(1));
}

/// Starts `compute(1, f)` on a thread and returns once `f` is running;
/// `f` goes on when the returned barrier is passed.
fn compute_paused(
    cache: &Arc<Cache<u32, u64>>,
    f: impl FnOnce(Option<&u64>) -> Compute<u64> + Send + 'static,
) -> (thread::JoinHandle<Option<u64>>, Arc<Barrier>) {
    let (entered, wait_entered) = mpsc::channel();
    let go = Arc::new(Barrier::new(2));
    let computing = {
        let (cache, go) = (Arc::clone(cache), Arc::clone(&go));
        thread::spawn(move || {
            cache.compute(1, |old| {
                entered.send(()).unwrap();
                go.wait();
                f(old)
            })
        })
    };
    wait_entered.recv().unwrap();
    (computing, go)
}

/// An insert or remove of the key while `f` runs wins: the compute stores
/// nothing, returns what it would have stored, and the insert's value stays.
#[test]
fn an_insert_or_remove_while_f_runs_wins() {
    for remove in [false, true] {
        let (cache, _log, _clock) = logged(false);
        let cache = Arc::new(cache);
        cache.insert(1, 1);
        let (computing, go) = compute_paused(&cache, increment);
        if remove {
            assert_eq!(cache.remove(&1), Some(1));
        } else {
            cache.insert(1, 100);
        }
        go.wait();
        assert_eq!(computing.join().unwrap(), Some(2));
        assert_eq!(cache.get(&1), if remove { None } else { Some(100) });
    }
}

/// A loader of the key never runs while a compute of it is in progress:
/// it waits (or comes after) and gets what the compute stored.
#[test]
fn computes_and_loads_of_a_key_take_turns() {
    let cache = Arc::new(Cache::<u32, u64>::new());
    let calls = Arc::new(AtomicU64::new(0));
    let (computing, go) = compute_paused(&cache, |_| Compute::Put(41));
    let loading = {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        thread::spawn(move || {
            cache.get_or_insert_with(1, || {
                calls.fetch_add(1, Ordering::SeqCst);
                0
            })
        })
    };
    go.wait();
    assert_eq!(computing.join().unwrap(), Some(41));
    assert_eq!(loading.join().unwrap(), 41);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the loader never ran");
    assert_eq!(cache.compute(1, increment), Some(42));
}
