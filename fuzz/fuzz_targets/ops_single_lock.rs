//! `SingleLockCache` (the baseline) against the same model as `ops`.

#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use shardcache::baseline::SingleLockCache;

fuzz_target!(|input: model::Input| {
    model::check::<SingleLockCache<u8, model::Value>>(&input);
});
