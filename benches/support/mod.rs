//! The benchmark harness shared by `benches/contention.rs`, `benches/shards.rs`
//! and `examples/compare`: the workloads, the subjects, and the timed runner.
//!
//! Each of those targets includes this folder with `#[path]`, so there is one
//! copy of every workload and every subject. What the harness guarantees:
//!
//! - every subject is prefilled with the whole key space before timing, so
//!   every `get` hits and every write overwrites an existing key, except in
//!   the bounded caches with room for fewer keys: those are used
//!   read-through (a `get` that misses is followed by an `insert` of the
//!   key), so they evict, and the runner counts their hit ratio;
//! - each thread's operations are generated before timing from a fixed seed,
//!   so every subject replays exactly the same streams;
//! - threads start together on a `Barrier`, and the clock covers only the
//!   operations;
//! - every subject that takes a hasher gets the same fixed-seed
//!   `ahash::RandomState`, so a comparison is about concurrency, not hashing.

pub mod run;
pub mod subjects;
pub mod workload;
