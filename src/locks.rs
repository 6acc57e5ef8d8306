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
//! (`reader_stripe() % stripes`, see `sync.rs`). A reader of
//! shard `i` counts itself in `readers[stripe][i]`; the counters of one
//! stripe are packed in cache lines of their own, so a reader writes only
//! lines that its stripe owns. The shard's own line holds a `writing` flag,
//! the writers' mutex and the value; readers only read it.
//!
//! ```text
//! readers: stripe 0: [shard 0..15][shard 16..31]...   one 128-byte block per 16 shards
//!          stripe 1: [shard 0..15][shard 16..31]...
//! slots:   [writing | writer mutex | value] per shard, one CachePadded each
//! ```
//!
//! # The protocol
//!
//! - read: `counter.fetch_add(1, Acquire)`; if `writing` is false, the read
//!   lock is held; else undo the increment, wait on the writers' mutex
//!   (sleeping, not spinning, while a writer works) and retry.
//!   Unlock: `counter.fetch_sub(1, Release)`.
//! - write: lock the writers' mutex; `writing = true`; then, for each
//!   stripe, wait until a `fetch_add(0, AcqRel)` on the shard's counter
//!   returns zero. Unlock: `writing = false` (Release), then the mutex.
//!
//! Why a reader and a writer never both get in, without `SeqCst`: the
//! writer's check of each counter is a read-modify-write, and RMWs on one
//! atomic are totally ordered. If the reader's increment comes first, the
//! writer's RMW sees it and waits for the matching decrement, whose Release
//! the RMW's Acquire synchronises with (reader's section happens-before the
//! writer's). If the writer's RMW comes first, the reader's increment reads
//! its value, so the RMW's Release synchronises with the increment's
//! Acquire: the writer's earlier `writing = true` happens-before the
//! reader's load of `writing`, which therefore sees `true` (or the `false`
//! of a later unlock, whose Release orders the whole write section before
//! the read). loom (`loom-tests/`) checks this protocol with every access
//! to the value tracked, and treats `SeqCst` no stronger than `AcqRel`,
//! which is why the protocol relies on neither.
//!
//! Writers serialise on a `Mutex`, so readers that meet a writer sleep
//! rather than spin. A compare-and-swap spin lock on `writing` instead ran
//! 19% faster for one thread at 50% writes (31.0 against 26.0 Mops/s), the
//! same at 2 and 4 threads, but its spinning readers made the loom models
//! unbounded; the mutex keeps every model checkable.
//!
//! Costs: a read is one RMW on a line private to its stripe, one load of the
//! shard's line and one RMW to unlock, like `RwLock`'s, but without
//! cross-core traffic. A write checks one counter per stripe, so stripes are
//! kept to the number of cores (at most [`MAX_STRIPES`]).

#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;

use crate::sync::{
    reader_stripe, AtomicBool, AtomicUsize, ConstPtr, MutPtr, Mutex, MutexGuard, Ordering, Spin,
    UnsafeCell,
};

/// At most this many stripes: a writer checks one counter per stripe.
pub(crate) const MAX_STRIPES: usize = 16;

/// Counters per block; a block fills one `CachePadded` line.
const BLOCK: usize = 16;

/// One stripe's counters for 16 consecutive shards.
type Block = CachePadded<[AtomicUsize; BLOCK]>;

/// The number of stripes for this machine: its cores, as a power of two,
/// at most [`MAX_STRIPES`].
pub(crate) fn default_stripes() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .next_power_of_two()
        .min(MAX_STRIPES)
}

/// One shard's lock state and value, alone in its cache line(s).
struct Slot<T> {
    writing: AtomicBool,
    writer: Mutex<()>,
    value: UnsafeCell<T>,
}

/// `count` reader-writer locks, each around its own `T`.
pub(crate) struct ShardLocks<T> {
    slots: Box<[CachePadded<Slot<T>>]>,
    /// `stripes` rows of `row_blocks` blocks each.
    readers: Box<[Block]>,
    row_blocks: usize,
    stripe_mask: usize,
}

// SAFETY: the locks hand out `&T` to several threads at once only under a
// read lock (so `T: Sync` is needed for `Sync`) and `&mut T` to one thread
// at a time under the write lock (so `T: Send` is needed for both), exactly
// as `std::sync::RwLock<T>` does.
unsafe impl<T: Send> Send for ShardLocks<T> {}
// SAFETY: see `Send` above.
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}

impl<T> ShardLocks<T> {
    /// `count` locks with `stripes` reader stripes (a power of two), each
    /// value made by `init`.
    pub(crate) fn new(count: usize, stripes: usize, mut init: impl FnMut() -> T) -> Self {
        assert!(stripes.is_power_of_two() && stripes <= MAX_STRIPES);
        let row_blocks = count.div_ceil(BLOCK);
        let slots = (0..count)
            .map(|_| {
                CachePadded::new(Slot {
                    writing: AtomicBool::new(false),
                    writer: Mutex::new(()),
                    value: UnsafeCell::new(init()),
                })
            })
            .collect();
        let readers = (0..stripes * row_blocks)
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicUsize::new(0))))
            .collect();
        Self {
            slots,
            readers,
            row_blocks,
            stripe_mask: stripes - 1,
        }
    }

    /// Number of locks.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// `stripe`'s reader counter of lock `index`.
    #[inline]
    fn counter(&self, stripe: usize, index: usize) -> &AtomicUsize {
        &self.readers[stripe * self.row_blocks + index / BLOCK][index % BLOCK]
    }

    /// Takes lock `index` for reading.
    #[inline(always)]
    pub(crate) fn read(&self, index: usize) -> ReadGuard<'_, T> {
        let slot = &self.slots[index];
        let counter = self.counter(reader_stripe() & self.stripe_mask, index);
        loop {
            counter.fetch_add(1, Ordering::Acquire);
            if !slot.writing.load(Ordering::Acquire) {
                return ReadGuard {
                    counter,
                    value: ManuallyDrop::new(slot.value.get()),
                    _lock: PhantomData,
                };
            }
            // A writer is in or on its way in: step aside, sleep until it
            // releases the writers' mutex, and try again.
            counter.fetch_sub(1, Ordering::Release);
            drop(slot.writer.lock());
        }
    }

    /// Takes lock `index` for writing.
    pub(crate) fn write(&self, index: usize) -> WriteGuard<'_, T> {
        let slot = &self.slots[index];
        let writer = slot.writer.lock();
        // Ordered before the readers' increments by the Release of the
        // read-modify-writes below (see the module docs).
        slot.writing.store(true, Ordering::Relaxed);
        for stripe in 0..=self.stripe_mask {
            let counter = self.counter(stripe, index);
            let spin = Spin::default();
            // Spin on loads, which leave the line shared; confirm with
            // `fetch_add(0)`, because only a read-modify-write is ordered
            // with the readers' increments (module docs).
            while counter.load(Ordering::Relaxed) != 0
                || counter.fetch_add(0, Ordering::AcqRel) != 0
            {
                spin.wait();
            }
        }
        WriteGuard {
            writing: &slot.writing,
            value: ManuallyDrop::new(slot.value.get_mut()),
            _writer: writer,
        }
    }
}

impl<T> fmt::Debug for ShardLocks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardLocks")
            .field("locks", &self.slots.len())
            .field("stripes", &(self.stripe_mask + 1))
            .finish_non_exhaustive()
    }
}

/// A read lock on one shard; shared access to its value.
pub(crate) struct ReadGuard<'a, T> {
    counter: &'a AtomicUsize,
    /// Dropped by hand before the lock is released: under loom, the
    /// pointer's lifetime is the access that the model checks.
    value: ManuallyDrop<ConstPtr<T>>,
    _lock: PhantomData<&'a T>,
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
        self.counter.fetch_sub(1, Ordering::Release);
    }
}

/// A write lock on one shard; exclusive access to its value.
pub(crate) struct WriteGuard<'a, T> {
    writing: &'a AtomicBool,
    /// Dropped by hand before the lock is released, as in `ReadGuard`.
    value: ManuallyDrop<MutPtr<T>>,
    // Released after `drop` clears `writing`, so readers waiting on the
    // mutex retry only when the flag is down.
    _writer: MutexGuard<'a, ()>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the writers' mutex, and no reader holds
        // the lock (every counter was seen at zero with `writing` up), so
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
        self.writing.store(false, Ordering::Release);
    }
}

#[cfg(all(test, not(shardcache_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn an_unbounded_shard_and_its_lock_fit_128_bytes() {
        // One 128-byte slot per shard: the footprint of an empty cache.
        let size = std::mem::size_of::<Slot<crate::shard::Shard<u64, u64>>>();
        assert!(size <= 128, "{size} bytes");
    }

    #[test]
    fn reads_share_and_writes_exclude() {
        let locks = ShardLocks::new(3, 4, Vec::<u32>::new);
        locks.write(1).push(7);
        {
            let a = locks.read(1);
            let b = locks.read(1);
            assert_eq!((&*a, &*b), (&vec![7], &vec![7]));
            // Other locks are independent of held reads.
            locks.write(0).push(1);
        }
        locks.write(1).push(8);
        assert_eq!(*locks.read(1), vec![7, 8]);
        assert_eq!(*locks.read(0), vec![1]);
        assert_eq!(locks.len(), 3);
    }

    #[test]
    fn counters_of_many_shards_and_stripes_are_distinct() {
        let locks = ShardLocks::new(40, 2, || 0u8);
        let mut seen = std::collections::HashSet::new();
        for stripe in 0..2 {
            for index in 0..40 {
                assert!(seen.insert(locks.counter(stripe, index) as *const AtomicUsize));
            }
        }
    }

    #[test]
    fn a_panicking_writer_releases_the_lock() {
        let locks = ShardLocks::new(1, 2, || 0u32);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = locks.write(0);
            *guard = 5;
            panic!("user code panicked under the write lock");
        }));
        assert!(result.is_err());
        assert_eq!(*locks.read(0), 5);
        *locks.write(0) += 1;
        assert_eq!(*locks.read(0), 6);
    }

    #[test]
    fn concurrent_increments_are_not_lost() {
        let threads = if cfg!(miri) { 3 } else { 4 };
        let rounds = if cfg!(miri) { 50 } else { 10_000 };
        let locks = Arc::new(ShardLocks::new(2, 2, || (0u64, 0u64)));
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
                            let pair = locks.read(index);
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
        assert_eq!(locks.read(0).0 + locks.read(1).0, writes);
    }

    #[test]
    fn default_stripes_is_a_power_of_two_in_range() {
        let n = default_stripes();
        assert!(n.is_power_of_two() && n <= MAX_STRIPES);
    }
}
