//! The performance targets of the harness's issue, checked against one run.
//!
//! Every throughput target has the same form: in every cell of a set (a
//! workload at a thread count), the median of `Cache` (or of one of its
//! bounded builds) divided by the best median of a set of other subjects
//! must reach a threshold. The report gives the
//! worst cell, so a target is met exactly when its worst ratio is.

use serde_json::{json, Value as Json};

use crate::support::subjects::Subject;
use crate::support::workload::{ValueType, Workload};
use crate::throughput::Results;

/// One target, evaluated.
#[derive(Debug)]
pub struct Outcome {
    pub target: String,
    /// The bound, as printed: `>= 2.00x`.
    pub need: String,
    /// Cells measured and cells that reach the threshold.
    pub cells: usize,
    pub met_cells: usize,
    /// The lowest ratio, and where it was measured.
    pub worst: Option<(f64, String)>,
}

impl Outcome {
    pub fn met(&self) -> bool {
        self.cells > 0 && self.met_cells == self.cells
    }

    fn verdict(&self) -> &'static str {
        match (self.cells, self.met()) {
            (0, _) => "not measured",
            (_, true) => "met",
            (_, false) => "MISSED",
        }
    }

    /// One line, the target in a column `width` wide.
    fn print(&self, width: usize) {
        let worst = self.worst.as_ref().map_or("-".to_owned(), |(ratio, cell)| {
            format!("{ratio:.2}x ({cell})")
        });
        println!(
            "{:<width$} {:>8} {:>5}/{:<3} {:<12} {}",
            self.target,
            self.need,
            self.met_cells,
            self.cells,
            self.verdict(),
            worst
        );
    }

    pub fn to_json(&self) -> Json {
        json!({
            "target": self.target,
            "need": self.need,
            "cells": self.cells,
            "met_cells": self.met_cells,
            "met": self.met(),
            "worst_ratio": self.worst.as_ref().map(|w| w.0),
            "worst_cell": self.worst.as_ref().map(|w| w.1.clone()),
        })
    }
}

/// `subject` over the best of `others`, in every cell of `workloads` x
/// `threads` where all of them were measured.
fn evaluate(
    results: &Results,
    target: String,
    threshold: f64,
    subject: Subject,
    others: &[Subject],
    workloads: &[Workload],
    threads: &[usize],
) -> Outcome {
    let mut outcome = Outcome {
        target,
        need: format!(">= {threshold:.2}x"),
        cells: 0,
        met_cells: 0,
        worst: None,
    };
    for &workload in workloads {
        for &t in threads {
            let Some(mine) = results.median(workload, subject, t) else {
                continue;
            };
            let best = others
                .iter()
                .filter_map(|&o| Some((results.median(workload, o, t)?, o)))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let Some((theirs, best_subject)) = best else {
                continue;
            };
            let ratio = mine / theirs;
            outcome.cells += 1;
            if ratio >= threshold {
                outcome.met_cells += 1;
            }
            if outcome.worst.as_ref().is_none_or(|(w, _)| ratio < *w) {
                let cell = format!("{}, {t} thr, vs {best_subject}", workload.name());
                outcome.worst = Some((ratio, cell));
            }
        }
    }
    outcome
}

/// Every throughput target, on the `u64 -> u64` workloads of the run, at 2
/// and 4 threads (1 thread for the last one).
pub fn evaluate_all(results: &Results) -> Vec<Outcome> {
    // The targets are stated on the `u64 -> u64` workloads.
    let main: Vec<Workload> = results
        .plan
        .workloads
        .iter()
        .copied()
        .filter(|w| w.value_type() == ValueType::U64)
        .collect();
    let by_reads = |percents: &[u32]| -> Vec<Workload> {
        main.iter()
            .copied()
            .filter(|w| percents.contains(&w.read_percent()))
            .collect()
    };
    let read_heavy = by_reads(&[100, 95]);
    let contended = [2, 4];
    vec![
        evaluate(
            results,
            "Cache >= 2.0x SingleLockCache, RwLock<HashMap>, Mutex<HashMap>".into(),
            2.0,
            Subject::Cache,
            &Subject::SINGLE_LOCKS,
            &main,
            &contended,
        ),
        evaluate(
            results,
            "Cache >= 1.5x dashmap at 100% and 95% reads".into(),
            1.5,
            Subject::Cache,
            &[Subject::DashMap],
            &read_heavy,
            &contended,
        ),
        evaluate(
            results,
            "Cache >= 1.2x dashmap at 50% reads".into(),
            1.2,
            Subject::Cache,
            &[Subject::DashMap],
            &by_reads(&[50]),
            &contended,
        ),
        evaluate(
            results,
            "Cache >= the best peer in every cell".into(),
            1.0,
            Subject::Cache,
            &Subject::PEERS,
            &main,
            &contended,
        ),
        evaluate(
            results,
            "Cache+TTL >= 0.85x Cache".into(),
            0.85,
            Subject::CacheTtl,
            &[Subject::Cache],
            &main,
            &contended,
        ),
        evaluate(
            results,
            "at 1 thread, Cache >= 0.9x RwLock<HashMap>".into(),
            0.9,
            Subject::Cache,
            &[Subject::RwLockHashMap],
            &main,
            &[1],
        ),
        evaluate(
            results,
            "Cache-bounded-half >= 1.5x quick_cache-half at 100% and 95% reads".into(),
            1.5,
            Subject::CacheBoundedHalf,
            &[Subject::QuickCacheHalf],
            &read_heavy,
            &contended,
        ),
        evaluate(
            results,
            "Cache-bounded-half >= 10x moka-half at 100% and 95% reads".into(),
            10.0,
            Subject::CacheBoundedHalf,
            &[Subject::MokaHalf],
            &read_heavy,
            &contended,
        ),
        evaluate(
            results,
            "Cache-bounded-full >= 0.9x Cache at 100% and 95% reads".into(),
            0.9,
            Subject::CacheBoundedFull,
            &[Subject::Cache],
            &read_heavy,
            &contended,
        ),
    ]
}

/// Prints the outcomes under `heading`.
pub fn print(heading: &str, outcomes: &[Outcome]) {
    let width = outcomes.iter().map(|o| o.target.len()).max().unwrap_or(0);
    println!();
    println!("{heading}");
    println!(
        "{:<width$} {:>8} {:>9} {:<12} worst ratio (cell)",
        "target", "need", "cells", "verdict"
    );
    for outcome in outcomes {
        outcome.print(width);
    }
}
