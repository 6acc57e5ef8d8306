//! `--janitor`: latency of `get` on one thread while the janitor sweeps a
//! cache of which half has expired, `Cache` against `SingleLockCache`.
//!
//! Half the keys (the even ones) are inserted with a short TTL, the other
//! half never expire. Once the short ones have expired, one reader thread
//! looks up live keys at a fixed rate (one `get` every [`PACE`]) for the
//! measurement window, while the janitor, which sweeps every `window / 3`,
//! removes the expired half. `SingleLockCache`'s janitor takes the write
//! lock of the whole map for a sweep, and keeps doing so on every interval
//! even once nothing is left to remove; `Cache`'s locks one shard per step.
//!
//! Two latencies are recorded for each `get` (with `hdrhistogram`): the
//! service time, from the call to its return, and the response time, from
//! the moment the `get` was scheduled to its return. A reader blocked for
//! 10 ms shows once in the service times, but in the response times of all
//! the `get`s that were due while it was blocked, as a server's callers
//! would see it (no coordinated omission).
//!
//! Before that, the footprint of the janitor itself: [`CACHES`] caches of
//! each kind are built with a cleanup interval, and the process's threads
//! and virtual and resident memory (`/proc/self/status`, Linux only) are
//! read before, with them, and after they are dropped. One janitor thread
//! serves every cache of the process, so the caches add one thread.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};
use shardcache::baseline::SingleLockCache;
use shardcache::Cache;

use crate::latency::{histogram, nanos, show, QUANTILES};
use crate::support::subjects::hasher;
use crate::support::workload::SEED;

/// How often the reader issues a `get`.
pub const PACE: Duration = Duration::from_micros(1);

/// TTL of the expiring half.
const SHORT_TTL: Duration = Duration::from_millis(100);

/// Live keys the reader cycles through, drawn uniformly.
const READER_KEYS: usize = 1 << 16;

/// Caches with a cleanup interval built at once for the footprint.
pub const CACHES: usize = 2000;

/// The outcome for one cache.
#[derive(Debug)]
pub struct Report {
    pub subject: String,
    pub len_before: usize,
    pub len_after: usize,
    pub gets: u64,
    pub service: Histogram<u64>,
    pub response: Histogram<u64>,
    /// [`CACHES`] caches of this kind, each with a janitor (Linux only).
    pub footprint: Option<Footprint>,
}

/// The process's threads and memory before [`CACHES`] caches with a
/// cleanup interval were built, while they lived, and after they were
/// dropped.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub before: Process,
    pub with: Process,
    pub after: Process,
}

/// One reading of `/proc/self/status`.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pub threads: u64,
    /// `VmSize`: virtual memory, in KiB.
    pub virtual_kib: u64,
    /// `VmRSS`: resident memory, in KiB.
    pub resident_kib: u64,
}

impl Process {
    /// Reads the calling process's status; `None` off Linux.
    fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        Some(Self {
            threads: field("Threads:")?,
            virtual_kib: field("VmSize:")?,
            resident_kib: field("VmRSS:")?,
        })
    }
}

/// Builds [`CACHES`] caches with `build`, reads the process, drops them.
fn footprint<C>(build: impl Fn() -> C) -> Option<Footprint> {
    let before = Process::read()?;
    let caches: Vec<C> = (0..CACHES).map(|_| build()).collect();
    let with = Process::read()?;
    drop(caches);
    let after = Process::read()?;
    Some(Footprint {
        before,
        with,
        after,
    })
}

/// What the measurement needs from a cache; closures keep it monomorphic.
struct Target<G, I, L> {
    get: G,
    insert_with_ttl: I,
    len: L,
}

/// Runs the measurement on `Cache` and on `SingleLockCache`, each holding
/// `entries` entries, for `window` each.
pub fn run(entries: usize, window: Duration) -> Vec<Report> {
    let interval = window / 3;
    eprintln!("janitor: {CACHES} caches of each kind with a cleanup interval");
    let cache_footprint = footprint(|| {
        Cache::<u64, u64, _>::builder()
            .hasher(hasher())
            .cleanup_interval(Duration::from_secs(60))
            .build()
    });
    let single_footprint = footprint(|| {
        SingleLockCache::<u64, u64>::builder()
            .hasher(hasher())
            .cleanup_interval(Duration::from_secs(60))
            .build()
    });
    let cache = Cache::builder()
        .hasher(hasher())
        .cleanup_interval(interval)
        .build();
    let subject = format!("Cache ({} shards)", cache.shard_count());
    let target = Target {
        get: |k| cache.get(&k),
        insert_with_ttl: |k, v, ttl| cache.insert_with_ttl(k, v, ttl),
        len: || cache.len(),
    };
    let mut sharded = measure(subject, &target, entries, window);
    sharded.footprint = cache_footprint;
    drop(cache);

    let single = SingleLockCache::builder()
        .hasher(hasher())
        .cleanup_interval(interval)
        .build();
    let target = Target {
        get: |k| single.get(&k),
        insert_with_ttl: |k, v, ttl| single.insert_with_ttl(k, v, ttl),
        len: || single.len(),
    };
    let mut baseline = measure("SingleLockCache".to_owned(), &target, entries, window);
    baseline.footprint = single_footprint;
    vec![sharded, baseline]
}

fn measure<G, I, L>(
    subject: String,
    target: &Target<G, I, L>,
    entries: usize,
    window: Duration,
) -> Report
where
    G: Fn(u64) -> Option<u64>,
    I: Fn(u64, u64, Duration),
    L: Fn() -> usize,
{
    eprintln!("janitor: filling {subject} with {entries} entries, half of them expiring");
    for key in 0..entries as u64 {
        let ttl = if key % 2 == 0 {
            SHORT_TTL
        } else {
            Duration::ZERO
        };
        (target.insert_with_ttl)(key, key, ttl);
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let live = (entries / 2).max(1) as u64;
    let keys: Vec<u64> = (0..READER_KEYS)
        .map(|_| 2 * rng.random_range(0..live) + 1)
        .collect();
    // Let the short TTL run out (plus a tick of the coarse clock).
    std::thread::sleep(SHORT_TTL + Duration::from_millis(5));

    let len_before = (target.len)();
    eprintln!("janitor: measuring {subject} for {window:?}");
    let mut service = histogram();
    let mut response = histogram();
    let start = Instant::now();
    let mut due = start;
    let mut gets = 0;
    for &key in keys.iter().cycle() {
        due += PACE;
        let mut begin = Instant::now();
        while begin < due {
            std::hint::spin_loop();
            begin = Instant::now();
        }
        let found = (target.get)(key);
        let end = Instant::now();
        assert!(found.is_some(), "live key {key} missing from {subject}");
        service.saturating_record(nanos(end - begin));
        response.saturating_record(nanos(end - due));
        gets += 1;
        if end - start >= window {
            break;
        }
    }
    Report {
        subject,
        len_before,
        len_after: (target.len)(),
        gets,
        service,
        response,
        footprint: None,
    }
}

/// Prints the table.
pub fn print(reports: &[Report], window: Duration) {
    println!();
    println!(
        "get latency while the janitor sweeps (sweep every {:.0} ms, one get every {PACE:?} for {:.1} s)",
        (window / 3).as_secs_f64() * 1e3,
        window.as_secs_f64()
    );
    println!(
        "{:<20} {:>19} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "subject", "entries before/after", "gets", "latency", "p50", "p99", "p99.9", "max"
    );
    for r in reports {
        for (kind, histogram) in [("service", &r.service), ("response", &r.response)] {
            let quantiles: String = QUANTILES
                .iter()
                .map(|&(_, q)| format!(" {:>10}", show(histogram.value_at_quantile(q))))
                .collect();
            let (subject, sizes, gets) = if kind == "service" {
                let sizes = format!("{}/{}", r.len_before, r.len_after);
                (r.subject.as_str(), sizes, r.gets.to_string())
            } else {
                ("", String::new(), String::new())
            };
            println!(
                "{subject:<20} {sizes:>19} {gets:>10} {kind:>9}{quantiles} {:>10}",
                show(histogram.max())
            );
        }
    }
    if reports.iter().all(|r| r.footprint.is_none()) {
        return;
    }
    println!();
    println!("{CACHES} caches with a cleanup interval (60 s): the process before, with them, after dropping them");
    println!(
        "{:<20} {:>22} {:>28} {:>28}",
        "subject", "threads", "virtual MiB", "resident MiB"
    );
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    for r in reports {
        let Some(f) = r.footprint else { continue };
        let [b, w, a] = [f.before, f.with, f.after];
        println!(
            "{:<20} {:>22} {:>28} {:>28}",
            r.subject,
            format!("{} / {} / {}", b.threads, w.threads, a.threads),
            format!(
                "{} / {} / {}",
                mib(b.virtual_kib),
                mib(w.virtual_kib),
                mib(a.virtual_kib)
            ),
            format!(
                "{} / {} / {}",
                mib(b.resident_kib),
                mib(w.resident_kib),
                mib(a.resident_kib)
            ),
        );
    }
}

pub fn to_json(reports: &[Report], window: Duration) -> Json {
    let latency = |h: &Histogram<u64>| {
        let mut fields: serde_json::Map<String, Json> = QUANTILES
            .iter()
            .map(|&(name, q)| (format!("{name}_ns"), json!(h.value_at_quantile(q))))
            .collect();
        fields.insert("max_ns".to_owned(), json!(h.max()));
        fields.insert("mean_ns".to_owned(), json!(h.mean()));
        fields
    };
    let rows: Vec<Json> = reports
        .iter()
        .map(|r| {
            json!({
                "subject": r.subject,
                "entries_before": r.len_before,
                "entries_after": r.len_after,
                "gets": r.gets,
                "service": latency(&r.service),
                "response": latency(&r.response),
                "footprint": r.footprint.map(|f| {
                    let process = |p: Process| json!({
                        "threads": p.threads,
                        "virtual_kib": p.virtual_kib,
                        "resident_kib": p.resident_kib,
                    });
                    json!({
                        "caches": CACHES,
                        "before": process(f.before),
                        "with": process(f.with),
                        "after": process(f.after),
                    })
                }),
            })
        })
        .collect();
    json!({
        "window_ms": window.as_secs_f64() * 1e3,
        "cleanup_interval_ms": (window / 3).as_secs_f64() * 1e3,
        "pace_ns": nanos(PACE),
        "short_ttl_ms": SHORT_TTL.as_secs_f64() * 1e3,
        "reports": rows,
    })
}
