//! Single-flight loading with `get_or_insert_with`: one load per key however
//! many callers miss it, no lock held while loading, and every way a load
//! can end (value, error, panic, a newer write) leaves waiters served and
//! the cache consistent.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use shardcache::{Cache, ManualClock};

const SECOND: Duration = Duration::from_secs(1);

/// Gives threads that are about to wait for a load time to park: polls
/// (bounded) until `arrived` reaches `n`, then yields for a few ms. The
/// assertions never depend on it: a caller that arrives after the load
/// ended simply hits.
fn let_them_arrive(arrived: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while arrived.load(Ordering::SeqCst) < n && start.elapsed() < Duration::from_secs(10) {
        thread::yield_now();
    }
    let settle = Instant::now();
    let pause = Duration::from_millis(if cfg!(miri) { 1 } else { 20 });
    while settle.elapsed() < pause {
        thread::yield_now();
    }
}

fn caches() -> [Cache<u32, u32>; 2] {
    [
        Cache::builder().shards(4).build(),
        Cache::builder().max_capacity(1 << 16).shards(4).build(),
    ]
}

#[test]
fn many_callers_one_load() {
    for cache in caches() {
        let threads = 8;
        let loads = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        let start = Barrier::new(threads);
        thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    start.wait();
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let value = cache.get_or_insert_with(1, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        let_them_arrive(&arrived, threads);
                        42
                    });
                    assert_eq!(value, 42);
                });
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&1), Some(42));
    }
}

#[test]
fn a_hit_runs_no_loader() {
    for cache in caches() {
        cache.insert(1, 10);
        assert_eq!(cache.get_or_insert_with(1, || unreachable!()), 10);
        assert_eq!(
            cache.try_get_or_insert_with(1, || Err::<u32, ()>(())),
            Ok(10)
        );
    }
}

#[test]
fn a_panicking_loader_hands_over_to_a_waiter() {
    for cache in caches() {
        let waiters = 4;
        let arrived = AtomicUsize::new(0);
        let loads = AtomicUsize::new(0);
        let (leader_started, started) = mpsc::channel();
        thread::scope(|s| {
            let leader = s.spawn(|| {
                catch_unwind(AssertUnwindSafe(|| {
                    cache.get_or_insert_with(1, || {
                        loads.fetch_add(1, Ordering::SeqCst);
                        leader_started.send(()).unwrap();
                        let_them_arrive(&arrived, waiters);
                        panic!("the loader fails");
                    })
                }))
            });
            started.recv().unwrap();
            let handles: Vec<_> = (0..waiters)
                .map(|_| {
                    s.spawn(|| {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        cache.get_or_insert_with(1, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            7
                        })
                    })
                })
                .collect();
            let panic = leader
                .join()
                .unwrap()
                .expect_err("the panic reaches the leader");
            assert_eq!(panic.downcast_ref::<&str>(), Some(&"the loader fails"));
            for handle in handles {
                assert_eq!(handle.join().unwrap(), 7);
            }
        });
        assert_eq!(loads.load(Ordering::SeqCst), 2, "one panicked, one loaded");
        assert_eq!(cache.get(&1), Some(7));
    }
}

#[test]
fn an_error_reaches_its_caller_and_waiters_load_in_turn() {
    for cache in caches() {
        let waiters = 3;
        let arrived = AtomicUsize::new(0);
        let calls = AtomicUsize::new(0);
        let running = AtomicUsize::new(0);
        let (leader_started, started) = mpsc::channel();
        thread::scope(|s| {
            let leader = s.spawn(|| {
                cache.try_get_or_insert_with(1, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    leader_started.send(()).unwrap();
                    let_them_arrive(&arrived, waiters);
                    Err("down")
                })
            });
            started.recv().unwrap();
            let handles: Vec<_> = (0..waiters)
                .map(|_| {
                    s.spawn(|| {
                        arrived.fetch_add(1, Ordering::SeqCst);
                        cache.try_get_or_insert_with(1, || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "one at a time");
                            thread::yield_now();
                            running.fetch_sub(1, Ordering::SeqCst);
                            Err("still down")
                        })
                    })
                })
                .collect();
            assert_eq!(leader.join().unwrap(), Err("down"));
            for handle in handles {
                assert_eq!(handle.join().unwrap(), Err("still down"));
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1 + waiters);
        assert_eq!(cache.get(&1), None, "nothing stored");
        assert_eq!(cache.len(), 0);
    }
}

#[test]
fn a_loader_that_loads_its_own_key_panics_instead_of_deadlocking() {
    for cache in caches() {
        let result = catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_insert_with(1, || cache.get_or_insert_with(1, || 2))
        }));
        let panic = result.expect_err("recursion is caught");
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str));
        assert!(
            message.is_some_and(|m| m.starts_with("shardcache: loader cycle: the loader `")
                && m.contains("waits for its own key")),
            "{message:?}"
        );
        // The flight was abandoned: the key loads normally afterwards.
        assert_eq!(cache.get_or_insert_with(1, || 3), 3);
    }
}

#[test]
fn the_loader_may_use_the_cache_and_a_get_of_its_key_returns_none() {
    for cache in caches() {
        let value = cache.get_or_insert_with(1, || {
            assert_eq!(cache.get(&1), None, "a key being loaded is missing");
            cache.insert(2, 20);
            assert_eq!(cache.get_or_insert_with(3, || 30), 30);
            10
        });
        assert_eq!(value, 10);
        assert_eq!(
            (cache.get(&1), cache.get(&2), cache.get(&3)),
            (Some(10), Some(20), Some(30))
        );
    }
}

#[test]
fn callers_of_other_keys_in_the_same_shard_never_wait() {
    let cache: Cache<u32, u32> = Cache::builder().shards(1).build();
    let (release, blocked) = mpsc::channel::<()>();
    let (loading, started) = mpsc::channel();
    thread::scope(|s| {
        let cache = &cache;
        let slow = s.spawn(move || {
            cache.get_or_insert_with(1, || {
                loading.send(()).unwrap();
                blocked.recv().unwrap();
                1
            })
        });
        started.recv().unwrap();
        // Key 1 is loading in the only shard; key 2 loads and is inserted.
        assert_eq!(cache.get_or_insert_with(2, || 2), 2);
        cache.insert(3, 3);
        assert_eq!(cache.get(&3), Some(3));
        release.send(()).unwrap();
        assert_eq!(slow.join().unwrap(), 1);
    });
}

#[test]
fn a_write_of_the_key_while_it_loads_wins() {
    for cache in caches() {
        // insert
        let loaded = cache.get_or_insert_with(1, || {
            cache.insert(1, 100);
            10
        });
        assert_eq!(loaded, 10, "the caller still gets what it loaded");
        assert_eq!(cache.get(&1), Some(100), "the newer insert stays");
        // remove
        let loaded = cache.get_or_insert_with(2, || {
            assert_eq!(cache.remove(&2), None);
            20
        });
        assert_eq!(loaded, 20);
        assert_eq!(cache.get(&2), None, "the remove wins");
        // clear
        let loaded = cache.get_or_insert_with(3, || {
            cache.clear();
            30
        });
        assert_eq!(loaded, 30);
        assert_eq!(cache.get(&3), None, "the clear wins");
        // A write of another key changes nothing.
        let loaded = cache.get_or_insert_with(4, || {
            cache.insert(5, 50);
            cache.remove(&5);
            40
        });
        assert_eq!((loaded, cache.get(&4)), (40, Some(40)));
    }
}

#[test]
fn loaded_values_get_the_default_ttl() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .clock(clock.clone())
        .default_ttl(SECOND)
        .build();
    let loads = AtomicUsize::new(0);
    let load = || {
        loads.fetch_add(1, Ordering::SeqCst);
        7
    };
    assert_eq!(cache.get_or_insert_with(1, load), 7);
    assert_eq!(cache.get_or_insert_with(1, load), 7);
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    clock.advance(2 * SECOND);
    assert_eq!(cache.get_or_insert_with(1, load), 7);
    assert_eq!(loads.load(Ordering::SeqCst), 2, "expired, so loaded again");
}

#[test]
fn a_bounded_cache_stays_within_its_capacity_when_loading() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(10).build();
    for key in 0..100 {
        assert_eq!(cache.get_or_insert_with(key, || key * 2), key * 2);
        assert!(cache.weighted_size() <= 10);
    }
}

#[test]
fn a_panicking_weigher_while_landing_abandons_the_flight() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .weigher(|_, value: &u32| {
            assert!(*value != 13, "weigher panics on 13");
            1
        })
        .build();
    let result = catch_unwind(AssertUnwindSafe(|| cache.get_or_insert_with(1, || 13)));
    assert!(result.is_err());
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get_or_insert_with(1, || 1), 1, "the key loads again");
}

#[test]
fn many_threads_many_keys_each_loaded_once() {
    let ops = if cfg!(miri) { 50 } else { 5_000 };
    for cache in caches() {
        let loads: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        let cache = Arc::new(cache);
        thread::scope(|s| {
            for t in 0..4u64 {
                let (cache, loads) = (&cache, &loads);
                s.spawn(move || {
                    let mut x = t + 1;
                    for _ in 0..ops {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = (x % 64) as u32;
                        let value = cache.get_or_insert_with(key, || {
                            loads[key as usize].fetch_add(1, Ordering::SeqCst);
                            key + 1
                        });
                        assert_eq!(value, key + 1);
                    }
                });
            }
        });
        assert!(loads.iter().all(|n| n.load(Ordering::SeqCst) <= 1));
    }
}
