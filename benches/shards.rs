//! Throughput of `Cache` by shard count (1, 2, 4, ... 1024) at the highest
//! default thread count, on a read-heavy and a write-heavy workload: the
//! numbers behind the default shard count.
//!
//! `cargo bench --bench shards`; `-- --test` runs each benchmark once.
//! `cargo run --release --example compare -- --shards` prints the same sweep
//! as one table, at any thread counts.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[allow(dead_code)] // each target uses a different part of the harness
#[path = "support/mod.rs"]
mod support;

#[path = "support/criterion_glue.rs"]
mod criterion_glue;

use support::subjects::{Subject, SHARD_SWEEP};
use support::workload::{self, Streams, Workload, DEFAULT_KEYS};

fn shards(c: &mut Criterion) {
    let threads = *workload::default_thread_counts()
        .last()
        .expect("at least one thread count");
    for workload in [Workload::Read95Zipf, Workload::Read50Uniform] {
        let streams = Streams::<u64>::new(workload, DEFAULT_KEYS, &[threads], None);
        let streams = streams.of(threads, false);
        let name = format!("shards/{}/{threads}-threads", workload.name());
        let mut group = criterion_glue::group(c, name);
        for shards in SHARD_SWEEP {
            let (map, _) = Subject::CacheShards(shards).prefilled::<u64>(DEFAULT_KEYS);
            let id = BenchmarkId::from_parameter(shards);
            criterion_glue::bench(&mut group, id, map.as_ref(), &streams);
        }
        group.finish();
    }
}

criterion_group!(benches, shards);
criterion_main!(benches);
