//! The background sweeper and its shutdown.
//!
//! One thread per cache. Each cleanup interval is split into one step per
//! shard: the thread waits `interval / steps`, sweeps one shard, and moves
//! on round-robin, so each interval visits every shard once and only one
//! shard lock is ever held. It holds a [`Weak`] reference to what it sweeps,
//! so it never keeps a forgotten cache alive, and it waits on a condition
//! variable, so [`Janitor::stop`] wakes and joins it within a step.
//!
//! Under `--cfg shardcache_loom` the thread has to be modelled without
//! time: loom ignores the timeout of a condition-variable wait (the wait
//! returns only when notified) and has no `sleep`. So there the first
//! `LOOM_SWEEPS` pauses elapse at once (the thread only checks whether it
//! was stopped, then sweeps), and every later wait blocks until `stop`
//! notifies it. A model thus sees the janitor before, inside and after a
//! sweep, and waiting between sweeps, all racing with `stop`. The normal
//! build is unchanged: every pause is a timed wait.

use std::fmt;
use std::time::Duration;

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::sync::{thread, Arc, Condvar, Mutex, Weak};

/// Something the janitor can sweep in steps.
pub(crate) trait Sweep: Send + Sync + 'static {
    /// Steps in one full sweep (the number of shards).
    fn steps(&self) -> usize;

    /// Sweeps step `index` (one shard); returns how many entries it removed.
    fn sweep_step(&self, index: usize) -> usize;
}

/// Tells the janitor thread to stop, and wakes it.
#[derive(Debug, Default)]
struct Signal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    /// Waits up to `pause`; returns whether the janitor was told to stop.
    fn wait(&self, pause: Duration) -> bool {
        let stopped = self.stopped.lock();
        if *stopped {
            return true;
        }
        *self.wake.wait_timeout(stopped, pause)
    }

    /// Whether the janitor was told to stop, without waiting: a pause that
    /// elapses at once. Only loom models use it (see the module docs).
    #[cfg(shardcache_loom)]
    fn is_stopped(&self) -> bool {
        *self.stopped.lock()
    }

    fn stop(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }
}

struct Running {
    signal: Arc<Signal>,
    thread: thread::JoinHandle<()>,
}

/// Owner's handle to a janitor thread (or to none).
pub(crate) struct Janitor {
    running: Mutex<Option<Running>>,
}

impl Janitor {
    /// A handle with no thread behind it.
    pub(crate) fn disabled() -> Self {
        Self {
            running: Mutex::new(None),
        }
    }

    /// Starts a thread that sweeps `target` every `interval`, one step at a
    /// time, until stopped or until `target` is gone.
    pub(crate) fn start<T: Sweep>(target: Weak<T>, interval: Duration) -> Self {
        let signal = Arc::new(Signal::default());
        let thread_signal = Arc::clone(&signal);
        let thread = thread::Builder::new()
            .name("shardcache-janitor".into())
            .spawn(move || run(&target, &thread_signal, interval))
            .expect("shardcache: could not spawn the janitor thread");
        Self {
            running: Mutex::new(Some(Running { signal, thread })),
        }
    }

    /// Stops the thread and waits for it to exit. Idempotent.
    pub(crate) fn stop(&self) {
        let running = self.running.lock().take();
        if let Some(Running { signal, thread }) = running {
            signal.stop();
            // Stopped from the janitor thread itself (the cache was dropped
            // by a value it swept, or closed by a listener): joining would
            // wait for itself. It sees the signal when the step ends and
            // exits on its own.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.lock().is_some()
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Janitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Janitor")
            .field("running", &self.is_running())
            .finish()
    }
}

/// Under loom, how many of the janitor's pauses elapse at once, each
/// followed by a sweep step, before it waits for `stop` (see the module docs).
#[cfg(shardcache_loom)]
const LOOM_SWEEPS: usize = 1;

/// Waits out the `pause` before sweep number `sweeps`; returns whether the
/// janitor was told to stop.
fn pause_before_sweep(signal: &Signal, pause: Duration, sweeps: usize) -> bool {
    #[cfg(shardcache_loom)]
    if sweeps < LOOM_SWEEPS {
        return signal.is_stopped();
    }
    let _ = sweeps; // counted for loom only
    signal.wait(pause)
}

/// The janitor thread's loop.
fn run<T: Sweep>(target: &Weak<T>, signal: &Signal, interval: Duration) {
    let Some(steps) = target.upgrade().map(|t| t.steps().max(1)) else {
        return;
    };
    let pause = interval / u32::try_from(steps).unwrap_or(u32::MAX);
    let mut index = 0;
    let mut sweeps = 0;
    while !pause_before_sweep(signal, pause, sweeps) {
        let Some(target) = target.upgrade() else {
            return;
        };
        // A panic in user code (a clock) must not end the thread: the
        // panic hook has reported it, and the next step goes on.
        let _ = catch_unwind(AssertUnwindSafe(|| target.sweep_step(index)));
        index = (index + 1) % steps;
        sweeps = sweeps.saturating_add(1);
    }
}
