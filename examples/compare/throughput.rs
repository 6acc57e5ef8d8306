//! The throughput matrix: subjects x workloads x thread counts, subjects
//! interleaved within each repetition, medians of the repetitions.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::support::run::{Measure, Sample, Until};
use crate::support::subjects::Subject;
use crate::support::workload::{Streams, Value, ValueType, Workload};

/// Width of the subject column of the tables.
const LABEL: usize = 20;

/// What to measure.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workloads: Vec<Workload>,
    pub subjects: Vec<Subject>,
    pub threads: Vec<usize>,
    pub keys: usize,
    pub window: Duration,
    pub reps: usize,
    /// Passes over the key space of the read-through subjects' streams
    /// (see `READ_THROUGH_PASSES`).
    pub read_through_passes: usize,
    /// Whether each read-through subject runs one untimed window before
    /// the repetitions of each thread count.
    pub warm_up: bool,
}

/// One timed window of one subject.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub workload: Workload,
    pub subject: Subject,
    pub threads: usize,
    pub rep: usize,
    pub sample: Sample,
}

/// Every measurement of one run of a [`Plan`].
#[derive(Debug)]
pub struct Results {
    pub plan: Plan,
    pub measurements: Vec<Measurement>,
}

/// Runs the plan: for each workload, builds and prefills every subject
/// once, then for each thread count warms the read-through subjects up
/// with one untimed window (if the plan says so) and runs `reps` rounds;
/// each round measures every subject once, starting from a different
/// subject each round, so slow moments of a noisy machine hit every
/// subject alike.
pub fn run(plan: Plan) -> Results {
    let started = Instant::now();
    let mut measurements = Vec::new();
    let cells = plan.workloads.len() * plan.threads.len();
    let mut cell = 0;
    // On a terminal, one line rewritten in place; in a log, one line each.
    let (rewind, end) = if std::io::stderr().is_terminal() {
        ("\r", "")
    } else {
        ("", "\n")
    };
    for &workload in &plan.workloads {
        let mut progress = |threads: usize| {
            cell += 1;
            eprint!(
                "{rewind}[{cell:>3}/{cells}] {:<20} {threads:>2} threads  ({:.0} s elapsed)  {end}",
                workload.name(),
                started.elapsed().as_secs_f64()
            );
            // Progress only; a closed stderr is not worth failing for.
            let _ = std::io::stderr().flush();
        };
        let workload_measurements = match workload.value_type() {
            ValueType::U64 => run_workload::<u64>(&plan, workload, &mut progress),
            ValueType::ArcStr => run_workload::<Arc<str>>(&plan, workload, &mut progress),
        };
        measurements.extend(workload_measurements);
    }
    eprintln!(
        "{rewind}measured {} windows in {:.1} s{:30}",
        measurements.len(),
        started.elapsed().as_secs_f64(),
        ""
    );
    Results { plan, measurements }
}

fn run_workload<V: Value>(
    plan: &Plan,
    workload: Workload,
    progress: &mut dyn FnMut(usize),
) -> Vec<Measurement> {
    let maps: Vec<(Subject, Box<dyn Measure<V>>)> = plan
        .subjects
        .iter()
        .map(|&subject| (subject, subject.prefilled::<V>(plan.keys).0))
        .collect();
    let any_read_through = plan.subjects.iter().any(|s| s.read_through());
    let passes = any_read_through.then_some(plan.read_through_passes);
    let streams = Streams::<V>::new(workload, plan.keys, &plan.threads, passes);
    let mut measurements = Vec::new();
    for &threads in &plan.threads {
        progress(threads);
        // Each subject continues its streams from where its last window
        // stopped, so a slow subject does not replay the same first
        // operations in every window.
        let mut cursors = vec![vec![0; threads]; maps.len()];
        // What a read-through subject holds depends on the gets it has
        // seen: the prefill leaves it the first keys, not the hot keys of
        // this workload. One window of the workload, untimed, lets it
        // settle first.
        for ((subject, map), cursors) in maps.iter().zip(&mut cursors) {
            if plan.warm_up && subject.read_through() {
                let streams = streams.of(threads, true);
                map.run(&streams, Until::Elapsed(plan.window), cursors);
            }
        }
        for rep in 0..plan.reps {
            let first = rep % maps.len();
            for index in (first..maps.len()).chain(0..first) {
                let (subject, map) = &maps[index];
                let streams = streams.of(threads, subject.read_through());
                let sample = map.run(&streams, Until::Elapsed(plan.window), &mut cursors[index]);
                measurements.push(Measurement {
                    workload,
                    subject: *subject,
                    threads,
                    rep,
                    sample,
                });
            }
        }
    }
    measurements
}

impl Results {
    /// Median Mops/s of one cell over its repetitions.
    pub fn median(&self, workload: Workload, subject: Subject, threads: usize) -> Option<f64> {
        let mops = self
            .measurements
            .iter()
            .filter(|m| m.workload == workload && m.subject == subject && m.threads == threads)
            .map(|m| m.sample.mops())
            .collect();
        median(mops)
    }

    /// Median hit ratio of one cell of a read-through subject.
    pub fn hit_ratio(&self, workload: Workload, subject: Subject, threads: usize) -> Option<f64> {
        let ratios = self
            .measurements
            .iter()
            .filter(|m| m.workload == workload && m.subject == subject && m.threads == threads)
            .filter_map(|m| m.sample.hit_ratio())
            .collect();
        median(ratios)
    }

    /// The median share of the CPU the threads were given in one column,
    /// over every subject and repetition: CPU time / (wall time x the
    /// threads that fit on the machine's cores).
    pub fn cpu_share(&self, workload: Workload, threads: usize) -> Option<f64> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = threads.min(cores) as f64;
        let shares: Vec<f64> = self
            .measurements
            .iter()
            .filter(|m| m.workload == workload && m.threads == threads)
            .filter_map(|m| Some(m.sample.cpu?.as_secs_f64() / m.sample.elapsed.as_secs_f64()))
            .map(|busy| busy / wanted)
            .collect();
        median(shares)
    }

    /// `subject`'s median over `reference`'s in one cell.
    pub fn ratio(
        &self,
        workload: Workload,
        subject: Subject,
        reference: Subject,
        threads: usize,
    ) -> Option<f64> {
        Some(self.median(workload, subject, threads)? / self.median(workload, reference, threads)?)
    }

    /// Prints one table per workload: Mops/s per subject and thread count,
    /// and the ratio to each of `references` that was measured.
    pub fn print_tables(&self, references: &[Subject]) {
        let references: Vec<Subject> = references
            .iter()
            .copied()
            .filter(|r| self.plan.subjects.contains(r))
            .collect();
        let cell_width = 9 + 7 * references.len();
        for &workload in &self.plan.workloads {
            println!();
            println!(
                "{} ({}, {} keys): median Mops/s of {} x {} ms{}",
                workload.name(),
                workload.describe(),
                self.plan.keys,
                self.plan.reps,
                self.plan.window.as_millis(),
                references
                    .iter()
                    .map(|r| format!(", x{r}"))
                    .collect::<String>()
            );
            print!("{:<LABEL$}", "subject");
            for threads in &self.plan.threads {
                let heading = format!("{threads} thr");
                print!("{heading:>cell_width$}");
            }
            println!();
            for &subject in &self.plan.subjects {
                print!("{:<LABEL$}", subject.to_string());
                for &threads in &self.plan.threads {
                    let mops = self.median(workload, subject, threads).unwrap_or(f64::NAN);
                    let mut cell = format!("{mops:.2}");
                    for &reference in &references {
                        match self.ratio(workload, subject, reference, threads) {
                            Some(ratio) => cell.push_str(&format!(" {ratio:>5.2}x")),
                            None => cell.push_str("      -"),
                        }
                    }
                    print!("{cell:>cell_width$}");
                }
                println!();
            }
            print!("{:<LABEL$}", "(CPU share)");
            for &threads in &self.plan.threads {
                let share = self.cpu_share(workload, threads);
                let cell = share.map_or("-".to_owned(), |s| format!("{:.0}%", s * 100.0));
                print!("{cell:>cell_width$}");
            }
            println!();
            let read_through: Vec<Subject> = self
                .plan
                .subjects
                .iter()
                .copied()
                .filter(|s| s.read_through())
                .collect();
            if !read_through.is_empty() {
                println!("hit ratio of the read-through subjects (a miss inserts the key):");
            }
            for subject in read_through {
                print!("{:<LABEL$}", subject.to_string());
                for &threads in &self.plan.threads {
                    let hits = self.hit_ratio(workload, subject, threads);
                    let cell = hits.map_or("-".to_owned(), |h| format!("{:.1}%", h * 100.0));
                    print!("{cell:>cell_width$}");
                }
                println!();
            }
        }
    }

    /// Every measurement and every median, for the JSON file.
    pub fn to_json(&self, references: &[Subject]) -> Json {
        let plan = &self.plan;
        let measurements: Vec<Json> = self
            .measurements
            .iter()
            .map(|m| {
                json!({
                    "workload": m.workload.name(),
                    "subject": m.subject.to_string(),
                    "threads": m.threads,
                    "rep": m.rep,
                    "ops": m.sample.ops,
                    "seconds": m.sample.elapsed.as_secs_f64(),
                    "cpu_seconds": m.sample.cpu.map(|c| c.as_secs_f64()),
                    "mops": m.sample.mops(),
                    "reads": m.sample.reads,
                    "misses": m.sample.misses,
                })
            })
            .collect();
        let mut medians = Vec::new();
        for &workload in &plan.workloads {
            for &subject in &plan.subjects {
                for &threads in &plan.threads {
                    let ratios: serde_json::Map<String, Json> = references
                        .iter()
                        .filter_map(|&r| {
                            let ratio = self.ratio(workload, subject, r, threads)?;
                            Some((format!("vs {r}"), json!(ratio)))
                        })
                        .collect();
                    medians.push(json!({
                        "workload": workload.name(),
                        "subject": subject.to_string(),
                        "threads": threads,
                        "mops": self.median(workload, subject, threads),
                        "hit_ratio": self.hit_ratio(workload, subject, threads),
                        "ratios": ratios,
                    }));
                }
            }
        }
        json!({
            "machine": {
                "available_parallelism": std::thread::available_parallelism().map_or(1, |n| n.get()),
                "os": std::env::consts::OS,
                "arch": std::env::consts::ARCH,
            },
            "plan": {
                "workloads": plan.workloads.iter().map(|w| w.name()).collect::<Vec<_>>(),
                "subjects": plan.subjects.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "threads": plan.threads,
                "keys": plan.keys,
                "window_ms": plan.window.as_secs_f64() * 1e3,
                "reps": plan.reps,
                "read_through_passes": plan.read_through_passes,
                "warm_up": plan.warm_up,
                "capacities": plan
                    .subjects
                    .iter()
                    .filter_map(|s| Some((s.to_string(), json!(s.capacity(plan.keys)?))))
                    .collect::<serde_json::Map<String, Json>>(),
                "read_through": plan
                    .subjects
                    .iter()
                    .filter(|s| s.read_through())
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            },
            "medians": medians,
            "measurements": measurements,
        })
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}
