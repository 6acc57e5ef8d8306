//! Single-flight loading from futures (`--features async`): one load per
//! key across tasks, and a cancelled loader hands over to a waiter.

#![cfg(feature = "async")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardcache::Cache;
use tokio::sync::oneshot;

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
