//! `Cache` against the model: every op sequence, TTL and clock move the
//! fuzzer finds must give the same results as `tests/model/mod.rs`.

#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use shardcache::Cache;

fuzz_target!(|input: model::Input| {
    model::check::<Cache<u8, model::Value>>(&input);
});
