//! Entries that weigh 0 (`CacheBuilder::weigher` documents them): they
//! count nothing against `max_capacity`, so a cache of only such entries
//! never evicts, while heavier entries keep the bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shardcache::{Cache, RemovalCause};

/// Keys below this weigh 0, the others 1.
const WEIGHTLESS: u32 = 1_000_000;

fn cache(evicted_weightless: &Arc<AtomicUsize>) -> Cache<u32, u32> {
    let evicted = Arc::clone(evicted_weightless);
    Cache::builder()
        .max_capacity(10)
        .shards(1)
        .weigher(|key: &u32, _| u32::from(*key >= WEIGHTLESS))
        .removal_listener(move |key: u32, _, cause| {
            if key < WEIGHTLESS && cause == RemovalCause::Evicted {
                evicted.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
}

#[test]
fn entries_of_weight_zero_count_nothing_and_are_not_evicted_for_each_other() {
    let n = if cfg!(miri) { 100 } else { 10_000 };
    let evicted = Arc::new(AtomicUsize::new(0));
    let cache = cache(&evicted);
    for key in 0..n {
        cache.insert(key, key);
    }
    assert_eq!((cache.len(), cache.weighted_size()), (n as usize, 0));
    assert_eq!(evicted.load(Ordering::Relaxed), 0);
    assert!((0..n).all(|key| cache.get(&key) == Some(key)));
}

#[test]
fn heavier_entries_keep_the_bound_among_weightless_ones() {
    let n = if cfg!(miri) { 50 } else { 1_000 };
    let evicted = Arc::new(AtomicUsize::new(0));
    let cache = cache(&evicted);
    for key in 0..n {
        cache.insert(key, key);
    }
    for key in WEIGHTLESS..WEIGHTLESS + n {
        cache.insert(key, key);
        assert!(cache.weighted_size() <= 10);
    }
    let weightless_left = (0..n).filter(|key| cache.get(key).is_some()).count();
    assert_eq!(
        weightless_left + evicted.load(Ordering::Relaxed),
        n as usize,
        "every weightless entry is either there or was evicted"
    );
}
