//! Bounded caches: the capacity holds, weights add up, eviction keeps the
//! cache's promises (latest value or nothing), and a panicking weigher
//! changes nothing. That evicted values are dropped after the lock is
//! released is tested with the other drop paths, in `tests/janitor.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use shardcache::Cache;
use shardcache::ManualClock;

const SECOND: Duration = Duration::from_secs(1);

/// `n` operations, or a fiftieth of them under Miri.
const fn ops(n: u64) -> u64 {
    if cfg!(miri) {
        n / 50
    } else {
        n
    }
}

/// A deterministic stream of pseudo-random numbers.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn the_capacity_holds_after_every_insert() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(1000).shards(8).build();
    let mut next = xorshift(7);
    for _ in 0..ops(50_000) {
        let key = next() % 10_000;
        cache.insert(key, key);
        assert!(cache.weighted_size() <= 1000);
    }
    assert_eq!(cache.weighted_size(), cache.len() as u64);
    assert!(
        cache.len() > 900 || cfg!(miri),
        "the shards fill up: {}",
        cache.len()
    );
}

#[test]
fn weights_add_up_and_bound_the_total() {
    let cache: Cache<u32, Vec<u8>> = Cache::builder()
        .max_capacity(10_000)
        .shards(4)
        .weigher(|_, value: &Vec<u8>| value.len() as u32)
        .record_stats(true)
        .build();
    let mut next = xorshift(11);
    let mut inserted = 0;
    for _ in 0..ops(20_000) {
        let key = (next() % 500) as u32;
        let len = (next() % 200) as usize;
        cache.insert(key, vec![0; len]);
        inserted += 1;
        assert!(cache.weighted_size() <= 10_000);
    }
    let stored: u64 = (0..500)
        .filter_map(|key| cache.get(&key))
        .map(|value| value.len() as u64)
        .sum();
    assert_eq!(stored, cache.weighted_size());
    let stats = cache.stats();
    assert_eq!(stats.inserts, inserted);
    assert!(stats.evictions > 0);
}

#[test]
fn evictions_account_for_every_entry_that_left() {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(300)
        .shards(2)
        .record_stats(true)
        .build();
    for key in 0..2000 {
        cache.insert(key, key);
    }
    let stats = cache.stats();
    assert_eq!(stats.evictions, 2000 - cache.len() as u64);
    assert_eq!(cache.len(), 300, "both shards full: 150 each");
}

#[test]
fn an_entry_heavier_than_its_shard_is_not_stored() {
    // 4 shards of 25: a weight of 26 fits no shard.
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .shards(4)
        .weigher(|_, value: &u32| *value)
        .record_stats(true)
        .build();
    cache.insert(1, 5);
    cache.insert(1, 26);
    assert_eq!(cache.get(&1), None, "the old value is not kept either");
    assert_eq!((cache.len(), cache.weighted_size()), (0, 0));
    assert_eq!(cache.stats().evictions, 1);
    cache.insert(1, 25);
    assert_eq!(cache.get(&1), Some(25), "exactly a shard's share fits");
}

#[test]
fn the_capacity_is_split_exactly() {
    // 10 over 4 shards: 3, 3, 2, 2. Fill every shard to its share.
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(10).shards(4).build();
    for key in 0..1000 {
        cache.insert(key, key);
    }
    assert_eq!(cache.weighted_size(), 10);
}

#[test]
fn a_bounded_cache_gets_few_enough_shards_for_its_capacity() {
    let small: Cache<u32, u32> = Cache::builder().max_capacity(100).build();
    assert_eq!(small.shard_count(), 1);
    let medium: Cache<u32, u32> = Cache::builder().max_capacity(4096).build();
    assert!(medium.shard_count() <= 16);
    let chosen: Cache<u32, u32> = Cache::builder().max_capacity(100).shards(8).build();
    assert_eq!(chosen.shard_count(), 8);
}

#[test]
fn unbounded_caches_report_their_size_as_a_count() {
    let cache: Cache<u32, u32> = Cache::new();
    assert_eq!(cache.max_capacity(), None);
    cache.insert(1, 1);
    cache.insert(2, 2);
    assert_eq!(cache.weighted_size(), 2);
}

#[test]
fn a_weigher_alone_tracks_weight_and_never_evicts() {
    let cache: Cache<u32, u32> = Cache::builder().weigher(|_, v: &u32| *v).build();
    assert_eq!(cache.max_capacity(), None);
    for key in 0..1000 {
        cache.insert(key, 1_000_000);
    }
    assert_eq!(cache.len(), 1000);
    assert_eq!(cache.weighted_size(), 1_000_000_000);
}

#[test]
fn a_panicking_weigher_changes_nothing() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(4)
        .shards(1)
        .weigher(|_, value: &u32| {
            assert!(*value != 13, "weigher panics on 13");
            1
        })
        .build();
    for key in 0..4 {
        cache.insert(key, key);
    }
    for key in [0, 9] {
        let result = catch_unwind(AssertUnwindSafe(|| cache.insert(key, 13)));
        assert!(result.is_err());
    }
    assert_eq!((cache.len(), cache.weighted_size()), (4, 4));
    for key in 0..4 {
        assert_eq!(cache.get(&key), Some(key), "nothing evicted or replaced");
    }
    cache.insert(9, 9);
    assert_eq!(cache.get(&9), Some(9), "still usable");
}

#[test]
fn expired_entries_count_until_removed() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .build();
    for key in 0..10 {
        cache.insert_with_ttl(key, key, SECOND);
    }
    clock.advance(2 * SECOND);
    assert_eq!(cache.weighted_size(), 10);
    assert_eq!(cache.remove_expired(), 10);
    assert_eq!(cache.weighted_size(), 0);
}

#[test]
fn expired_entries_make_room_before_live_ones() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .record_stats(true)
        .build();
    for key in 0..10 {
        cache.insert_with_ttl(key, key, SECOND);
    }
    clock.advance(2 * SECOND);
    for key in 10..20 {
        cache.insert(key, key);
    }
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.evictions), (10, 0));
    assert!((10..20).all(|key| cache.get(&key) == Some(key)));
}

#[test]
fn concurrent_inserts_never_exceed_the_bound_and_reads_see_the_latest_value() {
    // Each thread owns its keys and writes increasing values, so a read
    // must return nothing (evicted) or the value it last wrote.
    let cache: Arc<Cache<u64, u64>> =
        Arc::new(Cache::builder().max_capacity(512).shards(4).build());
    let threads = 4;
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (cache, start) = (Arc::clone(&cache), Arc::clone(&start));
            thread::spawn(move || {
                let mut next = xorshift(t + 1);
                let mut written = vec![0u64; 1000];
                start.wait();
                for round in 1..=ops(20_000) {
                    let slot = (next() % 1000) as usize;
                    let key = t * 1000 + slot as u64;
                    if next() % 2 == 0 {
                        cache.insert(key, round);
                        written[slot] = round;
                    } else if let Some(value) = cache.get(&key) {
                        assert_eq!(value, written[slot], "stale read of {key}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    assert!(cache.weighted_size() <= 512);
    assert_eq!(cache.weighted_size(), cache.len() as u64);
}

#[test]
#[should_panic(expected = "SingleLockCache is the unbounded seed design")]
fn the_baseline_refuses_a_capacity() {
    let _ = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .build_single_lock();
}

/// A hasher that returns the key itself, as nohash-style hashers for
/// integer keys do: every high bit is zero.
#[derive(Default)]
struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[test]
fn an_identity_hasher_spreads_sequential_keys_over_every_shard() {
    type Hasher = std::hash::BuildHasherDefault<Identity>;
    // 16 shards of `per`: if the keys met in one shard, `per` would stay.
    let per = if cfg!(miri) { 32 } else { 1024 };
    let cache: Cache<u64, u64, Hasher> = Cache::builder()
        .max_capacity(16 * per)
        .shards(16)
        .hasher(Hasher::default())
        .build();
    for key in 0..16 * per {
        cache.insert(key, key);
    }
    let kept = cache.len() as u64;
    assert!(kept > 12 * per, "only {kept} of {} kept", 16 * per);
    // A ghost that told sequential keys apart sends none of them back to
    // main: re-inserting evicted keys keeps the cache at its capacity.
    for key in 16 * per..20 * per {
        cache.insert(key, key);
    }
    assert!(cache.weighted_size() <= 16 * per);
}

type Fixed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// The keys the listener was told of, with why.
type CauseLog = Arc<std::sync::Mutex<Vec<(u64, shardcache::RemovalCause)>>>;

/// A bounded cache whose listener appends to the returned log.
fn logged(capacity: u64, shards: usize) -> (Cache<u64, u64, Fixed>, CauseLog) {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let told = Arc::clone(&log);
    // A fixed hasher: two caches built alike behave alike.
    let cache = Cache::builder()
        .hasher(Fixed::default())
        .max_capacity(capacity)
        .shards(shards)
        .record_stats(true)
        .removal_listener(move |key, _, cause| told.lock().unwrap().push((key, cause)))
        .build();
    (cache, log)
}

#[test]
#[cfg_attr(miri, ignore = "thousands of inserts")]
fn set_max_capacity_evicts_down_to_the_new_bound_and_lets_it_grow_again() {
    use shardcache::RemovalCause;
    // One shard: its share is the whole bound, so the counts are exact.
    let (cache, log) = logged(1000, 1);
    for key in 0..1000 {
        cache.insert(key, key);
    }
    assert_eq!(cache.weighted_size(), 1000);
    cache.set_max_capacity(100);
    assert_eq!(cache.max_capacity(), Some(100));
    assert_eq!(cache.weighted_size(), 100, "each shard at its new share");
    let told = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(told.len(), 900);
    assert!(told
        .iter()
        .all(|&(_, cause)| cause == RemovalCause::Evicted));
    assert_eq!(cache.stats().evictions, 900);
    for key in 1000..2000 {
        cache.insert(key, key);
        assert!(cache.weighted_size() <= 100);
    }
    cache.set_max_capacity(5000);
    for key in 2000..6000 {
        cache.insert(key, key);
    }
    assert_eq!(cache.weighted_size(), 4100, "grew: 100 kept, 4000 new");
    cache.set_max_capacity(0);
    assert_eq!(cache.weighted_size(), 0);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None, "a zero bound holds nothing");
}

#[test]
fn set_max_capacity_evicts_expired_entries_first_as_expired() {
    use shardcache::RemovalCause;
    let clock = ManualClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .shards(1)
        .clock(clock.clone())
        .record_stats(true)
        .build();
    // The expired entries are the oldest: eviction meets them first.
    for key in 50..100 {
        cache.insert_with_ttl(key, key, SECOND);
    }
    for key in 0..50 {
        cache.insert(key, key);
    }
    clock.advance(2 * SECOND);
    cache.set_max_capacity(50);
    assert_eq!(cache.weighted_size(), 50);
    assert!((0..50).all(|key| cache.get(&key) == Some(key)));
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.evictions), (50, 0));
    assert!((50..100).all(|key| !cache.contains_key(&key)));
    let _ = RemovalCause::Expired;
}

#[test]
fn set_max_capacity_bounds_a_cache_built_with_only_a_weigher() {
    let cache: Cache<u64, u64> = Cache::builder()
        .weigher(|_, v: &u64| *v as u32)
        .shards(2)
        .build();
    assert_eq!(cache.max_capacity(), None);
    for key in 1..=100 {
        cache.insert(key, key);
    }
    cache.set_max_capacity(1000);
    assert_eq!(cache.max_capacity(), Some(1000));
    assert!(cache.weighted_size() <= 1000);
    assert!(
        cache.weighted_size() >= 900,
        "only what the bound needs left"
    );
}

#[test]
#[should_panic(expected = "set_max_capacity on an unbounded cache")]
fn set_max_capacity_panics_on_an_unbounded_cache() {
    let cache: Cache<u64, u64> = Cache::new();
    cache.set_max_capacity(10);
}

/// Fills two identical caches, runs `between` on one of them, then inserts
/// into both past their capacity: they must evict the same keys.
fn evicts_as_if_untouched(between: impl Fn(&Cache<u64, u64, Fixed>)) {
    let build = || logged(200, 2);
    let ((plain, plain_log), (touched, touched_log)) = (build(), build());
    let mut next = xorshift(7);
    let keys: Vec<u64> = (0..600).map(|_| next() % 400).collect();
    for (i, &key) in keys.iter().enumerate() {
        for cache in [&plain, &touched] {
            cache.insert(key, key);
            if i % 3 == 0 {
                cache.get(&(key / 2));
            }
        }
    }
    between(&touched);
    for key in 1000..1300 {
        plain.insert(key, key);
        touched.insert(key, key);
    }
    let evicted = plain_log.lock().unwrap();
    assert!(evicted.len() > 300, "both evicted for every new key");
    assert_eq!(
        *evicted,
        *touched_log.lock().unwrap(),
        "eviction order changed"
    );
    let mut a: Vec<_> = plain.iter().collect();
    let mut b: Vec<_> = touched.iter().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
#[cfg_attr(miri, ignore = "thousands of inserts")]
fn iter_and_a_retain_that_keeps_everything_leave_the_eviction_order_alone() {
    evicts_as_if_untouched(|cache| {
        for _ in 0..3 {
            assert_eq!(cache.iter().count(), 200);
        }
    });
    evicts_as_if_untouched(|cache| cache.retain(|_, _| true));
}

#[test]
#[cfg_attr(miri, ignore = "thousands of inserts")]
fn retain_keeps_weights_stats_and_the_listener_exact() {
    use shardcache::RemovalCause;
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let told = Arc::clone(&log);
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .weigher(|_, v: &u64| (*v % 7 + 1) as u32)
        .shards(4)
        .record_stats(true)
        .removal_listener(move |key, _, cause| told.lock().unwrap().push((key, cause)))
        .build();
    for key in 0..1000 {
        cache.insert(key, key);
    }
    cache.retain(|key, _| key % 4 != 0);
    let weight: u64 = (0..1000).filter(|k| k % 4 != 0).map(|k| k % 7 + 1).sum();
    assert_eq!(cache.weighted_size(), weight);
    assert_eq!(cache.len(), 750);
    assert_eq!(cache.stats().removals, 250);
    let told = log.lock().unwrap();
    assert_eq!(told.len(), 250);
    assert!(told
        .iter()
        .all(|&(key, cause)| key % 4 == 0 && cause == RemovalCause::Removed));
    drop(told);
    // The survivors are all still found, and the cache still evicts.
    assert!((0..1000).all(|k| cache.contains_key(&k) == (k % 4 != 0)));
    cache.set_max_capacity(100);
    assert!(cache.weighted_size() <= 100);
}
