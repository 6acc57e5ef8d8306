//! `refresh_after`: a stale value is reloaded by one caller while the
//! others get the old value at once; a failed, panicking or cancelled
//! refresh keeps the old value and lets a later hit retry; an insert or
//! remove during a refresh wins; the refreshed value gets a fresh TTL. Time
//! is a `ManualClock`: nothing sleeps.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use shardcache::{Cache, CacheBuilder, ManualClock, RemovalCause};

const SEC: Duration = Duration::from_secs(1);

type Events = Arc<Mutex<Vec<(u32, u32, RemovalCause)>>>;

/// A cache with a 600 s TTL and a 60 s refresh age, unbounded or bounded,
/// with its clock and what its listener heard.
fn cache(bounded: bool) -> (Cache<u32, u32>, ManualClock, Events) {
    let clock = ManualClock::new();
    let events: Events = Arc::default();
    let heard = Arc::clone(&events);
    let mut builder: CacheBuilder<u32, u32> = Cache::builder()
        .default_ttl(600 * SEC)
        .refresh_after(60 * SEC)
        .clock(clock.clone())
        .removal_listener(move |k, v, cause| heard.lock().unwrap().push((k, v, cause)));
    if bounded {
        builder = builder.max_capacity(1000);
    }
    (builder.build(), clock, events)
}

fn both(test: impl Fn(Cache<u32, u32>, ManualClock, Events)) {
    for bounded in [false, true] {
        let (cache, clock, events) = cache(bounded);
        test(cache, clock, events);
    }
}

fn heard(events: &Events) -> Vec<(u32, u32, RemovalCause)> {
    events.lock().unwrap().clone()
}

#[test]
fn one_caller_refreshes_while_the_others_get_the_old_value_at_once() {
    both(|cache, clock, events| {
        assert_eq!(cache.get_or_insert_with(1, || 1), 1);
        clock.advance(30 * SEC);
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("fresh")), 1);
        clock.advance(31 * SEC);
        let loads = AtomicUsize::new(0);
        let release = Barrier::new(2);
        // Dropped unsent if the refresher returns without loading.
        let (started, refresher_started) = mpsc::channel::<()>();
        let readers = if cfg!(miri) { 2 } else { 8 };
        thread::scope(|scope| {
            let (cache, loads, release) = (&cache, &loads, &release);
            let refresher = scope.spawn(move || {
                cache.get_or_insert_with(1, move || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    started.send(()).unwrap();
                    release.wait();
                    2
                })
            });
            refresher_started
                .recv()
                .expect("the stale hit ran no refresh");
            // The refresher is blocked in its loader: every other caller
            // returns the old value without waiting for it.
            let others: Vec<_> = (0..readers)
                .map(|_| {
                    scope.spawn(|| {
                        cache.get_or_insert_with(1, || {
                            loads.fetch_add(1, Ordering::SeqCst);
                            99
                        })
                    })
                })
                .collect();
            for other in others {
                assert_eq!(other.join().unwrap(), 1);
            }
            assert_eq!(
                cache.try_get_or_insert_with(1, || Err::<u32, ()>(())),
                Ok(1)
            );
            assert_eq!(cache.get(&1), Some(1), "the old value until it lands");
            release.wait();
            assert_eq!(
                refresher.join().unwrap(),
                2,
                "the refresher gets the new value"
            );
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one loader ran");
        assert_eq!(cache.get(&1), Some(2));
        assert_eq!(heard(&events), [(1, 1, RemovalCause::Replaced)]);
        // Fresh again: the next hits do not refresh.
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("fresh")), 2);
    });
}

#[test]
fn a_failed_refresh_keeps_the_old_value_and_the_next_hit_retries() {
    both(|cache, clock, events| {
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        assert_eq!(cache.try_get_or_insert_with(1, || Err("down")), Err("down"));
        assert_eq!(cache.get(&1), Some(1));
        let retried = cache.try_get_or_insert_with(1, || Ok::<_, &str>(2));
        assert_eq!(retried, Ok(2), "the next hit retries");
        assert_eq!(cache.get(&1), Some(2));
        assert_eq!(heard(&events), [(1, 1, RemovalCause::Replaced)]);
    });
}

#[test]
fn a_panicking_refresh_keeps_the_old_value_until_its_ttl_ends() {
    both(|cache, clock, events| {
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_insert_with(1, || panic!("loader"))
        }));
        assert!(panicked.is_err(), "the refresher gets the panic");
        assert_eq!(cache.get(&1), Some(1));
        let retried = catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_insert_with(1, || panic!("again"))
        }));
        assert!(retried.is_err(), "the next hit retried");
        assert!(heard(&events).is_empty());
        clock.advance(540 * SEC);
        assert_eq!(cache.get(&1), None, "the old TTL still ends it");
        assert_eq!(heard(&events), [(1, 1, RemovalCause::Expired)]);
    });
}

#[test]
fn an_insert_or_remove_during_a_refresh_wins() {
    both(|cache, clock, events| {
        cache.insert(1, 1);
        cache.insert(2, 1);
        clock.advance(61 * SEC);
        let refreshed = cache.get_or_insert_with(1, || {
            cache.insert(1, 100);
            2
        });
        assert_eq!(refreshed, 2, "returned, not stored");
        assert_eq!(cache.get(&1), Some(100));
        let refreshed = cache.get_or_insert_with(2, || {
            cache.remove(&2);
            2
        });
        assert_eq!(refreshed, 2);
        assert_eq!(cache.get(&2), None);
        assert_eq!(
            heard(&events),
            [
                (1, 1, RemovalCause::Replaced),
                (2, 1, RemovalCause::Removed)
            ]
        );
        // The inserted value is fresh: no refresh for 60 s.
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("fresh")), 100);
    });
}

#[test]
fn a_refreshed_value_gets_a_fresh_ttl() {
    both(|cache, clock, _| {
        cache.insert(1, 1);
        clock.advance(500 * SEC);
        assert_eq!(cache.get_or_insert_with(1, || 2), 2);
        clock.advance(200 * SEC); // 700 s after the insert, 200 after the refresh
        assert_eq!(cache.get(&1), Some(2));
        clock.advance(401 * SEC);
        assert_eq!(cache.get(&1), None);
    });
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .expire_after(|_, v| Some(Duration::from_secs(u64::from(*v) * 100)))
        .refresh_after(60 * SEC)
        .clock(clock.clone())
        .build();
    cache.insert(1, 1); // expires at 100 s
    clock.advance(61 * SEC);
    assert_eq!(cache.get_or_insert_with(1, || 5), 5); // expires at 561 s
    clock.advance(400 * SEC);
    assert_eq!(cache.get(&1), Some(5));
    clock.advance(101 * SEC);
    assert_eq!(cache.get(&1), None);
}

#[test]
fn a_plain_get_never_refreshes_and_an_expired_entry_is_a_miss() {
    both(|cache, clock, events| {
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        for _ in 0..10 {
            assert_eq!(cache.get(&1), Some(1));
        }
        assert!(cache.contains_key(&1));
        assert!(heard(&events).is_empty(), "nothing reloaded");
        // Still stale: the first loading hit refreshes.
        assert_eq!(cache.get_or_insert_with(1, || 2), 2);
        clock.advance(601 * SEC);
        assert_eq!(cache.get_or_insert_with(1, || 3), 3);
        assert_eq!(
            heard(&events),
            [
                (1, 1, RemovalCause::Replaced),
                (1, 2, RemovalCause::Expired)
            ],
            "expired: a miss and a load, not a refresh"
        );
    });
}

#[test]
fn a_compute_in_progress_gives_the_refresh_back() {
    both(|cache, clock, _| {
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        cache.compute(1, |old| {
            // The stale hit finds the compute's flight: old value, no load.
            assert_eq!(cache.get_or_insert_with(1, || unreachable!("computing")), 1);
            shardcache::Compute::Put(old.copied().unwrap_or(0) + 10)
        });
        assert_eq!(cache.get(&1), Some(11));
        assert_eq!(cache.get_or_insert_with(1, || unreachable!("fresh")), 11);
    });
}

#[test]
fn without_refresh_after_nothing_is_reloaded() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .default_ttl(600 * SEC)
        .clock(clock.clone())
        .build();
    cache.insert(1, 1);
    clock.advance(599 * SEC);
    assert_eq!(
        cache.get_or_insert_with(1, || unreachable!("no refresh")),
        1
    );
}

/// A key that counts the comparisons of this thread and can be made to
/// panic in one.
#[derive(Debug, Clone)]
struct Key(u32);

/// A value whose `Clone` can be made to panic.
#[derive(Debug, PartialEq)]
struct Value(u32);

thread_local! {
    static COMPARED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static TRAP: std::cell::Cell<&'static str> = const { std::cell::Cell::new("") };
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        COMPARED.with(|n| n.set(n.get() + 1));
        assert_ne!(TRAP.with(|t| t.get()), "eq", "user Eq panicked");
        self.0 == other.0
    }
}
impl Eq for Key {}
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        assert_ne!(TRAP.with(|t| t.get()), "clone", "user Clone panicked");
        Value(self.0)
    }
}

/// The comparisons `f` makes on this thread.
fn compared(f: impl FnOnce()) -> usize {
    let before = COMPARED.with(|n| n.get());
    f();
    COMPARED.with(|n| n.get()) - before
}

fn counted_cache(bounded: bool) -> (Cache<Key, Value>, ManualClock) {
    let clock = ManualClock::new();
    let mut builder: CacheBuilder<Key, Value> = Cache::builder()
        .refresh_after(60 * SEC)
        .clock(clock.clone());
    if bounded {
        builder = builder.max_capacity(1000);
    }
    (builder.build(), clock)
}

#[test]
fn a_loading_hit_finds_the_value_and_its_refresh_time_in_one_probe() {
    for bounded in [false, true] {
        let (cache, clock) = counted_cache(bounded);
        cache.insert(Key(1), Value(1));
        let fresh = compared(hit_value(&cache, 1));
        assert_eq!(fresh, 1, "fresh: one probe, one comparison");
        assert_eq!(compared(|| assert!(cache.get(&Key(1)).is_some())), 1);
        clock.advance(61 * SEC);
        // Stale: the read lock's probe, then the write lock's, that
        // registers the refresh, then the landing insert's.
        let refresh = || {
            assert_eq!(cache.get_or_insert_with(Key(1), || Value(2)), Value(2));
        };
        assert_eq!(compared(refresh), 3);
        assert_eq!(compared(hit_value(&cache, 2)), 1);
    }
}

/// A loading hit on key 1 that expects `value`.
fn hit_value(cache: &Cache<Key, Value>, value: u32) -> impl FnOnce() + '_ {
    move || {
        let found = cache.get_or_insert_with(Key(1), || unreachable!("a hit"));
        assert_eq!(found, Value(value));
    }
}

#[test]
fn a_stale_hit_whose_eq_or_clone_panics_claims_no_refresh() {
    for (bounded, trap) in [
        (false, "eq"),
        (true, "eq"),
        (false, "clone"),
        (true, "clone"),
    ] {
        let (cache, clock) = counted_cache(bounded);
        cache.insert(Key(1), Value(1));
        clock.advance(61 * SEC);
        TRAP.with(|t| t.set(trap));
        let hit = catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_insert_with(Key(1), || unreachable!("panicked before"))
        }));
        TRAP.with(|t| t.set(""));
        assert!(hit.is_err(), "{trap} panicked");
        // Nothing was claimed: the next loading hit finds the value stale
        // and refreshes it.
        assert_eq!(cache.get_or_insert_with(Key(1), || Value(2)), Value(2));
        assert_eq!(cache.get(&Key(1)), Some(Value(2)));
    }
}

#[cfg(feature = "async")]
mod async_refresh {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_task_refreshes_and_a_cancelled_refresh_is_retried() {
        let (cache, clock, events) = cache(false);
        let cache = Arc::new(cache);
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        let (started, refresher_started) = oneshot::channel::<()>();
        let refresher = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(1, async move {
                        started.send(()).unwrap();
                        std::future::pending::<u32>().await
                    })
                    .await
            })
        };
        refresher_started.await.unwrap();
        let old = cache
            .get_or_insert_with_async(1, async { unreachable!("refreshing") })
            .await;
        assert_eq!(old, 1, "the old value, at once");
        refresher.abort();
        assert!(refresher.await.unwrap_err().is_cancelled());
        assert_eq!(cache.get(&1), Some(1), "a cancelled refresh stores nothing");
        let failed = cache
            .try_get_or_insert_with_async(1, async { Err::<u32, _>("down") })
            .await;
        assert_eq!(failed, Err("down"), "retried after the cancel");
        let refreshed = cache
            .try_get_or_insert_with_async(1, async { Ok::<_, &str>(2) })
            .await;
        assert_eq!(refreshed, Ok(2), "retried after the error");
        assert_eq!(cache.get(&1), Some(2));
        assert_eq!(heard(&events), [(1, 1, RemovalCause::Replaced)]);
        let fresh = cache
            .get_or_insert_with_async(1, async { unreachable!("fresh") })
            .await;
        assert_eq!(fresh, 2);
    }

    #[tokio::test]
    async fn an_insert_during_an_async_refresh_wins() {
        let (cache, clock, _) = cache(true);
        cache.insert(1, 1);
        clock.advance(61 * SEC);
        let refreshed = cache
            .get_or_insert_with_async(1, async {
                cache.insert(1, 100);
                2
            })
            .await;
        assert_eq!(refreshed, 2);
        assert_eq!(cache.get(&1), Some(100));
    }
}
