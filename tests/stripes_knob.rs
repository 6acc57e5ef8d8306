//! The hidden `CacheBuilder::__stripes` knob: any power of two from 1 to 16
//! builds a working cache; anything else panics with a clear message.

use shardcache::Cache;

#[test]
fn every_allowed_stripe_count_builds_a_working_cache() {
    for stripes in [1, 2, 4, 8, 16] {
        let cache: Cache<u32, u32> = Cache::builder().shards(64).__stripes(stripes).build();
        for key in 0..200 {
            cache.insert(key, key * 2);
        }
        assert_eq!(cache.len(), 200, "{stripes} stripes");
        assert!((0..200).all(|key| cache.get(&key) == Some(key * 2)));
    }
}

#[test]
#[should_panic(expected = "__stripes(3) must be a power of two from 1 to 16")]
fn a_stripe_count_that_is_not_a_power_of_two_panics() {
    let _ = Cache::<u32, u32>::builder().__stripes(3);
}

#[test]
#[should_panic(expected = "__stripes(32) must be a power of two from 1 to 16")]
fn too_many_stripes_panic() {
    let _ = Cache::<u32, u32>::builder().__stripes(32);
}

#[test]
#[should_panic(expected = "__stripes(0) must be a power of two from 1 to 16")]
fn zero_stripes_panic() {
    let _ = Cache::<u32, u32>::builder().__stripes(0);
}
