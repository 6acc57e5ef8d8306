//! The semantic suite: every documented behaviour, written once against
//! `CacheApi` and instantiated for `Cache` and for `SingleLockCache`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{CacheApi, CountingClock};
use shardcache::{Cache, CacheBuilder, ManualClock, RemovalCause, Stats};

const SECOND: Duration = Duration::from_secs(1);
const NANO: Duration = Duration::from_nanos(1);

fn with_clock<K, V>(clock: &ManualClock) -> CacheBuilder<K, V> {
    Cache::builder().clock(clock.clone())
}

fn insert_get_and_replace<C: CacheApi<u64, String>>() {
    let cache = C::build(Cache::builder());
    assert_eq!(cache.get(&1), None);
    cache.insert(1, "one".into());
    assert_eq!(cache.get(&1).as_deref(), Some("one"));
    cache.insert(1, "uno".into());
    assert_eq!(cache.get(&1).as_deref(), Some("uno"));
    assert_eq!(cache.len(), 1);
}

fn borrowed_lookups() {
    // `CacheApi` takes `&K`; `&str` lookups into `String` keys go through
    // the real API of each type.
    let cache: Cache<String, u32> = Cache::new();
    cache.insert("key".to_owned(), 1);
    assert_eq!(cache.get("key"), Some(1));
    assert!(cache.contains_key("key"));
    assert_eq!(cache.remove("key"), Some(1));

    let single = Cache::<String, u32>::builder().build_single_lock();
    single.insert("key".to_owned(), 1);
    assert_eq!(single.get("key"), Some(1));
    assert!(single.contains_key("key"));
    assert_eq!(single.remove("key"), Some(1));
}

fn live_through_the_deadline_expired_one_nanosecond_after<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    clock.advance(Duration::from_millis(3)); // T is not the clock's origin
    cache.insert_with_ttl(1, 10, SECOND);
    clock.advance(SECOND);
    assert_eq!(cache.get(&1), Some(10), "live at T + t");
    assert!(cache.contains_key(&1));
    clock.advance(NANO);
    assert_eq!(cache.get(&1), None, "expired at T + t + 1ns");
}

fn zero_ttl_never_expires<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock).default_ttl(SECOND));
    cache.insert_with_ttl(1, 10, Duration::ZERO);
    clock.advance(Duration::from_secs(1_000_000));
    assert_eq!(cache.get(&1), Some(10));
}

fn overflowing_ttl_never_expires<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert_with_ttl(1, 1, Duration::MAX);
    cache.insert_with_ttl(2, 2, Duration::from_nanos(u64::MAX));
    // A clock near the end of its range: now + ttl overflows.
    clock.advance(Duration::from_nanos(u64::MAX - 10));
    cache.insert_with_ttl(3, 3, Duration::from_nanos(11));
    cache.insert_with_ttl(4, 4, Duration::from_nanos(5));
    clock.advance(Duration::MAX); // saturates at the end of the range
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), Some(2));
    assert_eq!(cache.get(&3), Some(3));
    assert_eq!(
        cache.get(&4),
        None,
        "a deadline inside the range still expires"
    );
}

fn default_ttl_applies_to_insert_only<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock).default_ttl(SECOND));
    cache.insert(1, 1); // default TTL: 1 s
    cache.insert_with_ttl(2, 2, 10 * SECOND); // per-entry TTL wins
    clock.advance(2 * SECOND);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get(&2), Some(2));
}

fn no_default_ttl_means_never<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert(1, 1);
    clock.advance(Duration::from_secs(u32::MAX.into()));
    assert_eq!(cache.get(&1), Some(1));
}

fn reinsert_refreshes_the_ttl<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(SECOND / 2);
    cache.insert_with_ttl(1, 2, SECOND);
    clock.advance(SECOND); // past the first deadline, before the second
    assert_eq!(cache.get(&1), Some(2));
    cache.insert_with_ttl(1, 3, Duration::ZERO); // and to "never"
    clock.advance(100 * SECOND);
    assert_eq!(cache.get(&1), Some(3));
}

fn reinsert_can_shorten_the_ttl<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert(1, 1);
    cache.insert_with_ttl(1, 2, SECOND);
    clock.advance(2 * SECOND);
    assert_eq!(cache.get(&1), None);
}

fn expired_get_removes_the_entry<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert_with_ttl(1, 1, SECOND);
    cache.insert(2, 2);
    clock.advance(2 * SECOND);
    assert_eq!(cache.len(), 2, "expired entries count until removed");
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.len(), 1, "get removed the expired entry");
}

fn expired_contains_key_removes_the_entry<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert_with_ttl(1, 1, SECOND);
    clock.advance(2 * SECOND);
    assert!(!cache.contains_key(&1));
    assert!(cache.is_empty());
}

fn remove_returns_live_values_only<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock));
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, SECOND);
    assert_eq!(cache.remove(&1), Some(1));
    assert_eq!(cache.remove(&1), None, "already gone");
    assert_eq!(cache.remove(&3), None, "never there");
    clock.advance(2 * SECOND);
    assert_eq!(cache.remove(&2), None, "expired: removed, not returned");
    assert!(cache.is_empty());
}

fn remove_expired_sweeps_everything_expired<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock).shards(8));
    for key in 0..1000 {
        let ttl = if key % 4 == 0 { SECOND } else { Duration::ZERO };
        cache.insert_with_ttl(key, key, ttl);
    }
    assert_eq!(cache.remove_expired(), 0, "nothing expired yet");
    clock.advance(2 * SECOND);
    assert_eq!(cache.remove_expired(), 250);
    assert_eq!(cache.len(), 750);
    assert_eq!(cache.remove_expired(), 0);
    assert!((0..1000).all(|key| cache.contains_key(&key) == (key % 4 != 0)));
}

fn clear_removes_everything<C: CacheApi<u32, u32>>() {
    let cache = C::build(Cache::builder());
    for key in 0..100 {
        cache.insert(key, key);
    }
    cache.clear();
    assert!(cache.is_empty());
    assert_eq!(cache.get(&5), None);
    cache.insert(5, 5);
    assert_eq!(cache.get(&5), Some(5), "usable after clear");
}

fn stats_count_every_kind_of_event<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock).record_stats(true));
    cache.insert(1, 1);
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, SECOND);
    cache.insert_with_ttl(3, 3, SECOND);
    cache.insert_with_ttl(4, 4, SECOND);
    assert_eq!(cache.get(&1), Some(1));
    assert!(cache.contains_key(&1));
    assert_eq!(cache.get(&9), None);
    assert_eq!(cache.remove(&1), Some(1));
    clock.advance(2 * SECOND);
    assert_eq!(cache.get(&2), None); // lazy expiration + miss
    assert_eq!(cache.remove(&3), None); // expiration by remove
    assert_eq!(cache.remove_expired(), 1); // swept
    let stats = cache.stats();
    let counts = (
        stats.hits,
        stats.misses,
        stats.inserts,
        stats.removals,
        stats.expirations,
        stats.evictions,
    );
    assert_eq!(counts, (2, 2, 5, 1, 3, 0));
}

fn stats_are_zero_unless_recorded<C: CacheApi<u32, u32>>() {
    let cache = C::build(Cache::builder());
    cache.insert(1, 1);
    cache.get(&1);
    cache.get(&2);
    assert_eq!(cache.stats(), Stats::default());
}

fn close_is_idempotent_and_the_cache_keeps_working<C: CacheApi<u32, u32>>() {
    let clock = ManualClock::new();
    let cache = C::build(with_clock(&clock).cleanup_interval(Duration::from_millis(1)));
    cache.close();
    cache.close();
    cache.insert_with_ttl(1, 1, SECOND);
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(2 * SECOND);
    assert_eq!(cache.remove_expired(), 1);
}

fn entries_without_ttl_never_read_the_clock<C: CacheApi<u32, u32>>() {
    let clock = CountingClock::default();
    let cache = C::build(
        Cache::builder()
            .clock(clock.clone())
            .cleanup_interval(Duration::from_millis(1)),
    );
    for key in 0..100 {
        cache.insert(key, key);
        assert_eq!(cache.get(&key), Some(key));
        assert!(cache.contains_key(&key));
    }
    assert_eq!(cache.remove(&1), Some(1));
    assert_eq!(cache.get(&1), None);
    // A sweep of every shard, exactly the janitor's step, on this thread:
    // deterministic, where waiting for the janitor's ticks is not.
    assert_eq!(cache.remove_expired(), 0);
    cache.close();
    assert_eq!(clock.reads(), 0);
}

fn shard_count_is_reported<C: CacheApi<u32, u32>>() {
    let cache = C::build(Cache::builder().shards(5));
    assert!(cache.shard_count() == 8 || cache.shard_count() == 1);
}

/// Operations per thread: fewer under Miri, whose data-race checker makes
/// them ~1000 times slower (still enough to interleave the four threads).
const MIRI_CAPPED_OPS: u64 = if cfg!(miri) { 100 } else { 2_000 };

fn concurrent_writers_and_readers_agree<C: CacheApi<u64, u64> + 'static>() {
    let cache = Arc::new(C::build(Cache::builder().shards(4)));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..MIRI_CAPPED_OPS {
                    let key = t * 10_000 + i;
                    cache.insert(key, key * 2);
                    assert_eq!(cache.get(&key), Some(key * 2));
                    if i % 3 == 0 {
                        assert_eq!(cache.remove(&key), Some(key * 2));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("worker panicked");
    }
    let ops = MIRI_CAPPED_OPS as usize;
    let expected = 4 * (ops - ops.div_ceil(3));
    assert_eq!(cache.len(), expected);
}

common::suite!(
    insert_get_and_replace,
    live_through_the_deadline_expired_one_nanosecond_after,
    zero_ttl_never_expires,
    overflowing_ttl_never_expires,
    default_ttl_applies_to_insert_only,
    no_default_ttl_means_never,
    reinsert_refreshes_the_ttl,
    reinsert_can_shorten_the_ttl,
    expired_get_removes_the_entry,
    expired_contains_key_removes_the_entry,
    remove_returns_live_values_only,
    remove_expired_sweeps_everything_expired,
    clear_removes_everything,
    stats_count_every_kind_of_event,
    stats_are_zero_unless_recorded,
    close_is_idempotent_and_the_cache_keeps_working,
    entries_without_ttl_never_read_the_clock,
    shard_count_is_reported,
    concurrent_writers_and_readers_agree,
);

#[test]
fn borrowed_lookups_on_both_types() {
    borrowed_lookups();
}

#[test]
fn shards_round_up_to_a_power_of_two() {
    let cache: Cache<u32, u32> = Cache::builder().shards(5).build();
    assert_eq!(cache.shard_count(), 8);
    let one: Cache<u32, u32> = Cache::builder().shards(1).build();
    one.insert(1, 1);
    assert_eq!(one.get(&1), Some(1));
}

#[test]
fn default_shard_count_is_a_power_of_two() {
    let cache: Cache<u32, u32> = Cache::new();
    assert!(cache.shard_count().is_power_of_two());
}

#[test]
fn initial_capacity_does_not_change_behaviour() {
    // Miri runs this loop ~1000 times slower: 20,000 inserts would take minutes.
    let n: u32 = if cfg!(miri) { 500 } else { 20_000 };
    let cache: Cache<u32, u32> = Cache::builder()
        .initial_capacity(n as usize / 2)
        .shards(16)
        .build();
    for key in 0..n {
        cache.insert(key, key);
    }
    assert_eq!(cache.len(), n as usize);
}

#[test]
fn types_are_send_sync_and_debug() {
    fn check<T: Send + Sync + std::fmt::Debug>() {}
    check::<Cache<String, Vec<u8>>>();
    check::<shardcache::baseline::SingleLockCache<String, Vec<u8>>>();
    check::<CacheBuilder<String, Vec<u8>>>();
    check::<ManualClock>();
    check::<shardcache::CoarseClock>();
    check::<Stats>();

    let cache: Cache<u32, u32> = Cache::builder().shards(2).build();
    cache.insert(1, 1);
    let shown = format!("{cache:?}");
    assert!(
        shown.contains("len: 1") && shown.contains("shards: 2"),
        "{shown}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri would try to allocate the terabyte")]
#[should_panic(expected = "initial_capacity asks for room for")]
fn an_impossible_initial_capacity_panics_with_a_clear_message() {
    let _: Cache<u64, u64> = Cache::builder().initial_capacity(1 << 40).shards(1).build();
}

// Lookups by an equivalent type, iteration, retain and remove_if: `Cache`
// only (the baseline has none of them), each on both kinds of shard.

type Log<K, V> = Arc<std::sync::Mutex<Vec<(K, V, RemovalCause)>>>;

/// A builder of either kind, with `clock`, stats, and a listener that
/// appends to the returned log.
fn logged<K, V>(clock: &ManualClock, bounded: bool) -> (CacheBuilder<K, V>, Log<K, V>)
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let log: Log<K, V> = Arc::default();
    let told = Arc::clone(&log);
    let mut builder = with_clock(clock)
        .shards(4)
        .record_stats(true)
        .removal_listener(move |k, v, cause| told.lock().unwrap().push((k, v, cause)));
    if bounded {
        builder = builder.max_capacity(1000);
    }
    (builder, log)
}

/// What the log holds, sorted, and emptied.
fn drain<K: Ord, V: Ord>(log: &Log<K, V>) -> Vec<(K, V, RemovalCause)> {
    let mut told = std::mem::take(&mut *log.lock().unwrap());
    told.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    told
}

#[derive(Debug, Hash, PartialEq, Eq)]
struct Route {
    host: String,
    port: u16,
}

/// Hashes as `Route` does (the derive hashes the fields in order), so a
/// `&str` is enough to find a `Route` key.
#[derive(Hash)]
struct RouteRef<'a> {
    host: &'a str,
    port: u16,
}

impl shardcache::Equivalent<Route> for RouteRef<'_> {
    fn equivalent(&self, key: &Route) -> bool {
        self.host == key.host && self.port == key.port
    }
}

#[test]
fn lookups_take_an_equivalent_type() {
    for bounded in [false, true] {
        let mut builder = Cache::builder();
        if bounded {
            builder = builder.max_capacity(100);
        }
        let cache: Cache<Route, u32> = builder.build();
        let route = |host: &str, port| Route {
            host: host.into(),
            port,
        };
        cache.insert(route("a", 1), 1);
        cache.insert(route("a", 2), 2);
        let by = |host, port| RouteRef { host, port };
        assert_eq!(cache.get(&by("a", 1)), Some(1));
        assert_eq!(cache.get(&by("a", 3)), None);
        assert!(cache.contains_key(&by("a", 2)));
        assert_eq!(cache.remove_if(&by("a", 2), |v| *v == 3), None);
        assert_eq!(cache.remove_if(&by("a", 2), |v| *v == 2), Some(2));
        assert_eq!(cache.remove(&by("a", 1)), Some(1));
        assert!(cache.is_empty());
        // `Borrow` callers compile as before.
        assert_eq!(cache.get(&route("a", 1)), None);
    }
}

#[test]
fn iter_yields_each_live_entry_once_and_skips_expired_ones() {
    for bounded in [false, true] {
        let clock = ManualClock::new();
        let (builder, log) = logged::<u32, String>(&clock, bounded);
        let cache = builder.build();
        assert_eq!(cache.iter().count(), 0, "no shard allocated yet");
        for key in 0..100 {
            if key % 3 == 0 {
                cache.insert_with_ttl(key, key.to_string(), SECOND);
            } else {
                cache.insert(key, key.to_string());
            }
        }
        clock.advance(2 * SECOND);
        let mut seen: Vec<(u32, String)> = cache.iter().collect();
        seen.sort();
        let live: Vec<(u32, String)> = (0..100)
            .filter(|key| key % 3 != 0)
            .map(|key| (key, key.to_string()))
            .collect();
        assert_eq!(seen, live, "bounded: {bounded}");
        assert_eq!(cache.len(), 100, "iter removes nothing");
        assert!(drain(&log).is_empty());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (0, 0), "iter is no lookup");
    }
}

#[test]
fn retain_removes_rejected_and_expired_entries_with_their_causes() {
    for bounded in [false, true] {
        let clock = ManualClock::new();
        let (builder, log) = logged::<u32, u32>(&clock, bounded);
        let cache = builder.build();
        for key in 0..100 {
            if key % 10 == 0 {
                cache.insert_with_ttl(key, key, SECOND);
            } else {
                cache.insert(key, key);
            }
        }
        clock.advance(2 * SECOND);
        let mut asked = Vec::new();
        cache.retain(|&key, &value| {
            asked.push(key);
            assert_eq!(key, value);
            key % 2 == 1
        });
        asked.sort_unstable();
        let live: Vec<u32> = (0..100).filter(|key| key % 10 != 0).collect();
        assert_eq!(
            asked, live,
            "keep sees each live entry once, no expired one"
        );
        let expected: Vec<(u32, u32, RemovalCause)> = (0..100)
            .filter(|key| key % 2 == 0)
            .map(|key| {
                let cause = if key % 10 == 0 {
                    RemovalCause::Expired
                } else {
                    RemovalCause::Removed
                };
                (key, key, cause)
            })
            .collect();
        assert_eq!(drain(&log), expected, "bounded: {bounded}");
        assert_eq!(cache.len(), 50);
        assert_eq!(cache.weighted_size(), 50);
        let stats = cache.stats();
        assert_eq!((stats.removals, stats.expirations), (40, 10));
        for key in 0..100 {
            assert_eq!(cache.get(&key), (key % 2 == 1).then_some(key));
        }
        // Emptied, the cache takes new entries as before.
        cache.retain(|_, _| false);
        assert!(cache.is_empty());
        cache.insert(7, 7);
        assert_eq!(cache.get(&7), Some(7));
    }
}

#[test]
fn remove_if_removes_a_live_value_only_when_asked() {
    for bounded in [false, true] {
        let clock = ManualClock::new();
        let (builder, log) = logged::<u32, u32>(&clock, bounded);
        let cache = builder.build();
        cache.insert(1, 10);
        cache.insert_with_ttl(2, 20, SECOND);
        assert_eq!(cache.remove_if(&1, |v| *v == 11), None);
        assert_eq!(cache.get(&1), Some(10), "a false predicate keeps it");
        assert_eq!(
            cache.remove_if(&3, |_| panic!("asked about a missing key")),
            None
        );
        assert_eq!(
            cache.remove_if(&2, |v| *v == 20),
            Some(20),
            "live, with a TTL"
        );
        cache.insert_with_ttl(2, 21, SECOND);
        clock.advance(2 * SECOND);
        assert_eq!(
            cache.remove_if(&2, |_| panic!("asked about an expired entry")),
            None
        );
        assert_eq!(cache.remove_if(&1, |v| *v == 10), Some(10));
        assert!(cache.is_empty(), "the expired entry left too");
        assert_eq!(
            drain(&log),
            vec![
                (1, 10, RemovalCause::Removed),
                (2, 20, RemovalCause::Removed),
                (2, 21, RemovalCause::Expired)
            ]
        );
        let stats = cache.stats();
        assert_eq!((stats.removals, stats.expirations), (2, 1));
    }
}

#[test]
fn iter_misses_no_entry_present_throughout_concurrent_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rounds = if cfg!(miri) { 2 } else { 50 };
    let stable: u64 = if cfg!(miri) { 50 } else { 2000 };
    for bounded in [false, true] {
        let mut builder = Cache::builder().shards(8);
        if bounded {
            builder = builder.max_capacity(1 << 20);
        }
        let cache: Arc<Cache<u64, u64>> = Arc::new(builder.build());
        for key in 0..stable {
            cache.insert(key, key);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        // Churn keys next to the stable ones, in every shard.
                        let key = stable + t * 1_000_000 + i % 500;
                        if i % 1000 < 500 {
                            cache.insert(key, key);
                        } else {
                            cache.remove(&key);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        for _ in 0..rounds {
            let mut seen: Vec<u64> = cache
                .iter()
                .map(|(key, value)| {
                    assert_eq!(key, value);
                    key
                })
                .collect();
            seen.sort_unstable();
            let count = seen.len();
            seen.dedup();
            assert_eq!(seen.len(), count, "an entry was seen twice");
            let found = seen.iter().filter(|&&key| key < stable).count();
            assert_eq!(found as u64, stable, "a stable entry was missed");
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().unwrap();
        }
    }
}

/// A clone is a handle to the same cache: each sees the other's writes,
/// and the entries live until the last handle is dropped.
#[test]
fn clones_are_handles_to_one_cache() {
    let drops = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    for bounded in [false, true] {
        drops.store(0, Ordering::Relaxed);
        let builder = Cache::builder();
        let builder = if bounded {
            builder.max_capacity(100)
        } else {
            builder
        };
        let first: Cache<u32, Arc<Counted>> = builder.build();
        let second = first.clone();
        first.insert(1, Arc::new(Counted(Arc::clone(&drops))));
        assert!(second.get(&1).is_some());
        second.remove(&1);
        assert!(first.get(&1).is_none());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        second.insert(2, Arc::new(Counted(Arc::clone(&drops))));
        assert_eq!(first.len(), 1);
        drop(first);
        assert_eq!(second.len(), 1, "dropping one handle keeps the entries");
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            2,
            "the last handle frees them"
        );
    }
}
