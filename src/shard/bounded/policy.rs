//! The bounded shard's eviction policy: which queue a new entry joins,
//! what a hit records, and which entry goes when room is needed.
//!
//! It sees the storage only through [`Slab`]: a node's weight, its key's
//! hash, and the [`Links`] it keeps in each node. Another policy is another
//! file with the same methods (`admit`, `unlink`, `moved`, `victim`,
//! `evicted`, `reweigh`, `renumber`, `Links::hit`), and storage does not
//! change.
//!
//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023), with the split between its two queues moved as ARC moves
//! its own (Megiddo and Modha, FAST 2003), and one gate of ours:
//!
//! - **A hit** only bumps the entry's frequency, saturating at 2: a relaxed
//!   load, and a relaxed store while it is below 2, so a hot key settles
//!   into reads only. Nothing else is written on the read path: the policy
//!   learns everything else from what inserts and evictions see.
//! - **A new key** enters `small`, or `main` while `main` is below its share
//!   (a cold cache fills `main` first).
//! - **Eviction** takes from `small` unless `main` is over its share: the
//!   oldest entry moves to `main` if it was hit since it came in, else it
//!   is evicted and its hash goes to the ghost. From `main` it is CLOCK:
//!   the oldest entry goes back to the tail with its frequency decremented
//!   if it was hit, else it is evicted.
//! - **The split adapts.** `small` aims at `small_target`, 1% of the
//!   capacity at first, between one entry and half the capacity. Two short
//!   windows (a thirty-second of the capacity each) remember the latest
//!   evictions from each queue. A new key found in `small`'s window would
//!   have been hit by a slightly longer `small`: the target grows by the
//!   key's weight. One found in `main`'s window would have been hit by a
//!   longer `main`: it shrinks. These are ARC's two ghost lists, cut to
//!   the evictions a step of the boundary can win back, so a key that only
//!   comes back long after (a loop) moves nothing. When `small` has grown,
//!   `main` gives way only as its entries go cold: over its share, its
//!   oldest entry goes if it was not hit, and if it was, it is passed over.
//!   Then `small`'s record decides the split: if none of its last 32 oldest
//!   entries was hit (promoted rather than evicted) and the current one was
//!   not either, `main`'s is the only one in use and the target shrinks
//!   again, so a `main` whose every entry is in use while `small` hits
//!   nothing (a loop or a zigzag it keeps part of) holds on to it; else both
//!   queues are in use and the target stays where the windows put it
//!   (recency-friendly requests, where a longer `small` pays).
//! - **A key the ghost remembers** goes to `main`, as in S3-FIFO, but only
//!   if the sketch says it was used more often than the entry `main` would
//!   evict for it; else it enters `small` like any new key. The sketch
//!   counts a key's returns from the ghost (not its first insert: the ghost
//!   is the doorkeeper); its promotion out of `small` and each time the
//!   CLOCK passes over it are kept in its node instead ([`Links::owed`],
//!   halved as the sketch ages) and added to the sketch's estimate when
//!   the entry is the victim weighed, so that moving within the cache
//!   never hashes a key. Without this
//!   gate, a loop or a zigzag over more keys than the cache holds turns
//!   `main` over endlessly and hits nothing; with it `main` keeps a fixed
//!   part of the loop, as an optimal policy would. `docs/HITRATIO.md` has
//!   the measurements behind each choice.
//!
//! Expired entries go first, whatever their frequency, whenever eviction
//! meets them: at the head of `main`, or of `small` when it evicts from
//! there. Each step moves or removes one entry, and a frequency only falls,
//! so an insert does O(1) amortized work.
//!
//! User code here is `Hash`: to weigh a returning key against `main`'s
//! victim. The call comes between two whole steps (a node moved from one
//! queue's head to a tail), so a panic leaves the queues consistent;
//! [`victim`](Policy::victim) runs none.

use std::hash::{BuildHasher, Hash};

use super::ghost::Ghost;
use super::sketch::Sketch;
use super::storage::{Slab, NIL};
use crate::sync::{AtomicU8, Ordering};

/// The highest frequency a hit counts to.
pub(super) const MAX_FREQ: u8 = 2;

/// A shard of unit weights sizes its sketch for its whole capacity, up to
/// this many entries, on its first insert: a sketch that grew with a
/// filling cache would keep the collisions of its small beginnings, and
/// that cost 3 of 36 trace cells in `docs/HITRATIO.md`. 32 KiB at most.
const SKETCH_PRESIZE: usize = 1 << 14;

/// `small` starts at `1 / SMALL_SHARE` of the capacity (at least 1), and
/// never aims above half of it.
const SMALL_SHARE: u64 = 100;

/// Each of the two windows that steer `small`'s target has a slot per
/// `WINDOW_SHARE` entries the shard holds, so it remembers about that many
/// recent evictions.
const WINDOW_SHARE: usize = 32;

/// Which FIFO a node is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

/// What the policy keeps in each node: its place in its queue and its
/// hits.
#[derive(Debug)]
pub(crate) struct Links {
    pub(super) prev: u32,
    pub(super) next: u32,
    /// Hits since the entry entered its queue or was last passed over,
    /// up to [`MAX_FREQ`]. Written by readers, under the read lock.
    pub(super) freq: AtomicU8,
    pub(super) queue: Queue,
    /// The uses found by the write path while the entry was resident (its
    /// promotion out of `small`, the CLOCK's passes over it), which the
    /// sketch has not counted: [`Sketch::owe`]'s byte (up to 15, stamped with the sketch's
    /// aging so that they halve as its counters do). Added to the entry's
    /// estimate when it is weighed as `main`'s victim; not added to the
    /// sketch when it leaves (the key is then in no ghost).
    pub(super) owed: u8,
    /// Whether the entry has a deadline. Not the policy's: the shard
    /// (`mod.rs`) keeps it here, in what would be padding (a `u64 -> u64`
    /// node stays 32 bytes), so that a hit tests it in the node it reads
    /// anyway instead of loading the deadlines' column. The policy never
    /// reads or writes it.
    pub(super) timed: bool,
}

impl Links {
    /// The links of a node in no queue yet.
    pub(crate) fn new() -> Self {
        Self {
            prev: NIL,
            next: NIL,
            freq: AtomicU8::new(0),
            queue: Queue::Small,
            owed: 0,
            timed: false,
        }
    }

    /// Records a hit, under the read lock.
    #[inline]
    pub(crate) fn hit(&self) {
        // Relaxed: the count is a hint, and racing readers may lose a bump.
        let freq = self.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            self.freq.store(freq + 1, Ordering::Relaxed);
        }
    }
}

/// A FIFO threaded through the slab by index.
#[derive(Debug, Clone, Copy)]
pub(super) struct List {
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) weight: u64,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            weight: 0,
        }
    }
}

/// The slab as the policy sees it.
type Nodes<K, V> = Slab<K, V, Links>;

/// The policy's state for one shard.
#[derive(Debug)]
pub(crate) struct Policy {
    pub(super) small: List,
    pub(super) main: List,
    pub(super) ghost: Ghost,
    /// Keys evicted lately from `small`: one coming back says a longer
    /// `small` would have hit it.
    recent_small: Ghost,
    /// Keys evicted lately from `main`: one coming back says a longer
    /// `main` would have hit it.
    recent_main: Ghost,
    pub(super) sketch: Sketch,
    capacity: u64,
    /// The weight `small` aims at; `main` may hold the rest. Moved by
    /// [`grow_small`](Self::grow_small) and
    /// [`shrink_small`](Self::shrink_small).
    pub(super) small_target: u64,
    /// The fates of `small`'s last 32 oldest entries, newest in bit 0: 1
    /// for one promoted to `main` (it was hit), 0 for one evicted. While it
    /// is 0, `small` has earned no room, and a hit entry of `main` over its
    /// share pulls the target back.
    pub(super) small_record: u32,
    /// The entries the sketch is sized for from the first insert (0: grow
    /// with the shard, its entry count unknown).
    presize: usize,
    /// The most entries the ghost, the windows and the sketch were sized
    /// for: [`fit`](Self::fit) runs only when the shard holds more.
    fitted: usize,
}

impl Policy {
    /// The policy of a shard holding at most `capacity` weight and, when
    /// every entry weighs 1, at most `most_entries` entries (else
    /// `usize::MAX`).
    pub(crate) fn new(capacity: u64, most_entries: usize) -> Self {
        let presize = if most_entries == usize::MAX {
            0 // weighted: the entry count is unknown, so grow with it
        } else {
            most_entries.min(SKETCH_PRESIZE)
        };
        Self {
            small: List::default(),
            main: List::default(),
            ghost: Ghost::default(),
            recent_small: Ghost::default(),
            recent_main: Ghost::default(),
            sketch: Sketch::default(),
            capacity,
            small_target: (capacity / SMALL_SHARE).max(1),
            small_record: 0,
            presize,
            fitted: 0,
        }
    }

    /// The most weight the shard holds.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Changes the capacity, and what follows from it, as
    /// [`new`](Self::new) sets them, with `small`'s target at the same
    /// share of the capacity as before; the caller then evicts down to it.
    /// The ghost and the sketch keep what they learned: they grow with the
    /// entries, and an oversized one only costs memory until the shard is
    /// cleared.
    pub(crate) fn set_capacity(&mut self, capacity: u64, most_entries: usize) {
        let sized = Self::new(capacity, most_entries);
        // The split keeps its place as a share of the capacity: what the
        // windows learned about the workload still holds at the new size.
        let share = self.small_target as f64 / self.capacity.max(1) as f64;
        let most = (sized.capacity / 2).max(1);
        self.small_target = ((sized.capacity as f64 * share) as u64).clamp(1, most);
        self.capacity = sized.capacity;
        self.presize = sized.presize;
        self.fitted = 0; // the sketch's presize may have changed
    }

    /// Total weight in the queues.
    #[inline]
    pub(crate) fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    /// Forgets every entry and frees the ghost and the sketch.
    pub(crate) fn clear(&mut self) {
        self.small = List::default();
        self.main = List::default();
        self.ghost.clear();
        self.recent_small.clear();
        self.recent_main.clear();
        self.sketch.clear();
        self.small_record = 0;
        self.fitted = 0;
    }

    /// The share of the capacity `main` may hold.
    #[inline]
    fn main_capacity(&self) -> u64 {
        self.capacity - self.small_target.min(self.capacity)
    }

    /// A key evicted lately from `small` came back: `small` aims `weight`
    /// higher, up to half the capacity.
    pub(super) fn grow_small(&mut self, weight: u32) {
        let most = (self.capacity / 2).max(1);
        self.small_target = (self.small_target + u64::from(weight).max(1)).min(most);
    }

    /// A key evicted lately from `main` came back, or `main` met a hit
    /// entry where it would have shrunk: `small` aims `weight` lower, down
    /// to 1.
    pub(super) fn shrink_small(&mut self, weight: u32) {
        self.small_target = self
            .small_target
            .saturating_sub(u64::from(weight).max(1))
            .max(1);
    }

    fn list(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// Admits node `i`, new in the slab (and, unless a `Hash` panicked,
    /// in its index) but in no queue yet, whose key hashes to `hash`:
    /// asks the windows and the ghost, counts a key the ghost returns in the
    /// sketch, and links it to the tail of its queue. A key the ghost returns waits at the tail of `small`
    /// while the policy looks for the victim it must beat (which runs
    /// `Hash`): if that panics, the entry stays there, a new key like any
    /// other.
    pub(crate) fn admit<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Nodes<K, V>,
        i: u32,
        hash: u64,
        hasher: &S,
    ) {
        let entries = slab.len();
        if entries > self.fitted {
            self.fit(entries);
        }
        let weight = slab.node(i).weight;
        if self.recent_small.take(hash) {
            self.grow_small(weight);
        } else if self.recent_main.take(hash) {
            self.shrink_small(weight);
        }
        if self.main.weight + u64::from(weight) <= self.main_capacity() {
            self.link(slab, i, Queue::Main);
        } else if self.ghost.take(hash) {
            // The ghost is the sketch's doorkeeper: a key counts from its
            // first return on, so one-time keys never touch the sketch.
            self.sketch.add(hash);
            self.link(slab, i, Queue::Small);
            if self.beats_main_victim(slab, hash, hasher) {
                self.requeue(slab, i, Queue::Main);
            }
        } else {
            self.sketch.tick();
            self.link(slab, i, Queue::Small);
        }
    }

    /// Sizes the ghost, the windows and the sketch for `entries`, more
    /// than ever before: they grow with the shard and never shrink.
    #[cold]
    #[inline(never)]
    fn fit(&mut self, entries: usize) {
        self.fitted = entries;
        self.ghost.fit(entries);
        // Sized by entries, as the ghost is: weights may be anything.
        self.recent_small.fit_slots(entries / WINDOW_SHARE);
        self.recent_main.fit_slots(entries / WINDOW_SHARE);
        self.sketch.fit(entries.max(self.presize));
    }

    /// Whether a key with `hash`, back from the ghost, was used more often
    /// than the entry `main` would evict for it.
    fn beats_main_victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Nodes<K, V>,
        hash: u64,
        hasher: &S,
    ) -> bool {
        match self.main_victim(slab, None::<fn(u32) -> bool>) {
            None => true,
            Some(victim) => {
                let owed = self.sketch.owed(slab.links(victim).owed);
                self.sketch
                    .used_more(hash, owed, || slab.hash_of(victim, hasher))
            }
        }
    }

    /// Appends node `i` (in no list) to the tail of `queue`.
    fn link<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32, queue: Queue) {
        let tail = self.list(queue).tail;
        let node = slab.node_mut(i);
        node.links.queue = queue;
        node.links.prev = tail;
        node.links.next = NIL;
        let weight = u64::from(node.weight);
        if tail == NIL {
            self.list(queue).head = i;
        } else {
            slab.links_mut(tail).next = i;
        }
        let list = self.list(queue);
        list.tail = i;
        list.weight += weight;
    }

    /// Takes node `i` out of its list; it stays in the slab.
    pub(crate) fn unlink<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32) {
        let node = slab.node(i);
        let links = &node.links;
        let (prev, next, queue, weight) = (links.prev, links.next, links.queue, node.weight);
        if prev == NIL {
            self.list(queue).head = next;
        } else {
            slab.links_mut(prev).next = next;
        }
        if next == NIL {
            self.list(queue).tail = prev;
        } else {
            slab.links_mut(next).prev = prev;
        }
        self.list(queue).weight -= u64::from(weight);
    }

    /// Moves node `i` to the tail of `queue`.
    fn requeue<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32, queue: Queue) {
        self.unlink(slab, i);
        self.link(slab, i, queue);
    }

    /// Points whatever referred to node `from` (its neighbours, its list's
    /// ends) at `to`, where the slab moved it.
    pub(crate) fn moved<K, V>(&mut self, slab: &mut Nodes<K, V>, _from: u32, to: u32) {
        let links = slab.links(to);
        let (prev, next, queue) = (links.prev, links.next, links.queue);
        if prev == NIL {
            self.list(queue).head = to;
        } else {
            slab.links_mut(prev).next = to;
        }
        if next == NIL {
            self.list(queue).tail = to;
        } else {
            slab.links_mut(next).prev = to;
        }
    }

    /// Renumbers every index after the slab was compacted: `map` gives each
    /// old index's new one ([`NIL`] stays [`NIL`]).
    pub(crate) fn renumber<K, V>(&mut self, slab: &mut Nodes<K, V>, map: impl Fn(u32) -> u32) {
        for links in slab.all_links_mut() {
            links.prev = map(links.prev);
            links.next = map(links.next);
        }
        for list in [&mut self.small, &mut self.main] {
            list.head = map(list.head);
            list.tail = map(list.tail);
        }
    }

    /// Node `i`'s weight changed from `old` to `new` (a replaced value).
    pub(crate) fn reweigh(&mut self, links: &Links, old: u32, new: u32) {
        let list = self.list(links.queue);
        list.weight = list.weight - u64::from(old) + u64::from(new);
    }

    /// An entry with `hash` and `links` was evicted (not expired, not
    /// removed): one from `small` is remembered by the ghost and `small`'s
    /// window, one from `main` by `main`'s window.
    pub(crate) fn evicted(&mut self, hash: u64, links: &Links) {
        if links.queue == Queue::Small {
            self.ghost.insert(hash);
            self.recent_small.insert(hash);
        } else {
            self.recent_main.insert(hash);
        }
    }

    /// The next entry to evict; moves entries between and within the
    /// queues on the way (see the module docs). `expired` is `None` when no
    /// entry can be expired, else whether node `i` is.
    ///
    /// Inlined: the usual case, `small`'s head not hit while `main` is
    /// within its share and nothing can expire, is the first step of
    /// [`walk`](Self::walk) taken here; `walk` does every other.
    #[inline]
    pub(crate) fn victim<K, V>(
        &mut self,
        slab: &mut Nodes<K, V>,
        expired: Option<impl Fn(u32) -> bool>,
    ) -> Option<u32> {
        let i = self.small.head;
        if expired.is_none()
            && i != NIL
            && self.main.weight <= self.main_capacity()
            && slab.links(i).freq.load(Ordering::Relaxed) == 0
        {
            // As `walk`'s first step records an eviction from `small`.
            self.small_record <<= 1;
            return Some(i);
        }
        self.walk(slab, expired)
    }

    /// [`victim`](Self::victim), step by step.
    #[inline(never)]
    fn walk<K, V>(
        &mut self,
        slab: &mut Nodes<K, V>,
        expired: Option<impl Fn(u32) -> bool>,
    ) -> Option<u32> {
        let main_capacity = self.main_capacity();
        loop {
            let i = self.small.head;
            if i == NIL {
                return self.main_victim(slab, expired);
            }
            if self.main.weight > main_capacity {
                // `main` gives way to a grown `small` only as its entries
                // go cold: its oldest goes if it was not hit, else it is
                // passed over once, and `small` aims lower again unless
                // its entries are in use too (hit lately, or now).
                let head = self.main.head;
                if expired.as_ref().is_some_and(|expired| expired(head))
                    || self.pass_over(slab, head)
                {
                    return Some(head);
                }
                if self.small_record == 0 && slab.links(i).freq.load(Ordering::Relaxed) == 0 {
                    let weight = slab.node(head).weight;
                    self.shrink_small(weight);
                }
            }
            if let Some(expired) = &expired {
                // Both heads are met; an expired one goes first.
                if expired(i) {
                    return Some(i);
                }
                let head = self.main.head;
                if head != NIL && expired(head) {
                    return Some(head);
                }
            }
            let links = slab.links(i);
            if links.freq.load(Ordering::Relaxed) == 0 {
                self.small_record <<= 1;
                return Some(i);
            }
            self.small_record = self.small_record << 1 | 1;
            links.freq.store(0, Ordering::Relaxed);
            let links = slab.links_mut(i);
            links.owed = self.sketch.owe(links.owed); // as a pass does
            self.requeue(slab, i, Queue::Main);
        }
    }

    /// CLOCK over `main`: the first entry from the head that is expired or
    /// was not hit since it was last passed over. Entries passed over lose
    /// one frequency and owe one use to the sketch.
    fn main_victim<K, V>(
        &mut self,
        slab: &mut Nodes<K, V>,
        expired: Option<impl Fn(u32) -> bool>,
    ) -> Option<u32> {
        loop {
            let i = self.main.head;
            if i == NIL {
                return None;
            }
            if expired.as_ref().is_some_and(|expired| expired(i)) || self.pass_over(slab, i) {
                return Some(i);
            }
        }
    }

    /// One step of CLOCK at `main`'s head `i`: true if it was not hit
    /// since it was last passed over (the victim); else it loses one
    /// frequency, owes one use to the sketch and goes to the tail.
    ///
    /// Inlined, with the pass out of line: about half the heads met are
    /// the victim, and a call for each of them cost the read-through
    /// `insert` 24 instructions in the steady state (`compare --callgrind`).
    #[inline]
    fn pass_over<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32) -> bool {
        let freq = slab.links(i).freq.load(Ordering::Relaxed);
        if freq == 0 {
            return true;
        }
        self.pass(slab, i, freq);
        false
    }

    /// Passes over `main`'s head `i`, hit `freq` times (see
    /// [`pass_over`](Self::pass_over)). The use is kept in the node
    /// ([`Links::owed`]), not added to the sketch: an add hashes the key
    /// again and costs about 89 instructions more, and the sketch's view of
    /// a resident matters only when it is weighed as `main`'s victim.
    #[inline(never)]
    fn pass<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32, freq: u8) {
        let links = slab.links_mut(i);
        links.freq.store(freq - 1, Ordering::Relaxed);
        links.owed = self.sketch.owe(links.owed);
        self.rotate_main(slab, i);
    }

    /// Moves `main`'s head `i` to its tail: [`requeue`](Self::requeue)
    /// without the tests a node in the middle of either queue needs, and
    /// with `main`'s weight as it is.
    #[inline]
    fn rotate_main<K, V>(&mut self, slab: &mut Nodes<K, V>, i: u32) {
        debug_assert_eq!(self.main.head, i);
        let next = slab.links(i).next;
        if next == NIL {
            return; // alone in `main`: already its tail
        }
        self.main.head = next;
        slab.links_mut(next).prev = NIL;
        let tail = self.main.tail;
        slab.links_mut(tail).next = i;
        let links = slab.links_mut(i);
        links.prev = tail;
        links.next = NIL;
        self.main.tail = i;
    }
}
