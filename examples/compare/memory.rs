//! `--memory`: heap bytes per entry of each subject after `keys` `u64 ->
//! u64` entries are inserted, counted by `allocation_counter`'s global
//! allocator (final: still allocated with the map full; peak: the most
//! allocated at any moment while filling it, table growth included). Bytes
//! are divided by the entries the subject holds at the end: all `keys` but
//! in the bounded caches at exactly `keys` (`Cache-bounded-exact`,
//! `quick_cache-exact`), which split their capacity over shards and so
//! evict the excess of the fullest ones.
//!
//! A subject that evicts (a read-through one, [`Subject::read_through`]) is
//! then churned: read-through on `churn` times its capacity of keys it has
//! never seen, so every `get` misses and every `insert` evicts, and its
//! bytes per entry are counted again (after churn). A cache lives in that
//! steady state, not just after its prefill: an index that fills with
//! tombstones, and grows to make room, shows there.
//!
//! The counter counts the allocations of the measuring thread only; every
//! subject is built and filled on that thread and none of them moves its
//! allocations to a thread of its own.

use serde_json::{json, Value as Json};
use shardcache::Cache;

use crate::support::subjects::Subject;
use crate::targets::Outcome;

/// What one subject holds.
#[derive(Debug)]
pub struct Footprint {
    pub subject: Subject,
    /// Entries inserted.
    pub keys: usize,
    /// Entries held at the end.
    pub entries: usize,
    pub final_bytes: i64,
    pub peak_bytes: u64,
    /// After the churn, for a subject that evicts.
    pub churned: Option<Churned>,
}

/// What an evicting subject holds after its churn.
#[derive(Debug)]
pub struct Churned {
    /// Keys read through (each one a miss and an evicting insert).
    pub keys: u64,
    /// Entries held at the end.
    pub entries: usize,
    /// Heap bytes still allocated at the end (the prefill's included).
    pub final_bytes: i64,
    /// The most heap bytes allocated at any moment of the churn.
    pub peak_bytes: i64,
}

impl Churned {
    pub fn final_per_entry(&self) -> f64 {
        self.final_bytes as f64 / self.entries as f64
    }

    pub fn peak_per_entry(&self) -> f64 {
        self.peak_bytes as f64 / self.entries as f64
    }
}

impl Footprint {
    pub fn final_per_entry(&self) -> f64 {
        self.final_bytes as f64 / self.entries as f64
    }

    pub fn peak_per_entry(&self) -> f64 {
        self.peak_bytes as f64 / self.entries as f64
    }
}

/// Builds and fills each subject in turn, churns those that evict with
/// `churn` times their capacity of new keys, and drops each before the
/// next.
pub fn run(subjects: &[Subject], keys: usize, churn: u64) -> Vec<Footprint> {
    subjects
        .iter()
        .map(|&subject| {
            eprintln!("memory: filling {subject} with {keys} entries");
            let mut full = None;
            let info = allocation_counter::measure(|| {
                full = Some(subject.prefilled::<u64>(keys));
            });
            let (map, entries) = full.expect("the prefill ran");
            let churned = subject
                .capacity(keys)
                .filter(|_| subject.read_through() && churn > 0)
                .map(|capacity| {
                    let n = churn * capacity as u64;
                    eprintln!("memory: churning {subject} with {n} new keys");
                    let mut held = 0;
                    let during = allocation_counter::measure(|| held = map.churn(n));
                    Churned {
                        keys: n,
                        entries: held,
                        final_bytes: info.bytes_current + during.bytes_current,
                        peak_bytes: info.bytes_current
                            + i64::try_from(during.bytes_max).unwrap_or(i64::MAX),
                    }
                });
            drop(map);
            Footprint {
                subject,
                keys,
                entries,
                final_bytes: info.bytes_current,
                peak_bytes: info.bytes_max,
                churned,
            }
        })
        .collect()
}

/// Heap bytes of an empty `Cache<u64, u64>`: the default build on this
/// machine, and the default build of a 128-core machine (1024 shards, 16
/// reader stripes, through the hidden `__stripes` knob).
pub fn empty() -> Vec<(String, i64)> {
    let measure = |label: String, build: &dyn Fn() -> Cache<u64, u64>| {
        let mut cache = None;
        let info = allocation_counter::measure(|| cache = Some(build()));
        drop(cache);
        (label, info.bytes_current)
    };
    let here = Cache::<u64, u64>::new().shard_count();
    vec![
        measure(format!("this machine ({here} shards)"), &|| Cache::new()),
        measure("128 cores (1024 shards, 16 stripes)".to_owned(), &|| {
            Cache::builder().shards(1024).__stripes(16).build()
        }),
    ]
}

/// The footprint target: an empty default cache of a 128-core
/// machine in at most 32 KiB.
pub fn empty_target(empty: &[(String, i64)]) -> Outcome {
    const BOUND: i64 = 32 * 1024;
    let many = empty.iter().find(|(label, _)| label.starts_with("128"));
    Outcome {
        target: "empty Cache on 128 cores <= 32 KiB".to_owned(),
        need: "<= 32768 B".to_owned(),
        cells: usize::from(many.is_some()),
        met_cells: usize::from(many.is_some_and(|(_, bytes)| *bytes <= BOUND)),
        worst: many.map(|(_, bytes)| (*bytes as f64 / BOUND as f64, "bytes / 32 KiB".to_owned())),
    }
}

/// Prints the empty footprints.
pub fn print_empty(empty: &[(String, i64)]) {
    println!();
    println!("heap bytes of an empty Cache<u64, u64>");
    for (label, bytes) in empty {
        println!("{label:<40} {bytes:>9} B");
    }
}

fn per_entry_of(footprints: &[Footprint], subject: Subject) -> Option<f64> {
    footprints
        .iter()
        .find(|f| f.subject == subject)
        .map(Footprint::final_per_entry)
}

fn churned_per_entry_of(footprints: &[Footprint], subject: Subject) -> Option<f64> {
    footprints
        .iter()
        .find(|f| f.subject == subject)
        .and_then(|f| f.churned.as_ref())
        .map(Churned::final_per_entry)
}

/// `mine` over `theirs` (bytes per entry of `subject` and `reference`,
/// read by `per_entry`), which must be at most `bound`.
fn ratio_target(
    footprints: &[Footprint],
    (subject, reference): (Subject, Subject),
    bound: f64,
    when: &str,
    per_entry: fn(&[Footprint], Subject) -> Option<f64>,
) -> Outcome {
    let ratio = per_entry(footprints, subject)
        .zip(per_entry(footprints, reference))
        .map(|(mine, theirs)| mine / theirs);
    let keys = footprints.first().map_or(0, |f| f.keys);
    Outcome {
        target: format!("bytes/entry {when} {keys} entries: {subject} <= {bound:.1}x {reference}"),
        need: format!("<= {bound:.2}x"),
        cells: usize::from(ratio.is_some()),
        met_cells: usize::from(ratio.is_some_and(|r| r <= bound)),
        worst: ratio.map(|r| (r, format!("bytes, {subject} / {reference}"))),
    }
}

/// The memory targets: `Cache`'s final bytes per entry at most 1.5x
/// dashmap's, and the bounded `Cache`'s at most quick_cache's at the same
/// capacity, after the prefill and after the churn.
pub fn targets(footprints: &[Footprint]) -> Vec<Outcome> {
    let bounded = (Subject::CacheBoundedExact, Subject::QuickCacheExact);
    vec![
        ratio_target(
            footprints,
            (Subject::Cache, Subject::DashMap),
            1.5,
            "at",
            per_entry_of,
        ),
        ratio_target(footprints, bounded, 1.0, "at", per_entry_of),
        ratio_target(
            footprints,
            bounded,
            1.0,
            "after churn, at",
            churned_per_entry_of,
        ),
    ]
}

/// Prints the table: after the prefill, and after the churn for the
/// subjects that evict.
pub fn print(footprints: &[Footprint]) {
    let dashmap = per_entry_of(footprints, Subject::DashMap);
    println!();
    println!(
        "heap bytes per entry, u64 -> u64, {} entries",
        footprints.first().map_or(0, |f| f.keys)
    );
    println!(
        "{:<20} {:>9} {:>13} {:>12} {:>14} {:>9} {:>13} {:>12}",
        "subject",
        "entries",
        "final B/entry",
        "peak B/entry",
        "final/dashmap",
        "churned",
        "after churn",
        "churn peak"
    );
    for f in footprints {
        let vs_dashmap = dashmap.map_or("-".to_owned(), |d| {
            format!("{:.2}x", f.final_per_entry() / d)
        });
        let (churned, after, peak) = f.churned.as_ref().map_or_else(
            || ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            |c| {
                (
                    c.keys.to_string(),
                    format!("{:.1}", c.final_per_entry()),
                    format!("{:.1}", c.peak_per_entry()),
                )
            },
        );
        println!(
            "{:<20} {:>9} {:>13.1} {:>12.1} {:>14} {:>9} {:>13} {:>12}",
            f.subject.to_string(),
            f.entries,
            f.final_per_entry(),
            f.peak_per_entry(),
            vs_dashmap,
            churned,
            after,
            peak
        );
    }
}

pub fn to_json(footprints: &[Footprint], empty: &[(String, i64)]) -> Json {
    let rows: Vec<Json> = footprints
        .iter()
        .map(|f| {
            let churned = f.churned.as_ref().map(|c| {
                json!({
                    "keys": c.keys,
                    "entries": c.entries,
                    "final_bytes": c.final_bytes,
                    "peak_bytes": c.peak_bytes,
                    "final_bytes_per_entry": c.final_per_entry(),
                    "peak_bytes_per_entry": c.peak_per_entry(),
                })
            });
            json!({
                "subject": f.subject.to_string(),
                "inserted": f.keys,
                "entries": f.entries,
                "final_bytes": f.final_bytes,
                "peak_bytes": f.peak_bytes,
                "final_bytes_per_entry": f.final_per_entry(),
                "peak_bytes_per_entry": f.peak_per_entry(),
                "after_churn": churned,
            })
        })
        .collect();
    let mut targets: Vec<Json> = targets(footprints).iter().map(Outcome::to_json).collect();
    targets.push(empty_target(empty).to_json());
    let empty: Vec<Json> = empty
        .iter()
        .map(|(label, bytes)| json!({ "build": label, "bytes": bytes }))
        .collect();
    json!({ "footprints": rows, "empty": empty, "targets": targets })
}
