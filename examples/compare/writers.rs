//! `--writers`: one writer among hot readers. Three threads `get` uniformly
//! random keys as fast as they can while a fourth `insert`s (overwrites)
//! uniformly random keys as fast as it can, on the same cache, for the
//! measurement window; `Cache` and `SingleLockCache` take turns, one window
//! each per repetition, and their histograms and counts are summed over the
//! repetitions.
//!
//! On a machine with fewer cores than threads (the 2-core development VM)
//! this is where a writer that spins loses: the readers it waits for are
//! often descheduled, and a writer that yields in a loop burns the core
//! they need. `Cache`'s writer spins briefly, then parks until the last
//! reader of the stripe leaves (`src/locks.rs`).
//!
//! Reported: the writer's latency per `insert` (p50, p99, p99.9, max, with
//! `hdrhistogram`), the writes done, and the readers' throughput in Mops/s
//! (all three together). Targets: `Cache`'s writer p99 at most 2x
//! `SingleLockCache`'s, and its readers' throughput at least 2.5x.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value as Json};
use shardcache::baseline::SingleLockCache;
use shardcache::Cache;

use crate::latency::{histogram, nanos, show, QUANTILES};
use crate::support::subjects::hasher;
use crate::support::workload::SEED;
use crate::targets::Outcome;

/// Hot reader threads beside the one writer.
pub const READERS: usize = 3;

/// The writer's pause between two inserts in the paced scenario: a service
/// that writes now and then (the sleep takes 50-250 µs in practice).
pub const PAUSE: Duration = Duration::from_micros(20);

/// The two scenarios: the writer back to back, then paced by [`PAUSE`].
pub const SCENARIOS: [Option<Duration>; 2] = [None, Some(PAUSE)];

/// The outcome for one cache, summed over the repetitions.
#[derive(Debug)]
pub struct Report {
    pub subject: String,
    /// The writer's pause between inserts, if paced.
    pub pause: Option<Duration>,
    pub writes: u64,
    pub reads: u64,
    /// Wall time of all the windows together.
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Report {
    pub fn read_mops(&self) -> f64 {
        self.reads as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    pub fn writes_per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
}

/// The two operations a subject needs.
struct Target<G, I> {
    get: G,
    insert: I,
}

/// Measures `Cache` and `SingleLockCache`, each prefilled with `keys` keys,
/// `reps` windows each, interleaved, in each scenario: reports in the order
/// (scenario, subject).
pub fn run(keys: usize, window: Duration, reps: usize) -> Vec<Report> {
    SCENARIOS
        .iter()
        .flat_map(|&pause| run_scenario(keys, window, reps, pause))
        .collect()
}

fn run_scenario(
    keys: usize,
    window: Duration,
    reps: usize,
    pause: Option<Duration>,
) -> Vec<Report> {
    let cache: Cache<u64, u64, _> = Cache::builder().hasher(hasher()).build();
    let single = SingleLockCache::builder().hasher(hasher()).build();
    for key in 0..keys as u64 {
        cache.insert(key, key);
        single.insert(key, key);
    }
    let sharded = Target {
        get: |k| cache.get(&k),
        insert: |k, v| cache.insert(k, v),
    };
    let baseline = Target {
        get: |k| single.get(&k),
        insert: |k, v| single.insert(k, v),
    };
    let mut reports = [
        empty_report(format!("Cache ({} shards)", cache.shard_count()), pause),
        empty_report("SingleLockCache".to_owned(), pause),
    ];
    for rep in 0..reps {
        for (report, which) in reports.iter_mut().zip(0..) {
            eprintln!(
                "writers: {} rep {}/{reps}, {}",
                report.subject,
                rep + 1,
                scenario(pause)
            );
            if which == 0 {
                measure(&sharded, keys, window, report);
            } else {
                measure(&baseline, keys, window, report);
            }
        }
    }
    reports.into()
}

fn empty_report(subject: String, pause: Option<Duration>) -> Report {
    Report {
        subject,
        pause,
        writes: 0,
        reads: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    }
}

/// A xorshift stream of keys below `keys`.
fn keys_from(seed: u64, keys: usize) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % keys as u64
    }
}

/// One window: the readers and the writer start together and stop when the
/// window has passed; adds the counts and latencies to `report`.
fn measure<G, I>(target: &Target<G, I>, keys: usize, window: Duration, report: &mut Report)
where
    G: Fn(u64) -> Option<u64> + Sync,
    I: Fn(u64, u64) + Sync,
{
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let start = Barrier::new(READERS + 2);
    let empty = Histogram::<u64>::new_from(&report.latency);
    let began = std::thread::scope(|scope| {
        for reader in 0..READERS {
            let (stop, reads, start) = (&stop, &reads, &start);
            scope.spawn(move || {
                let mut next = keys_from(SEED + 1 + reader as u64, keys);
                let mut done = 0u64;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        std::hint::black_box((target.get)(next()));
                    }
                    done += 64;
                }
                reads.fetch_add(done, Ordering::Relaxed);
            });
        }
        let writer = scope.spawn(|| {
            let mut next = keys_from(SEED, keys);
            let mut latency = empty;
            let mut writes = 0u64;
            start.wait();
            while !stop.load(Ordering::Relaxed) {
                let key = next();
                let begin = Instant::now();
                (target.insert)(key, writes);
                latency.saturating_record(nanos(begin.elapsed()));
                writes += 1;
                if let Some(pause) = report.pause {
                    std::thread::sleep(pause);
                }
            }
            (latency, writes)
        });
        start.wait();
        let began = Instant::now();
        std::thread::sleep(window);
        stop.store(true, Ordering::Relaxed);
        let (latency, writes) = writer.join().expect("writer panicked");
        report.latency.add(&latency).expect("same bounds");
        report.writes += writes;
        began
    });
    report.elapsed += began.elapsed();
    report.reads += reads.load(Ordering::Relaxed);
}

/// How the writer writes.
fn scenario(pause: Option<Duration>) -> String {
    match pause {
        None => "back to back".to_owned(),
        Some(pause) => format!("paced (sleep {pause:?})"),
    }
}

/// Prints the table.
pub fn print(reports: &[Report], window: Duration, reps: usize) {
    println!();
    println!(
        "one writer among {READERS} hot readers, {reps} x {:.1} s per cache, {} cores",
        window.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<20} {:<20} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "writer", "subject", "writes", "writes/s", "p50", "p99", "p99.9", "max", "reads Mops/s"
    );
    for r in reports {
        let quantiles: String = QUANTILES
            .iter()
            .map(|&(_, q)| format!(" {:>9}", show(r.latency.value_at_quantile(q))))
            .collect();
        println!(
            "{:<20} {:<20} {:>9} {:>9.0}{quantiles} {:>9} {:>12.1}",
            scenario(r.pause),
            r.subject,
            r.writes,
            r.writes_per_sec(),
            show(r.latency.max()),
            r.read_mops()
        );
    }
}

/// The targets, in every scenario: `Cache`'s writer p99 at most 2x
/// `SingleLockCache`'s, its readers' Mops/s at least 2.5x (reports in the
/// order of [`run`]); the worst scenario is shown.
pub fn targets(reports: &[Report]) -> Vec<Outcome> {
    let p99 = |r: &Report| r.latency.value_at_quantile(0.99) as f64;
    let mut latency = Outcome {
        target: "writer p99: Cache <= 2.0x SingleLockCache".into(),
        need: "<= 2.00x".into(),
        cells: 0,
        met_cells: 0,
        worst: None,
    };
    let mut reads = Outcome {
        target: format!("reads, {READERS} readers + 1 writer: Cache >= 2.5x SingleLockCache"),
        need: ">= 2.50x".into(),
        cells: 0,
        met_cells: 0,
        worst: None,
    };
    for pair in reports.chunks_exact(2) {
        let [cache, single] = pair else { continue };
        let cell = scenario(cache.pause);
        let ratio = p99(cache) / p99(single).max(1.0);
        latency.cells += 1;
        latency.met_cells += usize::from(ratio <= 2.0);
        if latency.worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
            latency.worst = Some((ratio, format!("p99, Cache / SingleLockCache, {cell}")));
        }
        let ratio = cache.read_mops() / single.read_mops().max(f64::MIN_POSITIVE);
        reads.cells += 1;
        reads.met_cells += usize::from(ratio >= 2.5);
        if reads.worst.as_ref().is_none_or(|(w, _)| ratio < *w) {
            reads.worst = Some((ratio, format!("Mops/s, Cache / SingleLockCache, {cell}")));
        }
    }
    vec![latency, reads]
}

pub fn to_json(reports: &[Report], window: Duration, reps: usize) -> Json {
    let rows: Vec<Json> = reports
        .iter()
        .map(|r| {
            let mut latency: serde_json::Map<String, Json> = QUANTILES
                .iter()
                .map(|&(name, q)| (format!("{name}_ns"), json!(r.latency.value_at_quantile(q))))
                .collect();
            latency.insert("max_ns".to_owned(), json!(r.latency.max()));
            latency.insert("mean_ns".to_owned(), json!(r.latency.mean()));
            json!({
                "subject": r.subject,
                "writer_pause_us": r.pause.map(|p| p.as_secs_f64() * 1e6),
                "writes": r.writes,
                "writes_per_sec": r.writes_per_sec(),
                "reads": r.reads,
                "read_mops": r.read_mops(),
                "elapsed_s": r.elapsed.as_secs_f64(),
                "writer_latency": latency,
            })
        })
        .collect();
    let targets: Vec<Json> = targets(reports).iter().map(Outcome::to_json).collect();
    json!({
        "readers": READERS,
        "window_ms": window.as_secs_f64() * 1e3,
        "reps": reps,
        "reports": rows,
        "targets": targets,
    })
}
