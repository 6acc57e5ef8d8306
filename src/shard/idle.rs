//! Time-to-idle: the rule by which the read path moves an entry's deadline
//! forward.
//!
//! Only the bounded shard keeps idle deadlines (a cache built with
//! [`time_to_idle`](crate::CacheBuilder::time_to_idle) and no capacity
//! gets bounded shards with no bound: see `docs/DESIGN.md`, "Time to
//! idle"). Its deadline column holds each entry's deadline as an
//! `AtomicU64`: the earlier of its write deadline (the TTL) and its idle
//! deadline. A cache without a time-to-idle only ever loads it, relaxed,
//! which on x86-64 and AArch64 is the plain load of a `u64`; a cache with
//! one also keeps the write deadlines, in a second column, once an entry
//! has both.
//!
//! The step rule ([`touch`]): a read at `now` stores `now + tti + step`
//! only when the stored deadline is below `now + tti`. After a thread's
//! store, its own reads find the deadline far enough until `now` has moved
//! by a step, so each thread stores into an entry at most once per step,
//! however often it reads; a read of an entry touched less than a step ago
//! writes nothing, and the line stays shared among the cores that read it.
//! The store is a plain store, not a read-modify-write: two readers that
//! race both store about the same value, and whichever lands last wins, at
//! most a step short of the other, and never short of `tti` after either
//! read. An entry therefore never expires before `tti` has passed since
//! its last read, and at most one step after; after a write, exactly
//! `tti`.

use std::time::Duration;

// Not `crate::sync`: loom need not model this relaxed store (the shard's
// lock orders it against every writer, and two racing readers store about
// the same value), and modelling it would multiply its states.
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::NEVER;

/// The longest step: the idle deadline of a read entry moves at most once
/// per `tti / 32`, and at least once per millisecond (or per `tti`, if it is
/// shorter).
const STEPS_PER_TTI: u64 = 32;

/// The shortest step, in nanoseconds, for a short `tti`.
const MIN_STEP: u64 = 1_000_000;

/// A cache's time-to-idle, in clock nanoseconds, with its step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tti {
    /// The time-to-idle; 0 in a cache without one.
    pub(crate) tti: u64,
    /// How far the clock must move before a read stores again.
    pub(crate) step: u64,
}

impl Tti {
    /// The time-to-idle `tti`, or `None` for `Duration::ZERO` or one too
    /// long for the clock (never expires, as for a TTL).
    pub(crate) fn new(tti: Duration) -> Option<Self> {
        let tti = u64::try_from(tti.as_nanos()).ok()?;
        if tti == 0 || tti == NEVER {
            return None;
        }
        let step = (tti / STEPS_PER_TTI).max(MIN_STEP.min(tti));
        Some(Self { tti, step })
    }

    /// The idle deadline of an entry written at `now`: exactly `tti`
    /// later (saturating at [`NEVER`]).
    #[inline]
    pub(crate) fn written(&self, now: u64) -> u64 {
        now.saturating_add(self.tti)
    }
}

/// The step rule (see the module): a read at `now` of a live entry whose
/// deadline is `deadline` (the earlier of its write deadline `write` and
/// its idle deadline) stores `now + tti + step`, capped at `write`, when
/// the deadline is below `now + tti` and before `write`. A deadline of
/// [`NEVER`] is left so, and no other is made [`NEVER`].
#[inline]
pub(crate) fn touch(deadline: &AtomicU64, write: u64, now: u64, tti: &Tti) {
    let current = deadline.load(Ordering::Relaxed);
    let wanted = now.saturating_add(tti.tti);
    if current >= wanted || current >= write {
        return;
    }
    let next = wanted.saturating_add(tti.step).min(write).min(NEVER - 1);
    deadline.store(next, Ordering::Relaxed);
    #[cfg(test)]
    tests::STORES.with(|stores| stores.set(stores.get() + 1));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    std::thread_local! {
        /// The idle deadlines this thread stored.
        pub(crate) static STORES: Cell<u64> = const { Cell::new(0) };
    }

    /// The stores this thread has made so far.
    pub(crate) fn stores() -> u64 {
        STORES.with(Cell::get)
    }

    const SEC: u64 = 1_000_000_000;

    fn tti(secs: u64) -> Tti {
        Tti::new(Duration::from_secs(secs)).unwrap()
    }

    #[test]
    fn the_step_is_a_32nd_of_tti_and_at_least_a_millisecond_or_tti() {
        assert_eq!(tti(32).step, SEC);
        let short = Tti::new(Duration::from_millis(10)).unwrap();
        assert_eq!(short.step, MIN_STEP);
        let tiny = Tti::new(Duration::from_micros(100)).unwrap();
        assert_eq!(tiny.step, 100_000);
        assert_eq!(Tti::new(Duration::ZERO), None);
        assert_eq!(Tti::new(Duration::MAX), None, "too long: never expires");
    }

    #[test]
    fn a_read_stores_once_per_step_and_never_expires_early() {
        let tti = tti(32);
        let deadline = AtomicU64::new(tti.written(0));
        let read = |now| {
            touch(&deadline, NEVER, now, &tti);
            deadline.load(Ordering::Relaxed)
        };
        let before = stores();
        // The first read after the write stores, the others within a step
        // of it store nothing.
        let stride = if cfg!(miri) { 1_000_000 } else { 1000 };
        for now in (0..SEC).step_by(stride as usize) {
            read(now);
        }
        assert_eq!(stores() - before, 1, "one store in the first step");
        assert_eq!(read(SEC), stride + 32 * SEC + SEC);
        // A thousand reads at one instant: one store.
        let before = stores();
        for _ in 0..1000 {
            read(5 * SEC);
        }
        assert_eq!(stores() - before, 1);
        assert_eq!(read(5 * SEC), 5 * SEC + 32 * SEC + SEC);
        // Every read is covered: the deadline is at least tti after it.
        for now in (5 * SEC..100 * SEC).step_by(SEC as usize / 7) {
            let after = read(now);
            assert!(after >= now + 32 * SEC && after <= now + 33 * SEC);
        }
    }

    #[test]
    fn the_ttl_caps_the_deadline_and_stops_the_stores() {
        let tti = tti(32);
        let deadline = AtomicU64::new(tti.written(0));
        touch(&deadline, 40 * SEC, 20 * SEC, &tti);
        assert_eq!(
            deadline.load(Ordering::Relaxed),
            40 * SEC,
            "the TTL ends first"
        );
        let before = stores();
        for now in (20 * SEC..21 * SEC).step_by(SEC as usize / 100) {
            touch(&deadline, 40 * SEC, now, &tti);
        }
        assert_eq!(stores() - before, 0, "at the TTL: nothing to move");
        let never = AtomicU64::new(NEVER);
        touch(&never, NEVER, 5, &tti);
        assert_eq!(never.load(Ordering::Relaxed), NEVER, "a NEVER stays");
        let late = AtomicU64::new(tti.written(0));
        touch(&late, NEVER, NEVER - 1, &tti);
        assert_ne!(
            late.load(Ordering::Relaxed),
            NEVER,
            "a touch never makes NEVER"
        );
    }

    /// A hot key read by four threads, 10 000 times each, within one step:
    /// each thread stores at most once (its later reads see its store).
    #[test]
    fn a_hot_entry_read_by_many_threads_is_stored_at_most_once_per_thread() {
        let tti = tti(32);
        let deadline = AtomicU64::new(tti.written(0));
        let reads = if cfg!(miri) { 50 } else { 10_000 };
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        for i in 0..reads {
                            touch(&deadline, NEVER, 2 * SEC + i, &tti);
                        }
                        stores()
                    })
                })
                .collect();
            for thread in threads {
                assert!(thread.join().unwrap() <= 1);
            }
        });
        assert!(deadline.load(Ordering::Relaxed) >= 2 * SEC + 32 * SEC);
    }
}
