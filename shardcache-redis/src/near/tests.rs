//! The race, deterministically: a `GET` reply held back (by a pause that
//! exists only in test builds) until an invalidation of its key has been
//! applied.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{Notify, Semaphore};

use crate::link::Shared;
use crate::server::RedisServer;
use crate::{Invalidation, NearCache};

/// Holds the next `GET` reply of `key` on one instance until released.
pub(crate) struct Pause {
    key: String,
    reached: Arc<Notify>,
    release: Arc<Semaphore>,
}

/// Called after each `GET` reply in test builds: waits if a pause is set
/// for `key` (once).
pub(crate) async fn pause_after_get<V>(shared: &Shared<V>, key: &str) {
    let pause = {
        let mut hook = shared.hook.lock().unwrap();
        hook.take_if(|p| p.key == key)
    };
    if let Some(pause) = pause {
        pause.reached.notify_one();
        pause.release.acquire().await.unwrap().forget();
    }
}

/// Sets a pause on `cache`'s next `GET` of `key`: returns (reached, release).
fn pause(cache: &NearCache<u64>, key: &str) -> (Arc<Notify>, Arc<Semaphore>) {
    let reached = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    *cache.shared.hook.lock().unwrap() = Some(Pause {
        key: key.to_owned(),
        reached: Arc::clone(&reached),
        release: Arc::clone(&release),
    });
    (reached, release)
}

/// An instance, and a notification for each invalidation of `key` it applies.
async fn instance(server: &RedisServer, key: &'static str) -> (NearCache<u64>, Arc<Notify>) {
    let invalidated = Arc::new(Notify::new());
    let notify = Arc::clone(&invalidated);
    let cache = NearCache::builder(&server.url())
        .on_invalidation(move |event| {
            if event == Invalidation::Key(key) {
                notify.notify_one();
            }
        })
        .build()
        .await
        .unwrap();
    (cache, invalidated)
}

/// Polls `future` once, asserting it is still waiting.
async fn poll_once_pending<F: Future>(future: std::pin::Pin<&mut F>) {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        let pending = future.take().unwrap().poll(cx).is_pending();
        assert!(pending, "the caller should be waiting for the held GET");
        Poll::Ready(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_reply_overtaken_by_an_invalidation_is_not_stored() {
    let server = RedisServer::start();
    let (reader, invalidated) = instance(&server, "k").await;
    let writer: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    writer.set("k", &1).await.unwrap();

    let (reached, release) = pause(&reader, "k");
    let held = tokio::spawn({
        let reader = reader.clone();
        async move { reader.get("k").await }
    });
    // The reader's GET has its reply (1) and is held before storing it.
    reached.notified().await;
    writer.set("k", &2).await.unwrap();
    invalidated.notified().await;
    release.add_permits(1);

    // The held caller started before the write: 1 is a fair answer for it.
    assert_eq!(held.await.unwrap().unwrap().as_deref(), Some(&1));
    // But its reply was not stored over the invalidation.
    assert_eq!(reader.local_len(), 0);
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&2));
    assert_eq!(reader.stats().invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_joins_a_stale_flight_after_the_invalidation_reads_again() {
    let server = RedisServer::start();
    let (reader, invalidated) = instance(&server, "k").await;
    let writer: NearCache<u64> = NearCache::builder(&server.url()).build().await.unwrap();
    writer.set("k", &1).await.unwrap();

    let (reached, release) = pause(&reader, "k");
    let held = tokio::spawn({
        let reader = reader.clone();
        async move { reader.get("k").await }
    });
    reached.notified().await;
    writer.set("k", &2).await.unwrap();
    invalidated.notified().await;

    // Starts after the invalidation was applied and joins the held flight,
    // whose reply is the old value.
    let mut late = pin!(reader.get("k"));
    poll_once_pending(late.as_mut()).await;
    release.add_permits(1);

    assert_eq!(held.await.unwrap().unwrap().as_deref(), Some(&1));
    assert_eq!(late.await.unwrap().as_deref(), Some(&2));
    assert_eq!(reader.stats().rereads, 1);
    // The reread's value is in L1.
    assert_eq!(reader.get("k").await.unwrap().as_deref(), Some(&2));
    assert_eq!(reader.stats().l1_hits, 1);
}
