//! Loader cycles with blocking loaders: key A's loader waits for B's load
//! while B's loader waits for A's (and longer cycles, on one thread or
//! several). The caller whose wait would close the cycle panics with a
//! message naming the loaders, the other loads go on, and every key loads
//! normally afterwards. Without the check these tests deadlock; each runs
//! under a time bound so that a deadlock fails instead of hanging.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use shardcache::Cache;

mod common;
use common::{check_cycle, panic_message};

/// Runs `scenario` on its own thread and fails if it has not returned
/// within a generous bound: a deadlock fails the test instead of hanging
/// it. Nothing waits for the bound when the scenario ends.
fn within_bound<T: Send + 'static>(scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || done.send(scenario()));
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("deadlock: the loader cycle was not detected")
}

/// What a thread of a cycle ended with: its value, or its panic's message.
type Outcome = Result<u32, String>;

fn caught(f: impl FnOnce() -> u32) -> Outcome {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| panic_message(&*panic).to_owned())
}

/// `keys` threads; thread i leads key i, and once all lead, its loader
/// loads key i+1 (the last one loads key 0): a cycle of `keys` loaders
/// over `keys` threads. `try_` uses the fallible methods.
fn cycle_over_threads(keys: u32, try_: bool) -> Vec<Outcome> {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let all_lead = Arc::new(Barrier::new(keys as usize));
    let threads: Vec<_> = (0..keys)
        .map(|key| {
            let (cache, all_lead) = (Arc::clone(&cache), Arc::clone(&all_lead));
            thread::spawn(move || {
                let next = (key + 1) % keys;
                caught(|| {
                    let load = || {
                        all_lead.wait();
                        // If the next key's load is abandoned (its loader
                        // panicked), this caller loads it itself.
                        cache.get_or_insert_with(next, || 100 + next) + 1
                    };
                    if try_ {
                        let loaded: Result<u32, ()> =
                            cache.try_get_or_insert_with(key, || Ok(load()));
                        loaded.unwrap()
                    } else {
                        cache.get_or_insert_with(key, load)
                    }
                })
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // No flight is left behind: each key is there or loads at once, and
    // a value stored by the cycle's survivors is one they loaded.
    for key in 0..keys {
        let value = cache.get_or_insert_with(key, || 7);
        assert!(value == 7 || value >= 100, "{value}");
    }
    outcomes
}

#[test]
fn a_cycle_of_two_keys_on_two_threads_panics_in_the_caller_that_closes_it() {
    let outcomes = within_bound(|| cycle_over_threads(2, false));
    check_cycle(&outcomes, 2);
}

#[test]
fn a_cycle_of_three_keys_on_three_threads_panics() {
    let outcomes = within_bound(|| cycle_over_threads(3, false));
    check_cycle(&outcomes, 3);
}

#[test]
fn the_fallible_methods_panic_on_a_cycle_too() {
    let outcomes = within_bound(|| cycle_over_threads(2, true));
    check_cycle(&outcomes, 2);
}

#[test]
fn many_two_key_cycles_never_deadlock() {
    let rounds = if cfg!(miri) { 2 } else { 200 };
    within_bound(move || {
        for _ in 0..rounds {
            check_cycle(&cycle_over_threads(2, false), 2);
        }
    });
}

/// On one thread: A's loader loads B, whose loader loads C, whose loader
/// loads A. The innermost caller panics; it unwinds through all three
/// loaders, and each key loads afterwards.
#[test]
fn a_cycle_of_three_keys_on_one_thread_panics() {
    let cache: Cache<u32, u32> = Cache::new();
    let panic = catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(0, || {
            cache.get_or_insert_with(1, || {
                cache.get_or_insert_with(2, || cache.get_or_insert_with(0, || 1))
            })
        })
    }))
    .expect_err("the cycle panics");
    let message = panic_message(&*panic);
    check_cycle(&[Err(message.to_owned())], 3);
    assert!(message.contains("loading_cycles::"), "{message}");
    for key in 0..3 {
        assert_eq!(cache.get_or_insert_with(key, || 10 + key), 10 + key);
    }
}

/// A loader may load other keys, on its thread or through other threads,
/// as long as no wait closes a cycle: a chain A -> B -> C, with B loaded by
/// another thread that waits for C, is no cycle and completes.
#[test]
fn a_chain_of_loads_across_threads_is_not_a_cycle() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let b_leads = Arc::new(Barrier::new(2));
    let b_loader = {
        let (cache, b_leads) = (Arc::clone(&cache), Arc::clone(&b_leads));
        thread::spawn(move || {
            cache.get_or_insert_with(1, || {
                b_leads.wait();
                cache.get_or_insert_with(2, || 3) + 1
            })
        })
    };
    let value = within_bound(move || {
        cache.get_or_insert_with(0, || {
            b_leads.wait();
            // Waits for B's flight, whose loader waits for (or loads) C.
            cache.get_or_insert_with(1, || 100) + 1
        })
    });
    assert_eq!(b_loader.join().unwrap(), 4);
    assert!(value == 5 || value == 101, "{value}");
}

/// Across two caches of different value types: A (in one cache) waits for
/// B (in the other), whose loader waits for A.
#[test]
fn a_cycle_across_two_caches_is_seen() {
    let outcomes = within_bound(|| {
        let numbers: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
        let names: Arc<Cache<u32, String>> = Arc::new(Cache::new());
        let both_lead = Arc::new(Barrier::new(2));
        let first = {
            let (numbers, names, both_lead) = (
                Arc::clone(&numbers),
                Arc::clone(&names),
                Arc::clone(&both_lead),
            );
            thread::spawn(move || {
                caught(|| {
                    numbers.get_or_insert_with(1, || {
                        both_lead.wait();
                        names.get_or_insert_with(1, || "b".to_owned()).len() as u32
                    })
                })
            })
        };
        let second = thread::spawn(move || {
            caught(|| {
                let name = names.get_or_insert_with(1, || {
                    both_lead.wait();
                    numbers.get_or_insert_with(1, || 2).to_string()
                });
                name.len() as u32
            })
        });
        [first.join().unwrap(), second.join().unwrap()]
    });
    check_cycle(&outcomes, 2);
}
