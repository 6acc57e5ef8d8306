//! The shards' locks: N reader-writer locks whose reader counts are striped
//! per thread, so that readers never write a cache line another core reads.
//!
//! # Why not one `RwLock` per shard
//!
//! Taking a read lock writes the lock word. With one lock word per shard,
//! every `get` on one core steals the cache line of the shard's lock from
//! the core that read that shard last, and on the 2-core development VM two
//! threads reading uniformly random keys ran *slower* than one
//! (`docs/DESIGN.md` has the numbers). More shards do not help: the chance
//! that a shard's line was last written by the other core stays one half.
//!
//! # The layout
//!
//! Each thread reads in the stripe of the CPU it runs on
//! (`reader_stripe() & (stripes - 1)`, see `sync.rs`). A reader of
//! shard `i` counts itself in `readers[stripe][i]`; the counters of one
//! stripe are packed in cache lines of their own, so a reader writes only
//! lines that its stripe owns. The shard's own line holds a `state` byte
//! (`WRITING`, `PARKED`), the writers' one-byte mutex, a park mutex and
//! condvar for a sleeping writer, and the value; readers only read it
//! (unless they wake a writer).
//!
//! ```text
//! readers: stripe 0: [shard 0..15][shard 16..31]...   one 128-byte block per 16 shards
//!          stripe 1: [shard 0..15][shard 16..31]...
//! slots:   [state | writer mutex | park mutex | condvar | value] per shard, one CachePadded each
//! ```
//!
//! # The protocol
//!
//! - read: `counter.fetch_add(1, SeqCst)`; if `state` (a `SeqCst` load)
//!   is 0, the read lock is held; else leave (below), wait on the writers'
//!   mutex (sleeping, not spinning, while a writer works) and retry.
//! - leave (unlock, or a step aside): `counter.fetch_sub(1, AcqRel)`; if it
//!   returned 1 (the stripe's last reader) and `state` has `PARKED`, lock
//!   the park mutex and notify its condvar.
//! - write: lock the writers' mutex; `state = WRITING`; one
//!   `fence(SeqCst)`; then an Acquire load of the shard's counter in each
//!   stripe. A counter that is not zero sends the writer to drain it:
//!   wait until a `fetch_add(0, AcqRel)` returns zero, spinning briefly
//!   (about 130 spins and 4 yields), then parking: lock the park mutex,
//!   `state = WRITING | PARKED`, and while a `fetch_add(0, AcqRel)`
//!   returns nonzero, wait on the condvar; then `state = WRITING` and
//!   unlock the park mutex. Unlock: `state = 0` (Release), then the
//!   writers' mutex.
//!
//! Why a reader and a writer never both get in (C++20's memory model,
//! which Rust's is, `[atomics.order]`): say the writer's load L of a
//! stripe's counter reads a value from before a reader's increment I, so L
//! is coherence-ordered before I. The fence F is sequenced before L, and I
//! is a `SeqCst` operation, so F precedes I in the single total order S of
//! `SeqCst` operations and fences (p4.3); I precedes the reader's `SeqCst`
//! load R of `state` in S (it is sequenced before it). If R read a value
//! older than the writer's store W of `WRITING`, R would be
//! coherence-ordered before W, which is sequenced before F, so R would
//! precede F in S (p4.2): a cycle. So R sees `WRITING` (or the 0 of a
//! later unlock, whose Release orders the whole write section before the
//! read) and the reader steps aside. Otherwise L sees the increment or a
//! later value: a nonzero one sends the writer to drain, and the zero it
//! finally reads comes from a reader's decrement (Release) that its
//! Acquire load or read-modify-write synchronises with, so every read
//! section happens before the write. In drain the argument is the one of
//! read-modify-writes: they are totally ordered with the increments, and a
//! reader whose increment comes after the writer's RMW reads from it, so
//! the RMW's Release makes `WRITING` visible to the reader's load.
//!
//! On x86 the reader's `SeqCst` increment and load are the same
//! instructions as Acquire ones, and the writer pays one fence instead of
//! one locked instruction per stripe: with 16 stripes, one thread at 50%
//! writes ran 48.2 instead of 17.8 Mops/s on the 2-core development VM
//! (`docs/DESIGN.md`).
//!
//! loom (`loom-tests/`) checks the protocol with every access to the value
//! tracked, but it treats `SeqCst` accesses as `AcqRel` (its documentation
//! warns of false alarms), so it cannot use p4.2/p4.3. Under
//! `--cfg shardcache_loom` the reader therefore adds a `fence(SeqCst)`
//! after its increment, and loom checks the writer's fence against it
//! (fence against fence, p4.4, which loom models). On x86 a locked
//! increment already is such a fence. The models fail (a concurrent read
//! and write of a shard) without the writer's fence, and with a Relaxed
//! counter load.
//!
//! Why a parked writer is always woken (no lost wake-up), without `SeqCst`:
//! let R be the writer's last re-check (an RMW, made after it
//! stored `PARKED` and while it holds the park mutex) that returned
//! nonzero. Some reader counted before R in the counter's order has not
//! left; readers counted after R see `WRITING` (the exclusion argument) and
//! step aside, which is a leave too. So a leave D that brings the counter
//! to zero comes after R in the counter's order. All writes to a counter
//! are RMWs, so D reads from R's release sequence; D is Acquire, so R
//! synchronises with D, and the writer's `PARKED` store, sequenced before
//! R, happens before D's load of `state`, which therefore sees `PARKED`
//! (or a later value: `WRITING` alone is stored only after a re-check
//! returned zero, when no wake is needed). D's reader then takes the park
//! mutex; the writer took it before R, and R happens before D, so the
//! reader gets it only once the writer has released it, by waiting on
//! the condvar (then the notification wakes it) or by finding zero. A
//! woken writer re-checks with another RMW. A Release-only decrement would
//! not synchronise with R, and its load could miss `PARKED`: the loom
//! models m9a and m9b deadlock when the decrement is Release-only, when
//! the unlock skips the wake, or when a step aside does.
//!
//! Writers serialise on a mutex (`WriterLock`: parking_lot's, under loom
//! loom's), so readers that meet a writer sleep rather than spin. A
//! compare-and-swap spin lock on `state` instead ran 19% faster for one
//! thread at 50% writes (31.0 against 26.0 Mops/s), the same at 2 and 4
//! threads, but its spinning readers made the loom models unbounded; the
//! mutex keeps every model checkable. parking_lot's mutex rather than
//! std's: std's asks `thread::panicking()` on lock and on unlock, for a
//! poisoning the shards do not use, which cost an overwriting `insert`
//! about 16 of its instructions (`docs/DESIGN.md`).
//!
//! Costs: a read is one RMW on a line private to its stripe, one load of the
//! shard's line and one RMW to unlock, like `RwLock`'s, but without
//! cross-core traffic; the unlock also tests whether it left the counter
//! at zero and, if so, loads `state` again (still in the cache). A write
//! pays a fence and loads one counter per stripe, each on a line that
//! readers of that stripe write, so stripes are kept to the number of
//! cores (at most [`MAX_STRIPES`]).
//!
//! In instructions (the disassembly of `compare --callgrind`'s `get` loop,
//! x86-64), a read lock and its unlock are about 30 of a `get`'s 99: 7 to
//! find the group (the index shifted and masked, two loads, the null
//! test), 5 for the thread's stripe (`sync.rs`), 9 for the counter's and
//! the slot's addresses, 4 to lock (the increment, the load and test of
//! `state`) and 5 to unlock. The group pointers are padded to a power of
//! two so that a mask, not a bounds check, keeps the index in bounds, and
//! [`StripeMask`] tells the compiler a masked stripe is below
//! [`MAX_STRIPES`], so neither the reader's index nor the writer's loop
//! over the stripes (which the compiler unrolls) checks a bound.

#![allow(unsafe_code)]

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;

use crate::sync::{
    cpu_count, fence, reader_stripe, AtomicPtr, AtomicU8, AtomicUsize, Condvar, ConstPtr, MutPtr,
    Mutex, Ordering, Spin, UnsafeCell, WriterGuard, WriterLock,
};

/// At most this many stripes: a writer checks one counter per stripe.
pub(crate) const MAX_STRIPES: usize = 16;

/// Counters per block; a block fills one `CachePadded` line.
const BLOCK: usize = 16;

/// One stripe's counters for 16 consecutive shards.
type Block = CachePadded<[AtomicUsize; BLOCK]>;

/// The number of stripes for this machine: its CPUs (all of them, not
/// only those the process may use: see `cpu_count`), as a power of two, at
/// most [`MAX_STRIPES`].
pub(crate) fn default_stripes() -> usize {
    cpu_count().next_power_of_two().min(MAX_STRIPES)
}

/// `stripes - 1` for each legal number of stripes: a type whose every value
/// is below [`MAX_STRIPES`], so that the compiler knows a stripe masked by
/// it indexes the readers' blocks in bounds (one instruction less per read,
/// and no bounds check in the writer's loop over the stripes).
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
enum StripeMask {
    One = 0,
    Two = 1,
    Four = 3,
    Eight = 7,
    Sixteen = 15,
}

impl StripeMask {
    /// The mask of `stripes`, a power of two up to [`MAX_STRIPES`].
    fn new(stripes: usize) -> Self {
        const _: () = assert!(MAX_STRIPES == 16, "one variant per power of two");
        match stripes {
            1 => Self::One,
            2 => Self::Two,
            4 => Self::Four,
            8 => Self::Eight,
            16 => Self::Sixteen,
            _ => panic!("{stripes} stripes: a power of two up to {MAX_STRIPES}"),
        }
    }
}

/// `Slot::state` bit: a writer holds the writers' mutex and keeps readers
/// out.
const WRITING: u8 = 1;
/// `Slot::state` bit: that writer sleeps on `unparked` until a reader counter
/// falls to zero.
const PARKED: u8 = 2;

/// One shard's lock state and value, alone in its cache line(s).
struct Slot<T> {
    /// `WRITING | PARKED` bits; written only by the writer holding `writer`.
    state: AtomicU8,
    writer: WriterLock,
    /// Guards the parked writer's re-check and wait against a reader's
    /// wake-up (module docs).
    park: Mutex<()>,
    unparked: Condvar,
    value: UnsafeCell<T>,
}

impl<T> Slot<T> {
    /// Ends one reader's count in `counter`, as an unlock or a step aside;
    /// wakes the parked writer if this was the stripe's last reader.
    #[inline]
    fn leave(&self, counter: &AtomicUsize) {
        // Acquire as well as Release: if this decrement comes after a
        // parked writer's re-check in the counter's order, it synchronises
        // with that re-check, so the load below sees `PARKED` (module docs).
        let last = counter.fetch_sub(1, Ordering::AcqRel) == 1;
        // `last` first: while other readers of the stripe remain, the
        // leave is the decrement and one branch.
        if last && self.state.load(Ordering::Relaxed) & PARKED != 0 {
            self.unpark();
        }
    }

    #[cold]
    #[inline(never)]
    fn unpark(&self) {
        // Taking the mutex means the writer is either waiting on the
        // condvar or past its re-check, never between the two.
        let _park = self.park.lock();
        self.unparked.notify_all();
    }

    /// Waits, asleep, until `counter` is zero; the caller holds `writer`
    /// and has raised `WRITING`.
    #[cold]
    #[inline(never)]
    fn park_until_drained(&self, counter: &AtomicUsize) {
        let mut park = self.park.lock();
        self.state.store(WRITING | PARKED, Ordering::Relaxed);
        // A read-modify-write, Release so that a reader whose decrement
        // comes later in the counter's order sees `PARKED`, Acquire so that
        // the readers' sections happen before the write.
        while counter.fetch_add(0, Ordering::AcqRel) != 0 {
            park = self.unparked.wait(park);
        }
        self.state.store(WRITING, Ordering::Relaxed);
        drop(park);
    }
}

/// Shards per group: a group is allocated, whole, on the first write to
/// any of its shards.
const GROUP: usize = 16;

/// 16 consecutive shards: their reader counters, one 128-byte block per
/// stripe (so a stripe's counters of the group share one line that no
/// other stripe writes), then their slots.
struct Group<T> {
    /// `readers[stripe][i]`: readers of the group's shard `i` counted in
    /// `stripe`. Room for [`MAX_STRIPES`] whatever the cache uses, so that
    /// the address is a constant offset from the group's.
    readers: [Block; MAX_STRIPES],
    slots: [CachePadded<Slot<T>>; GROUP],
}

impl<T> Group<T> {
    /// The group of shards `first..first + GROUP`, each value made by
    /// `init` from its shard's index.
    fn new(first: usize, init: &dyn Fn(usize) -> T) -> Self {
        Self {
            readers: std::array::from_fn(|_| {
                CachePadded::new(std::array::from_fn(|_| AtomicUsize::new(0)))
            }),
            slots: std::array::from_fn(|i| {
                CachePadded::new(Slot {
                    state: AtomicU8::new(0),
                    writer: WriterLock::new(()),
                    park: Mutex::new(()),
                    unparked: Condvar::default(),
                    value: UnsafeCell::new(init(first + i)),
                })
            }),
        }
    }
}

/// Makes the value of shard `index`. Called for every index of a group
/// when the group is allocated, past `count` too when there are fewer than
/// [`GROUP`] shards: those slots are never used, so `init` should make them
/// empty and cheap.
pub(crate) type Init<T> = Box<dyn Fn(usize) -> T + Send + Sync>;

/// `count` reader-writer locks, each around its own `T`, allocated lazily
/// in groups of [`GROUP`]: an empty cache owns one pointer per group, and
/// a read of a shard whose group was never written finds nothing without
/// allocating.
pub(crate) struct ShardLocks<T> {
    /// Null until the group's first write; then set once, never changed.
    /// A power of two of them (those past the last of `count` stay null),
    /// so that `group_mask` keeps every index in bounds.
    groups: Box<[AtomicPtr<Group<T>>]>,
    /// `groups.len() - 1`.
    group_mask: usize,
    count: usize,
    stripe_mask: StripeMask,
    init: Init<T>,
}

// SAFETY: the locks hand out `&T` to several threads at once only under a
// read lock (so `T: Sync` is needed for `Sync`) and `&mut T` to one thread
// at a time under the write lock (so `T: Send` is needed for both), exactly
// as `std::sync::RwLock<T>` does. The groups are owned (`Box`es behind the
// pointers, freed in `Drop`), and `init` is `Send + Sync`.
unsafe impl<T: Send> Send for ShardLocks<T> {}
// SAFETY: see `Send` above.
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}

impl<T> ShardLocks<T> {
    /// `count` locks with `stripes` reader stripes (a power of two), each
    /// value made by `init` (see [`Init`]) when its group is first written,
    /// or now if `eager` (a cache with an `initial_capacity`, whose
    /// allocation must fail at build time if it fails).
    pub(crate) fn new(count: usize, stripes: usize, eager: bool, init: Init<T>) -> Self {
        let used = count.div_ceil(GROUP);
        let groups: Box<[_]> = (0..used.next_power_of_two())
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect();
        let locks = Self {
            group_mask: groups.len() - 1,
            groups,
            count,
            stripe_mask: StripeMask::new(stripes),
            init,
        };
        if eager {
            for group in 0..used {
                locks.allocate(group);
            }
        }
        locks
    }

    /// Number of locks.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The group of lock `index`, if it was ever written.
    #[inline(always)]
    fn group(&self, index: usize) -> Option<&Group<T>> {
        debug_assert!(index < self.count, "lock {index} of {}", self.count);
        // SAFETY: `groups.len()` is a power of two and `group_mask` one
        // less (both fixed in `new`), so the index is in bounds. Masking
        // instead of checking saves two instructions per `get`.
        let group = unsafe { self.groups.get_unchecked((index / GROUP) & self.group_mask) };
        let group = group.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in
        // `allocate`, was published with Release (this load is Acquire, so
        // the group's initialisation is visible), and is freed only when
        // the locks are dropped, which `&self` outlives.
        unsafe { group.as_ref() }
    }

    /// Allocates group `group` if no thread has, and returns it.
    #[cold]
    #[inline(never)]
    fn allocate(&self, group: usize) -> &Group<T> {
        let fresh = Box::into_raw(Box::new(Group::new(group * GROUP, &*self.init)));
        match self.groups[group].compare_exchange(
            std::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` is now published and lives as long as `self`
            // (see `group`).
            Ok(_) => unsafe { &*fresh },
            Err(theirs) => {
                // SAFETY: `fresh` was never published: this thread owns it.
                drop(unsafe { Box::from_raw(fresh) });
                // SAFETY: `theirs` is another thread's published group.
                unsafe { &*theirs }
            }
        }
    }

    /// The slot of lock `index` and `stripe`'s reader counter of it.
    #[inline(always)]
    fn parts(group: &Group<T>, index: usize, stripe: usize) -> (&Slot<T>, &AtomicUsize) {
        let i = index % GROUP;
        (&group.slots[i], &group.readers[stripe % MAX_STRIPES][i])
    }

    /// Takes lock `index` for reading; `None` if no write ever reached its
    /// group (then its value is the empty one `init` would make).
    #[inline(always)]
    pub(crate) fn read(&self, index: usize) -> Option<ReadGuard<'_, T>> {
        let group = self.group(index)?;
        let (slot, counter) =
            Self::parts(group, index, reader_stripe() & self.stripe_mask as usize);
        loop {
            // `SeqCst`, both: ordered with the writer's fence (module
            // docs). Under loom, which cannot model that, a fence stands in.
            counter.fetch_add(1, Ordering::SeqCst);
            #[cfg(shardcache_loom)]
            fence(Ordering::SeqCst);
            if slot.state.load(Ordering::SeqCst) == 0 {
                return Some(ReadGuard {
                    slot,
                    counter,
                    value: ManuallyDrop::new(slot.value.get()),
                });
            }
            // A writer is in or on its way in: step aside (waking it if it
            // sleeps on this counter), sleep until it releases the writers'
            // mutex, and try again.
            slot.leave(counter);
            drop(slot.writer.lock());
        }
    }

    /// Takes lock `index` for writing, allocating its group if needed.
    #[inline(always)]
    pub(crate) fn write(&self, index: usize) -> WriteGuard<'_, T> {
        let group = match self.group(index) {
            Some(group) => group,
            None => self.allocate(index / GROUP),
        };
        self.write_in(group, index)
    }

    /// Takes lock `index` for writing if its group exists: for removals,
    /// which have nothing to do in a shard never written.
    #[inline]
    pub(crate) fn write_existing(&self, index: usize) -> Option<WriteGuard<'_, T>> {
        Some(self.write_in(self.group(index)?, index))
    }

    /// Takes lock `index`, in `group`, for writing.
    #[inline(always)]
    fn write_in<'a>(&'a self, group: &'a Group<T>, index: usize) -> WriteGuard<'a, T> {
        let slot = &group.slots[index % GROUP];
        let writer = slot.writer.lock();
        slot.state.store(WRITING, Ordering::Relaxed);
        // Orders the store before every counter load below, against the
        // readers' `SeqCst` increment and load of `state`: a reader whose
        // increment a load misses sees `WRITING` (module docs). One fence,
        // instead of one locked read-modify-write per stripe.
        fence(Ordering::SeqCst);
        // `take`, which the compiler unrolls (`StripeMask` tells it there
        // are at most 16 stripes): 8 instructions fewer per `insert` than
        // a loop over the slice `..=stripe_mask`, which also checked its
        // bound; `0..=stripe_mask` cost about five more than the slice.
        for readers in group.readers.iter().take(self.stripe_mask as usize + 1) {
            let counter = &readers[index % GROUP];
            // Acquire: a zero left by a reader's unlock orders its read
            // section before the write.
            if counter.load(Ordering::Acquire) != 0 {
                Self::drain(slot, counter);
            }
        }
        WriteGuard {
            state: &slot.state,
            value: ManuallyDrop::new(slot.value.get_mut()),
            _writer: writer,
        }
    }

    /// Waits until `counter` is zero: spins briefly, then parks. Spins on
    /// loads, which leave the line shared, and confirms with `fetch_add(0)`,
    /// which is ordered with the readers' increments (module docs).
    #[cold]
    #[inline(never)]
    fn drain(slot: &Slot<T>, counter: &AtomicUsize) {
        let spin = Spin::default();
        while counter.load(Ordering::Relaxed) != 0 || counter.fetch_add(0, Ordering::AcqRel) != 0 {
            if spin.is_completed() {
                slot.park_until_drained(counter);
                return;
            }
            spin.wait();
        }
    }
}

impl<T> Drop for ShardLocks<T> {
    fn drop(&mut self) {
        for group in &*self.groups {
            let group = group.load(Ordering::Relaxed);
            if !group.is_null() {
                // SAFETY: published by `allocate` from `Box::into_raw`, and
                // `&mut self` means no guard borrows it any more.
                drop(unsafe { Box::from_raw(group) });
            }
        }
    }
}

impl<T> fmt::Debug for ShardLocks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardLocks")
            .field("locks", &self.count)
            .field("stripes", &(self.stripe_mask as usize + 1))
            .finish_non_exhaustive()
    }
}

/// A read lock on one shard; shared access to its value.
pub(crate) struct ReadGuard<'a, T> {
    slot: &'a Slot<T>,
    counter: &'a AtomicUsize,
    /// Dropped by hand before the lock is released: under loom, the
    /// pointer's lifetime is the access that the model checks.
    value: ManuallyDrop<ConstPtr<T>>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard's count in the reader counters keeps every
        // writer out (module docs) until the guard is dropped, and the
        // returned reference cannot outlive the guard.
        unsafe { ConstPtr::deref(&self.value) }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `value` is never used again.
        unsafe { ManuallyDrop::drop(&mut self.value) };
        self.slot.leave(self.counter);
    }
}

/// A write lock on one shard; exclusive access to its value.
pub(crate) struct WriteGuard<'a, T> {
    state: &'a AtomicU8,
    /// Dropped by hand before the lock is released, as in `ReadGuard`.
    value: ManuallyDrop<MutPtr<T>>,
    // Released after `drop` clears `state`, so readers waiting on the
    // mutex retry only when the flag is down.
    _writer: WriterGuard<'a>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the writers' mutex, and no reader holds
        // the lock (every counter was seen at zero with `WRITING` up), so
        // no other reference to the value exists while it lives.
        unsafe { MutPtr::deref(&self.value) }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only
        // reference handed out by this guard.
        unsafe { MutPtr::deref(&self.value) }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `value` is never used again.
        unsafe { ManuallyDrop::drop(&mut self.value) };
        self.state.store(0, Ordering::Release);
    }
}

#[cfg(all(test, not(shardcache_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// `count` locks with `stripes` stripes, each value made by `init`.
    fn locks<T: 'static>(
        count: usize,
        stripes: usize,
        init: impl Fn() -> T + Send + Sync + 'static,
    ) -> ShardLocks<T> {
        ShardLocks::new(count, stripes, false, Box::new(move |_| init()))
    }

    /// `count` locks with 2 stripes, allocated now if `eager`, each value
    /// its shard's index, and the count of values `init` made so far.
    fn counted_locks(count: usize, eager: bool) -> (ShardLocks<usize>, Arc<AtomicUsize>) {
        let made = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&made);
        let init = move |index| {
            counted.fetch_add(1, Ordering::Relaxed);
            index
        };
        (ShardLocks::new(count, 2, eager, Box::new(init)), made)
    }

    #[test]
    fn an_unbounded_shard_and_its_lock_fit_128_bytes() {
        // One 128-byte slot per shard: a group of 16 is 4 KiB with the
        // readers' blocks.
        let size = std::mem::size_of::<Slot<crate::shard::UnboundedShard<u64, u64>>>();
        assert!(size <= 128, "{size} bytes");
        let group = std::mem::size_of::<Group<crate::shard::UnboundedShard<u64, u64>>>();
        assert_eq!(group, 2 * GROUP * 128);
    }

    #[test]
    fn reads_share_and_writes_exclude() {
        let locks = locks(3, 4, Vec::<u32>::new);
        locks.write(1).push(7);
        {
            let a = locks.read(1).unwrap();
            let b = locks.read(1).unwrap();
            assert_eq!((&*a, &*b), (&vec![7], &vec![7]));
            // Other locks are independent of held reads.
            locks.write(0).push(1);
        }
        locks.write(1).push(8);
        assert_eq!(*locks.read(1).unwrap(), vec![7, 8]);
        assert_eq!(*locks.read(0).unwrap(), vec![1]);
        assert_eq!(locks.len(), 3);
    }

    #[test]
    fn groups_are_allocated_on_the_first_write_only() {
        let (locks, made) = counted_locks(40, false);
        assert!(locks.read(17).is_none(), "nothing written: nothing to read");
        assert!(locks.write_existing(17).is_none());
        assert_eq!(made.load(Ordering::Relaxed), 0);
        assert_eq!(*locks.write(17), 17);
        assert_eq!(
            made.load(Ordering::Relaxed),
            GROUP,
            "one group: shards 16..32"
        );
        assert_eq!(*locks.read(16).unwrap(), 16);
        assert!(locks.read(15).is_none() && locks.read(32).is_none());
        // The last group is whole too, its slots past `count` unused.
        assert_eq!(*locks.write(39), 39);
        assert_eq!(made.load(Ordering::Relaxed), 2 * GROUP);
        assert!(locks.write_existing(39).is_some());
    }

    #[test]
    fn eager_locks_allocate_every_group_at_once() {
        let locks = ShardLocks::new(20, 1, true, Box::new(|index| index));
        assert_eq!(*locks.read(0).unwrap(), 0);
        assert_eq!(*locks.read(19).unwrap(), 19);
    }

    #[test]
    fn first_writes_racing_on_one_group_allocate_it_once() {
        let threads = if cfg!(miri) { 3 } else { 8 };
        let locks = Arc::new(locks(GROUP, 2, || 0u32));
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (locks, barrier) = (Arc::clone(&locks), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    *locks.write(t % GROUP) += 1;
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        let total: u32 = (0..GROUP).map(|i| *locks.read(i).unwrap()).sum();
        assert_eq!(
            total, threads as u32,
            "a write went to a group that lost the race"
        );
    }

    #[test]
    fn counters_of_many_shards_and_stripes_are_distinct() {
        let locks = locks(40, 2, || 0u8);
        for index in [0, 16, 39] {
            locks.write(index);
        }
        let mut seen = std::collections::HashSet::new();
        for stripe in 0..2 {
            for index in 0..40 {
                let group = locks.group(index).unwrap();
                let (_, counter) = ShardLocks::parts(group, index, stripe);
                assert!(seen.insert(counter as *const AtomicUsize));
            }
        }
    }

    #[test]
    fn a_panicking_writer_releases_the_lock() {
        let locks = locks(1, 2, || 0u32);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = locks.write(0);
            *guard = 5;
            panic!("user code panicked under the write lock");
        }));
        assert!(result.is_err());
        assert_eq!(*locks.read(0).unwrap(), 5);
        *locks.write(0) += 1;
        assert_eq!(*locks.read(0).unwrap(), 6);
    }

    #[test]
    fn a_panicking_init_leaves_the_group_unallocated() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let failing = Arc::clone(&fail);
        let locks = ShardLocks::new(
            4,
            1,
            false,
            Box::new(move |index| {
                assert!(!failing.load(Ordering::Relaxed), "no room");
                index
            }),
        );
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            locks.write(2);
        }));
        assert!(result.is_err());
        assert!(locks.read(2).is_none());
        fail.store(false, Ordering::Relaxed);
        assert_eq!(*locks.write(2), 2);
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let threads = if cfg!(miri) { 3 } else { 4 };
        let rounds = if cfg!(miri) { 50 } else { 10_000 };
        let locks = Arc::new(locks(2, 2, || (0u64, 0u64)));
        locks.write(0);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let locks = Arc::clone(&locks);
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        let index = i % 2;
                        if i % 3 == 0 {
                            let mut pair = locks.write(index);
                            pair.0 += 1;
                            pair.1 += 1;
                        } else {
                            let pair = locks.read(index).unwrap();
                            assert_eq!(pair.0, pair.1, "a reader saw a half-done write");
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        let writes = (0..rounds).filter(|i| i % 3 == 0).count() as u64 * threads as u64;
        assert_eq!(locks.read(0).unwrap().0 + locks.read(1).unwrap().0, writes);
    }

    #[test]
    fn default_stripes_is_a_power_of_two_in_range() {
        let n = default_stripes();
        assert!(n.is_power_of_two() && n <= MAX_STRIPES);
    }

    #[test]
    fn a_stripe_mask_exists_for_every_legal_count_only() {
        for stripes in [1, 2, 4, 8, 16] {
            assert_eq!(StripeMask::new(stripes) as usize, stripes - 1);
        }
        for stripes in [0, 3, 32] {
            let made = std::panic::catch_unwind(|| StripeMask::new(stripes));
            assert!(made.is_err(), "{stripes} stripes accepted");
        }
    }

    #[test]
    fn groups_are_padded_to_a_power_of_two_and_the_padding_stays_empty() {
        // 40 locks: 3 groups used, 4 pointers.
        let (locks, made) = counted_locks(40, true);
        assert_eq!((locks.groups.len(), locks.group_mask), (4, 3));
        assert_eq!(made.load(Ordering::Relaxed), 3 * GROUP, "padding allocated");
        for index in 0..40 {
            assert_eq!(*locks.read(index).unwrap(), index);
        }
        assert!(locks.groups[3].load(Ordering::Relaxed).is_null());
        for count in [1, 16, 17, 1024] {
            let locks = locks_of(count);
            assert!(locks.groups.len().is_power_of_two());
            assert_eq!(locks.group_mask, locks.groups.len() - 1);
            assert!(locks.groups.len() * GROUP >= count);
            assert_eq!(*locks.write(count - 1), 0);
        }
    }

    fn locks_of(count: usize) -> ShardLocks<u8> {
        locks(count, 1, || 0)
    }
}
