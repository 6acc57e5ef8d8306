//! `CacheBuilder::expire_after`: a TTL computed from the entry, for
//! `insert` and the loaders; `insert_with_ttl` still wins. Time is a
//! `ManualClock`: no test sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardcache::{Cache, ManualClock};

/// A value that carries its own TTL in seconds (0: use the default).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ttl(u64);

fn ttl_of(value: &Ttl) -> Option<Duration> {
    (value.0 > 0).then(|| Duration::from_secs(value.0))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn cache(clock: &ManualClock, default: Duration) -> Cache<u32, Ttl> {
    Cache::builder()
        .expire_after(|_key, value: &Ttl| ttl_of(value))
        .default_ttl(default)
        .clock(clock.clone())
        .build()
}

#[test]
fn insert_uses_the_entrys_ttl_and_none_falls_back_to_the_default() {
    let clock = ManualClock::new();
    let cache = cache(&clock, secs(100));
    cache.insert(1, Ttl(10));
    cache.insert(2, Ttl(0)); // None: the default, 100 s
    clock.advance(secs(9));
    assert_eq!(cache.get(&1), Some(Ttl(10)));
    clock.advance(secs(2));
    assert_eq!(cache.get(&1), None, "its own TTL of 10 s ended");
    assert_eq!(cache.get(&2), Some(Ttl(0)));
    clock.advance(secs(90));
    assert_eq!(cache.get(&2), None, "the default of 100 s ended");
}

#[test]
fn none_without_a_default_never_expires() {
    let clock = ManualClock::new();
    let cache = cache(&clock, Duration::ZERO);
    cache.insert(1, Ttl(0));
    cache.insert(2, Ttl(5));
    clock.advance(secs(1_000_000));
    assert_eq!(cache.get(&1), Some(Ttl(0)));
    assert_eq!(cache.get(&2), None);
}

#[test]
fn insert_with_ttl_wins_and_does_not_call_f() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let cache: Cache<u32, Ttl> = Cache::builder()
        .expire_after(move |_key, value: &Ttl| {
            counted.fetch_add(1, Ordering::SeqCst);
            ttl_of(value)
        })
        .clock(clock.clone())
        .build();
    cache.insert_with_ttl(1, Ttl(10), secs(1000));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    clock.advance(secs(500));
    assert_eq!(cache.get(&1), Some(Ttl(10)), "the explicit TTL, not f's");
    cache.insert(2, Ttl(10));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_loaded_value_gets_fs_ttl() {
    let clock = ManualClock::new();
    let cache = cache(&clock, secs(1000));
    assert_eq!(cache.get_or_insert_with(1, || Ttl(10)), Ttl(10));
    assert_eq!(
        cache.try_get_or_insert_with(2, || Ok::<_, ()>(Ttl(20))),
        Ok(Ttl(20))
    );
    clock.advance(secs(11));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get(&2), Some(Ttl(20)));
    clock.advance(secs(10));
    assert_eq!(cache.get(&2), None);
}

#[test]
fn overflowing_and_zero_ttls_never_expire() {
    let clock = ManualClock::new();
    let cache: Cache<u32, Duration> = Cache::builder()
        .expire_after(|_key, ttl: &Duration| Some(*ttl))
        .default_ttl(secs(1))
        .clock(clock.clone())
        .build();
    cache.insert(1, Duration::MAX);
    cache.insert(2, Duration::ZERO);
    cache.insert(3, secs(2));
    clock.advance(Duration::from_secs(u64::MAX / 4_000_000_000));
    assert_eq!(cache.get(&1), Some(Duration::MAX));
    assert_eq!(cache.get(&2), Some(Duration::ZERO));
    assert_eq!(cache.get(&3), None);
}

#[test]
fn a_bounded_cache_expires_by_fs_ttl_too() {
    let clock = ManualClock::new();
    let cache: Cache<u32, Ttl> = Cache::builder()
        .max_capacity(100)
        .expire_after(|_key, value: &Ttl| ttl_of(value))
        .clock(clock.clone())
        .build();
    cache.insert(1, Ttl(10));
    cache.insert(2, Ttl(0));
    clock.advance(secs(11));
    assert_eq!(cache.remove_expired(), 1);
    assert_eq!(cache.get(&2), Some(Ttl(0)));
}
