//! What an empty cache costs: its shards' locks are allocated on the first
//! write to each group of 16 shards, so a cache that was never written owns
//! one pointer per group, and reading it allocates nothing.

use allocation_counter::measure;
use shardcache::Cache;

/// The default build of a 128-core machine: 1024 shards, 16 stripes.
fn many_core() -> Cache<u64, u64> {
    Cache::builder().shards(1024).__stripes(16).build()
}

#[test]
fn an_empty_cache_of_a_128_core_machine_fits_32_kib() {
    let mut cache = None;
    let held = measure(|| cache = Some(many_core())).bytes_current;
    assert!(held <= 32 * 1024, "{held} bytes");
    // Every shard's lock allocated at once was 264 320 bytes.
    assert!(held < 8 * 1024, "{held} bytes");
    drop(cache);
}

#[test]
fn reading_an_empty_cache_allocates_nothing() {
    let cache = many_core();
    let reads = measure(|| {
        for key in 0..1000 {
            assert_eq!(cache.get(&key), None);
            assert!(!cache.contains_key(&key));
            assert_eq!(cache.remove(&key), None);
        }
        assert_eq!(cache.len(), 0);
        assert!(cache.is_empty());
        cache.clear();
        assert_eq!(cache.remove_expired(), 0);
    });
    assert_eq!(reads.count_total, 0, "{reads:?}");
}

#[test]
fn a_write_allocates_one_group_of_sixteen_shards() {
    let cache = many_core();
    let first = measure(|| cache.insert(1, 1)).bytes_current;
    // 16 slots of 128 bytes and 16 stripes' blocks of 128 bytes, plus the
    // shard's first table.
    assert!((4096..4096 + 1024).contains(&first), "{first} bytes");
    assert_eq!(cache.get(&1), Some(1));
    // Keys spread over every shard: every group, as before.
    let keys = if cfg!(miri) { 3_000 } else { 100_000 };
    for key in 0..keys {
        cache.insert(key, key);
    }
    assert!((0..keys).all(|key| cache.get(&key) == Some(key)));
    assert_eq!(cache.len(), keys as usize);
}

#[test]
#[cfg_attr(miri, ignore = "Miri would try to allocate the room")]
#[should_panic(expected = "initial_capacity")]
fn room_asked_for_that_cannot_be_had_still_fails_the_build() {
    let _: Cache<u64, u64> = Cache::builder().initial_capacity(1 << 60).build();
}
