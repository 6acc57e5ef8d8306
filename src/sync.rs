//! The one place that decides where locks, atomics and threads come from.
//!
//! Library code imports `crate::sync::...` and never names `std::sync` or
//! `loom` itself. A normal build uses std's locks with poisoning ignored
//! (parking_lot measured 2-3% slower on this workload, see
//! `docs/DESIGN.md`). Built with `RUSTFLAGS="--cfg shardcache_loom"`,
//! everything maps to `loom`, so the model checker in `loom-tests/`
//! explores the same code that ships.
//!
//! A crate-specific cfg is used instead of the conventional `--cfg loom`
//! because several of our dependencies (crossbeam-utils among them) also
//! switch on `cfg(loom)` and would then expect to run inside a loom model.
//!
//! Exceptions, each deliberate:
//! - `Arc`/`Weak` are std's in both builds: loom has no `Weak`, and the
//!   reference counts synchronise nothing the models check.
//! - The process-wide ticker of [`CoarseClock`](crate::CoarseClock) uses std
//!   directly; under loom that clock reads `Instant::now()` instead of
//!   starting a thread (models use `ManualClock`).

pub(crate) use std::sync::{Arc, Weak};

#[cfg(not(shardcache_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::PoisonError;
    pub(crate) use std::thread;

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

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(shardcache_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
    pub(crate) use loom::thread;
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

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;
