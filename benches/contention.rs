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
use support::workload::{
    self, Streams, Value, ValueType, Workload, DEFAULT_KEYS, READ_THROUGH_PASSES,
    SMOKE_READ_THROUGH_PASSES,
};

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
        .map(|&subject| (subject, subject.prefilled::<V>(DEFAULT_KEYS).0))
        .collect();
    let thread_counts = workload::default_thread_counts();
    let passes = if checking_only() {
        SMOKE_READ_THROUGH_PASSES
    } else {
        READ_THROUGH_PASSES
    };
    let streams = Streams::<V>::new(workload, DEFAULT_KEYS, &thread_counts, Some(passes));
    let mut group = criterion_glue::group(c, workload.name().to_owned());
    for threads in thread_counts {
        for (subject, map) in &subjects {
            let id = BenchmarkId::new(subject.to_string(), threads);
            let streams = streams.of(threads, subject.read_through());
            criterion_glue::bench(&mut group, id, map.as_ref(), &streams);
        }
    }
    group.finish();
}

/// Whether criterion only runs each benchmark once to check it: under
/// `cargo test --benches` (no `--bench` flag) or `cargo bench -- --test`.
fn checking_only() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

criterion_group!(benches, contention);
criterion_main!(benches);
