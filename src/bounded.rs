//! One shard of a bounded cache: its entries, their weights, and the
//! eviction policy, written single-threaded like `shard.rs`.
//!
//! # Layout
//!
//! ```text
//! table:     HashTable<u32>     indices into `nodes`, found by the key's hash
//! nodes:     Vec<Node>          dense; Node { key, value, weight, prev, next,
//!                                             freq: AtomicU8, queue }
//! deadlines: Vec<u64>           one per node, or empty while no entry has a TTL
//! small, main: List             doubly linked FIFOs threaded through `nodes`
//! ghost:     Ghost              fingerprints of keys recently evicted from `small`
//! sketch:    Sketch             approximate use counts, for keys the ghost returns
//! ```
//!
//! `nodes` has no holes: removing node `i` moves the last node into `i` and
//! repoints its table slot and its neighbours (`take`). Indices are `u32`,
//! so a shard holds at most `u32::MAX - 1` entries. Deadlines live beside
//! the nodes, so a cache that never uses a TTL stores none: a `u64 -> u64`
//! node is 32 bytes.
//!
//! # The policy
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
//! there. Each step moves or removes one entry, and a frequency
//! only falls, so an insert does O(1) amortized work.
//!
//! # Failure
//!
//! User code here is `Hash` (to find a victim's table slot, to count it in
//! the sketch, and when the table grows) and `Eq` (to find the key). Every
//! call that can panic comes before the state it would leave half-changed:
//! `take` hashes both keys it needs before it unlinks anything. A table that
//! loses slots to a `Hash` that panics while it grows leaves nodes the table
//! does not point to; they still count, sit in their queue, and are evicted
//! like the rest.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::clock::{is_expired, NEVER};
use crate::ghost::Ghost;
use crate::listener::{Departures, RemovalCause};
use crate::loading::Loading;
use crate::shard::{
    pack_room, shrink, shrink_empty, shrunk, sparse, table_room, table_with_capacity, too_large,
    unpack_room, Lookup, Removed, WriteCounts,
};
use crate::sketch::Sketch;
use crate::sync::{AtomicU8, Ordering};

/// The end of a list.
const NIL: u32 = u32::MAX;

/// The highest frequency a hit counts to.
const MAX_FREQ: u8 = 2;

/// A shard of unit weights sizes its sketch for its whole capacity, up to
/// this many entries, on its first insert: a sketch that grew with a
/// filling cache would keep the collisions of its small beginnings, and
/// that cost 3 of 36 trace cells in `docs/HITRATIO.md`. 32 KiB at most.
const SKETCH_PRESIZE: usize = 1 << 14;

/// `small` holds `1 / SMALL_SHARE` of the capacity (at least 1).
const SMALL_SHARE: u64 = 33;

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
    weight: u32,
    prev: u32,
    next: u32,
    /// Hits since the entry entered its queue or was last passed over,
    /// up to [`MAX_FREQ`]. Written by readers, under the read lock.
    freq: AtomicU8,
    queue: Queue,
}

impl<K, V> Node<K, V> {
    pub(crate) fn into_pair(self) -> (K, V) {
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

/// Everything [`BoundedShard::take_all`] took out, to be dropped after
/// unlocking.
pub(crate) type TakenNodes<K, V> = (HashTable<u32>, Vec<Node<K, V>>);

/// A shard holding at most `capacity` weight, evicting with the policy in
/// the module docs.
pub(crate) struct BoundedShard<K, V> {
    table: HashTable<u32>,
    nodes: Vec<Node<K, V>>,
    /// `deadlines[i]` belongs to `nodes[i]`; empty until an entry has one.
    deadlines: Vec<u64>,
    small: List,
    main: List,
    ghost: Ghost,
    sketch: Sketch,
    capacity: u64,
    small_capacity: u64,
    /// Most entries the shard can hold when every entry weighs 1; growing
    /// `nodes` stops there.
    most_entries: usize,
    /// Nodes with a deadline; when 0 no clock is read.
    expiring: usize,
    pub(crate) counts: WriteCounts,
    /// Keys being loaded by `get_or_insert_with`.
    pub(crate) loading: Loading<K, V>,
    /// The room `initial_capacity` gave `table` and `nodes` (`deadlines`
    /// too); a removal never shrinks them below it.
    keep_table: u32,
    keep_nodes: u32,
}

impl<K, V> BoundedShard<K, V> {
    /// An empty shard that holds at most `capacity` weight, with room for
    /// `reserve` entries before it grows. `unit` says every entry weighs 1,
    /// so `nodes` never needs room for more than `capacity` entries.
    pub(crate) fn new(capacity: u64, reserve: usize, unit: bool) -> Self {
        let most_entries = if unit {
            usize::try_from(capacity).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let reserve = reserve.min(most_entries);
        let mut nodes = Vec::new();
        if let Err(error) = nodes.try_reserve_exact(reserve) {
            too_large(reserve, &error);
        }
        let table = table_with_capacity(reserve);
        Self {
            keep_table: pack_room(table_room(&table)),
            keep_nodes: pack_room(nodes.capacity()),
            table,
            nodes,
            deadlines: Vec::new(),
            small: List::default(),
            main: List::default(),
            ghost: Ghost::default(),
            sketch: Sketch::default(),
            capacity,
            small_capacity: (capacity / SMALL_SHARE).max(1),
            most_entries,
            expiring: 0,
            counts: WriteCounts::default(),
            loading: Loading::default(),
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

    /// Whether node `i` is expired at `now`.
    #[inline]
    fn expired(&self, i: u32, now: u64) -> bool {
        self.deadlines
            .get(i as usize)
            .is_some_and(|&deadline| deadline != NEVER && is_expired(deadline, now))
    }

    /// Whether any entry is expired at `now`.
    pub(crate) fn has_expired(&self, now: u64) -> bool {
        self.may_expire()
            && self
                .deadlines
                .iter()
                .any(|&deadline| deadline != NEVER && is_expired(deadline, now))
    }

    /// The share of the capacity `main` may hold.
    fn main_capacity(&self) -> u64 {
        self.capacity - self.small_capacity.min(self.capacity)
    }

    /// Takes every entry out, leaving an empty shard that owns no memory.
    pub(crate) fn take_all(&mut self) -> TakenNodes<K, V> {
        self.loading.supersede_all();
        self.small = List::default();
        self.main = List::default();
        self.expiring = 0;
        self.deadlines = Vec::new();
        self.ghost.clear();
        self.sketch.clear();
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

    /// Moves node `i` to the tail of `queue`.
    fn requeue(&mut self, i: u32, queue: Queue) {
        self.unlink(i);
        self.push_tail(i, queue);
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
        let expired: Vec<bool> = (0..self.nodes.len() as u32)
            .map(|i| self.expired(i, now))
            .collect();
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
                self.deadlines.swap(kept, i);
                renumber[i] = kept as u32;
                kept += 1;
            }
        }
        let removed = self.nodes.split_off(kept);
        self.deadlines.truncate(kept);
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
        // The sweep has no hasher: the slab shrinks now, the table only if
        // the sweep emptied it, else at the shard's next removal.
        self.shrink_slab(self.nodes.len());
        shrink_empty(&mut self.table, unpack_room(self.keep_table));
        removed.into_iter().map(Node::into_pair).collect()
    }

    /// Shrinks `nodes` and `deadlines` if they hold fewer than a quarter of
    /// the entries they have room for (see [`sparse`]). Runs no user code.
    fn shrink_slab(&mut self, len: usize) {
        let keep = unpack_room(self.keep_nodes);
        if sparse(len, self.nodes.capacity(), keep) {
            self.nodes.shrink_to(shrunk(len, keep));
        }
        if sparse(len, self.deadlines.capacity(), keep) {
            self.deadlines.shrink_to(shrunk(len, keep));
        }
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
        let Some(i) = self.find(hash, key) else {
            return Lookup::Missing;
        };
        if let Some(&deadline) = self.deadlines.get(i as usize) {
            if deadline != NEVER && is_expired(deadline, now()) {
                return Lookup::Expired;
            }
        }
        let node = &self.nodes[i as usize];
        // Relaxed: the count is a hint, and racing readers may lose a bump.
        let freq = node.freq.load(Ordering::Relaxed);
        if freq < MAX_FREQ {
            node.freq.store(freq + 1, Ordering::Relaxed);
        }
        Lookup::Live(read(&node.value))
    }

    /// Index of `key`'s node.
    #[inline]
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

    /// Inserts or replaces the entry in `pending`, weighing `weight`, then
    /// evicts until the shard is within its capacity. The entry stays in
    /// `pending` (declared by the caller before it takes the lock) until no
    /// user code is left to run, so a panicking `Eq` or `Hash` changes
    /// nothing and the entry is dropped after the lock is released. A replaced entry keeps its queue and
    /// frequency. An entry heavier than the whole shard is not stored (and
    /// counts as an eviction); an older value under its key is removed.
    /// `now` is read at most once, and only if some entry has a deadline.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        pending: &mut Option<(K, V)>,
        deadline: u64,
        weight: u32,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Departures<K, V>,
    ) {
        let Some((key, _)) = pending.as_ref() else {
            return;
        };
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        self.counts.inserts += 1;
        let found = self.find(hash, key);
        if u64::from(weight) > self.capacity {
            if let Some(i) = found {
                let (old_key, old) = self.take(i, hash, hasher).into_pair();
                out.push(old_key, old, RemovalCause::Replaced);
            }
            if let Some((key, value)) = pending.take() {
                self.counts.evictions += 1;
                out.push(key, value, RemovalCause::Evicted);
            }
            return;
        }
        if let Some(i) = found {
            let Some((key, value)) = pending.take() else {
                return;
            };
            self.set_deadline(i, deadline);
            let node = &mut self.nodes[i as usize];
            let old = std::mem::replace(&mut node.value, value);
            let (old_weight, queue) = (node.weight, node.queue);
            node.weight = weight;
            let list = self.list(queue);
            list.weight = list.weight - u64::from(old_weight) + u64::from(weight);
            out.push(key, old, RemovalCause::Replaced);
            self.make_room(0, hasher, now, out);
            return;
        }
        self.make_room(u64::from(weight), hasher, now, out);
        assert!(
            self.nodes.len() < NIL as usize,
            "shardcache: a shard cannot hold more than {} entries",
            NIL - 1
        );
        // Grow before changing anything: growing the table hashes the
        // stored keys.
        let nodes = &self.nodes;
        self.table
            .reserve(1, |&i| hasher.hash_one(&nodes[i as usize].key));
        self.reserve_node();
        self.ghost.fit(self.nodes.len() + 1);
        let presize = if self.most_entries == usize::MAX {
            0 // weighted: the entry count is unknown, so grow with it
        } else {
            self.most_entries.min(SKETCH_PRESIZE)
        };
        self.sketch.fit((self.nodes.len() + 1).max(presize));
        self.sketch.add(hash);
        let queue = if self.main.weight + u64::from(weight) <= self.main_capacity()
            || (self.ghost.take(hash) && self.beats_main_victim(hash, hasher))
        {
            Queue::Main
        } else {
            Queue::Small
        };
        let Some((key, value)) = pending.take() else {
            return;
        };
        let i = self.nodes.len() as u32;
        self.nodes.push(Node {
            key,
            value,
            weight,
            prev: NIL,
            next: NIL,
            freq: AtomicU8::new(0),
            queue,
        });
        if !self.deadlines.is_empty() {
            self.deadlines.push(NEVER);
        }
        self.set_deadline(i, deadline);
        self.push_tail(i, queue);
        self.table
            .insert_unique(hash, i, |&i| hasher.hash_one(&self.nodes[i as usize].key));
    }

    /// Makes room in `nodes` for one more: doubling, as `Vec` does, but
    /// never past what the shard can hold, so a full cache of unit weights
    /// wastes no slot.
    fn reserve_node(&mut self) {
        let len = self.nodes.len();
        if len == self.nodes.capacity() {
            let room = len.max(4).min(self.most_entries.saturating_sub(len)).max(1);
            self.nodes.reserve_exact(room);
        }
    }

    /// Gives node `i` `deadline`, keeping `deadlines` and `expiring` true.
    fn set_deadline(&mut self, i: u32, deadline: u64) {
        if self.deadlines.is_empty() {
            if deadline == NEVER {
                return;
            }
            self.deadlines = vec![NEVER; self.nodes.len()];
        }
        let slot = &mut self.deadlines[i as usize];
        self.expiring =
            self.expiring + usize::from(deadline != NEVER) - usize::from(*slot != NEVER);
        *slot = deadline;
    }

    /// Whether a key with `hash`, back from the ghost, was used more often
    /// than the entry `main` would evict for it.
    fn beats_main_victim<S: BuildHasher>(&mut self, hash: u64, hasher: &S) -> bool {
        match self.main_victim(None, hasher) {
            None => true,
            Some(victim) => {
                let victim = hasher.hash_one(&self.nodes[victim as usize].key);
                self.sketch.estimate(hash) > self.sketch.estimate(victim)
            }
        }
    }

    /// Evicts until `extra` more weight fits.
    fn make_room<S: BuildHasher>(
        &mut self,
        extra: u64,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Departures<K, V>,
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
            let Some(i) = self.victim(at, hasher) else {
                break;
            };
            let expired = at.is_some_and(|at| self.expired(i, at));
            let hash = hasher.hash_one(&self.nodes[i as usize].key);
            let queue = self.nodes[i as usize].queue;
            let (key, value) = self.take(i, hash, hasher).into_pair();
            let cause = if expired {
                self.counts.expirations += 1;
                RemovalCause::Expired
            } else {
                self.counts.evictions += 1;
                if queue == Queue::Small {
                    self.ghost.insert(hash);
                }
                RemovalCause::Evicted
            };
            out.push(key, value, cause);
        }
    }

    /// The next entry to evict; moves entries between and within the queues
    /// on the way (see the module docs). `now` is `None` when no entry can
    /// be expired.
    fn victim<S: BuildHasher>(&mut self, now: Option<u64>, hasher: &S) -> Option<u32> {
        let main_capacity = self.main_capacity();
        loop {
            let i = self.small.head;
            if i == NIL || self.main.weight > main_capacity {
                return self.main_victim(now, hasher);
            }
            if let Some(now) = now {
                // Both heads are met; an expired one goes first.
                if self.expired(i, now) {
                    return Some(i);
                }
                let head = self.main.head;
                if head != NIL && self.expired(head, now) {
                    return Some(head);
                }
            }
            let node = &self.nodes[i as usize];
            if node.freq.load(Ordering::Relaxed) == 0 {
                return Some(i);
            }
            node.freq.store(0, Ordering::Relaxed);
            let hash = hasher.hash_one(&node.key);
            self.sketch.add(hash);
            self.requeue(i, Queue::Main);
        }
    }

    /// CLOCK over `main`: the first entry from the head that is expired or
    /// was not hit since it was last passed over. Entries passed over lose
    /// one frequency and count one use in the sketch.
    fn main_victim<S: BuildHasher>(&mut self, now: Option<u64>, hasher: &S) -> Option<u32> {
        loop {
            let i = self.main.head;
            if i == NIL {
                return None;
            }
            if now.is_some_and(|now| self.expired(i, now)) {
                return Some(i);
            }
            let node = &self.nodes[i as usize];
            let freq = node.freq.load(Ordering::Relaxed);
            if freq == 0 {
                return Some(i);
            }
            node.freq.store(freq - 1, Ordering::Relaxed);
            let hash = hasher.hash_one(&node.key);
            self.sketch.add(hash);
            self.requeue(i, Queue::Main);
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
        self.set_deadline(i, NEVER);
        let node = self.nodes.swap_remove(i as usize);
        if !self.deadlines.is_empty() {
            self.deadlines.swap_remove(i as usize);
        }
        if let Some(moved_hash) = moved_hash {
            self.repoint(last, i, moved_hash);
        }
        node
    }

    /// Whether one removal would leave the table, the slab or the
    /// deadlines below a quarter full (see [`sparse`]).
    #[inline]
    fn sparse_after_removal(&self) -> bool {
        let keep = unpack_room(self.keep_nodes);
        let len = self.nodes.len() - 1;
        let table = self.table.len().saturating_sub(1);
        sparse(table, table_room(&self.table), unpack_room(self.keep_table))
            || sparse(len, self.nodes.capacity(), keep)
            || sparse(len, self.deadlines.capacity(), keep)
    }

    /// Before a removal that leaves the shard sparse, shrinks the table and
    /// then the slab. The table's shrink runs `Hash` on every key; if it
    /// panics, hashbrown leaves the table as it was, and nothing has been
    /// taken out yet. The slab's shrink moves the nodes without changing
    /// their indices, so the table and the queues stay valid.
    #[cold]
    #[inline(never)]
    fn shrink_before_removal<S: BuildHasher>(&mut self, hasher: &S) {
        let len = self.table.len().saturating_sub(1);
        let keep = unpack_room(self.keep_table);
        if sparse(len, table_room(&self.table), keep) {
            let nodes = &self.nodes;
            shrink(&mut self.table, len, keep, |&i| {
                hasher.hash_one(&nodes[i as usize].key)
            });
        }
        self.shrink_slab(self.nodes.len() - 1);
    }

    /// Removes `key`. An expired entry is removed too, but reported as such.
    /// If the removal leaves the shard below a quarter full, its table and
    /// slab shrink first.
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
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        let i = self.find(hash, key)?;
        if self.sparse_after_removal() {
            self.shrink_before_removal(hasher);
        }
        let expired = self.may_expire() && self.expired(i, now());
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
        if !self.expired(i, now) {
            return None;
        }
        if self.sparse_after_removal() {
            self.shrink_before_removal(hasher);
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
        let mut out = Departures::default();
        let hasher = Hasher::default();
        s.insert(
            h(key),
            &mut Some((key, value)),
            deadline,
            weight,
            &hasher,
            || now,
            &mut out,
        );
        // Miri runs every check ~1000x slower: there, one insert in 16.
        if !cfg!(miri) || s.counts.inserts % 16 == 0 {
            s.check();
        }
        out.into_iter().map(|(k, v, _)| (k, v)).collect()
    }

    /// A shard of `capacity` whose entries may weigh anything.
    fn shard(capacity: u64) -> Shard {
        Shard::new(capacity, 0, false)
    }

    fn queue_of(s: &Shard, key: u32) -> Queue {
        s.nodes[s.find(h(key), &key).unwrap() as usize].queue
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
            assert!(self.deadlines.is_empty() || self.deadlines.len() == self.nodes.len());
            let expiring = self.deadlines.iter().filter(|&&d| d != NEVER).count();
            assert_eq!(self.expiring, expiring);
            assert!(self.weight() <= self.capacity);
        }
    }

    #[test]
    fn holds_at_most_its_capacity_and_evicts_one_per_insert() {
        let mut s = shard(10);
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
        let mut s = shard(100);
        for key in 0..50 {
            put(&mut s, key, key);
        }
        for _ in 0..2 {
            for key in 0..50 {
                assert_eq!(hit(&s, key), Some(key));
            }
        }
        // A scan of 1000 one-time keys passes through the small queue.
        let scan = if cfg!(miri) { 200 } else { 1000 };
        for key in 1000..1000 + scan {
            put(&mut s, key, key);
            hit(&s, key % 50); // the hot set stays hot
        }
        let kept = keys(&s);
        assert!((0..50).all(|k| kept.contains(&k)), "hot keys evicted");
    }

    #[test]
    fn a_cold_shard_fills_main_first_then_new_keys_wait_in_small() {
        let mut s = shard(20); // small holds 1, main 19
        for key in 0..20 {
            put(&mut s, key, key);
        }
        assert!((0..19).all(|key| queue_of(&s, key) == Queue::Main));
        assert_eq!(queue_of(&s, 19), Queue::Small);
        // 19 was never read: it is the first to go, and remembered.
        assert_eq!(put(&mut s, 100, 100), vec![(19, 19)]);
        assert_eq!(queue_of(&s, 100), Queue::Small);
    }

    #[test]
    fn the_ghost_sends_a_key_back_to_main_only_if_it_was_used_more() {
        let mut s = shard(20);
        for key in 0..21 {
            put(&mut s, key, key); // 20 evicts 19 into the ghost
        }
        // 19 was inserted twice, main's oldest entry (0) once: 19 wins.
        assert_eq!(put(&mut s, 19, 19), vec![(20, 20)]);
        assert_eq!(queue_of(&s, 19), Queue::Main);
        // Main is now over its share, so its oldest goes next.
        assert_eq!(put(&mut s, 21, 21), vec![(0, 0)]);
        assert_eq!(put(&mut s, 22, 22), vec![(21, 21)]);
        // Make every entry of main busier than 21 has been.
        for _ in 0..2 {
            for key in 1..20 {
                hit(&s, key);
            }
            put(&mut s, 99, 99); // main passes over all of them
            if let Some(i) = s.find(h(99), &99) {
                s.take(i, h(99), &Hasher::default());
            }
            s.check();
        }
        assert!(s.ghost.contains(h(21)));
        put(&mut s, 21, 21);
        assert_eq!(queue_of(&s, 21), Queue::Small, "21 lost to a busier entry");
    }

    #[test]
    fn hits_count_to_two_and_no_further() {
        let mut s = shard(10);
        put(&mut s, 1, 1);
        for _ in 0..10 {
            hit(&s, 1);
        }
        let i = s.find(h(1), &1).unwrap();
        assert_eq!(s.nodes[i as usize].freq.load(Ordering::Relaxed), MAX_FREQ);
    }

    #[test]
    fn replacing_keeps_the_place_and_the_frequency() {
        let mut s = shard(10);
        for key in 0..5 {
            put(&mut s, key, key);
        }
        hit(&s, 0);
        let before = s.find(h(0), &0).unwrap();
        assert_eq!(put_with(&mut s, 0, 7, NEVER, 3, 0), vec![(0, 0)]);
        let i = s.find(h(0), &0).unwrap();
        assert_eq!(i, before);
        let node = &s.nodes[i as usize];
        assert_eq!((node.value, node.weight, node.queue), (7, 3, Queue::Main));
        assert_eq!(node.freq.load(Ordering::Relaxed), 1);
        assert_eq!(s.main.head, i, "still the oldest");
        assert_eq!(s.weight(), 7);
    }

    #[test]
    fn a_heavier_replacement_makes_room() {
        let mut s = shard(10);
        for key in 0..10 {
            put(&mut s, key, key);
        }
        hit(&s, 0);
        let out = put_with(&mut s, 0, 90, NEVER, 5, 0);
        // Main is over its share: it passes over 0 and evicts 1 to 4.
        assert_eq!(out, vec![(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        assert_eq!(s.weight(), 10);
    }

    #[test]
    fn an_entry_heavier_than_the_shard_is_not_stored_and_removes_the_old_value() {
        let mut s = shard(10);
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
        let mut s = shard(0);
        assert_eq!(put(&mut s, 1, 1), vec![(1, 1)]);
        assert_eq!((s.len(), s.counts.evictions), (0, 1));
        assert_eq!(put_with(&mut s, 2, 2, NEVER, 0, 0), vec![], "weight 0 fits");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let mut s = shard(10);
        for key in 0..10 {
            let deadline = if key == 3 { 5 } else { NEVER };
            put_with(&mut s, key, key, deadline, 1, 0);
        }
        for key in 0..10 {
            hit(&s, key); // every entry would be kept if live
        }
        // Small's 9 moves to main, which passes over 0, 1 and 2 and meets 3.
        let out = put_with(&mut s, 10, 10, NEVER, 1, 6);
        assert_eq!(out, vec![(3, 3)]);
        assert_eq!((s.counts.expirations, s.counts.evictions), (1, 0));
        // In small too: a hit entry that expired goes when its turn comes.
        let mut s = shard(10);
        for key in 0..9 {
            put(&mut s, key, key);
        }
        put_with(&mut s, 9, 9, 5, 1, 0);
        hit(&s, 9);
        assert_eq!(put_with(&mut s, 10, 10, NEVER, 1, 6), vec![(9, 9)]);
    }

    #[test]
    fn the_clock_is_not_read_when_nothing_can_expire() {
        let mut s = shard(2);
        let mut out = Departures::default();
        for key in 0..5 {
            let hasher = Hasher::default();
            s.insert(
                h(key),
                &mut Some((key, key)),
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
        let mut s = shard(100);
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
        let mut s = Shard::new(100, 10, true);
        for key in 0..50 {
            put(&mut s, key, key);
        }
        let (table, nodes) = s.take_all();
        assert_eq!((table.len(), nodes.len()), (50, 50));
        assert_eq!((s.len(), s.weight()), (0, 0));
        let held = s.nodes.capacity() + s.table.capacity() + s.deadlines.capacity();
        assert_eq!(held + s.ghost.bytes() + s.sketch.bytes(), 0);
        s.check();
        put(&mut s, 1, 1);
        assert_eq!(hit(&s, 1), Some(1));
    }

    /// A long pseudo-random mix of every operation, checking the structure
    /// after each one against a plain set of the keys that must be there.
    #[test]
    fn random_operations_keep_every_invariant() {
        let mut s = shard(64);
        let hasher = Hasher::default();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = 0;
        for _ in 0..if cfg!(miri) { 150 } else { 20_000 } {
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

    /// The entries the table, the slab and the deadlines have room for.
    fn rooms(s: &Shard) -> (usize, usize, usize) {
        (
            table_room(&s.table),
            s.nodes.capacity(),
            s.deadlines.capacity(),
        )
    }

    #[test]
    fn removals_shrink_the_table_the_slab_and_the_deadlines() {
        let mut s = Shard::new(10_000, 0, true);
        let hasher = Hasher::default();
        let n = if cfg!(miri) { 200 } else { 2000 };
        for key in 0..n {
            let deadline = if key % 2 == 0 { 10 } else { NEVER };
            put_with(&mut s, key, key, deadline, 1, 0);
        }
        let full = rooms(&s);
        assert!(full.0 >= n as usize && full.1 >= n as usize && full.2 >= n as usize);
        for key in 10..n {
            if key % 4 == 0 {
                assert!(s.remove_if_expired(h(key), &key, 11, &hasher).is_some());
            } else {
                assert!(s.remove(h(key), &key, || 0, &hasher).is_some());
            }
            if !cfg!(miri) || key % 16 == 0 {
                s.check();
            }
        }
        s.check();
        let (table, nodes, deadlines) = rooms(&s);
        assert!(
            table < 64 && nodes < 64 && deadlines < 64,
            "{:?}",
            rooms(&s)
        );
        assert_eq!(keys(&s), (0..10).collect());
        put(&mut s, n, n);
        assert_eq!(hit(&s, n), Some(n));
    }

    #[test]
    fn a_sweep_shrinks_the_slab_and_frees_a_table_it_empties() {
        let mut s = Shard::new(10_000, 0, true);
        let hasher = Hasher::default();
        let n = if cfg!(miri) { 200 } else { 2000 };
        for key in 0..n {
            put_with(&mut s, key, key, 10, 1, 0);
        }
        assert_eq!(s.remove_expired(11).len(), n as usize);
        s.check();
        assert_eq!(rooms(&s), (0, 0, 0), "emptied: all freed");
        for key in 0..n {
            put_with(&mut s, key, key, 10, 1, 0);
        }
        put_with(&mut s, n, n, 20, 1, 0);
        let full = rooms(&s);
        assert_eq!(s.remove_expired(11).len(), n as usize);
        s.check();
        let (table, nodes, deadlines) = rooms(&s);
        assert!(nodes < 64 && deadlines < 64, "{:?}", rooms(&s));
        assert_eq!(
            table, full.0,
            "the sweep has no hasher for a table it leaves"
        );
        // The next removal shrinks the table.
        put(&mut s, n + 1, 0);
        assert!(s.remove(h(n + 1), &(n + 1), || 0, &hasher).is_some());
        s.check();
        assert!(table_room(&s.table) < 64);
        assert_eq!(s.remove_expired(21).len(), 1);
        s.check();
    }

    #[test]
    fn shrinking_keeps_the_room_asked_for() {
        // Miri runs ~1000x slower: a tenth of everything.
        let (capacity, room, keys) = if cfg!(miri) {
            (1_000, 50, 200)
        } else {
            (10_000, 500, 2000)
        };
        let mut s = Shard::new(capacity, room, true);
        let hasher = Hasher::default();
        let asked = rooms(&s);
        for key in 0..keys {
            put(&mut s, key, key);
        }
        for key in 0..keys {
            s.remove(h(key), &key, || 0, &hasher);
        }
        s.check();
        assert_eq!((rooms(&s).0, rooms(&s).1), (asked.0, asked.1));
    }

    #[test]
    fn a_hash_that_panics_during_a_shrink_loses_nothing() {
        /// Panics on the hash after `armed - 1` more (0: never).
        #[derive(Default)]
        struct Flaky(std::cell::Cell<usize>);
        impl BuildHasher for Flaky {
            type Hasher = DefaultHasher;
            fn build_hasher(&self) -> DefaultHasher {
                match self.0.get() {
                    0 => {}
                    1 => panic!("Hash panics during the shrink"),
                    n => self.0.set(n - 1),
                }
                DefaultHasher::default()
            }
        }
        let mut s = Shard::new(10_000, 0, true);
        for key in 0..400 {
            put(&mut s, key, key);
        }
        let flaky = Flaky::default();
        let mut key = 0;
        let table = table_room(&s.table);
        loop {
            // A removal hashes the key moved into the hole: the second
            // hash. A shrink hashes before it: two entries move, the
            // third panics.
            flaky.0.set(3);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.remove(h(key), &key, || 0, &flaky)
            }));
            if result.is_err() {
                break;
            }
            assert_eq!(table_room(&s.table), table, "a shrink that did not hash");
            key += 1;
            assert!(key < 400, "no removal shrank the table");
        }
        s.check();
        assert_eq!(
            s.len(),
            400 - key as usize,
            "the panicking removal changed nothing"
        );
        assert_eq!(table_room(&s.table), table);
        assert!((key..400).all(|k| hit(&s, k) == Some(k)));
        assert!(s.remove(h(key), &key, || 0, &Hasher::default()).is_some());
        assert!(table_room(&s.table) < table, "the next removal shrinks");
        s.check();
    }
}
