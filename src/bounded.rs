//! One shard of a bounded cache: its entries, their weights, and the
//! eviction policy, written single-threaded like `shard.rs`.
//!
//! # Layout
//!
//! ```text
//! table: HashTable<u32>          indices into `nodes`, found by the key's hash
//! nodes: Vec<Node>               dense; Node { key, value, deadline, weight,
//!                                              prev, next, freq: AtomicU8, queue }
//! small, main: List              doubly linked FIFOs threaded through `nodes`
//! ghost: Ghost                   fingerprints of keys recently evicted from `small`
//! ```
//!
//! `nodes` has no holes: removing node `i` moves the last node into `i` and
//! repoints its table slot and its neighbours (`take`). Indices are `u32`,
//! so a shard holds at most `u32::MAX - 1` entries.
//!
//! # The policy: S3-FIFO
//!
//! Yang et al., "FIFO queues are all you need for cache eviction" (SOSP
//! 2023). A new key enters `small` (a tenth of the shard's capacity), or
//! `main` if the ghost remembers it. A hit only bumps the entry's 2-bit
//! frequency: a relaxed load, and a relaxed store while it is below 3, so
//! a hot key settles into reads only. Eviction, under the write lock:
//!
//! - from `small` while it holds more than its share (or `main` is empty):
//!   the oldest entry moves to `main` if it was hit since it came in, else
//!   it is evicted and its hash goes to the ghost;
//! - from `main` otherwise: the oldest entry goes back to the tail with its
//!   frequency decremented if it was hit, else it is evicted.
//!
//! Expired entries met at the head of either queue go first, whatever
//! their frequency. Each step moves or removes one entry, and a frequency
//! only falls, so an insert does O(1) amortized work.
//!
//! # Failure
//!
//! User code here is `Hash` (to find a victim's table slot, and when the
//! table grows) and `Eq` (to find the key). Every call that can panic comes
//! before the state it would leave half-changed: `take` hashes both keys it
//! needs before it unlinks anything. A table that loses slots to a `Hash`
//! that panics while it grows leaves nodes the table does not point to;
//! they still count, sit in their queue, and are evicted like the rest.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::clock::{is_expired, NEVER};
use crate::ghost::Ghost;
use crate::shard::{Lookup, Removed, WriteCounts};
use crate::sync::{AtomicU8, Ordering};

/// The end of a list.
const NIL: u32 = u32::MAX;

/// The highest frequency a hit counts to.
const MAX_FREQ: u8 = 3;

/// The small queue's share of the capacity, in tenths.
const SMALL_TENTHS: u64 = 1;

/// Which FIFO a node is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

/// An entry, with its place in its queue.
pub(crate) struct Node<K, V> {
    key: K,
    value: V,
    /// [`NEVER`] for entries without a TTL.
    deadline: u64,
    weight: u32,
    prev: u32,
    next: u32,
    /// Hits since the entry entered its queue or was last passed over,
    /// up to [`MAX_FREQ`]. Written by readers, under the read lock.
    freq: AtomicU8,
    queue: Queue,
}

impl<K, V> Node<K, V> {
    fn expired(&self, now: u64) -> bool {
        self.deadline != NEVER && is_expired(self.deadline, now)
    }

    fn into_pair(self) -> (K, V) {
        (self.key, self.value)
    }
}

/// A FIFO threaded through `nodes` by index.
#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    weight: u64,
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

/// What an insert pushed out, to be dropped after the lock is released:
/// the value it replaced and the entries it evicted. Holds one pair inline,
/// so the usual insert into a full cache (one eviction) does not allocate.
#[derive(Debug)]
pub(crate) struct Displaced<K, V> {
    first: Option<(K, V)>,
    rest: Vec<(K, V)>,
}

impl<K, V> Default for Displaced<K, V> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<K, V> Displaced<K, V> {
    fn push(&mut self, pair: (K, V)) {
        if self.first.is_none() {
            self.first = Some(pair);
        } else {
            self.rest.push(pair);
        }
    }

    /// How many pairs it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

/// Everything [`BoundedShard::take_all`] took out, to be dropped after
/// unlocking.
pub(crate) type TakenNodes<K, V> = (HashTable<u32>, Vec<Node<K, V>>);

/// A shard holding at most `capacity` weight, evicting with S3-FIFO.
pub(crate) struct BoundedShard<K, V> {
    table: HashTable<u32>,
    nodes: Vec<Node<K, V>>,
    small: List,
    main: List,
    ghost: Ghost,
    capacity: u64,
    small_capacity: u64,
    /// Nodes with a deadline; when 0 no clock is read.
    expiring: usize,
    pub(crate) counts: WriteCounts,
}

impl<K, V> BoundedShard<K, V> {
    /// An empty shard that holds at most `capacity` weight, with room for
    /// `reserve` entries before it grows.
    pub(crate) fn new(capacity: u64, reserve: usize) -> Self {
        Self {
            table: HashTable::with_capacity(reserve),
            nodes: Vec::with_capacity(reserve),
            small: List::default(),
            main: List::default(),
            ghost: Ghost::default(),
            capacity,
            small_capacity: (capacity * SMALL_TENTHS / 10).max(1),
            expiring: 0,
            counts: WriteCounts::default(),
        }
    }

    /// Entries stored, expired ones included.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Total weight stored, expired entries included.
    pub(crate) fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    /// Whether some stored entry has a deadline.
    pub(crate) fn may_expire(&self) -> bool {
        self.expiring > 0
    }

    /// Whether any entry is expired at `now`.
    pub(crate) fn has_expired(&self, now: u64) -> bool {
        self.may_expire() && self.nodes.iter().any(|n| n.expired(now))
    }

    /// Takes every entry out, leaving an empty shard that owns no memory.
    pub(crate) fn take_all(&mut self) -> TakenNodes<K, V> {
        self.small = List::default();
        self.main = List::default();
        self.expiring = 0;
        self.ghost.clear();
        (
            std::mem::take(&mut self.table),
            std::mem::take(&mut self.nodes),
        )
    }

    fn list(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    /// Appends node `i` (not in any list) to the tail of `queue`.
    fn push_tail(&mut self, i: u32, queue: Queue) {
        let tail = self.list(queue).tail;
        let node = &mut self.nodes[i as usize];
        node.queue = queue;
        node.prev = tail;
        node.next = NIL;
        let weight = u64::from(node.weight);
        if tail == NIL {
            self.list(queue).head = i;
        } else {
            self.nodes[tail as usize].next = i;
        }
        let list = self.list(queue);
        list.tail = i;
        list.weight += weight;
    }

    /// Takes node `i` out of its list; it stays in `nodes`.
    fn unlink(&mut self, i: u32) {
        let node = &self.nodes[i as usize];
        let (prev, next, queue, weight) = (node.prev, node.next, node.queue, node.weight);
        if prev == NIL {
            self.list(queue).head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.list(queue).tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.list(queue).weight -= u64::from(weight);
    }

    /// Points whatever referred to node `from` (its table slot, found with
    /// `hash`, and its neighbours) at `to`, where it now lives.
    fn repoint(&mut self, from: u32, to: u32, hash: u64) {
        if let Some(slot) = self.table.find_mut(hash, |&j| j == from) {
            *slot = to;
        }
        let node = &self.nodes[to as usize];
        let (prev, next, queue) = (node.prev, node.next, node.queue);
        if prev == NIL {
            self.list(queue).head = to;
        } else {
            self.nodes[prev as usize].next = to;
        }
        if next == NIL {
            self.list(queue).tail = to;
        } else {
            self.nodes[next as usize].prev = to;
        }
    }

    /// Removes every entry expired at `now` and returns them. Needs no
    /// hasher: the table drops their slots by index, and the survivors are
    /// compacted to the front of `nodes` with every index renumbered.
    pub(crate) fn remove_expired(&mut self, now: u64) -> Vec<(K, V)> {
        if !self.has_expired(now) {
            return Vec::new();
        }
        let expired: Vec<bool> = self.nodes.iter().map(|n| n.expired(now)).collect();
        for (i, &gone) in expired.iter().enumerate() {
            if gone {
                self.unlink(i as u32);
            }
        }
        // Stable partition: survivors to the front, in order.
        let mut renumber = vec![NIL; self.nodes.len()];
        let mut kept = 0;
        for (i, &gone) in expired.iter().enumerate() {
            if !gone {
                self.nodes.swap(kept, i);
                renumber[i] = kept as u32;
                kept += 1;
            }
        }
        let removed = self.nodes.split_off(kept);
        self.table.retain(|i| {
            let to = renumber[*i as usize];
            *i = to;
            to != NIL
        });
        let map = |i: u32| if i == NIL { NIL } else { renumber[i as usize] };
        for node in &mut self.nodes {
            node.prev = map(node.prev);
            node.next = map(node.next);
        }
        for list in [&mut self.small, &mut self.main] {
            list.head = map(list.head);
            list.tail = map(list.tail);
        }
        self.expiring -= removed.len();
        self.counts.expirations += removed.len() as u64;
        removed.into_iter().map(Node::into_pair).collect()
    }
}

impl<K: Hash + Eq, V> BoundedShard<K, V> {
    /// Finds `key` and applies `read` to its value if it is live, counting
    /// the hit in the entry. `now` is called only if the entry has a
    /// deadline.
    #[inline]
    pub(crate) fn get<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V) -> R,
    ) -> Lookup<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let nodes = &self.nodes;
        let Some(&i) = self
            .table
            .find(hash, |&i| nodes[i as usize].key.borrow() == key)
        else {
            return Lookup::Missing;
        };
        let node = &nodes[i as usize];
        if node.deadline != NEVER && is_expired(node.deadline, now()) {
            return Lookup::Expired;
        }
        // Relaxed: the count is a hint, and racing readers may lose a bump.
        let freq = node.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            node.freq.store(freq + 1, Ordering::Relaxed);
        }
        Lookup::Live(read(&node.value))
    }

    /// Index of `key`'s node.
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| nodes[i as usize].key.borrow() == key)
            .copied()
    }

    /// Inserts or replaces `key`, weighing `weight`, then evicts until the
    /// shard is within its capacity. A replaced entry keeps its queue and
    /// frequency. An entry heavier than the whole shard is not stored (and
    /// counts as an eviction); an older value under its key is removed.
    /// `now` is read at most once, and only if some entry has a deadline.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        deadline: u64,
        weight: u32,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Displaced<K, V>,
    ) {
        self.counts.inserts += 1;
        let found = self.find(hash, &key);
        if u64::from(weight) > self.capacity {
            if let Some(i) = found {
                out.push(self.take(i, hash, hasher).into_pair());
            }
            self.counts.evictions += 1;
            out.push((key, value));
            return;
        }
        if let Some(i) = found {
            let node = &mut self.nodes[i as usize];
            let old = std::mem::replace(&mut node.value, value);
            let (was_expiring, old_weight, queue) =
                (node.deadline != NEVER, node.weight, node.queue);
            node.deadline = deadline;
            node.weight = weight;
            self.expiring =
                self.expiring + usize::from(deadline != NEVER) - usize::from(was_expiring);
            let list = self.list(queue);
            list.weight = list.weight - u64::from(old_weight) + u64::from(weight);
            out.push((key, old));
            self.make_room(0, hasher, now, out);
            return;
        }
        self.make_room(u64::from(weight), hasher, now, out);
        assert!(
            self.nodes.len() < NIL as usize,
            "shardcache: a shard cannot hold more than {} entries",
            NIL - 1
        );
        // Grow before changing anything: growing hashes the stored keys.
        let nodes = &self.nodes;
        self.table
            .reserve(1, |&i| hasher.hash_one(&nodes[i as usize].key));
        self.ghost.fit(self.nodes.len() + 1);
        let queue = if self.ghost.take(hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        let i = self.nodes.len() as u32;
        self.nodes.push(Node {
            key,
            value,
            deadline,
            weight,
            prev: NIL,
            next: NIL,
            freq: AtomicU8::new(0),
            queue,
        });
        self.expiring += usize::from(deadline != NEVER);
        self.push_tail(i, queue);
        self.table
            .insert_unique(hash, i, |&i| hasher.hash_one(&self.nodes[i as usize].key));
    }

    /// Evicts until `extra` more weight fits.
    fn make_room<S: BuildHasher>(
        &mut self,
        extra: u64,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Displaced<K, V>,
    ) {
        // Read the clock once, and only if some entry can be expired.
        let mut clock = Some(now);
        let mut now = 0;
        while self.weight() + extra > self.capacity {
            let at = self.may_expire().then(|| {
                if let Some(read) = clock.take() {
                    now = read();
                }
                now
            });
            let Some((i, expired)) = self.victim(at) else {
                break;
            };
            let hash = hasher.hash_one(&self.nodes[i as usize].key);
            let queue = self.nodes[i as usize].queue;
            let node = self.take(i, hash, hasher);
            if expired {
                self.counts.expirations += 1;
            } else {
                self.counts.evictions += 1;
                if queue == Queue::Small {
                    self.ghost.insert(hash);
                }
            }
            out.push(node.into_pair());
        }
    }

    /// The next entry to evict, and whether it is expired; moves entries
    /// between and within the queues on the way (see the module docs).
    /// `now` is `None` when no entry can be expired.
    fn victim(&mut self, now: Option<u64>) -> Option<(u32, bool)> {
        loop {
            let from_small = self.small.head != NIL
                && (self.small.weight > self.small_capacity || self.main.head == NIL);
            let i = if from_small {
                self.small.head
            } else {
                self.main.head
            };
            if i == NIL {
                return None;
            }
            let node = &self.nodes[i as usize];
            if now.is_some_and(|now| node.expired(now)) {
                return Some((i, true));
            }
            let freq = node.freq.load(Ordering::Relaxed);
            if freq == 0 {
                return Some((i, false));
            }
            let freq = if from_small { 0 } else { freq - 1 };
            node.freq.store(freq, Ordering::Relaxed);
            self.unlink(i);
            self.push_tail(i, Queue::Main);
        }
    }

    /// Removes node `i`, whose key hashes to `hash`, and moves the last node
    /// into its place. Hashes the moved key before changing anything.
    fn take<S: BuildHasher>(&mut self, i: u32, hash: u64, hasher: &S) -> Node<K, V> {
        let last = (self.nodes.len() - 1) as u32;
        let moved_hash = (i != last).then(|| hasher.hash_one(&self.nodes[last as usize].key));
        if let Ok(slot) = self.table.find_entry(hash, |&j| j == i) {
            slot.remove();
        }
        self.unlink(i);
        let node = self.nodes.swap_remove(i as usize);
        self.expiring -= usize::from(node.deadline != NEVER);
        if let Some(moved_hash) = moved_hash {
            self.repoint(last, i, moved_hash);
        }
        node
    }

    /// Removes `key`. An expired entry is removed too, but reported as such.
    pub(crate) fn remove<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        hasher: &S,
    ) -> Option<Removed<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        let expired = self.nodes[i as usize].deadline != NEVER
            && is_expired(self.nodes[i as usize].deadline, now());
        let (key, value) = self.take(i, hash, hasher).into_pair();
        Some(if expired {
            self.counts.expirations += 1;
            Removed::Expired(key, value)
        } else {
            self.counts.removals += 1;
            Removed::Live(key, value)
        })
    }

    /// Removes `key` only if it is still present and expired at `now`.
    pub(crate) fn remove_if_expired<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        hasher: &S,
    ) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.find(hash, key)?;
        if !self.nodes[i as usize].expired(now) {
            return None;
        }
        self.counts.expirations += 1;
        Some(self.take(i, hash, hasher).into_pair())
    }
}

impl<K, V> fmt::Debug for BoundedShard<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedShard")
            .field("len", &self.nodes.len())
            .field("weight", &self.weight())
            .field("capacity", &self.capacity)
            .field("small_weight", &self.small.weight)
            .field("main_weight", &self.main.weight)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::HashSet;
    use std::hash::BuildHasherDefault;

    type Hasher = BuildHasherDefault<DefaultHasher>;
    type Shard = BoundedShard<u32, u32>;

    fn h(key: u32) -> u64 {
        Hasher::default().hash_one(key)
    }

    /// Inserts without a deadline and weight 1; returns what was pushed out.
    fn put(s: &mut Shard, key: u32, value: u32) -> Vec<(u32, u32)> {
        put_with(s, key, value, NEVER, 1, 0)
    }

    fn put_with(
        s: &mut Shard,
        key: u32,
        value: u32,
        deadline: u64,
        weight: u32,
        now: u64,
    ) -> Vec<(u32, u32)> {
        let mut out = Displaced::default();
        let hasher = Hasher::default();
        s.insert(
            h(key),
            key,
            value,
            deadline,
            weight,
            &hasher,
            || now,
            &mut out,
        );
        s.check();
        let len = out.len();
        let pairs: Vec<_> = out.first.into_iter().chain(out.rest).collect();
        assert_eq!(pairs.len(), len);
        pairs
    }

    fn hit(s: &Shard, key: u32) -> Option<u32> {
        match s.get(h(key), &key, || 0, |v| *v) {
            Lookup::Live(v) => Some(v),
            _ => None,
        }
    }

    fn keys(s: &Shard) -> HashSet<u32> {
        s.nodes.iter().map(|n| n.key).collect()
    }

    impl BoundedShard<u32, u32> {
        /// Every structural invariant: each node is in exactly one list, in
        /// the queue it says, the links agree both ways, the weights and
        /// the deadline count add up, and the table finds every key at its
        /// node.
        fn check(&self) {
            let mut seen = vec![false; self.nodes.len()];
            for (list, queue) in [(&self.small, Queue::Small), (&self.main, Queue::Main)] {
                let (mut prev, mut i, mut weight) = (NIL, list.head, 0);
                while i != NIL {
                    let node = &self.nodes[i as usize];
                    assert!(!seen[i as usize], "node {i} listed twice");
                    seen[i as usize] = true;
                    assert_eq!(node.queue, queue);
                    assert_eq!(node.prev, prev, "back link of {i}");
                    assert!(node.freq.load(Ordering::Relaxed) <= MAX_FREQ);
                    weight += u64::from(node.weight);
                    prev = i;
                    i = node.next;
                }
                assert_eq!(list.tail, prev);
                assert_eq!(list.weight, weight);
            }
            assert!(seen.iter().all(|&s| s), "a node is in no list");
            assert_eq!(self.table.len(), self.nodes.len());
            for (i, node) in self.nodes.iter().enumerate() {
                assert_eq!(self.find(h(node.key), &node.key), Some(i as u32));
            }
            let expiring = self.nodes.iter().filter(|n| n.deadline != NEVER).count();
            assert_eq!(self.expiring, expiring);
            assert!(self.weight() <= self.capacity);
        }
    }

    #[test]
    fn holds_at_most_its_capacity_and_evicts_one_per_insert() {
        let mut s = Shard::new(10, 0);
        for key in 0..10 {
            assert!(put(&mut s, key, key).is_empty());
        }
        for key in 10..100 {
            let out = put(&mut s, key, key);
            assert_eq!(out.len(), 1, "one in, one out");
            assert_eq!(s.len(), 10);
        }
        assert_eq!(s.counts.evictions, 90);
        assert_eq!(s.counts.inserts, 100);
    }

    #[test]
    fn keys_read_again_survive_a_scan() {
        let mut s = Shard::new(100, 0);
        for key in 0..50 {
            put(&mut s, key, key);
        }
        for _ in 0..2 {
            for key in 0..50 {
                assert_eq!(hit(&s, key), Some(key));
            }
        }
        // A scan of 1000 one-time keys passes through the small queue.
        for key in 1000..2000 {
            put(&mut s, key, key);
            hit(&s, key % 50); // the hot set stays hot
        }
        let kept = keys(&s);
        assert!((0..50).all(|k| kept.contains(&k)), "hot keys evicted");
    }

    #[test]
    fn one_hit_wonders_leave_first_and_the_ghost_brings_them_back_to_main() {
        let mut s = Shard::new(20, 0);
        for key in 0..20 {
            put(&mut s, key, key);
        }
        // Key 0 was never read: it is the first to go, and remembered.
        let out = put(&mut s, 100, 100);
        assert_eq!(out, vec![(0, 0)]);
        put(&mut s, 0, 0);
        let i = s.find(h(0), &0).unwrap();
        assert_eq!(s.nodes[i as usize].queue, Queue::Main, "ghost hit");
        let i = s.find(h(100), &100).unwrap();
        assert_eq!(s.nodes[i as usize].queue, Queue::Small);
    }

    #[test]
    fn hits_count_to_three_and_no_further() {
        let mut s = Shard::new(10, 0);
        put(&mut s, 1, 1);
        for _ in 0..10 {
            hit(&s, 1);
        }
        let i = s.find(h(1), &1).unwrap();
        assert_eq!(s.nodes[i as usize].freq.load(Ordering::Relaxed), MAX_FREQ);
    }

    #[test]
    fn replacing_keeps_the_place_and_the_frequency() {
        let mut s = Shard::new(10, 0);
        for key in 0..5 {
            put(&mut s, key, key);
        }
        hit(&s, 0);
        let before = s.find(h(0), &0).unwrap();
        assert_eq!(put_with(&mut s, 0, 7, NEVER, 3, 0), vec![(0, 0)]);
        let i = s.find(h(0), &0).unwrap();
        assert_eq!(i, before);
        let node = &s.nodes[i as usize];
        assert_eq!((node.value, node.weight, node.queue), (7, 3, Queue::Small));
        assert_eq!(node.freq.load(Ordering::Relaxed), 1);
        assert_eq!(s.small.head, i, "still the oldest");
        assert_eq!(s.weight(), 7);
    }

    #[test]
    fn a_heavier_replacement_makes_room() {
        let mut s = Shard::new(10, 0);
        for key in 0..10 {
            put(&mut s, key, key);
        }
        let out = put_with(&mut s, 9, 90, NEVER, 5, 0);
        assert_eq!(out.len(), 1 + 4, "the old value and four evictions");
        assert_eq!(s.weight(), 10);
    }

    #[test]
    fn an_entry_heavier_than_the_shard_is_not_stored_and_removes_the_old_value() {
        let mut s = Shard::new(10, 0);
        put(&mut s, 1, 1);
        put(&mut s, 2, 2);
        let out = put_with(&mut s, 1, 10, NEVER, 11, 0);
        assert_eq!(out, vec![(1, 1), (1, 10)]);
        assert_eq!(hit(&s, 1), None);
        assert_eq!(s.len(), 1);
        assert_eq!(put_with(&mut s, 3, 3, NEVER, 11, 0), vec![(3, 3)]);
        assert_eq!(s.counts.evictions, 2);
        assert_eq!(put_with(&mut s, 3, 3, NEVER, 10, 0).len(), 1, "fits alone");
        assert_eq!(keys(&s), HashSet::from([3]));
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut s = Shard::new(0, 0);
        assert_eq!(put(&mut s, 1, 1), vec![(1, 1)]);
        assert_eq!((s.len(), s.counts.evictions), (0, 1));
        assert_eq!(put_with(&mut s, 2, 2, NEVER, 0, 0), vec![], "weight 0 fits");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let mut s = Shard::new(10, 0);
        for key in 0..10 {
            let deadline = if key == 3 { 5 } else { NEVER };
            put_with(&mut s, key, key, deadline, 1, 0);
        }
        for key in 0..10 {
            hit(&s, key); // every entry would be kept if live
        }
        // The first eviction moves 0, 1 and 2 to main and meets 3.
        let out = put_with(&mut s, 10, 10, NEVER, 1, 6);
        assert_eq!(out, vec![(3, 3)]);
        assert_eq!((s.counts.expirations, s.counts.evictions), (1, 0));
        // In main too: a hot entry that expired goes when its turn comes.
        let mut s = Shard::new(10, 0);
        for key in 0..11 {
            put(&mut s, key, key); // 10 evicts 0, into the ghost
        }
        put_with(&mut s, 0, 0, 5, 1, 0); // back, into main; evicts 1
        assert_eq!(s.nodes[s.main.head as usize].key, 0);
        for key in [0, 0, 0].into_iter().chain(2..11) {
            hit(&s, key);
        }
        // 2..=9 move to main behind 0; then 0 is met, expired.
        let out = put_with(&mut s, 11, 11, NEVER, 1, 6);
        assert_eq!(out, vec![(0, 0)], "expired, at the head of main");
    }

    #[test]
    fn the_clock_is_not_read_when_nothing_can_expire() {
        let mut s = Shard::new(2, 0);
        let mut out = Displaced::default();
        for key in 0..5 {
            let hasher = Hasher::default();
            s.insert(
                h(key),
                key,
                key,
                NEVER,
                1,
                &hasher,
                || panic!("clock read"),
                &mut out,
            );
        }
        s.check();
    }

    #[test]
    fn remove_and_sweep_keep_the_structure_whole() {
        let mut s = Shard::new(100, 0);
        for key in 0..60 {
            put_with(
                &mut s,
                key,
                key,
                if key % 3 == 0 { 10 } else { NEVER },
                1,
                0,
            );
        }
        for key in (0..60).step_by(7) {
            hit(&s, key);
        }
        let hasher = Hasher::default();
        assert!(matches!(
            s.remove(h(1), &1, || 0, &hasher),
            Some(Removed::Live(1, 1))
        ));
        assert!(matches!(
            s.remove(h(3), &3, || 11, &hasher),
            Some(Removed::Expired(3, 3))
        ));
        assert!(s.remove(h(1), &1, || 0, &hasher).is_none());
        s.check();
        assert_eq!(s.remove_if_expired(h(6), &6, 10, &hasher), None);
        assert_eq!(s.remove_if_expired(h(6), &6, 11, &hasher), Some((6, 6)));
        s.check();
        let swept = s.remove_expired(11);
        assert_eq!(swept.len(), 20 - 2);
        assert!(swept.iter().all(|(k, _)| k % 3 == 0));
        s.check();
        assert_eq!(s.len(), 40 - 1);
        assert!(!s.may_expire());
        assert!(s.remove_expired(u64::MAX - 1).is_empty());
        assert_eq!(
            (s.counts.removals, s.counts.expirations),
            (1, 2 + 18),
            "remove, remove_if_expired and the sweep"
        );
    }

    #[test]
    fn take_all_empties_and_frees() {
        let mut s = Shard::new(100, 10);
        for key in 0..50 {
            put(&mut s, key, key);
        }
        let (table, nodes) = s.take_all();
        assert_eq!((table.len(), nodes.len()), (50, 50));
        assert_eq!((s.len(), s.weight()), (0, 0));
        assert_eq!(s.nodes.capacity() + s.table.capacity() + s.ghost.bytes(), 0);
        s.check();
        put(&mut s, 1, 1);
        assert_eq!(hit(&s, 1), Some(1));
    }

    /// A long pseudo-random mix of every operation, checking the structure
    /// after each one against a plain set of the keys that must be there.
    #[test]
    fn random_operations_keep_every_invariant() {
        let mut s = Shard::new(64, 0);
        let hasher = Hasher::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = 0;
        for _ in 0..if cfg!(miri) { 500 } else { 20_000 } {
            let r = next();
            let key = (r % 200) as u32;
            match (r >> 32) % 8 {
                0..=3 => {
                    let weight = ((r >> 40) % 4) as u32;
                    let deadline = if r >> 50 & 1 == 1 { now + 5 } else { NEVER };
                    put_with(&mut s, key, key + 1, deadline, weight, now);
                    let live = hit(&s, key).is_some() || s.find(h(key), &key).is_none();
                    assert!(live, "a fresh insert is live or evicted");
                }
                4 | 5 => {
                    if let Some(v) = hit(&s, key) {
                        assert_eq!(v, key + 1);
                    }
                }
                6 => drop(s.remove(h(key), &key, || now, &hasher)),
                _ => {
                    now += 1;
                    if r >> 60 == 0 {
                        s.remove_expired(now);
                    }
                }
            }
            s.check();
        }
    }
}
