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
//! SOSP 2023), with quick_cache's proportions and one addition of ours:
//!
//! - **A hit** only bumps the entry's frequency, saturating at 2: a relaxed
//!   load, and a relaxed store while it is below 2, so a hot key settles
//!   into reads only.
//! - **A new key** enters `small`, or `main` while `main` is below its share
//!   (a cold cache fills `main` first).
//! - **Eviction** takes from `small` (3% of the capacity) unless `main` is
//!   over its share: the oldest entry moves to `main` if it was hit since
//!   it came in, else it is evicted and its hash goes to the ghost. From
//!   `main` it is CLOCK: the oldest entry goes back to the tail with its
//!   frequency decremented if it was hit, else it is evicted.
//! - **A key the ghost remembers** goes to `main`, as in S3-FIFO, but only
//!   if the sketch says it was used more often than the entry `main` would
//!   evict for it; else it enters `small` like any new key. Without this
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
//! User code here is `Hash`: to count a key in the sketch, and to weigh a
//! returning key against `main`'s victim. Each call comes between two
//! whole steps (a node moved from one queue's head to a tail), so a panic
//! leaves the queues consistent.

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

/// `small` holds `1 / SMALL_SHARE` of the capacity (at least 1).
const SMALL_SHARE: u64 = 33;

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
}

impl Links {
    /// The links of a node in no queue yet.
    pub(crate) fn new() -> Self {
        Self {
            prev: NIL,
            next: NIL,
            freq: AtomicU8::new(0),
            queue: Queue::Small,
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
    pub(super) sketch: Sketch,
    capacity: u64,
    small_capacity: u64,
    /// The entries the sketch is sized for from the first insert (0: grow
    /// with the shard, its entry count unknown).
    presize: usize,
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
            sketch: Sketch::default(),
            capacity,
            small_capacity: (capacity / SMALL_SHARE).max(1),
            presize,
        }
    }

    /// The most weight the shard holds.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
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
        self.sketch.clear();
    }

    /// The share of the capacity `main` may hold.
    fn main_capacity(&self) -> u64 {
        self.capacity - self.small_capacity.min(self.capacity)
    }

    fn list(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// Admits node `i`, new in the slab (and, unless a `Hash` panicked,
    /// in its index) but in no queue yet, whose key hashes to `hash`:
    /// counts it in the sketch, asks the ghost, and links it to the tail of
    /// its queue. A key the ghost returns waits at the tail of `small`
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
        self.ghost.fit(entries);
        self.sketch.fit(entries.max(self.presize));
        self.sketch.add(hash);
        let weight = slab.node(i).weight;
        if self.main.weight + u64::from(weight) <= self.main_capacity() {
            self.link(slab, i, Queue::Main);
        } else if self.ghost.take(hash) {
            self.link(slab, i, Queue::Small);
            if self.beats_main_victim(slab, hash, hasher) {
                self.requeue(slab, i, Queue::Main);
            }
        } else {
            self.link(slab, i, Queue::Small);
        }
    }

    /// Whether a key with `hash`, back from the ghost, was used more often
    /// than the entry `main` would evict for it.
    fn beats_main_victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Nodes<K, V>,
        hash: u64,
        hasher: &S,
    ) -> bool {
        match self.main_victim(slab, None::<fn(u32) -> bool>, hasher) {
            None => true,
            Some(victim) => self.sketch.used_more(hash, || slab.hash_of(victim, hasher)),
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
    /// removed): one from `small` is remembered by the ghost.
    pub(crate) fn evicted(&mut self, hash: u64, links: &Links) {
        if links.queue == Queue::Small {
            self.ghost.insert(hash);
        }
    }

    /// The next entry to evict; moves entries between and within the
    /// queues on the way (see the module docs). `expired` is `None` when no
    /// entry can be expired, else whether node `i` is.
    pub(crate) fn victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Nodes<K, V>,
        expired: Option<impl Fn(u32) -> bool>,
        hasher: &S,
    ) -> Option<u32> {
        let main_capacity = self.main_capacity();
        loop {
            let i = self.small.head;
            if i == NIL || self.main.weight > main_capacity {
                return self.main_victim(slab, expired, hasher);
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
                return Some(i);
            }
            links.freq.store(0, Ordering::Relaxed);
            let hash = slab.hash_of(i, hasher);
            self.sketch.add(hash);
            self.requeue(slab, i, Queue::Main);
        }
    }

    /// CLOCK over `main`: the first entry from the head that is expired or
    /// was not hit since it was last passed over. Entries passed over lose
    /// one frequency and count one use in the sketch.
    fn main_victim<K: Hash, V, S: BuildHasher>(
        &mut self,
        slab: &mut Nodes<K, V>,
        expired: Option<impl Fn(u32) -> bool>,
        hasher: &S,
    ) -> Option<u32> {
        loop {
            let i = self.main.head;
            if i == NIL {
                return None;
            }
            if expired.as_ref().is_some_and(|expired| expired(i)) {
                return Some(i);
            }
            let links = slab.links(i);
            let freq = links.freq.load(Ordering::Relaxed);
            if freq == 0 {
                return Some(i);
            }
            links.freq.store(freq - 1, Ordering::Relaxed);
            let hash = slab.hash_of(i, hasher);
            self.sketch.add(hash);
            self.requeue(slab, i, Queue::Main);
        }
    }
}
