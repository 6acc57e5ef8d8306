//! The janitor against hostile user code: values whose `Drop` panics, a
//! cache dropped by a value its own janitor sweeps, and `close` called on
//! the janitor thread; and, since one janitor thread serves every cache,
//! that none of these stops the sweeps of another cache. Its own test
//! binary, because it installs a panic hook to see panics on the janitor
//! thread.

mod common;

use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{cache_held_by_its_entry, eventually, self_closing_cache};
use shardcache::{Cache, ManualClock};

const SECOND: Duration = Duration::from_secs(1);

/// Messages of panics on janitor threads, recorded by a hook that then
/// calls the default one.
fn janitor_panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("shardcache-janitor") {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                janitor_panics().lock().unwrap().push(message);
            }
            previous(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// A value whose `Drop` panics.
#[derive(Clone)]
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) > 1 {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a value's Drop panics");
        }
    }
}

#[test]
fn values_whose_drop_panics_do_not_stop_the_janitor() {
    janitor_panics();
    let clock = ManualClock::new();
    let exploded = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u32, Bomb> = Cache::builder()
        .shards(1)
        .clock(clock.clone())
        .cleanup_interval(Duration::from_millis(1))
        .build();
    // Two in one sweep: a panic while unwinding from the first would abort.
    cache.insert_with_ttl(1, Bomb(Arc::clone(&exploded)), SECOND);
    cache.insert_with_ttl(2, Bomb(Arc::clone(&exploded)), SECOND);
    clock.advance(2 * SECOND);
    eventually("the first sweep", || cache.is_empty());
    eventually("both drops ran", || exploded.load(Ordering::SeqCst) == 2);
    // The janitor still sweeps.
    cache.insert_with_ttl(3, Bomb(Arc::clone(&exploded)), SECOND);
    clock.advance(2 * SECOND);
    eventually("a later sweep", || cache.is_empty());
    assert!(format!("{cache:?}").contains("running: true"));
    let panics = janitor_panics().lock().unwrap();
    assert!(
        panics.iter().all(|m| m == "a value's Drop panics"),
        "{panics:?}"
    );
}

#[test]
fn a_cache_dropped_by_a_value_its_janitor_swept_stops_cleanly() {
    janitor_panics();
    let clock = ManualClock::new();
    let weak = cache_held_by_its_entry(&clock);
    clock.advance(2 * SECOND);
    eventually("the janitor dropped the cache", || weak.upgrade().is_none());
    let panics = janitor_panics().lock().unwrap();
    assert!(
        !panics
            .iter()
            .any(|m| m.contains("deadlock") || m.contains("join")),
        "the janitor joined itself: {panics:?}"
    );
}

#[test]
fn close_on_the_janitor_thread_does_not_join_itself() {
    janitor_panics();
    static CACHE: OnceLock<Cache<u32, u32>> = OnceLock::new();
    static CLOSED: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let cache = self_closing_cache(&CACHE, &CLOSED, Cache::builder().clock(clock.clone()));
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    eventually("the listener closed the cache", || {
        CLOSED.load(Ordering::SeqCst) == 1
    });
    eventually("the janitor is stopped", || {
        format!("{cache:?}").contains("running: false")
    });
    // The only janitor panics allowed are those of the other test's values
    // (the tests of this file share the process and its hook).
    let panics = janitor_panics().lock().unwrap();
    assert!(
        panics.iter().all(|m| m == "a value's Drop panics"),
        "{panics:?}"
    );
}

/// A cache that some tests keep alive next to the one under test, to show
/// that the janitor they share keeps sweeping it.
fn bystander(clock: &ManualClock) -> Cache<u32, u32> {
    Cache::builder()
        .shards(2)
        .clock(clock.clone())
        .cleanup_interval(Duration::from_millis(1))
        .build()
}

/// Inserts an entry into `cache` that expires, expires it, and waits for
/// the janitor to sweep it.
fn swept_again(cache: &Cache<u32, u32>, clock: &ManualClock, what: &str) {
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    eventually(what, || cache.is_empty());
}

#[test]
fn a_panicking_drop_in_one_cache_does_not_stop_sweeps_of_another() {
    janitor_panics();
    let clock = ManualClock::new();
    let other = bystander(&clock);
    let exploded = Arc::new(AtomicUsize::new(0));
    let bombs: Cache<u32, Bomb> = Cache::builder()
        .shards(1)
        .clock(clock.clone())
        .cleanup_interval(Duration::from_millis(1))
        .build();
    for round in 0..2 {
        bombs.insert_with_ttl(1, Bomb(Arc::clone(&exploded)), SECOND);
        bombs.insert_with_ttl(2, Bomb(Arc::clone(&exploded)), SECOND);
        swept_again(&other, &clock, "the other cache swept");
        eventually("the bombs swept", || bombs.is_empty());
        eventually("the bombs went off", || {
            exploded.load(Ordering::SeqCst) == 2 * (round + 1)
        });
    }
    swept_again(&other, &clock, "the other cache swept after the panics");
    assert!(format!("{other:?}").contains("running: true"));
    assert!(format!("{bombs:?}").contains("running: true"));
}

#[test]
fn close_from_a_listener_leaves_other_caches_swept() {
    janitor_panics();
    static CACHE: OnceLock<Cache<u32, u32>> = OnceLock::new();
    static CLOSED: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let other = bystander(&clock);
    let builder = Cache::builder().shards(1).clock(clock.clone());
    let cache = self_closing_cache(&CACHE, &CLOSED, builder);
    cache.insert_with_ttl(1, 1, SECOND);
    swept_again(&other, &clock, "the other cache swept");
    eventually("the listener closed its cache", || {
        CLOSED.load(Ordering::SeqCst) == 1
    });
    assert!(format!("{cache:?}").contains("running: false"));
    // Closed: the janitor leaves it alone, the other cache is still swept.
    cache.insert_with_ttl(2, 2, SECOND);
    swept_again(&other, &clock, "the other cache swept after the close");
    assert_eq!(cache.len(), 1, "the janitor swept a closed cache");
    assert_eq!(CLOSED.load(Ordering::SeqCst), 1);
}

#[test]
fn a_cache_dropped_on_the_janitor_thread_leaves_other_caches_swept() {
    janitor_panics();
    let clock = ManualClock::new();
    let other = bystander(&clock);
    let weak = cache_held_by_its_entry(&clock);
    swept_again(&other, &clock, "the other cache swept");
    eventually("the janitor dropped the cache", || weak.upgrade().is_none());
    swept_again(&other, &clock, "the other cache swept after the drop");
}
