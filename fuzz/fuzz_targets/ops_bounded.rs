//! Bounded `Cache` against the model: every capacity, weigher, op sequence,
//! TTL and clock move the fuzzer finds must keep the promises
//! `check_bounded` in `tests/model/mod.rs` checks after every op (the
//! bound, exact accounting of what went in and what came out, the latest
//! value or nothing).

#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use shardcache::Cache;

fuzz_target!(|input: model::BoundedInput| {
    model::check_bounded::<Cache<u8, model::Tracked>>(&input);
});
