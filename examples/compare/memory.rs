//! `--memory`: heap bytes per entry of each subject holding `keys`
//! `u64 -> u64` entries, counted by `allocation_counter`'s global allocator
//! (final: still allocated with the map full; peak: the most allocated at
//! any moment while filling it, table growth included).
//!
//! The counter counts the allocations of the measuring thread only; every
//! subject is built and filled on that thread and none of them moves its
//! allocations to a thread of its own.

use serde_json::{json, Value as Json};

use crate::support::subjects::Subject;
use crate::targets::Outcome;

/// What one subject holds.
#[derive(Debug)]
pub struct Footprint {
    pub subject: Subject,
    pub keys: usize,
    pub final_bytes: i64,
    pub peak_bytes: u64,
}

impl Footprint {
    pub fn final_per_entry(&self) -> f64 {
        self.final_bytes as f64 / self.keys as f64
    }

    pub fn peak_per_entry(&self) -> f64 {
        self.peak_bytes as f64 / self.keys as f64
    }
}

/// Builds and fills each subject in turn, dropping it before the next.
pub fn run(subjects: &[Subject], keys: usize) -> Vec<Footprint> {
    subjects
        .iter()
        .map(|&subject| {
            eprintln!("memory: filling {subject} with {keys} entries");
            let mut full = None;
            let info = allocation_counter::measure(|| {
                let map = subject.build::<u64>(keys);
                let missing = map.prefill(keys);
                assert_eq!(missing, 0, "{subject} lost {missing} keys while filling");
                full = Some(map);
            });
            drop(full);
            Footprint {
                subject,
                keys,
                final_bytes: info.bytes_current,
                peak_bytes: info.bytes_max,
            }
        })
        .collect()
}

fn per_entry_of(footprints: &[Footprint], subject: Subject) -> Option<f64> {
    footprints
        .iter()
        .find(|f| f.subject == subject)
        .map(Footprint::final_per_entry)
}

/// The memory target: `Cache`'s final bytes per entry at most 1.5x
/// dashmap's.
pub fn target(footprints: &[Footprint]) -> Outcome {
    let ratio = per_entry_of(footprints, Subject::Cache)
        .zip(per_entry_of(footprints, Subject::DashMap))
        .map(|(cache, dashmap)| cache / dashmap);
    let keys = footprints.first().map_or(0, |f| f.keys);
    Outcome {
        target: format!("bytes/entry at {keys} entries: Cache <= 1.5x dashmap"),
        need: "<= 1.50x".to_owned(),
        cells: usize::from(ratio.is_some()),
        met_cells: usize::from(ratio.is_some_and(|r| r <= 1.5)),
        worst: ratio.map(|r| (r, "final bytes, Cache / dashmap".to_owned())),
    }
}

/// Prints the table.
pub fn print(footprints: &[Footprint]) {
    let dashmap = per_entry_of(footprints, Subject::DashMap);
    println!();
    println!(
        "heap bytes per entry, u64 -> u64, {} entries",
        footprints.first().map_or(0, |f| f.keys)
    );
    println!(
        "{:<18} {:>12} {:>12} {:>14}",
        "subject", "final B/entry", "peak B/entry", "final/dashmap"
    );
    for f in footprints {
        let vs_dashmap = dashmap.map_or("-".to_owned(), |d| {
            format!("{:.2}x", f.final_per_entry() / d)
        });
        println!(
            "{:<18} {:>13.1} {:>12.1} {:>14}",
            f.subject.to_string(),
            f.final_per_entry(),
            f.peak_per_entry(),
            vs_dashmap
        );
    }
}

pub fn to_json(footprints: &[Footprint]) -> Json {
    let rows: Vec<Json> = footprints
        .iter()
        .map(|f| {
            json!({
                "subject": f.subject.to_string(),
                "entries": f.keys,
                "final_bytes": f.final_bytes,
                "peak_bytes": f.peak_bytes,
                "final_bytes_per_entry": f.final_per_entry(),
                "peak_bytes_per_entry": f.peak_per_entry(),
            })
        })
        .collect();
    json!({ "footprints": rows, "target": target(footprints).to_json() })
}
