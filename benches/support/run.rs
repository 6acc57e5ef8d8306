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
}

/// A subject behind a pointer, ready to prefill and measure. One dynamic
/// call per measurement; the loop inside is compiled for the subject.
pub trait Measure<V>: Send + Sync {
    /// Inserts keys `0..keys`, settles, and returns how many of them a `get`
    /// then misses (0 unless the subject evicted some).
    fn prefill(&self, keys: usize) -> usize;

    /// Runs one thread per stream until `until`.
    fn run(&self, streams: &[Vec<Op<V>>], until: Until) -> Sample;
}

impl<V: Value, M: ConcurrentMap<V>> Measure<V> for M {
    fn prefill(&self, keys: usize) -> usize {
        for key in 0..keys as u64 {
            self.insert(key, V::for_key(key));
        }
        self.settle();
        (0..keys as u64)
            .filter(|&key| self.get(key).is_none())
            .count()
    }

    fn run(&self, streams: &[Vec<Op<V>>], until: Until) -> Sample {
        run(self, streams, until)
    }
}

#[inline]
fn apply<V: Value, M: ConcurrentMap<V>>(map: &M, ops: &[Op<V>]) {
    for op in ops {
        match op {
            Op::Get(key) => {
                black_box(map.get(black_box(*key)));
            }
            Op::Insert(key, value) => map.insert(*key, value.clone()),
        }
    }
}

/// What one thread did, and when.
struct Worker {
    ops: u64,
    cpu: Option<Duration>,
    start: Instant,
    end: Instant,
}

/// One thread per stream, each replaying its stream in batches of [`BATCH`]
/// from the start, round and round, until `until`.
fn run<V: Value, M: ConcurrentMap<V>>(map: &M, streams: &[Vec<Op<V>>], until: Until) -> Sample {
    let barrier = Barrier::new(streams.len() + 1);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let workers: Vec<_> = streams
            .iter()
            .map(|ops| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let cpu_start = thread_cpu_time();
                    let (mut batches, mut done_ops) = (0, 0);
                    for batch in ops.chunks(BATCH).cycle() {
                        apply(map, batch);
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
        // Timed by the workers themselves: this thread may wake up late.
        let start = workers.iter().map(|w| w.start).min();
        let end = workers.iter().map(|w| w.end).max();
        Sample {
            ops: workers.iter().map(|w| w.ops).sum(),
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
