//! The one place that decides where locks, atomics, cells and threads come
//! from.
//!
//! Library code imports `crate::sync::...` and never names `std::sync` or
//! `loom` itself. A normal build uses std (with lock poisoning ignored:
//! parking_lot measured 2-3% slower, see `docs/DESIGN.md`). Built with
//! `RUSTFLAGS="--cfg shardcache_loom"`, everything maps to `loom`, so the
//! model checker in `loom-tests/` explores the same code that ships,
//! including every access to the shard locks' `UnsafeCell`s.
//!
//! A crate-specific cfg is used instead of the conventional `--cfg loom`
//! because several of our dependencies (crossbeam-utils among them) also
//! switch on `cfg(loom)` and would then expect to run inside a loom model.
//!
//! `thread_local!` is std's or loom's: under loom the model threads share
//! one OS thread, so std's would be shared between them.
//!
//! Besides std's names, the shim provides `UnsafeCell` with loom's
//! interface, `thread_number` (a small per-thread number, for stripes),
//! `Spin` (a bounded polite spin wait, which under loom gives up at once),
//! `Condvar` (std's or loom's, for parking) and `WriterLock` (the shard
//! writers' mutex: parking_lot's, or loom's).
//!
//! Exceptions, each deliberate:
//! - `Arc`/`Weak` are std's in both builds: loom has no `Weak`, and the
//!   reference counts synchronise nothing the models check.
//! - The process-wide ticker of [`CoarseClock`](crate::CoarseClock) uses std
//!   directly; under loom that clock reads `Instant::now()` instead of
//!   starting a thread (models use `ManualClock`).
//! - The janitor's process-wide registry (`src/janitor.rs`) is a std
//!   `OnceLock` static, and under loom a `loom::lazy_static`, named there:
//!   a static cannot be generic, so a shim here would only move the two
//!   lines, and loom must create the registry afresh for each execution.
//!
//! Also here: `AtomicPtr` and `fence` (for the lazily allocated groups and
//! the writer's fence of `locks.rs`), and `cpu_count` (how many CPU numbers
//! `reader_stripe` can return, for the stripe count).

#![allow(unsafe_code)] // the `UnsafeCell` shim, `sched_getcpu` and `sysconf`

pub(crate) use std::sync::{Arc, Weak};

#[cfg(not(shardcache_loom))]
mod imp {
    use std::cell::Cell;
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    use std::sync::PoisonError;
    pub(crate) use std::{thread, thread_local};

    /// A small number for the calling thread, the same on every call:
    /// threads are numbered in the order they first ask.
    #[inline]
    pub(crate) fn thread_number() -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static NUMBER: Cell<usize> = const { Cell::new(usize::MAX) });
        NUMBER
            .try_with(|number| {
                let n = number.get();
                if n != usize::MAX {
                    return n;
                }
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                number.set(n);
                n
            })
            // Called from another thread-local's destructor: any number is
            // correct, a shared one only costs contention.
            .unwrap_or(0)
    }

    /// Which reader stripe the calling thread counts in: the CPU it runs
    /// on, so that threads running at the same time on different CPUs use
    /// different stripes whatever order they were created in (with thread
    /// numbers, two readers of the same parity shared a line: 0.34-0.40x of
    /// two on different stripes, `docs/DESIGN.md`).
    ///
    /// Asking the kernel costs about 6 ns here (`sched_getcpu` through the
    /// vDSO), a third of a `get`, so the answer is kept per thread and asked
    /// again every [`STRIPE_REFRESH`] calls: a thread that migrates shares a
    /// stripe for at most that many reads. Off Linux (and under Miri) it is
    /// the thread number.
    #[inline]
    pub(crate) fn reader_stripe() -> usize {
        // One word: the stripe in the low `STRIPE_BITS`, the reads left
        // before asking again above them. A read subtracts one `STEP`; a
        // borrow means none were left. (Testing the sign of the result
        // instead costs the same: 5 instructions with the load and store.)
        thread_local!(static CACHED: Cell<usize> = const { Cell::new(0) });
        CACHED
            .try_with(|cached| match cached.get().checked_sub(STEP) {
                Some(word) => {
                    cached.set(word);
                    word % (1 << STRIPE_BITS)
                }
                None => refresh_stripe(cached),
            })
            .unwrap_or_else(|_| thread_number())
    }

    /// Asks the CPU again: one read in [`STRIPE_REFRESH`], out of line so
    /// that the other reads carry none of it.
    #[cold]
    #[inline(never)]
    fn refresh_stripe(cached: &Cell<usize>) -> usize {
        let stripe = current_cpu().unwrap_or_else(thread_number) % (1 << STRIPE_BITS);
        cached.set(((STRIPE_REFRESH - 1) * STEP) | stripe);
        stripe
    }

    /// Reads between two asks of the CPU in [`reader_stripe`].
    const STRIPE_REFRESH: usize = 64;
    /// Bits of the cached word that hold the stripe: CPU numbers modulo
    /// 65 536, far more than [`MAX_STRIPES`](crate::locks::MAX_STRIPES).
    const STRIPE_BITS: u32 = 16;
    /// One read off the cached word's count.
    const STEP: usize = 1 << STRIPE_BITS;

    /// The CPU the calling thread runs on, if the platform says.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn current_cpu() -> Option<usize> {
        extern "C" {
            fn sched_getcpu() -> std::ffi::c_int;
        }
        // SAFETY: `sched_getcpu` (glibc and musl, through the vDSO) takes no
        // arguments, reads no memory of ours and may be called from any
        // thread at any time; it returns -1 on failure, handled below.
        let cpu = unsafe { sched_getcpu() };
        usize::try_from(cpu).ok()
    }

    /// The CPU the calling thread runs on, if the platform says.
    #[cfg(not(all(target_os = "linux", not(miri))))]
    fn current_cpu() -> Option<usize> {
        None
    }

    /// How many CPU numbers [`reader_stripe`] may return: every CPU the
    /// machine has, not only those this process may run on. A process
    /// pinned to CPUs 0 and 8 runs on two CPUs, but its two stripes must
    /// still differ: counted from the affinity mask there would be two
    /// stripes, and 0 and 8 would share one (measured on a 16-core machine:
    /// 27 Mops/s for two readers, against 63 on CPUs 14 and 15).
    #[cfg(all(target_os = "linux", not(miri)))]
    pub(crate) fn cpu_count() -> usize {
        extern "C" {
            fn sysconf(name: std::ffi::c_int) -> std::ffi::c_long;
        }
        /// `_SC_NPROCESSORS_CONF` in glibc and musl on Linux.
        const NPROCESSORS_CONF: std::ffi::c_int = 83;
        // SAFETY: `sysconf` reads a configuration value; it takes an
        // integer, touches no memory of ours, and returns -1 on failure,
        // handled below.
        let configured = unsafe { sysconf(NPROCESSORS_CONF) };
        usize::try_from(configured)
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(available_parallelism)
    }

    /// How many stripes can differ: off Linux (and under Miri) the stripe
    /// is the thread number, so the parallelism available.
    #[cfg(not(all(target_os = "linux", not(miri))))]
    pub(crate) fn cpu_count() -> usize {
        available_parallelism()
    }

    fn available_parallelism() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Waits politely in a spin loop: spins briefly, then yields the CPU.
    #[derive(Debug, Default)]
    pub(crate) struct Spin(crossbeam_utils::Backoff);

    impl Spin {
        pub(crate) fn wait(&self) {
            self.0.snooze();
        }

        /// Whether the caller has spun and yielded long enough (about 130
        /// spins and 4 yields) and should block instead.
        pub(crate) fn is_completed(&self) -> bool {
            self.0.is_completed()
        }
    }

    /// `std::cell::UnsafeCell` behind loom's interface (`get`/`get_mut`
    /// return pointer wrappers), so code that uses it is identical in both
    /// builds and loom can check every access.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline]
        pub(crate) fn get(&self) -> ConstPtr<T> {
            ConstPtr(self.0.get())
        }

        #[inline]
        pub(crate) fn get_mut(&self) -> MutPtr<T> {
            MutPtr(self.0.get())
        }
    }

    /// A shared access to an [`UnsafeCell`]'s value.
    #[derive(Debug)]
    pub(crate) struct ConstPtr<T>(*const T);

    impl<T> ConstPtr<T> {
        /// # Safety
        ///
        /// No `&mut T` to the same value may exist while the result lives.
        #[inline]
        pub(crate) unsafe fn deref(&self) -> &T {
            // SAFETY: the pointer comes from a live `UnsafeCell` (the borrow
            // of the cell outlives this wrapper) and the caller rules out
            // any mutable access while the reference lives.
            unsafe { &*self.0 }
        }
    }

    /// An exclusive access to an [`UnsafeCell`]'s value.
    #[derive(Debug)]
    pub(crate) struct MutPtr<T>(*mut T);

    impl<T> MutPtr<T> {
        /// # Safety
        ///
        /// No other reference to the same value may exist while the result
        /// lives.
        #[inline]
        #[allow(clippy::mut_from_ref)]
        pub(crate) unsafe fn deref(&self) -> &mut T {
            // SAFETY: as for `ConstPtr::deref`, with the caller ruling out
            // every other access.
            unsafe { &mut *self.0 }
        }
    }

    /// std's reader-writer lock, with poisoning ignored: every write the
    /// library makes under a lock leaves the table consistent even if user
    /// code (`Hash`, `Eq`) panics midway, so a poisoned flag carries no
    /// information and must not turn later calls into panics.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(std::sync::RwLock<T>);

    pub(crate) type ReadGuard<'a, T> = std::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = std::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::sync::RwLock::new(value))
        }

        #[inline]
        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        #[inline]
        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// std's mutex, with poisoning ignored as for [`RwLock`].
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        /// Waits until notified or until `timeout` passes (loom ignores the
        /// timeout and only returns on a notification).
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            match self.0.wait_timeout(guard, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        }

        /// Waits until notified (or woken spuriously).
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// The shard writers' lock: parking_lot's, one byte, whose lock and
    /// unlock are one compare-and-swap each. std's `Mutex` also asks
    /// whether the thread is panicking on both (for poisoning, which the
    /// shards do not use): 16.5 of an overwriting `insert`'s instructions
    /// (`docs/DESIGN.md`).
    pub(crate) type WriterLock = parking_lot::Mutex<()>;
    pub(crate) type WriterGuard<'a> = parking_lot::MutexGuard<'a, ()>;
}

#[cfg(all(test, not(shardcache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_stripe_changes_only_when_the_cpu_is_asked_and_hides_the_count() {
        // 200 reads ask the CPU at most 4 times (every 64 reads), so the
        // stripe changes at most 4 times, and the count of reads left,
        // kept in the same word, never shows in it.
        let stripes: Vec<usize> = (0..200).map(|_| reader_stripe()).collect();
        assert!(
            stripes.iter().all(|&stripe| stripe < 1 << 16),
            "{stripes:?}"
        );
        let changes = stripes.windows(2).filter(|pair| pair[0] != pair[1]).count();
        assert!(changes <= 4, "{changes} changes: {stripes:?}");
    }
}

#[cfg(shardcache_loom)]
mod imp {
    pub(crate) use loom::cell::{ConstPtr, MutPtr, UnsafeCell};
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use loom::{thread, thread_local};

    /// The model thread's number within its execution, so that every run
    /// of a model stripes its threads alike. (loom's `ThreadId` also hashes
    /// the execution; its `Debug` form, `ThreadId(n)`, does not.)
    pub(crate) fn thread_number() -> usize {
        let id = format!("{:?}", thread::current().id());
        id.trim_start_matches("ThreadId(")
            .trim_end_matches(')')
            .parse()
            .expect("loom's ThreadId prints as ThreadId(n)")
    }

    /// Under loom, the thread's number: every run of a model stripes its
    /// threads alike.
    pub(crate) fn reader_stripe() -> usize {
        thread_number()
    }

    /// Under loom, as in a normal build off Linux.
    pub(crate) fn cpu_count() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// loom must be told when a thread spins, so it schedules another.
    #[derive(Debug, Default)]
    pub(crate) struct Spin;

    impl Spin {
        pub(crate) fn wait(&self) {
            thread::yield_now();
        }

        /// Under loom, never spin before blocking: the blocking path is the
        /// one the models must check, and every spin adds states.
        pub(crate) fn is_completed(&self) -> bool {
            true
        }
    }
    use std::sync::PoisonError;

    /// loom's lock, with poisoning ignored as in the normal build.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// loom's mutex, with poisoning ignored as in the normal build.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// loom's condition variable; loom ignores the timeout.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> MutexGuard<'a, T> {
            match self.0.wait_timeout(guard, timeout) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        }

        /// Waits until notified (or woken spuriously).
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Under loom, the shim's mutex: loom must see the writers' lock.
    pub(crate) type WriterLock = Mutex<()>;
    pub(crate) type WriterGuard<'a> = MutexGuard<'a, ()>;
}

pub(crate) use imp::*;
