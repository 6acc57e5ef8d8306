//! Throughput of every subject under every workload at 1, 2, 4, ... threads
//! (up to twice the available parallelism, at most 32).
//!
//! `cargo bench --bench contention` runs it all (several minutes); a filter
//! such as `-- read95-zipf/` or `-- /Cache/` runs a part, and `-- --test`
//! runs each benchmark once. For one table with ratios, use
//! `cargo run --release --example compare`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[allow(dead_code)] // each target uses a different part of the harness
#[path = "support/mod.rs"]
mod support;

#[path = "support/criterion_glue.rs"]
mod criterion_glue;

use support::subjects::Subject;
use support::workload::{self, Value, ValueType, Workload, DEFAULT_KEYS};

fn contention(c: &mut Criterion) {
    for workload in Workload::ALL {
        match workload.value_type() {
            ValueType::U64 => bench_workload::<u64>(c, workload),
            ValueType::ArcStr => bench_workload::<Arc<str>>(c, workload),
        }
    }
}

fn bench_workload<V: Value>(c: &mut Criterion, workload: Workload) {
    let subjects: Vec<_> = Subject::ALL
        .iter()
        .map(|&subject| {
            let map = subject.build::<V>(DEFAULT_KEYS);
            assert_eq!(map.prefill(DEFAULT_KEYS), 0, "{subject} lost keys");
            (subject, map)
        })
        .collect();
    let mut group = criterion_glue::group(c, workload.name().to_owned());
    for threads in workload::default_thread_counts() {
        let streams = workload::streams::<V>(workload, DEFAULT_KEYS, threads);
        for (subject, map) in &subjects {
            let id = BenchmarkId::new(subject.to_string(), threads);
            criterion_glue::bench(&mut group, id, map.as_ref(), &streams);
        }
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
