//! The background sweeper: one thread for the whole process, and its
//! shutdown.
//!
//! # One thread, every cache
//!
//! Every cache built with a cleanup interval registers with one
//! [`Registry`] and gets a [`Janitor`] handle back. The registry's thread,
//! named `shardcache-janitor`, sweeps every registered cache on that cache's
//! own schedule: each cache's interval is split into one step per shard,
//! and a step sweeps one shard, `interval / steps` after the cache's
//! previous step ended, round-robin over its shards. So each interval
//! visits every shard of a cache once and only one shard lock is ever held,
//! as when every cache had a thread of its own (2000 caches then meant 2000
//! threads and 5 GB of virtual memory; now they share one thread).
//!
//! The registry keeps its steps in a queue ordered by due time (a
//! `BTreeSet`, earliest first; ties by registration). The thread takes the
//! earliest step, and if it is not due yet, waits on a condition variable
//! until it is, or until a registration or a stop wakes it. A step runs
//! with the registry's lock released.
//!
//! The thread starts when the first cache registers, and stops when the
//! last one unregisters (`close` or drop): the caller that removes the last
//! cache wakes it and joins it, so a process with no such cache has no
//! janitor thread; a later cache starts a new one.
//!
//! The registry holds only a [`Weak`] reference to what it sweeps, so it
//! never keeps a forgotten cache alive. A step upgrades it for the length
//! of the step.
//!
//! # Stopping one cache
//!
//! [`Janitor::stop`] (from `close` or the cache's `Drop`) removes the cache
//! from the queue and, if the thread is sweeping that cache right now, waits
//! for that step to end, so that once it returns the janitor never touches
//! the cache again, and (in `Drop`) the janitor's strong reference is gone
//! before the shards are dropped.
//!
//! A janitor thread never waits, neither for a step nor for a join: user
//! code that runs inside a step (a listener that closes its cache, or the
//! `Drop` of a swept value that owns the last reference to a cache) may call
//! `stop` on the janitor thread itself. There `stop` unregisters the cache
//! and returns at once; if it was the last cache, the thread is told to stop
//! and, not joined (it cannot join itself), exits when its step returns.
//! The state also tracks which thread sweeps which cache, so a janitor that
//! is being replaced (its last cache went on the janitor thread while a new
//! cache already started a new one) never waits for the other.
//!
//! # Panics
//!
//! A step runs inside `catch_unwind`: a panic in user code (a clock, a
//! listener, a value's or the cache's `Drop` when the step held the last
//! reference) has been reported by the panic hook, and the thread goes on
//! with the next step of whichever cache is due. The shards' sweep itself
//! already catches the panics of listeners and of values' `Drop`, so a
//! panic never leaves a shard half swept.
//!
//! # One slow cache delays the others
//!
//! Steps run one at a time on the one thread: a step that takes long (a
//! slow listener, a value whose `Drop` blocks, a shard with many expired
//! entries) delays every step due meanwhile, of every cache. Nothing is
//! skipped: late steps run back to back, earliest due first, and each cache
//! then waits its pause again from the end of its step. Expired entries are
//! never visible to readers in the meantime (lookups check the deadline);
//! the delay only keeps their memory longer. A listener that does slow work
//! should hand it to another thread.
//!
//! # Under loom
//!
//! A process-wide static does not fit a loom model: each execution of a
//! model must start from fresh state, and loom's locks belong to one
//! execution. [`registry`] therefore returns a `static` [`std::sync::OnceLock`]
//! in a normal build, and under `--cfg shardcache_loom` a
//! `loom::lazy_static`, which loom creates afresh for each execution and
//! drops at its end: every cache of one model shares one janitor, as every
//! cache of a process does.
//!
//! The thread has to be modelled without time: loom ignores the timeout of
//! a condition-variable wait (the wait returns only when notified) and has
//! no `sleep`. So under loom the first `LOOM_SWEEPS` pauses of each cache
//! elapse at once (its first step is due when it registers, and the thread
//! only checks whether it was stopped before sweeping); after that the cache
//! is left out of the queue and the thread waits until `stop` notifies it.
//! A model thus sees the janitor before, inside and after a step of each
//! cache, and waiting between steps, all racing with `stop`. The normal
//! build waits out every pause.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::sync::{thread, Arc, Condvar, Mutex, MutexGuard, Weak};

/// Something the janitor can sweep in steps.
pub(crate) trait Sweep: Send + Sync + 'static {
    /// Steps in one full sweep (the number of shards).
    fn steps(&self) -> usize;

    /// Sweeps step `index` (one shard); returns how many entries it removed.
    fn sweep_step(&self, index: usize) -> usize;
}

/// A registered cache, type-erased: the `Weak` behind it.
trait Target: Send + Sync {
    /// Sweeps step `index` if the cache is still alive; the strong
    /// reference is dropped before it returns.
    fn sweep(&self, index: usize);
}

impl<T: Sweep> Target for Weak<T> {
    fn sweep(&self, index: usize) {
        if let Some(target) = self.upgrade() {
            let _ = target.sweep_step(index);
        }
    }
}

/// Under loom, how many of a cache's pauses elapse at once, each followed
/// by a step, before the janitor leaves it out of the queue (see the module
/// docs).
#[cfg(shardcache_loom)]
const LOOM_SWEEPS: usize = 1;

/// Identifies a registered cache.
type Id = u64;

/// One registered cache.
struct Entry {
    target: Arc<dyn Target>,
    /// Steps per interval (shards), at least 1.
    steps: usize,
    /// `interval / steps`.
    #[cfg_attr(shardcache_loom, allow(dead_code))] // every pause elapses at once
    pause: Duration,
    /// The next step.
    index: usize,
    /// When that step is due: its key in [`State::queue`]. `None` while it
    /// is being swept, or when it is never due (a pause too long to add to
    /// an `Instant`; under loom, after `LOOM_SWEEPS` steps).
    due: Option<Instant>,
    /// Steps taken; under loom only.
    #[cfg(shardcache_loom)]
    sweeps: usize,
}

/// The janitor thread that runs now.
struct Running {
    /// Tells this thread from one that is exiting: a thread exits as soon as
    /// it sees another generation (or none) running.
    generation: u64,
    thread: thread::JoinHandle<()>,
}

/// What the registry's lock protects.
#[derive(Default)]
struct State {
    entries: HashMap<Id, Entry>,
    /// Due steps, earliest first.
    queue: BTreeSet<(Instant, Id)>,
    next_id: Id,
    generations: u64,
    running: Option<Running>,
    /// Which janitor thread sweeps which cache right now (at most one entry
    /// per janitor thread, so at most two entries, briefly, when a janitor
    /// is replaced).
    sweeping: Vec<(thread::ThreadId, Id)>,
}

impl State {
    /// Whether the calling thread is a janitor thread inside a step.
    fn on_janitor(&self, me: thread::ThreadId) -> bool {
        self.sweeping.iter().any(|&(thread, _)| thread == me)
    }

    fn is_swept(&self, id: Id) -> bool {
        self.sweeping.iter().any(|&(_, swept)| swept == id)
    }

    /// Queues `id`'s next step, due `pause` after `from`.
    fn schedule(&mut self, id: Id, from: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        #[cfg(shardcache_loom)]
        if entry.sweeps >= LOOM_SWEEPS {
            entry.due = None;
            return;
        }
        #[cfg(shardcache_loom)]
        let due = Some(from); // the pause elapses at once
        #[cfg(not(shardcache_loom))]
        let due = from.checked_add(entry.pause);
        entry.due = due;
        if let Some(due) = due {
            self.queue.insert((due, id));
        }
    }
}

/// Every cache that asked for cleanup, and the one thread that sweeps them.
pub(crate) struct Registry {
    state: Mutex<State>,
    /// Wakes the janitor thread: a new registration, or stop.
    wake: Condvar,
    /// Wakes [`Registry::unregister`] waiting for a step to end.
    swept: Condvar,
}

/// The registry every cache of this process (under loom: of this model
/// execution) registers with; see the module docs.
#[cfg(not(shardcache_loom))]
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

/// The registry every cache of this process (under loom: of this model
/// execution) registers with; see the module docs.
#[cfg(shardcache_loom)]
fn registry() -> &'static Registry {
    // loom's own lazy static, fresh for each execution: `crate::sync` has
    // no counterpart, since only this module needs one.
    loom::lazy_static! {
        static ref REGISTRY: Registry = Registry::new();
    }
    &REGISTRY
}

impl Registry {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Condvar::default(),
            swept: Condvar::default(),
        }
    }

    /// Adds `target`, swept one of `steps` steps every `pause`, and starts
    /// the thread if none runs.
    fn register(&'static self, target: Arc<dyn Target>, steps: usize, pause: Duration) -> Id {
        let mut state = self.state.lock();
        if state.running.is_none() {
            state.generations += 1;
            let generation = state.generations;
            // Spawned under the lock: it waits for it, and if spawning
            // panics nothing was registered.
            let thread = thread::Builder::new()
                .name("shardcache-janitor".into())
                .spawn(move || self.run(generation))
                .expect("shardcache: could not spawn the janitor thread");
            state.running = Some(Running { generation, thread });
        }
        let id = state.next_id;
        state.next_id += 1;
        state.entries.insert(
            id,
            Entry {
                target,
                steps,
                pause,
                index: 0,
                due: None,
                #[cfg(shardcache_loom)]
                sweeps: 0,
            },
        );
        state.schedule(id, Instant::now());
        // Its first step may be due before the one the thread waits for.
        self.wake.notify_all();
        id
    }

    /// Removes `id`: once this returns, the janitor never sweeps it again
    /// (on a janitor thread, see the module docs). Stops and joins the
    /// thread if it was the last cache.
    fn unregister(&self, id: Id) {
        let me = thread::current().id();
        let mut state = self.state.lock();
        if let Some(Entry { due: Some(due), .. }) = state.entries.remove(&id) {
            state.queue.remove(&(due, id));
        }
        let on_janitor = state.on_janitor(me);
        if !on_janitor {
            // Wait out a step of this cache in progress.
            while state.is_swept(id) {
                state = self.swept.wait(state);
            }
        }
        let last = if state.entries.is_empty() {
            state.running.take()
        } else {
            None
        };
        if last.is_some() {
            self.wake.notify_all();
        }
        drop(state);
        if let Some(Running { thread, .. }) = last {
            // On a janitor thread: not joined (it may be this very thread);
            // it exits when its step returns.
            if !on_janitor {
                let _ = thread.join();
            }
        }
    }

    /// The janitor thread's loop, for as long as it is the running
    /// `generation`.
    fn run(&self, generation: u64) {
        let me = thread::current().id();
        let mut state = self.state.lock();
        loop {
            if state.running.as_ref().map(|r| r.generation) != Some(generation) {
                return;
            }
            let Some(&(due, id)) = state.queue.first() else {
                state = self.wake.wait(state);
                continue;
            };
            let now = Instant::now();
            if due > now {
                state = self.wake.wait_timeout(state, due - now);
                continue;
            }
            state.queue.remove(&(due, id));
            state = self.step(state, me, id);
        }
    }

    /// Takes the due step of `id`, with the lock released.
    fn step<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        me: thread::ThreadId,
        id: Id,
    ) -> MutexGuard<'a, State> {
        let entry = state
            .entries
            .get_mut(&id)
            .expect("a queued cache is registered");
        entry.due = None;
        let (target, index) = (Arc::clone(&entry.target), entry.index);
        state.sweeping.push((me, id));
        drop(state);
        // A panic in user code must not end the thread: the panic hook has
        // reported it, and the next step goes on. The strong reference to
        // the cache is dropped inside too (it may be the last one).
        let _ = catch_unwind(AssertUnwindSafe(|| target.sweep(index)));
        drop(target); // a `Weak`: runs no user code
        let mut state = self.state.lock();
        state.sweeping.retain(|&(thread, _)| thread != me);
        self.swept.notify_all();
        if let Some(entry) = state.entries.get_mut(&id) {
            entry.index = (index + 1) % entry.steps;
            #[cfg(shardcache_loom)]
            {
                entry.sweeps += 1;
            }
            state.schedule(id, Instant::now());
        }
        state
    }
}

/// A cache's handle to its registration with the process's janitor (or to
/// none).
pub(crate) struct Janitor {
    registered: Mutex<Option<Id>>,
}

impl Janitor {
    /// A handle with no janitor behind it.
    pub(crate) fn disabled() -> Self {
        Self {
            registered: Mutex::new(None),
        }
    }

    /// Registers `target` with the process's janitor, which sweeps it every
    /// `interval`, one step at a time, until stopped or until `target` is
    /// gone; starts the janitor thread if none runs.
    pub(crate) fn start<T: Sweep>(target: Weak<T>, interval: Duration) -> Self {
        let steps = target.upgrade().map_or(1, |t| t.steps().max(1));
        let pause = interval / u32::try_from(steps).unwrap_or(u32::MAX);
        let id = registry().register(Arc::new(target), steps, pause);
        Self {
            registered: Mutex::new(Some(id)),
        }
    }

    /// Unregisters, waiting out a step of this cache in progress; stops and
    /// joins the janitor thread if this was the last cache. Idempotent.
    pub(crate) fn stop(&self) {
        let registered = self.registered.lock().take();
        if let Some(id) = registered {
            registry().unregister(id);
        }
    }

    /// Whether the janitor sweeps this cache: registered, so the shared
    /// thread runs (it never dies of a panic).
    pub(crate) fn is_running(&self) -> bool {
        self.registered.lock().is_some()
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
