//! What one or two instances do against a real server: single-flight
//! loading, L2 hits, writes reaching other instances, server flushes and
//! expiry, large values, failing and panicking loaders, and reads while
//! Redis is down.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcache_redis::{Error, Invalidation, NearCache, Unavailable};
use support::server::RedisServer;
use tokio::sync::{Notify, Semaphore};

/// An instance and a notification for each invalidation it applies.
async fn watched(url: &str) -> (NearCache<u64>, Arc<Notify>) {
    watched_for(url, |_| true).await
}

/// An instance and a notification for each invalidation it applies that
/// `wanted` picks.
async fn watched_for(
    url: &str,
    wanted: impl Fn(Invalidation<'_>) -> bool + Send + Sync + 'static,
) -> (NearCache<u64>, Arc<Notify>) {
    let applied = Arc::new(Notify::new());
    let notify = Arc::clone(&applied);
    let cache = NearCache::builder(url)
        .on_invalidation(move |event| {
            if wanted(event) {
                notify.notify_one();
            }
        })
        .build()
        .await
        .unwrap();
    (cache, applied)
}

/// Waits for the next notification, failing the test after 10 s.
async fn next(applied: &Notify) {
    tokio::time::timeout(Duration::from_secs(10), applied.notified())
        .await
        .expect("no invalidation arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_per_key_and_the_other_instance_hits_redis() {
    let server = RedisServer::start();
    let a: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (a, loads, gate) = (a.clone(), Arc::clone(&loads), Arc::clone(&gate));
            tokio::spawn(async move {
                a.get_or_load("k", || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Held until every caller has been spawned.
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, std::io::Error>(42)
                })
                .await
            })
        })
        .collect();
    gate.add_permits(1);
    for caller in callers {
        assert_eq!(*caller.await.unwrap().unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(a.stats().loads, 1);

    let b: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    let value = b
        .get_or_load("k", || async { Err::<u64, _>("must not load") })
        .await
        .unwrap();
    assert_eq!(*value, 42);
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&42));
    let stats = b.stats();
    assert_eq!((stats.l2_hits, stats.l1_hits, stats.loads), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_removals_reach_the_other_instance() {
    let server = RedisServer::start();
    let (a, applied) = watched(&server.url()).await;
    let b: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    b.set("k", &1).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&1));
    assert_eq!(a.local_len(), 1);

    b.set("k", &2).await.unwrap();
    next(&applied).await;
    assert_eq!(a.local_len(), 0);
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&2));

    assert!(b.remove("k").await.unwrap());
    next(&applied).await;
    assert_eq!(a.get("k").await.unwrap(), None);
    assert_eq!(a.stats().invalidations, 2);

    // A write of this instance drops its own copy at once.
    a.set("k", &3).await.unwrap();
    assert_eq!(a.local_len(), 0);
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_flushes_and_expiry_empty_l1() {
    let server = RedisServer::start();
    let (a, applied) = watched_for(&server.url(), |e| e == Invalidation::Flushed).await;
    let mut conn = server.connection();
    for flush in ["FLUSHALL", "FLUSHDB"] {
        a.set("x", &1).await.unwrap();
        a.set("y", &2).await.unwrap();
        a.get("x").await.unwrap();
        a.get("y").await.unwrap();
        assert_eq!(a.local_len(), 2);
        let () = redis::cmd(flush).query(&mut conn).unwrap();
        next(&applied).await;
        assert_eq!(a.local_len(), 0);
        assert_eq!(a.get("x").await.unwrap(), None);
    }
    assert_eq!(a.stats().server_flushes, 2);

    // Expiry in Redis: L1 has no TTL here, Redis's copy lives 50 ms.
    let short: NearCache<u64> = NearCache::builder(&server.url())
        .default_ttl(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let (a, applied) = watched_for(&server.url(), |e| e == Invalidation::Key("brief")).await;
    short.set("brief", &9).await.unwrap();
    assert_eq!(a.get("brief").await.unwrap().as_deref(), Some(&9));
    next(&applied).await;
    assert_eq!(a.local_len(), 0);
    assert_eq!(a.get("brief").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_a_megabyte_round_trip() {
    let server = RedisServer::start();
    let a: NearCache<Vec<u8>> = NearCache::builder(&server.url()).build().await.unwrap();
    let b: NearCache<Vec<u8>> = NearCache::builder(&server.url()).build().await.unwrap();
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    a.set("big", &big).await.unwrap();
    assert_eq!(b.get("big").await.unwrap().as_deref(), Some(&big));
    let loaded = b
        .get_or_load("big2", || async {
            Ok::<_, std::io::Error>(vec![7u8; 2 << 20])
        })
        .await
        .unwrap();
    assert_eq!(loaded.len(), 2 << 20);
    assert_eq!(a.get("big2").await.unwrap().map(|v| v.len()), Some(2 << 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_loader_stores_nothing_and_breaks_nothing() {
    let server = RedisServer::start();
    let a: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    let failed = a
        .get_or_load("k", || async { Err::<u64, _>("database down") })
        .await;
    assert!(matches!(failed, Err(Error::Loader(e)) if e.to_string() == "database down"));
    assert_eq!(a.get("k").await.unwrap(), None);

    // A loader that panics while another caller waits for it: the panic
    // reaches its caller, the waiter loads with its own loader.
    let entered = Arc::new(Notify::new());
    let gate = Arc::new(Semaphore::new(0));
    let panicking = tokio::spawn({
        let (a, entered, gate) = (a.clone(), Arc::clone(&entered), Arc::clone(&gate));
        async move {
            a.get_or_load("k", || async move {
                entered.notify_one();
                gate.acquire().await.unwrap().forget();
                panic!("loader panics");
                #[allow(unreachable_code)]
                Ok::<u64, std::io::Error>(0)
            })
            .await
        }
    });
    entered.notified().await;
    let mut waiter = pin!(a.get_or_load("k", || async { Ok::<_, std::io::Error>(5) }));
    // Polled once: it joins the panicking caller's flight and waits.
    std::future::poll_fn(|cx| {
        assert!(waiter.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    gate.add_permits(1);
    assert!(panicking.await.unwrap_err().is_panic());
    assert_eq!(*waiter.await.unwrap(), 5);
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&5));
}

/// Waits until `cache` reports `connected`, failing the test after 10 s.
async fn until_connected(cache: &NearCache<u64>, connected: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.is_connected() != connected {
        assert!(Instant::now() < deadline, "still connected: {}", !connected);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_reads_fail_or_load_and_never_hit_l1() {
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    let build = |unavailable| {
        NearCache::<u64>::builder(&url)
            .timeout(Duration::from_millis(300))
            .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(50))
            .when_unavailable(unavailable)
            .build()
    };
    let failing = build(Unavailable::Error).await.unwrap();
    let loading = build(Unavailable::Load).await.unwrap();
    failing.set("k", &1).await.unwrap();
    assert_eq!(failing.get("k").await.unwrap().as_deref(), Some(&1));
    assert_eq!(loading.get("k").await.unwrap().as_deref(), Some(&1));

    server.kill();
    until_connected(&failing, false).await;
    until_connected(&loading, false).await;
    assert_eq!(failing.local_len(), 0);
    assert_eq!(loading.local_len(), 0);
    let started = Instant::now();
    assert!(matches!(failing.get("k").await, Err(Error::Unavailable(_))));
    let loaded = loading
        .get_or_load("k", || async { Ok::<_, std::io::Error>(7) })
        .await
        .unwrap();
    assert_eq!(*loaded, 7);
    assert!(matches!(
        loading.set("k", &8).await,
        Err(Error::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Loaded values are not kept: nothing invalidates them while down.
    assert_eq!(loading.local_len(), 0);

    server.restart();
    until_connected(&failing, true).await;
    until_connected(&loading, true).await;
    assert_eq!(failing.get("k").await.unwrap().as_deref(), Some(&1));
    assert_eq!(failing.stats().reconnect_flushes, 1);
    assert_eq!(loading.stats().loads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_costs_one_timeout_then_fails_fast() {
    let server = RedisServer::start();
    let cache: NearCache<u64> = NearCache::builder(&server.url())
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    cache.set("k", &1).await.unwrap();
    cache.get("k").await.unwrap();
    cache.evict_local("k");
    server.pause();
    let started = Instant::now();
    assert!(matches!(
        cache.get("k").await,
        Err(Error::Unavailable(Some(_)))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(!cache.is_connected());
    let started = Instant::now();
    assert!(matches!(
        cache.get("k").await,
        Err(Error::Unavailable(None))
    ));
    assert!(started.elapsed() < Duration::from_millis(100));
    server.resume();
    until_connected(&cache, true).await;
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_sees_keys_and_flushes() {
    let server = RedisServer::start();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let applied = Arc::new(Notify::new());
    let notify = Arc::clone(&applied);
    let a: NearCache<u64> = NearCache::builder(&server.url())
        .on_invalidation(move |event| {
            record.lock().unwrap().push(match event {
                Invalidation::Key(k) => k.to_owned(),
                Invalidation::Flushed => "<flushed>".to_owned(),
                Invalidation::Disconnected => "<disconnected>".to_owned(),
                _ => "<other>".to_owned(),
            });
            notify.notify_one();
        })
        .build()
        .await
        .unwrap();
    a.set("k", &1).await.unwrap();
    a.get("k").await.unwrap();
    a.set("k", &2).await.unwrap(); // invalidated back to the writer too
    next(&applied).await;
    let () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    next(&applied).await;
    assert_eq!(*seen.lock().unwrap(), ["k", "<flushed>"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_hook_breaks_nothing() {
    let server = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let a: NearCache<u64> = NearCache::builder(&server.url())
        .on_invalidation(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("hook panics");
        })
        .build()
        .await
        .unwrap();
    let (b, _) = watched(&server.url()).await;
    for version in 1..=3u64 {
        b.set("k", &version).await.unwrap();
        // Each read tracks the key again, so each write is invalidated.
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.get("k").await.unwrap().as_deref() != Some(&version) {
            assert!(
                Instant::now() < deadline,
                "invalidation of version {version} lost"
            );
            tokio::task::yield_now().await;
        }
    }
    assert!(a.is_connected());
    assert_eq!(a.stats().invalidations, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(a.stats().reconnect_flushes, 0);
}
