//! Criterion settings and the one timed routine shared by the two bench
//! targets (the example does not use criterion, so this file is not part of
//! `support/mod.rs`). Each target includes it as `mod criterion_glue` next to
//! `mod support`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};

use crate::support::run::{Measure, Until};
use crate::support::workload::{Op, Value, BATCH};

/// A group with short runs: every benchmark is a multi-threaded loop with
/// low variance between iterations, and there are many of them.
pub fn group<'a>(c: &'a mut Criterion, name: String) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    group
}

/// Benchmarks `map` replaying `streams`, one thread per stream, each
/// iteration continuing the streams where the last one stopped. One
/// criterion iteration is one batch of [`BATCH`] operations per thread.
pub fn bench<V: Value>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    map: &dyn Measure<V>,
    streams: &[&[Op<V>]],
) {
    group.throughput(Throughput::Elements((streams.len() * BATCH) as u64));
    let mut cursors = vec![0; streams.len()];
    group.bench_function(id, |b| {
        b.iter_custom(|batches| {
            map.run(streams, Until::Batches(batches), &mut cursors)
                .elapsed
        });
    });
}
