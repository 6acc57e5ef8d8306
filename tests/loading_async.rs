//! Single-flight loading from futures (`--features async`): one load per
//! key across tasks, a cancelled loader hands over to a waiter, a cancelled
//! waiter (a request that timed out) frees its memory at once, and a cycle
//! of loaders panics instead of hanging.

#![cfg(feature = "async")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardcache::Cache;
use tokio::sync::{oneshot, Barrier, Notify};
use tokio::task::JoinError;

mod common;
use common::{check_cycle, panic_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_one_load() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let (release, released) = oneshot::channel::<()>();
    let (started, leader_started) = oneshot::channel::<()>();
    let leader = {
        let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(1, async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    started.send(()).unwrap();
                    released.await.unwrap();
                    42
                })
                .await
        })
    };
    leader_started.await.unwrap();
    let waiters: Vec<_> = (0..16)
        .map(|_| {
            let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(1, async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        0
                    })
                    .await
            })
        })
        .collect();
    // The waiters are pending on the flight; a plain get does not wait.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(cache.get(&1), None);
    release.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), 42);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_loader_hands_over_to_a_waiter() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let (started, leader_started) = oneshot::channel::<()>();
    let leader = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(1, async {
                    started.send(()).unwrap();
                    std::future::pending::<u32>().await
                })
                .await
        })
    };
    leader_started.await.unwrap();
    let waiter = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.get_or_insert_with_async(1, async { 7 }).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let value = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter took over")
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(cache.get(&1), Some(7));
}

#[tokio::test]
async fn an_error_is_returned_and_nothing_stored() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).build();
    let failed = cache
        .try_get_or_insert_with_async(1, async { Err::<u32, _>("timeout") })
        .await;
    assert_eq!(failed, Err("timeout"));
    assert_eq!(cache.get(&1), None);
    let loaded = cache
        .try_get_or_insert_with_async(1, async { Ok::<_, &str>(3) })
        .await;
    assert_eq!(loaded, Ok(3));
    assert_eq!(cache.get(&1), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_caller_waits_for_an_async_load() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let (release, released) = oneshot::channel::<()>();
    let (started, leader_started) = oneshot::channel::<()>();
    let leader = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            cache
                .get_or_insert_with_async(1, async {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    5
                })
                .await
        })
    };
    leader_started.await.unwrap();
    let blocking = {
        let cache = Arc::clone(&cache);
        tokio::task::spawn_blocking(move || cache.get_or_insert_with(1, || 0))
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), 5);
    assert_eq!(blocking.await.unwrap(), 5);
}

/// `n` requests for `key`, whose load is in flight, each cancelled once all
/// of them wait: what a request timeout does to the waiting futures.
async fn timed_out_requests(cache: &Arc<Cache<u32, u32>>, key: u32, n: usize) {
    let deadline = Arc::new(Notify::new());
    let waiting = Arc::new(AtomicUsize::new(0));
    let requests: Vec<_> = (0..n)
        .map(|_| {
            let (cache, deadline, waiting) = (
                Arc::clone(cache),
                Arc::clone(&deadline),
                Arc::clone(&waiting),
            );
            tokio::spawn(async move {
                waiting.fetch_add(1, Ordering::SeqCst);
                // The get is polled first, so it waits before the deadline
                // can fire; its future is dropped when the deadline wins.
                tokio::select! {
                    biased;
                    value = cache.get_or_insert_with_async(key, async {
                        unreachable!("the key's load is in flight")
                    }) => Some(value),
                    () = deadline.notified() => None,
                }
            })
        })
        .collect();
    while waiting.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
    deadline.notify_waiters();
    for request in requests {
        assert_eq!(request.await.unwrap(), None, "the load still hangs");
    }
}

/// 100 000 requests wait for a load that hangs and time out: the memory
/// they took (their tasks, which their wakers keep alive) is back before
/// the load ends. Measured with the allocator on the one thread of a
/// current-thread runtime, after a first round has grown tokio's queues.
#[test]
#[cfg_attr(miri, ignore = "100 000 tasks")]
fn timed_out_waiters_free_their_memory_while_the_load_hangs() {
    const REQUESTS: usize = 100_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let (release, released) = oneshot::channel::<()>();
    let (started, leader_started) = oneshot::channel::<()>();
    let leader = runtime.spawn({
        let cache = Arc::clone(&cache);
        async move {
            cache
                .get_or_insert_with_async(1, async {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    42
                })
                .await
        }
    });
    runtime.block_on(leader_started).unwrap();
    runtime.block_on(timed_out_requests(&cache, 1, REQUESTS));
    let round = allocation_counter::measure(|| {
        runtime.block_on(timed_out_requests(&cache, 1, REQUESTS));
    });
    assert!(
        round.bytes_current.unsigned_abs() < 16 << 10,
        "{} bytes held after {REQUESTS} requests timed out ({} bytes at the peak)",
        round.bytes_current,
        round.bytes_max
    );
    assert!(!leader.is_finished(), "the load still hangs");
    release.send(()).unwrap();
    assert_eq!(runtime.block_on(leader).unwrap(), 42);
    assert_eq!(cache.get(&1), Some(42));
}

/// A task's value, or its panic's message.
fn outcome(joined: Result<u32, JoinError>) -> Result<u32, String> {
    joined.map_err(|error| panic_message(&*error.into_panic()).to_owned())
}

/// Fails a deadlock instead of hanging: nothing waits for the bound when
/// `future` ends.
async fn within_bound<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("deadlock: the loader cycle was not detected")
}

/// `keys` tasks; task i leads key i, and once all lead, its loader awaits
/// key i+1 (the last one key 0). Afterwards each key loads at once.
async fn async_cycle(keys: u32) -> Vec<Result<u32, String>> {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let all_lead = Arc::new(Barrier::new(keys as usize));
    let tasks: Vec<_> = (0..keys)
        .map(|key| {
            let (cache, all_lead) = (Arc::clone(&cache), Arc::clone(&all_lead));
            tokio::spawn(async move {
                let next = (key + 1) % keys;
                cache
                    .get_or_insert_with_async(key, async {
                        all_lead.wait().await;
                        // If the next key's load is abandoned (its loader
                        // panicked), this task loads it itself.
                        cache
                            .get_or_insert_with_async(next, async move { 100 + next })
                            .await
                            + 1
                    })
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(outcome(task.await));
    }
    for key in 0..keys {
        let value = cache.get_or_insert_with_async(key, async { 7 }).await;
        assert!(value == 7 || value >= 100, "{value}");
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_cycles_of_two_and_three_keys_panic_and_the_keys_load_afterwards() {
    for keys in [2, 3, 2, 3] {
        let outcomes = within_bound(async_cycle(keys)).await;
        check_cycle(&outcomes, keys as usize);
    }
}

/// An async loader that awaits its own key (directly, or through another
/// key it loads in the same task) panics instead of waiting forever.
#[tokio::test]
async fn an_async_loader_that_awaits_its_own_key_panics() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    for through_another_key in [false, true] {
        let task = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move {
                cache
                    .get_or_insert_with_async(1, async {
                        if through_another_key {
                            let again =
                                async { cache.get_or_insert_with_async(1, async { 3 }).await };
                            cache.get_or_insert_with_async(2, again).await
                        } else {
                            cache.get_or_insert_with_async(1, async { 2 }).await
                        }
                    })
                    .await
            }
        });
        let panic = within_bound(task).await.unwrap_err().into_panic();
        let loaders = if through_another_key { 2 } else { 1 };
        check_cycle(&[Err(panic_message(&*panic).to_owned())], loaders);
        assert_eq!(cache.get_or_insert_with_async(1, async { 5 }).await, 5);
        assert_eq!(cache.get_or_insert_with_async(2, async { 6 }).await, 6);
        cache.clear();
    }
}

/// A blocking loader on a plain thread and an async loader in a task wait
/// for each other's keys: the cycle is seen across the two kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_between_a_blocking_and_an_async_loader_panics() {
    let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
    let both_lead = Arc::new(std::sync::Barrier::new(2));
    let blocking = {
        let (cache, both_lead) = (Arc::clone(&cache), Arc::clone(&both_lead));
        std::thread::spawn(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                cache.get_or_insert_with(2, || {
                    both_lead.wait();
                    cache.get_or_insert_with(1, || 10) + 1
                })
            }))
            .map_err(|panic| panic_message(&*panic).to_owned())
        })
    };
    let task = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move {
            cache
                .get_or_insert_with_async(1, async {
                    tokio::task::block_in_place(|| both_lead.wait());
                    cache.get_or_insert_with_async(2, async { 20 }).await + 1
                })
                .await
        }
    });
    let in_task = outcome(within_bound(task).await);
    let on_thread = blocking.join().unwrap();
    check_cycle(&[in_task, on_thread], 2);
}
