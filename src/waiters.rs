//! The async waiters of one flight: a slab of wakers in which each waiting
//! future owns one slot, by its index.
//!
//! A future that awaits the end of a flight registers its waker once and
//! keeps the slot's index ([`Slot`]); a later poll replaces the waker in
//! that slot (no scan), and dropping the future frees the slot, so a
//! cancelled waiter's waker (which keeps its whole task alive) is released
//! at once, not when the flight ends. Freed slots are chained into a free
//! list and reused; when the last waiter leaves, the slab's memory is
//! returned. Register, re-register and cancel are O(1); the end of the
//! flight takes the slab and wakes every waker in it, each once.
//!
//! Everything here runs under the flight's mutex, so the slab needs no
//! synchronisation of its own, and it uses no `unsafe`: a slot is found by
//! its index, never by a pointer. A slot's index cannot be reused while its
//! future still holds it (only that future frees it), and a flight's slab is
//! taken only once, when the flight ends; a future whose flight has ended
//! no longer looks at the slab.

use std::fmt;
use std::task::Waker;

/// The wakers of the futures waiting for one flight.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: Vec<Entry>,
    /// The first free slot, [`NONE`] if none: the head of the free list.
    free: usize,
    /// Slots holding a waker.
    live: usize,
}

/// One slot of the slab.
enum Entry {
    /// A waiting future's waker.
    Waiting(Waker),
    /// A free slot, and the next free one ([`NONE`] if none).
    Free(usize),
}

/// The end of the free list.
const NONE: usize = usize::MAX;

/// A waiting future's hold on its slot: the index, or `None` before it has
/// registered. Kept by the future, handed back to [`Waiters::register`] and
/// [`Waiters::cancel`].
pub(crate) type Slot = Option<usize>;

impl Waiters {
    /// An empty slab; allocates nothing.
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: NONE,
            live: 0,
        }
    }

    /// Registers `waker` for the future holding `slot`: a new slot the
    /// first time, else the waker in its slot is replaced, unless it would
    /// wake the same task. O(1) either way.
    pub(crate) fn register(&mut self, slot: &mut Slot, waker: &Waker) {
        visited(1);
        if let Some(index) = *slot {
            if let Some(Entry::Waiting(held)) = self.slots.get_mut(index) {
                if !held.will_wake(waker) {
                    held.clone_from(waker);
                }
                return;
            }
            debug_assert!(false, "a registered waiter's slot {index} is free");
        }
        let entry = Entry::Waiting(waker.clone());
        let index = if self.free == NONE {
            self.slots.push(entry);
            self.slots.len() - 1
        } else {
            let index = self.free;
            match std::mem::replace(&mut self.slots[index], entry) {
                Entry::Free(next) => self.free = next,
                Entry::Waiting(_) => unreachable!("the free list holds a waiting slot"),
            }
            index
        };
        self.live += 1;
        *slot = Some(index);
    }

    /// Frees the slot of a future that stops waiting (it was dropped, or it
    /// saw the flight end) and returns its waker, to be dropped after the
    /// flight's lock is released. O(1); when the last waiter leaves, the
    /// slab's memory is returned.
    pub(crate) fn cancel(&mut self, slot: &mut Slot) -> Option<Waker> {
        let index = slot.take()?;
        visited(1);
        let Some(entry @ Entry::Waiting(_)) = self.slots.get_mut(index) else {
            debug_assert!(false, "a registered waiter's slot {index} is free");
            return None;
        };
        let Entry::Waiting(waker) = std::mem::replace(entry, Entry::Free(self.free)) else {
            unreachable!("matched as waiting above")
        };
        self.free = index;
        self.live -= 1;
        if self.live == 0 {
            *self = Self::new();
        }
        Some(waker)
    }

    /// Wakes every registered waiter once, consuming the slab (the flight
    /// has ended). Call with no lock held: a waker may run user code.
    pub(crate) fn wake_all(self) {
        for entry in self.slots {
            if let Entry::Waiting(waker) = entry {
                waker.wake();
            }
        }
    }

    /// How many futures are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// How many slots the slab holds, free ones included.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiters")
            .field("waiting", &self.live)
            .field("slots", &self.slots.len())
            .finish()
    }
}

#[cfg(test)]
std::thread_local! {
    /// Slots visited by this thread's registrations and cancellations: the
    /// work they do, counted instead of timed.
    static VISITED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` slots visited (tests only; nothing in other builds).
#[inline(always)]
fn visited(n: u64) {
    #[cfg(test)]
    VISITED.with(|visited| visited.set(visited.get() + n));
    #[cfg(not(test))]
    let _ = n;
}

/// The slots this thread's registrations and cancellations have visited.
#[cfg(test)]
pub(crate) fn slots_visited() -> u64 {
    VISITED.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts its wakes, and (through its `Arc`) its clones.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted(n: usize) -> Vec<(Arc<Counting>, Waker)> {
        (0..n)
            .map(|_| {
                let counting = Arc::new(Counting::default());
                let waker = Waker::from(Arc::clone(&counting));
                (counting, waker)
            })
            .collect()
    }

    #[test]
    fn every_live_waiter_is_woken_once_and_cancelled_ones_never() {
        let wakers = counted(6);
        let mut waiters = Waiters::new();
        let mut slots = vec![None; wakers.len()];
        for (slot, (_, waker)) in slots.iter_mut().zip(&wakers) {
            waiters.register(slot, waker);
        }
        // Re-registering the same waker changes nothing.
        waiters.register(&mut slots[0], &wakers[0].1);
        for i in [1, 3] {
            drop(waiters.cancel(&mut slots[i]));
            assert_eq!(slots[i], None);
        }
        // A freed slot is reused by the next registration.
        let late = counted(1);
        let mut late_slot = None;
        waiters.register(&mut late_slot, &late[0].1);
        assert!(matches!(late_slot, Some(3 | 1)));
        assert_eq!(waiters.len(), 5);
        waiters.wake_all();
        let woken: Vec<usize> = wakers
            .iter()
            .chain(&late)
            .map(|(counting, _)| counting.0.load(Ordering::SeqCst))
            .collect();
        assert_eq!(woken, [1, 0, 1, 0, 1, 1, 1]);
        // Every clone the slab held is gone: only the test's own remain.
        for (counting, _) in wakers.iter().chain(&late) {
            assert_eq!(Arc::strong_count(counting), 2);
        }
    }

    /// A slot is a waker's two words, its free-list link in the niche.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_takes_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one_in_its_slot() {
        let wakers = counted(2);
        let mut waiters = Waiters::new();
        let mut slot = None;
        waiters.register(&mut slot, &wakers[0].1);
        waiters.register(&mut slot, &wakers[1].1);
        assert_eq!((waiters.len(), Arc::strong_count(&wakers[0].0)), (1, 2));
        waiters.wake_all();
        assert_eq!(wakers[0].0 .0.load(Ordering::SeqCst), 0);
        assert_eq!(wakers[1].0 .0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn registering_and_cancelling_visit_one_slot_each() {
        let n = if cfg!(miri) { 200 } else { 100_000 };
        let wakers = counted(n);
        let mut waiters = Waiters::new();
        let mut slots = vec![None; n];
        let before = slots_visited();
        for round in 0..2 {
            for (slot, (_, waker)) in slots.iter_mut().zip(&wakers) {
                waiters.register(slot, waker);
            }
            // The second round re-registers each waiter with a new waker.
            if round == 1 {
                for (slot, (_, waker)) in slots.iter_mut().zip(wakers.iter().rev()) {
                    waiters.register(slot, waker);
                }
            }
            assert_eq!(waiters.len(), n);
            for slot in &mut slots {
                drop(waiters.cancel(slot));
            }
            assert_eq!((waiters.len(), waiters.capacity()), (0, 0));
        }
        let visited = slots_visited() - before;
        assert_eq!(visited, 5 * n as u64, "one slot per register or cancel");
    }
}
