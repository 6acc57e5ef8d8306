//! `cargo run --release --example compare`: shardcache against its
//! single-lock baseline, two hand-written locked maps and five concurrent
//! map and cache crates, and its bounded builds against quick_cache and moka
//! at the same capacity, on this machine, in about two and a half minutes.
//!
//! See `docs/BENCHMARKS.md` for the method and for how to read the output;
//! `--help` for the flags.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

mod callgrind;
mod janitor;
mod latency;
mod memory;
mod plot;
mod targets;
mod throughput;
mod writers;

#[allow(dead_code)] // the criterion benches use the rest of the harness
#[path = "../../benches/support/mod.rs"]
mod support;

use support::subjects::{Subject, SHARD_SWEEP, STRIPE_SWEEP};
use support::workload::{
    self, Workload, DEFAULT_KEYS, READ_THROUGH_PASSES, SMOKE_READ_THROUGH_PASSES,
};
use throughput::Plan;

/// Keys (entries) of the `--memory` and `--janitor` modes unless `--keys`
/// or `--quick` say otherwise.
const LARGE_KEYS: usize = 1_000_000;

/// `--churn` unless given: enough misses for a bounded shard's index to
/// reach its steady state (see `memory.rs`).
const DEFAULT_CHURN: u64 = 16;

/// Compares the throughput of shardcache's `Cache` with its single-lock
/// baseline, `RwLock<HashMap>`, `Mutex<HashMap>`, dashmap, papaya, scc,
/// quick_cache and moka, and of the bounded `Cache` with quick_cache and
/// moka at half the key space.
///
/// By default it measures every subject on every workload at 1, 2, 4, ...
/// threads (up to twice the available parallelism, at most 32), each cell
/// for 15 short windows, subjects interleaved; then prints the
/// median Mops/s with each subject's ratio to SingleLockCache and to
/// RwLock<HashMap>, checks the performance targets, and writes
/// compare.json (every measurement) and compare.svg (the plot) under
/// --out. Every subject is prefilled with the whole key space; each thread
/// replays an operation stream generated before timing from a fixed seed.
/// The caches with room for half the keys are used read-through (a get
/// that misses inserts the key), on longer streams, and their hit ratio is
/// printed too.
///
/// --memory, --janitor, --callgrind, --writers, --shards and --stripes
/// select another mode instead.
#[derive(Debug, Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// Thread counts to measure, comma-separated.
    /// [default: 1,2,4,... up to 2 x available parallelism, at most 32;
    /// with --shards and --stripes: the highest of those]
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    threads: Option<Vec<usize>>,

    /// Measurement window of each repetition, e.g. 25ms or 2s; in --janitor
    /// mode, the window of each cache.
    /// [default: 25ms, --quick 15ms; --janitor 3s, with --quick 1s;
    /// --writers 1s, with --quick 200ms]
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    duration: Option<Duration>,

    /// Repetitions of each cell; tables show the median (--writers: the
    /// sum of the repetitions).
    /// [default: 15, --quick 1; --writers 3, with --quick 1]
    #[arg(long, value_name = "N")]
    reps: Option<usize>,

    /// Workloads to run, comma-separated. [default: all]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    workloads: Option<Vec<Workload>>,

    /// Subjects to measure, comma-separated (ignored by --shards, --stripes and
    /// --janitor).
    /// [default: all but the -exact ones; with --memory: all but the -full
    /// and -half ones]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    subjects: Option<Vec<Subject>>,

    /// Size of the key space every subject is prefilled with; in --memory
    /// and --janitor mode, the number of entries.
    /// [default: 100000; --memory and --janitor 1000000, with --quick 100000]
    #[arg(long, value_name = "N")]
    keys: Option<usize>,

    /// A smoke run for CI: short windows, one repetition, shorter streams
    /// and no warm-up for the read-through subjects, smaller caches in
    /// --memory and --janitor mode (well under 15 s each).
    #[arg(long)]
    quick: bool,

    /// Instead of throughput: heap bytes per entry of each subject at
    /// --keys u64 -> u64 entries (peak and final), counted by a counting
    /// global allocator; then the heap bytes of an empty Cache, here and
    /// as built for a 128-core machine.
    #[arg(long, group = "mode")]
    memory: bool,

    /// In --memory mode: after the prefill, each subject that evicts (the
    /// -exact and -half ones) reads through this many times its capacity
    /// of new keys, every one a miss and an evicting insert, and its bytes
    /// per entry are counted again (after churn); 0 skips the churn.
    #[arg(long, value_name = "TIMES", default_value_t = DEFAULT_CHURN)]
    churn: u64,

    /// Instead of throughput: p50/p99/p99.9/max latency of `get` on one
    /// thread while the janitor sweeps a cache of --keys entries of which
    /// half have expired; Cache against SingleLockCache.
    #[arg(long, group = "mode")]
    janitor: bool,

    /// Instead of the subjects: `Cache` with 1, 2, 4, ... 1024 shards and
    /// with the default count, on read100-uniform and read50-uniform
    /// unless --workloads says otherwise.
    #[arg(long, group = "mode")]
    shards: bool,

    /// Instead of the subjects: `Cache` with 1, 2, 4, 8 and 16 reader
    /// stripes and with the default count, on read100-uniform and
    /// read50-uniform unless --workloads says otherwise: what a stripe buys
    /// readers and costs writers.
    #[arg(long, group = "mode")]
    stripes: bool,

    /// Instead of throughput: instructions per `get` and per overwriting
    /// `insert` of each subject on one thread, counted by valgrind's
    /// callgrind (needs `valgrind` on the PATH). Reproducible on any
    /// x86-64 machine, busy or not. --subjects picks the subjects (those
    /// that hold every key), --keys the key space, --quick fewer operations.
    #[arg(long, group = "mode")]
    callgrind: bool,

    /// Internal: the child process that `--callgrind` runs under valgrind.
    #[arg(long, hide = true, value_name = "SUBJECT:OP:N:KEYS")]
    callgrind_child: Option<String>,

    /// Instead of throughput: one writer among 3 hot readers on one cache;
    /// the writer's p50/p99/max latency and writes done, the readers'
    /// Mops/s, Cache against SingleLockCache (--keys keys, default 100000).
    #[arg(long, group = "mode")]
    writers: bool,

    /// Folder for the JSON and SVG files (created if missing).
    #[arg(long, default_value = "results", value_name = "DIR")]
    out: PathBuf,
}

/// `250ms`, `2s`, `1.5s`; a bare number is milliseconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix("ms") {
        Some(number) => (number, 1e-3),
        None => match text.strip_suffix('s') {
            Some(number) => (number, 1.0),
            None => (text, 1e-3),
        },
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 25ms or 2s"))?;
    if !(value > 0.0 && value.is_finite()) {
        return Err(format!("`{text}` must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(value * unit))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if args.keys == Some(0) || args.reps == Some(0) {
        return Err("--keys and --reps must be at least 1".into());
    }
    if args.threads.iter().flatten().any(|&t| t == 0) {
        return Err("thread counts must be at least 1".into());
    }
    if let Some(spec) = &args.callgrind_child {
        return callgrind::child(spec);
    }
    fs::create_dir_all(&args.out)?;
    if args.callgrind {
        run_callgrind(&args)
    } else if args.memory {
        run_memory(&args)
    } else if args.janitor {
        run_janitor(&args)
    } else if args.writers {
        run_writers(&args)
    } else {
        run_throughput(&args)
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn large_keys(args: &Args) -> usize {
    args.keys
        .unwrap_or(if args.quick { DEFAULT_KEYS } else { LARGE_KEYS })
}

fn write(dir: &Path, name: &str, json: &serde_json::Value) -> Result<PathBuf, Box<dyn Error>> {
    let path = dir.join(name);
    fs::write(&path, serde_json::to_string_pretty(json)?)?;
    Ok(path)
}

fn run_memory(args: &Args) -> Result<(), Box<dyn Error>> {
    let subjects = args
        .subjects
        .clone()
        .unwrap_or_else(|| Subject::MEMORY.to_vec());
    let footprints = memory::run(&subjects, large_keys(args), args.churn);
    memory::print(&footprints);
    let empty = memory::empty();
    memory::print_empty(&empty);
    let mut outcomes = memory::targets(&footprints);
    outcomes.push(memory::empty_target(&empty));
    targets::print("Targets (one run)", &outcomes);
    let path = write(
        &args.out,
        "memory.json",
        &memory::to_json(&footprints, &empty),
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn run_callgrind(args: &Args) -> Result<(), Box<dyn Error>> {
    let subjects = args.subjects.clone().unwrap_or_else(callgrind::subjects);
    let keys = args.keys.unwrap_or(DEFAULT_KEYS);
    let n = if args.quick { 20_000 } else { 1_000_000 };
    let counts = callgrind::run(&subjects, n, keys)?;
    callgrind::print(&counts, n, keys);
    targets::print("Targets (instruction counts)", &callgrind::targets(&counts));
    let path = write(
        &args.out,
        "callgrind.json",
        &callgrind::to_json(&counts, n, keys),
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn run_janitor(args: &Args) -> Result<(), Box<dyn Error>> {
    let window = args.duration.unwrap_or(if args.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    });
    let reports = janitor::run(large_keys(args), window);
    janitor::print(&reports, window);
    let path = write(
        &args.out,
        "janitor.json",
        &janitor::to_json(&reports, window),
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn run_writers(args: &Args) -> Result<(), Box<dyn Error>> {
    let window = args.duration.unwrap_or(if args.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    });
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 });
    let reports = writers::run(args.keys.unwrap_or(DEFAULT_KEYS), window, reps);
    writers::print(&reports, window, reps);
    targets::print("Targets (one run)", &writers::targets(&reports));
    let path = write(
        &args.out,
        "writers.json",
        &writers::to_json(&reports, window, reps),
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn run_throughput(args: &Args) -> Result<(), Box<dyn Error>> {
    let all_threads = workload::default_thread_counts();
    let sweep: Option<(&str, Vec<Subject>)> = if args.shards {
        let sweep = SHARD_SWEEP.iter().map(|&n| Subject::CacheShards(n));
        Some(("shards", sweep.collect()))
    } else if args.stripes {
        let sweep = STRIPE_SWEEP.iter().map(|&n| Subject::CacheStripes(n));
        Some(("stripes", sweep.collect()))
    } else {
        None
    };
    let (name, subjects, default_workloads, default_threads) = if let Some((name, sweep)) = sweep {
        let subjects = std::iter::once(Subject::Cache).chain(sweep).collect();
        let workloads = vec![Workload::Read100Uniform, Workload::Read50Uniform];
        (
            name,
            subjects,
            workloads,
            all_threads[all_threads.len() - 1..].to_vec(),
        )
    } else {
        let subjects = args
            .subjects
            .clone()
            .unwrap_or_else(|| Subject::ALL.to_vec());
        ("compare", subjects, Workload::ALL.to_vec(), all_threads)
    };
    let plan = Plan {
        workloads: args.workloads.clone().unwrap_or(default_workloads),
        subjects,
        threads: args.threads.clone().unwrap_or(default_threads),
        keys: args.keys.unwrap_or(DEFAULT_KEYS),
        window: args.duration.unwrap_or(if args.quick {
            Duration::from_millis(15)
        } else {
            Duration::from_millis(25)
        }),
        reps: args.reps.unwrap_or(if args.quick { 1 } else { 15 }),
        read_through_passes: if args.quick {
            SMOKE_READ_THROUGH_PASSES
        } else {
            READ_THROUGH_PASSES
        },
        warm_up: !args.quick,
    };
    eprintln!(
        "{name}: {} subjects x {} workloads x threads {:?}, {} x {:?} each, {} keys, {} cores",
        plan.subjects.len(),
        plan.workloads.len(),
        plan.threads,
        plan.reps,
        plan.window,
        plan.keys,
        cores()
    );
    let results = throughput::run(plan);

    let json = if args.shards || args.stripes {
        let references = [Subject::Cache];
        results.print_tables(&references);
        let default_shards = shardcache::Cache::<u64, u64>::new().shard_count();
        println!(
            "\nCache is the default build: {default_shards} shards and one stripe per core \
             (at most 16) on this machine ({} cores).",
            cores()
        );
        let mut json = results.to_json(&references);
        json["default_shards"] = default_shards.into();
        json
    } else {
        let references = [Subject::SingleLock, Subject::RwLockHashMap];
        results.print_tables(&references);
        let outcomes = targets::evaluate_all(&results);
        targets::print(
            "Targets (ratios of medians, 2 and 4 threads unless stated; worst cell shown)",
            &outcomes,
        );
        let mut json = results.to_json(&references);
        json["targets"] = outcomes.iter().map(targets::Outcome::to_json).collect();
        json
    };
    let json_path = write(&args.out, &format!("{name}.json"), &json)?;
    let svg_path = args.out.join(format!("{name}.svg"));
    let title = format!(
        "shardcache {name}: median Mops/s, {} cores, {} keys",
        cores(),
        results.plan.keys
    );
    plot::draw(&results, &title, &svg_path)?;
    println!(
        "\nwrote {}\nwrote {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(())
}
