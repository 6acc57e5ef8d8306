//! `--callgrind`: instructions per operation of each subject, counted by
//! valgrind's callgrind instead of timed, so that the numbers are the same
//! on any x86-64 machine, busy or idle.
//!
//! For each subject and operation the program runs itself under
//! `valgrind --tool=callgrind` twice, as a child that prefills the subject
//! with `--keys` `u64` keys and then does `n` and `2n` operations of one
//! kind on one thread ([`Measure::probe`]): the difference of the two
//! totals, divided by `n`, is the cost of one operation, with the prefill,
//! the start-up and the exit cancelled out. The probe loop's own cost (a
//! xorshift and a modulo, counted the same way) is subtracted. On a
//! subject with room for every key, a `get` always hits and an `insert`
//! always overwrites. On a read-through subject (room for half the keys,
//! prefilled with every key in order, so it holds half of them), a `get`
//! that misses is followed by an `insert` of the key, as in the throughput
//! runs: about half the `get`s miss, and each miss evicts. Its `insert` is
//! a plain insert of a uniform key: about half overwrite, half evict.

use std::error::Error;
use std::process::Command;

use serde_json::{json, Value as Json};

use crate::support::run::ProbeOp;
use crate::support::subjects::Subject;
use crate::targets::Outcome;

/// The subjects counted unless `--subjects` says otherwise: every subject
/// of a throughput run.
pub fn subjects() -> Vec<Subject> {
    Subject::ALL.to_vec()
}

/// The two operations counted, with their names in tables and on the
/// child's command line.
const OPS: [(ProbeOp, &str); 2] = [(ProbeOp::Get, "get"), (ProbeOp::Insert, "insert")];

/// Instructions per operation of one subject.
#[derive(Debug)]
pub struct Count {
    pub subject: Subject,
    /// `(operation, instructions per operation)`, in [`OPS`] order.
    pub per_op: Vec<(&'static str, f64)>,
}

/// The child's side: prefills `subject` and does `n` operations `op`.
/// Called with the argument of `--callgrind-child`,
/// `SUBJECT:OP:N:KEYS`.
pub fn child(spec: &str) -> Result<(), Box<dyn Error>> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [subject, op, n, keys] = parts[..] else {
        return Err(format!("--callgrind-child wants SUBJECT:OP:N:KEYS, not `{spec}`").into());
    };
    let subject: Subject = clap::ValueEnum::from_str(subject, true)?;
    let op = match op {
        "loop" => ProbeOp::Loop,
        "get" => ProbeOp::Get,
        "insert" => ProbeOp::Insert,
        other => return Err(format!("unknown probe operation `{other}`").into()),
    };
    let (n, keys): (u64, usize) = (n.parse()?, keys.parse()?);
    let (map, _) = subject.prefilled::<u64>(keys);
    std::hint::black_box(map.probe(op, n, keys as u64));
    Ok(())
}

/// `subject`'s name on the command line.
fn flag(subject: Subject) -> Result<String, Box<dyn Error>> {
    let value = clap::ValueEnum::to_possible_value(&subject)
        .ok_or_else(|| format!("{subject} has no name on the command line"))?;
    Ok(value.get_name().to_owned())
}

/// Instructions callgrind counts for one child run.
fn instructions(subject: Subject, op: &str, n: u64, keys: usize) -> Result<u64, Box<dyn Error>> {
    let exe = std::env::current_exe()?;
    let output = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--dump-line=no",
        ])
        .arg(exe)
        .arg(format!(
            "--callgrind-child={}:{op}:{n}:{keys}",
            flag(subject)?
        ))
        .output()
        .map_err(|error| {
            format!("cannot run valgrind ({error}); install it (apt install valgrind)")
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("valgrind failed on {subject} {op}:\n{stderr}").into());
    }
    // callgrind ends with "==PID== Collected : 123456789".
    stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|count| count.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in valgrind's output:\n{stderr}").into())
}

/// Instructions per operation `op`: `(I(2n) - I(n)) / n`.
fn per_op(subject: Subject, op: &str, n: u64, keys: usize) -> Result<f64, Box<dyn Error>> {
    let once = instructions(subject, op, n, keys)?;
    let twice = instructions(subject, op, 2 * n, keys)?;
    Ok((twice as f64 - once as f64) / n as f64)
}

/// Counts every subject's operations, `n` per run, on `keys` keys.
pub fn run(subjects: &[Subject], n: u64, keys: usize) -> Result<Vec<Count>, Box<dyn Error>> {
    // The loop alone, measured on any subject (it never touches it).
    let overhead = per_op(Subject::RwLockHashMap, "loop", n, keys)?;
    eprintln!("callgrind: the probe loop costs {overhead:.1} instructions per key, subtracted");
    let mut counts = Vec::new();
    for &subject in subjects {
        let mut per = Vec::new();
        for (_, name) in OPS {
            let cost = per_op(subject, name, n, keys)? - overhead;
            eprintln!("callgrind: {subject} {name}: {cost:.1}");
            per.push((name, cost));
        }
        counts.push(Count {
            subject,
            per_op: per,
        });
    }
    Ok(counts)
}

/// `subject`'s cost of operation `op`, if it was counted.
fn cost(counts: &[Count], subject: Subject, op: &str) -> Option<f64> {
    let count = counts.iter().find(|c| c.subject == subject)?;
    count
        .per_op
        .iter()
        .find(|(name, _)| *name == op)
        .map(|&(_, cost)| cost)
}

/// The table: instructions per operation, and each as a multiple of
/// `RwLock<HashMap>`'s.
pub fn print(counts: &[Count], n: u64, keys: usize) {
    println!(
        "\nInstructions per operation (valgrind callgrind, one thread, {keys} u64 keys, uniform; \
         (I({}) - I({n})) / {n}, the probe loop subtracted)",
        2 * n
    );
    println!(
        "{:<20} {:>9} {:>9} {:>10} {:>10}",
        "subject", "get", "insert", "get/RwLock", "ins/RwLock"
    );
    for count in counts {
        let mut line = format!("{:<20}", count.subject.to_string());
        for (_, value) in &count.per_op {
            line += &format!(" {value:>9.1}");
        }
        for (op, value) in &count.per_op {
            match cost(counts, Subject::RwLockHashMap, op) {
                Some(reference) => line += &format!(" {:>9.2}x", value / reference),
                None => line += &format!(" {:>10}", "-"),
            }
        }
        println!("{line}");
    }
    if counts.iter().any(|count| count.subject.read_through()) {
        println!(
            "(*-half: room for half the keys, read-through: a get that misses inserts the key \
             (about half do, and each evicts); an insert evicts when its key is absent (about half))"
        );
    }
}

/// The instruction targets: of the write-path issue, `Cache`'s `get`
/// within 1.1x and its `insert` within 1.2x of `RwLock<HashMap>`'s; of the
/// bounded-cache issue, the read-through bounded `Cache`'s `get` and
/// `insert` within 1.0x of quick_cache's.
pub fn targets(counts: &[Count]) -> Vec<Outcome> {
    let pairs = [
        (Subject::Cache, Subject::RwLockHashMap, "get", 1.1),
        (Subject::Cache, Subject::RwLockHashMap, "insert", 1.2),
        (
            Subject::CacheBoundedHalf,
            Subject::QuickCacheHalf,
            "get",
            1.0,
        ),
        (
            Subject::CacheBoundedHalf,
            Subject::QuickCacheHalf,
            "insert",
            1.0,
        ),
    ];
    pairs
        .into_iter()
        .filter_map(|(ours, theirs, op, bound)| {
            let ratio = cost(counts, ours, op)? / cost(counts, theirs, op)?;
            Some(Outcome {
                target: format!("{ours} {op} instructions / {theirs}'s"),
                need: format!("<= {bound:.2}x"),
                cells: 1,
                met_cells: usize::from(ratio <= bound),
                worst: Some((ratio, "1 thread".to_owned())),
            })
        })
        .collect()
}

pub fn to_json(counts: &[Count], n: u64, keys: usize) -> Json {
    json!({
        "ops_per_run": n,
        "keys": keys,
        "instructions_per_op": counts
            .iter()
            .map(|count| {
                let mut row = json!({ "subject": count.subject.to_string() });
                for (op, value) in &count.per_op {
                    row[*op] = json!(value);
                }
                row
            })
            .collect::<Vec<_>>(),
        "targets": targets(counts).iter().map(Outcome::to_json).collect::<Vec<_>>(),
    })
}
