//! The timed runner: threads replay their pre-generated streams against one
//! subject, starting together on a barrier.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use super::subjects::ConcurrentMap;
use super::workload::{Op, Value, BATCH};

/// How long the threads run.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Until this much time has passed (checked after every batch).
    Elapsed(Duration),
    /// This many batches of [`BATCH`] operations per thread (criterion's
    /// iterations).
    Batches(u64),
}

/// Operations done, and the wall time from the first thread's start to the
/// last thread's end.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ops: u64,
    /// `get`s done and those that missed, counted only for read-through
    /// subjects (both 0 for the others, which never miss).
    pub reads: u64,
    pub misses: u64,
    pub elapsed: Duration,
    /// CPU time the threads were given, summed (Linux only): on a busy
    /// machine, far less than `elapsed` times the threads that fit on it.
    pub cpu: Option<Duration>,
}

impl Sample {
    /// Millions of operations per second, all threads together.
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    /// The share of `get`s that hit, for read-through subjects.
    pub fn hit_ratio(&self) -> Option<f64> {
        (self.reads > 0).then(|| 1.0 - self.misses as f64 / self.reads as f64)
    }
}

/// A subject behind a pointer, ready to prefill and measure. One dynamic
/// call per measurement; the loop inside is compiled for the subject.
pub trait Measure<V>: Send + Sync {
    /// Inserts keys `0..keys`, settles, and returns how many entries the
    /// subject then holds (`keys` unless it evicted some).
    fn prefill(&self, keys: usize) -> usize;

    /// Runs one thread per stream until `until`. Thread `i` starts at batch
    /// `cursors[i]` of its stream and leaves there the batch it would have
    /// done next, so that successive runs continue the streams.
    fn run(&self, streams: &[&[Op<V>]], until: Until, cursors: &mut [usize]) -> Sample;

    /// Does `n` operations of one kind on the calling thread, on keys drawn
    /// uniformly from `0..keys` by a xorshift generator, with no stream and
    /// no clock: the loop that `compare --callgrind` counts instructions of.
    /// Returns a checksum, so that nothing is optimised away.
    fn probe(&self, op: ProbeOp, n: u64, keys: u64) -> u64;

    /// Reads `n` keys read-through, drawn as [`probe`](Self::probe) draws
    /// them, from all of `u64`: in effect every key is new, so each `get`
    /// misses and the `insert` that follows evicts once the subject is
    /// full. Settles, and returns how many entries the subject then holds.
    /// What `compare --memory` measures the steady state of an evicting
    /// cache after. It runs `probe`'s loop rather than a loop of its own:
    /// a second caller of the subject's `get` and `insert` in this crate
    /// changed how LLVM inlined them into `probe` (the unbounded `Cache`'s
    /// `get` counted 108.1 instructions, not 103.2, in `compare --callgrind
    /// --quick`).
    fn churn(&self, n: u64) -> usize;
}

/// What [`Measure::probe`] does with each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOp {
    /// Nothing but generate it: the loop's own cost, to subtract.
    Loop,
    /// `get` it (every key is present, so every `get` hits); for a
    /// read-through subject, `insert` it if the `get` missed, as the
    /// throughput runs do.
    Get,
    /// `insert` it, overwriting the value it has (for a read-through
    /// subject, one key in two is absent, and its insert evicts).
    Insert,
}

/// The probe's generator: xorshift64, seeded as in the measurements.
#[inline]
fn next_key(state: &mut u64, keys: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % keys
}

impl<V: Value, M: ConcurrentMap<V>> Measure<V> for M {
    fn prefill(&self, keys: usize) -> usize {
        for key in 0..keys as u64 {
            self.insert(key, V::for_key(key));
        }
        self.settle();
        self.len()
    }

    fn run(&self, streams: &[&[Op<V>]], until: Until, cursors: &mut [usize]) -> Sample {
        run(self, streams, until, cursors)
    }

    #[inline(never)]
    fn probe(&self, op: ProbeOp, n: u64, keys: u64) -> u64 {
        let mut state = 0x0139_408D_CBBF_7A44_u64;
        let mut sum = 0u64;
        match op {
            ProbeOp::Loop => {
                for _ in 0..n {
                    sum = sum.wrapping_add(black_box(next_key(&mut state, keys)));
                }
            }
            ProbeOp::Get => {
                for _ in 0..n {
                    let key = next_key(&mut state, keys);
                    let found = self.get(black_box(key));
                    if M::READ_THROUGH && found.is_none() {
                        self.insert(key, V::for_key(key));
                    }
                    sum = sum.wrapping_add(u64::from(found.is_some()));
                }
            }
            ProbeOp::Insert => {
                for _ in 0..n {
                    let key = next_key(&mut state, keys);
                    self.insert(black_box(key), V::for_key(key));
                }
            }
        }
        sum
    }

    fn churn(&self, n: u64) -> usize {
        self.probe(ProbeOp::Get, n, u64::MAX);
        self.settle();
        self.len()
    }
}

/// Applies `ops`; adds the `get`s and the misses of a read-through subject
/// to `reads` and `misses`. For the others the read-through branch and the
/// counting are compiled out.
#[inline]
fn apply<V: Value, M: ConcurrentMap<V>>(map: &M, ops: &[Op<V>], reads: &mut u64, misses: &mut u64) {
    for op in ops {
        match op {
            Op::Get(key) => {
                let found = map.get(black_box(*key));
                if M::READ_THROUGH {
                    *reads += 1;
                    if found.is_none() {
                        // What a service would load; for `Arc<str>` values
                        // this allocates, as loading would.
                        *misses += 1;
                        map.insert(*key, V::for_key(*key));
                    }
                }
                black_box(found);
            }
            Op::Insert(key, value) => map.insert(*key, value.clone()),
        }
    }
}

/// What one thread did, and when.
struct Worker {
    ops: u64,
    reads: u64,
    misses: u64,
    /// Batches done.
    batches: u64,
    cpu: Option<Duration>,
    start: Instant,
    end: Instant,
}

/// One thread per stream, each replaying its stream in batches of [`BATCH`]
/// from batch `cursors[i]`, round and round, until `until`.
fn run<V: Value, M: ConcurrentMap<V>>(
    map: &M,
    streams: &[&[Op<V>]],
    until: Until,
    cursors: &mut [usize],
) -> Sample {
    assert_eq!(streams.len(), cursors.len(), "one cursor per stream");
    let barrier = Barrier::new(streams.len() + 1);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let workers: Vec<_> = streams
            .iter()
            .zip(cursors.iter())
            .map(|(&ops, &cursor)| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || {
                    let mut batches_from_cursor = ops.chunks(BATCH).cycle();
                    if cursor > 0 {
                        batches_from_cursor.nth(cursor - 1);
                    }
                    barrier.wait();
                    let start = Instant::now();
                    let cpu_start = thread_cpu_time();
                    let (mut batches, mut done_ops) = (0, 0);
                    let (mut reads, mut misses) = (0, 0);
                    for batch in batches_from_cursor {
                        apply(map, batch, &mut reads, &mut misses);
                        batches += 1;
                        done_ops += batch.len() as u64;
                        let done = match until {
                            Until::Elapsed(_) => stop.load(Ordering::Relaxed),
                            Until::Batches(n) => batches >= n,
                        };
                        if done {
                            break;
                        }
                    }
                    let cpu = thread_cpu_time()
                        .zip(cpu_start)
                        .map(|(end, start)| end.saturating_sub(start));
                    Worker {
                        ops: done_ops,
                        reads,
                        misses,
                        batches,
                        cpu,
                        start,
                        end: Instant::now(),
                    }
                })
            })
            .collect();
        barrier.wait();
        if let Until::Elapsed(window) = until {
            thread::sleep(window);
            stop.store(true, Ordering::Relaxed);
        }
        let workers: Vec<Worker> = workers
            .into_iter()
            .map(|worker| worker.join().expect("a benchmark thread panicked"))
            .collect();
        for ((cursor, worker), ops) in cursors.iter_mut().zip(&workers).zip(streams) {
            let in_stream = ops.len().div_ceil(BATCH) as u64;
            *cursor = ((*cursor as u64 + worker.batches) % in_stream) as usize;
        }
        // Timed by the workers themselves: this thread may wake up late.
        let start = workers.iter().map(|w| w.start).min();
        let end = workers.iter().map(|w| w.end).max();
        Sample {
            ops: workers.iter().map(|w| w.ops).sum(),
            reads: workers.iter().map(|w| w.reads).sum(),
            misses: workers.iter().map(|w| w.misses).sum(),
            elapsed: end
                .zip(start)
                .map_or(Duration::ZERO, |(end, start)| end - start),
            cpu: workers.iter().map(|w| w.cpu).sum(),
        }
    })
}

/// Time the calling thread has spent on a CPU, from the scheduler's
/// statistics; `None` where the system does not provide them.
fn thread_cpu_time() -> Option<Duration> {
    let stats = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stats.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
