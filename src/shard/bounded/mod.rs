//! The shard of a bounded cache: storage, policy and expiry, each in its
//! own file, joined here into the [`Shard`] contract. Written
//! single-threaded, like the unbounded shard.
//!
//! # Layout
//!
//! ```text
//! slab:    Slab        storage.rs: table of u32 indices + dense Vec<Node>,
//!                      Node { key, value, weight, links: Links }
//! policy:  Policy      policy.rs: the queues threaded through the nodes'
//!                      Links { prev, next, freq, queue, timed }, the ghost and
//!                      the two windows that steer the split (ghost.rs),
//!                      and the sketch (sketch.rs)
//! expiry:  Deadlines   expiry.rs: one u64 per node, or none while no entry
//!                      has a TTL; the sweep
//! ```
//!
//! A cache that never uses a TTL stores no deadline: a `u64 -> u64` node
//! is 32 bytes. Whether a node has a deadline is also a flag in its links
//! (`timed`, in their padding), set by every write of its deadline: a hit
//! tests it in the node it reads anyway, and loads the deadlines' column
//! (another cache line of the shard) only for an entry that has one. The
//! policy sees the storage only through `Slab`'s methods, and storage
//! knows nothing of queues; this file says in which order they are told of
//! an insert, a hit, an eviction and a removal.
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

mod bulk;
mod expiry;
mod ghost;
mod policy;
mod sketch;
mod storage;

use std::fmt;
use std::hash::{BuildHasher, Hash};
// Not `crate::sync`: see `idle.rs`.
use std::sync::atomic::AtomicU64;

use hashbrown::HashTable;

use super::{Keep, Lookup, Meta, Removed, Shard, WriteCounts};
use crate::clock::{is_expired, NEVER};
use crate::listener::{Departures, Panic, RemovalCause};
use crate::loading::Loading;
use crate::Equivalent;
use expiry::Deadlines;
pub(crate) use expiry::Stamps;
use policy::{Links, Policy};
use storage::{Node, Slab};

/// Everything [`BoundedShard::take_all`] took out, to be dropped after
/// unlocking: the index first, then each entry.
pub(crate) struct Taken<K, V> {
    table: HashTable<u32>,
    nodes: Vec<Node<K, V, Links>>,
}

impl<K, V> IntoIterator for Taken<K, V> {
    type Item = (K, V);
    type IntoIter =
        std::iter::Map<std::vec::IntoIter<Node<K, V, Links>>, fn(Node<K, V, Links>) -> (K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        drop(self.table);
        let pair: fn(Node<K, V, Links>) -> (K, V) = Node::into_pair;
        self.nodes.into_iter().map(pair)
    }
}

/// A shard holding at most `capacity` weight, evicting with the policy of
/// `policy.rs`.
pub(crate) struct BoundedShard<K, V> {
    slab: Slab<K, V, Links>,
    policy: Policy,
    expiry: Deadlines,
    counts: WriteCounts,
    /// Keys being loaded by `get_or_insert_with`.
    loading: Loading<K, V>,
}

impl<K, V> BoundedShard<K, V> {
    /// An empty shard that holds at most `capacity` weight, with room for
    /// `reserve` entries before it grows. `unit` says every entry weighs 1,
    /// so the slab never needs room for more than `capacity` entries.
    pub(crate) fn new(capacity: u64, reserve: usize, unit: bool) -> Self {
        let most_entries = bulk::most_entries(capacity, unit);
        Self {
            slab: Slab::new(reserve, most_entries),
            policy: Policy::new(capacity, most_entries),
            expiry: Deadlines::default(),
            counts: WriteCounts::default(),
            loading: Loading::default(),
        }
    }

    /// This shard, stamping `stamps` on every write (see `expiry.rs`).
    pub(crate) fn stamped(mut self, stamps: Stamps) -> Self {
        self.expiry = Deadlines::new(stamps);
        self
    }

    /// Whether one removal would leave the table, the slab or the
    /// deadlines below a quarter full (see `sizing.rs`).
    #[inline]
    fn sparse_after_removal(&self) -> bool {
        self.slab.sparse_after_removal()
            || self
                .expiry
                .sparse(self.slab.len() - 1, self.slab.keep_nodes())
    }
}

impl<K: Hash + Eq, V> BoundedShard<K, V> {
    /// Before a removal that leaves the shard sparse, shrinks the table,
    /// the slab and the deadlines (the table first: its shrink runs `Hash`,
    /// and if that panics nothing else has changed).
    #[cold]
    #[inline(never)]
    fn shrink_before_removal<S: BuildHasher>(&mut self, hasher: &S) {
        self.slab.shrink_before_removal(hasher);
        let len = self.slab.len() - 1;
        self.expiry.shrink(len, self.slab.keep_nodes());
    }

    /// Removes node `i`, whose key hashes to `hash`, from the policy, the
    /// deadlines and the slab, which moves its last node into the hole.
    /// Hashes the moved key before changing anything.
    fn take<S: BuildHasher>(&mut self, i: u32, hash: u64, hasher: &S) -> Node<K, V, Links> {
        let moved_hash = self.slab.moved_hash(i, hasher);
        self.policy.unlink(&mut self.slab, i);
        // The node leaves: its `timed` flag goes with it.
        self.expiry.set(i, NEVER, NEVER, self.slab.len());
        let (node, moved) = self.slab.take(i, hash, moved_hash);
        self.expiry.swap_remove(i);
        if let Some(from) = moved {
            self.policy.moved(&mut self.slab, from, i);
        }
        node
    }

    /// Finds `key` and applies `read` to its value and its refresh time if
    /// it is live, counting the hit in the entry's links. `now` is called
    /// only if the entry has a deadline; with `ACCESS`, in a shard that
    /// idles, the read then moves it.
    #[inline(always)]
    #[allow(unsafe_code)] // the node `find` gave, without a bounds check
    fn find<const ACCESS: bool, Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V, Option<&AtomicU64>) -> R,
    ) -> Lookup<R>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let Some(i) = self.slab.find(hash, key) else {
            return Lookup::Missing;
        };
        // SAFETY: `i` is what `find` just returned, and `&self` keeps the
        // slab from changing since.
        let node = unsafe { self.slab.found(i) };
        // The node's flag, not the deadlines' column: an entry without a
        // deadline reads nothing more than its node.
        if node.links.timed {
            let deadline = self.expiry.deadline(i);
            let now = now();
            if is_expired(deadline, now) {
                return Lookup::Expired;
            }
            if ACCESS && self.expiry.idles() {
                self.expiry.touch(i, now);
            }
        }
        node.links.hit();
        Lookup::Live(read(&node.value, self.expiry.refresh_at(i)))
    }

    /// Evicts until `extra` more weight fits. Reads the clock once, and
    /// only if some entry can be expired. With `reuse`, the last victim
    /// (the one whose leaving makes the room) is not taken out but handed
    /// back, for a new entry to take its slot, once the index has room for
    /// that slot (`Slab::reserve_slot`).
    ///
    /// Always inlined: as a call it cost the read-through `get` 3 and the
    /// `insert` 5 instructions (`compare --callgrind`), and `#[inline]`
    /// alone leaves it one.
    #[inline(always)]
    fn make_room<S: BuildHasher>(
        &mut self,
        extra: u64,
        reuse: bool,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Departures<K, V>,
    ) -> Option<Victim> {
        let mut clock = Some(now);
        let mut now = 0;
        while self.policy.weight() + extra > self.policy.capacity() {
            let at = self.expiry.may_expire().then(|| {
                if let Some(read) = clock.take() {
                    now = read();
                }
                now
            });
            let expiry = &self.expiry;
            let expired = at.map(|at| move |i| expiry.expired(i, at));
            let Some(i) = self.policy.victim(&mut self.slab, expired) else {
                break;
            };
            let victim = Victim {
                i,
                hash: self.slab.hash_of(i, hasher),
                expired: at.is_some_and(|at| self.expiry.expired(i, at)),
            };
            let left = self.policy.weight() - u64::from(self.slab.node(i).weight);
            if reuse && left + extra <= self.policy.capacity() {
                // Hashes every key only if tombstones used up the index's
                // room (then the table is rebuilt, or grown if below the
                // room the shard's most entries need).
                self.slab.reserve_slot(hasher);
                return Some(victim);
            }
            let node = self.take(i, victim.hash, hasher);
            self.depart(node, &victim, out);
        }
        None
    }

    /// Counts `node`, which left as `victim`, and hands it to `out`.
    fn depart(&mut self, node: Node<K, V, Links>, victim: &Victim, out: &mut Departures<K, V>) {
        let Node {
            key, value, links, ..
        } = node;
        self.leave((key, value), &links, victim, out);
    }

    /// Counts the entry `(key, value)` with `links`, which left as
    /// `victim`, and hands it to `out`.
    #[inline]
    fn leave(
        &mut self,
        (key, value): (K, V),
        links: &Links,
        victim: &Victim,
        out: &mut Departures<K, V>,
    ) {
        let cause = if victim.expired {
            self.counts.expirations += 1;
            RemovalCause::Expired
        } else {
            self.counts.evictions += 1;
            self.policy.evicted(victim.hash, links);
            RemovalCause::Evicted
        };
        out.push(key, value, cause);
    }
}

/// The entry eviction chose, before it leaves.
struct Victim {
    i: u32,
    /// Its key's hash.
    hash: u64,
    /// Whether it leaves because it expired.
    expired: bool,
}

impl<K, V> Shard<K, V> for BoundedShard<K, V> {
    type Out = Departures<K, V>;
    type Taken = Taken<K, V>;
    const WEIGHED: bool = true;

    fn len(&self) -> usize {
        self.slab.len()
    }

    fn weight(&self) -> u64 {
        self.policy.weight()
    }

    fn counts(&self) -> WriteCounts {
        self.counts
    }

    fn loading(&self) -> &Loading<K, V> {
        &self.loading
    }

    fn loading_mut(&mut self) -> &mut Loading<K, V> {
        &mut self.loading
    }

    fn may_expire(&self) -> bool {
        self.expiry.may_expire()
    }

    fn has_expired(&self, now: u64) -> bool {
        self.expiry.has_expired(now)
    }

    /// Finds `key` and applies `read` to its value if it is live, counting
    /// the hit in the entry's links.
    #[inline]
    fn get<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V) -> R,
    ) -> Lookup<R>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        self.find::<false, Q, R>(hash, key, now, |value, _| read(value))
    }

    /// [`get`](Self::get), moving the deadline of a live entry with one in
    /// a shard that idles, and handing `read` its refresh time.
    #[inline]
    fn access<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V, Option<&AtomicU64>) -> R,
    ) -> Lookup<R>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        self.find::<true, Q, R>(hash, key, now, read)
    }

    #[inline]
    fn refresh_at<Q>(&self, hash: u64, key: &Q) -> Option<&AtomicU64>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        let i = self.slab.find(hash, key)?;
        self.expiry.refresh_at(i)
    }

    /// Inserts or replaces the entry in `pending`, weighing `meta.weight`,
    /// then evicts until the shard is within its capacity. A replaced entry
    /// keeps its queue and frequency. An entry heavier than the whole shard
    /// is not stored (and counts as an eviction); an older value under its
    /// key is removed. `now` is read once for the stamps of a shard that
    /// stamps writes, before anything changes, and once more at most, only
    /// if some entry has a deadline, for eviction.
    fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        pending: &mut Option<(K, V)>,
        meta: Meta,
        hasher: &S,
        now: impl Fn() -> u64,
        out: &mut Departures<K, V>,
    ) where
        K: Hash + Eq,
    {
        let Meta { deadline, weight } = meta;
        let Some((key, _)) = pending.as_ref() else {
            return;
        };
        let stamp = self.expiry.stamping().then(&now);
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        self.counts.inserts += 1;
        let found = self.slab.find(hash, key);
        if u64::from(weight) > self.policy.capacity() {
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
            let timed = self.expiry.write(i, deadline, stamp, self.slab.len());
            let node = self.slab.node_mut(i);
            node.links.timed = timed;
            let old = std::mem::replace(&mut node.value, value);
            let old_weight = std::mem::replace(&mut node.weight, weight);
            self.policy.reweigh(&node.links, old_weight, weight);
            out.push(key, old, RemovalCause::Replaced);
            if self.policy.weight() > self.policy.capacity() {
                // Only a heavier value can overflow: tested here, the
                // usual overwrite does not call into the eviction loop.
                self.make_room(0, false, hasher, now, out);
            }
            return;
        }
        let i = match self.make_room(u64::from(weight), true, hasher, now, out) {
            // The last victim's slot takes the new entry: nothing moves,
            // nothing is rehashed.
            Some(victim) => {
                let Some((key, value)) = pending.take() else {
                    return;
                };
                self.policy.unlink(&mut self.slab, victim.i);
                let timed = self
                    .expiry
                    .write(victim.i, deadline, stamp, self.slab.len());
                let old = self
                    .slab
                    .replace(victim.i, victim.hash, hash, key, value, hasher);
                let node = self.slab.node_mut(victim.i);
                node.weight = weight;
                let links = std::mem::replace(&mut node.links, Links::new());
                node.links.timed = timed;
                self.leave(old, &links, &victim, out);
                victim.i
            }
            None => {
                // Grow before changing anything: growing the table hashes
                // the stored keys.
                self.slab.reserve(hasher);
                let Some((key, value)) = pending.take() else {
                    return;
                };
                let node = Node::new(key, value, weight, Links::new());
                let i = self.slab.push(hash, node, hasher);
                let timed = self.expiry.push(deadline, stamp, self.slab.len());
                self.slab.node_mut(i).links.timed = timed;
                i
            }
        };
        self.policy.admit(&mut self.slab, i, hash, hasher);
    }

    /// Removes `key`. An expired entry is removed too, but reported as such.
    /// If the removal leaves the shard below a quarter full, its table and
    /// slab shrink first. `keep` is not used: the slab keeps its own.
    fn remove<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        hasher: &S,
        _keep: Keep,
    ) -> Option<Removed<K, V>>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        let i = self.slab.find(hash, key)?;
        if self.sparse_after_removal() {
            self.shrink_before_removal(hasher);
        }
        let expired = self.expiry.may_expire() && self.expiry.expired(i, now());
        let (key, value) = self.take(i, hash, hasher).into_pair();
        Some(if expired {
            self.counts.expirations += 1;
            Removed::Expired(key, value)
        } else {
            self.counts.removals += 1;
            Removed::Live(key, value)
        })
    }

    fn remove_if_expired<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        hasher: &S,
        _keep: Keep,
    ) -> Option<(K, V)>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        let i = self.slab.find(hash, key)?;
        if !self.expiry.expired(i, now) {
            return None;
        }
        if self.sparse_after_removal() {
            self.shrink_before_removal(hasher);
        }
        self.counts.expirations += 1;
        Some(self.take(i, hash, hasher).into_pair())
    }

    fn remove_expired(&mut self, now: u64, _keep: Keep) -> Vec<(K, V)> {
        self.sweep(now)
    }

    fn collect_live(&self, now: impl FnOnce() -> u64, out: &mut Vec<(K, V)>)
    where
        K: Clone,
        V: Clone,
    {
        self.clone_live(now, out);
    }

    fn retain(
        &mut self,
        now: impl FnOnce() -> u64,
        keep: impl FnMut(&K, &V) -> bool,
        _room: Keep,
        out: &mut Departures<K, V>,
    ) -> Option<Panic> {
        self.retain_nodes(now, keep, out)
    }

    fn remove_if<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        pred: impl FnOnce(&V) -> bool,
        hasher: &S,
        _keep: Keep,
    ) -> Option<Removed<K, V>>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        let i = self.slab.find(hash, key)?;
        let expired = self.expiry.may_expire() && self.expiry.expired(i, now());
        if !expired && !pred(&self.slab.node(i).value) {
            return None;
        }
        if self.sparse_after_removal() {
            self.shrink_before_removal(hasher);
        }
        let (key, value) = self.take(i, hash, hasher).into_pair();
        Some(if expired {
            self.counts.expirations += 1;
            Removed::Expired(key, value)
        } else {
            self.counts.removals += 1;
            Removed::Live(key, value)
        })
    }

    fn take_all(&mut self) -> Taken<K, V> {
        self.loading.supersede_all();
        self.policy.clear();
        self.expiry.clear();
        let (table, nodes) = self.slab.take_all();
        Taken { table, nodes }
    }
}

impl<K, V> fmt::Debug for BoundedShard<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedShard")
            .field("len", &self.slab.len())
            .field("weight", &self.policy.weight())
            .field("capacity", &self.policy.capacity())
            .field("small_weight", &self.policy.small.weight)
            .field("main_weight", &self.policy.main.weight)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::policy::{Queue, MAX_FREQ};
    use super::storage::NIL;
    use super::*;
    use crate::shard::sizing::table_room;
    use crate::shard::Shard as _;
    use crate::sync::Ordering;
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
            Meta { deadline, weight },
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
        s.slab.links(s.slab.find(h(key), &key).unwrap()).queue
    }

    fn hit(s: &Shard, key: u32) -> Option<u32> {
        match s.get(h(key), &key, || 0, |v| *v) {
            Lookup::Live(v) => Some(v),
            _ => None,
        }
    }

    fn keys(s: &Shard) -> HashSet<u32> {
        s.slab.nodes.iter().map(|n| n.key).collect()
    }

    impl BoundedShard<u32, u32> {
        /// Every structural invariant: each node is in exactly one list, in
        /// the queue it says, the links agree both ways, the weights and
        /// the deadline count add up, and the table finds every key at its
        /// node.
        fn check(&self) {
            let (slab, policy) = (&self.slab, &self.policy);
            let mut seen = vec![false; slab.len()];
            for (list, queue) in [(&policy.small, Queue::Small), (&policy.main, Queue::Main)] {
                let (mut prev, mut i, mut weight) = (NIL, list.head, 0);
                while i != NIL {
                    let node = slab.node(i);
                    assert!(!seen[i as usize], "node {i} listed twice");
                    seen[i as usize] = true;
                    assert_eq!(node.links.queue, queue);
                    assert_eq!(node.links.prev, prev, "back link of {i}");
                    assert!(node.links.freq.load(Ordering::Relaxed) <= MAX_FREQ);
                    weight += u64::from(node.weight);
                    prev = i;
                    i = node.links.next;
                }
                assert_eq!(list.tail, prev);
                assert_eq!(list.weight, weight);
            }
            assert!(seen.iter().all(|&s| s), "a node is in no list");
            assert_eq!(slab.table.len(), slab.len());
            for (i, node) in slab.nodes.iter().enumerate() {
                assert_eq!(slab.find(h(node.key), &node.key), Some(i as u32));
            }
            let deadlines = &self.expiry.deadlines;
            assert!(deadlines.is_empty() || deadlines.len() == slab.len());
            let expiring = deadlines
                .iter()
                .filter(|d| d.load(Ordering::Relaxed) != NEVER)
                .count();
            assert_eq!(self.expiry.expiring, expiring);
            for (i, node) in slab.nodes.iter().enumerate() {
                let deadline = self.expiry.deadline(i as u32);
                assert_eq!(node.links.timed, deadline != NEVER, "timed flag of {i}");
            }
            assert!(self.weight() <= policy.capacity());
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
    #[cfg_attr(
        miri,
        ignore = "policy behaviour over thousands of single-threaded steps; safe code, cargo test runs it"
    )]
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
        // The ghost keeps keys seen once out of the sketch.
        assert!((0..21).all(|key| s.policy.sketch.estimate(h(key)) == 0));
        // 19 came back from the ghost, main's oldest entry (0) was never
        // counted: 19 wins.
        assert_eq!(put(&mut s, 19, 19), vec![(20, 20)]);
        assert_eq!(s.policy.sketch.estimate(h(19)), 1);
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
            if let Some(i) = s.slab.find(h(99), &99) {
                s.take(i, h(99), &Hasher::default());
            }
            s.check();
        }
        assert!(s.policy.ghost.contains(h(21)));
        put(&mut s, 21, 21);
        assert_eq!(queue_of(&s, 21), Queue::Small, "21 lost to a busier entry");
    }

    #[test]
    fn a_pass_is_owed_by_the_entry_not_added_to_the_sketch() {
        let mut s = shard(20);
        for key in 0..21 {
            put(&mut s, key, key); // 20 evicts 19 into the ghost
        }
        hit(&s, 0);
        hit(&s, 0);
        // 19 comes back: looking for main's victim, the CLOCK passes over 0
        // (hit twice) and meets 1.
        put(&mut s, 19, 19);
        let links = s.slab.links(s.slab.find(h(0), &0).unwrap());
        assert_eq!(links.freq.load(Ordering::Relaxed), 1);
        assert_eq!(s.policy.sketch.owed(links.owed), 1, "0 owes its pass");
        assert_eq!(s.policy.sketch.estimate(h(0)), 0, "the pass hashed 0");
        assert_eq!(s.policy.sketch.estimate(h(19)), 1);
        s.check();
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "policy behaviour over thousands of single-threaded steps; safe code, cargo test runs it"
    )]
    fn keys_back_soon_after_leaving_small_make_small_longer() {
        let mut s = shard(320); // small aims at 3; windows of 10 evictions
        for key in 0..320 {
            put(&mut s, key, key);
        }
        assert_eq!(s.policy.small_target, 3);
        // Each key comes back 5 inserts after it came in: small (3) has
        // just evicted it, unread.
        for key in 1000..1200 {
            put(&mut s, key, key);
            put(&mut s, key - 5, key - 5);
        }
        // Small grew until those keys were still in it when they came back
        // (a replacement is no ghost hit): from 3 to at least 5.
        assert!(
            s.policy.small_target >= 5,
            "small aims at {}",
            s.policy.small_target
        );
        assert!((1195..1200).all(|key| s.slab.find(h(key), &key).is_some()));
        // Never more than half the capacity.
        for _ in 0..1000 {
            s.policy.grow_small(1);
        }
        assert_eq!(s.policy.small_target, 160);
        for _ in 0..1000 {
            s.policy.shrink_small(7);
        }
        assert_eq!(s.policy.small_target, 1, "at least one entry");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "policy behaviour over thousands of single-threaded steps; safe code, cargo test runs it"
    )]
    fn main_gives_way_to_a_longer_small_as_its_entries_go_cold_or_small_is_in_use() {
        let mut s = shard(100);
        for key in 0..100 {
            put(&mut s, key, key); // 0 to 98 in main, 99 in small
        }
        for key in 0..99 {
            hit(&s, key);
        }
        s.policy.small_target = 50;
        for key in 1000..1010 {
            put(&mut s, key, key);
        }
        // Main's hit entries were passed over, not evicted; each one
        // passed over made small aim lower again.
        assert!(
            (0..99).all(|key| hit(&s, key).is_some()),
            "a hit entry was evicted"
        );
        assert_eq!(s.policy.small_target, 40);
        // When small's oldest entry is in use too, main's hit entry is
        // passed over and the target stays: small has earned its room.
        let mut s = shard(100);
        for key in 0..100 {
            put(&mut s, key, key);
        }
        for key in 0..100 {
            hit(&s, key);
        }
        s.policy.small_target = 50;
        put(&mut s, 1000, 1000);
        assert_eq!(s.policy.small_target, 50);
        // And while small has promoted any of its latest oldest entries,
        // a cold one at its head does not pull the target back either.
        for key in 0..100 {
            hit(&s, key);
        }
        assert_eq!(put(&mut s, 1001, 1001), vec![(1000, 1000)]);
        assert_eq!(s.policy.small_target, 50);
        // Once they are cold, main does shrink.
        let mut s = shard(100);
        for key in 0..100 {
            put(&mut s, key, key);
        }
        s.policy.small_target = 50;
        assert_eq!(put(&mut s, 1000, 1000), vec![(0, 0)]);
        assert_eq!(s.policy.small_target, 50);
    }

    #[test]
    fn small_forgets_a_promotion_after_32_cold_evictions_on_either_path() {
        let mut s = shard(100);
        for key in 0..110 {
            put(&mut s, key, key); // main sheds its cold excess, then small
        }
        let small = s.policy.small_target;
        assert!(
            s.policy.main.weight <= 100 - small,
            "main is within its share"
        );
        // One of small's latest 32 oldest entries was promoted.
        s.policy.small_record = 1;
        // Evictions of cold heads of small take `victim`'s inlined step;
        // each records an eviction, as `walk` does.
        for key in 1000..1031 {
            put(&mut s, key, key);
            assert_ne!(s.policy.small_record, 0, "forgot too early");
        }
        put(&mut s, 1031, 1031);
        assert_eq!(s.policy.small_record, 0, "a promotion 32 evictions ago");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "policy behaviour over thousands of single-threaded steps; safe code, cargo test runs it"
    )]
    fn keys_back_soon_after_leaving_main_make_small_shorter() {
        let mut s = shard(320);
        for key in 0..320 {
            put(&mut s, key, key);
        }
        s.policy.small_target = 100;
        // Main (317) is over its target: cold entries leave it, into the
        // window of main's evictions, and come straight back.
        for key in 0..20 {
            assert_eq!(put(&mut s, 1000 + key, 0), vec![(key, key)]);
        }
        assert_eq!(s.policy.small_target, 100);
        for key in 10..20 {
            put(&mut s, key, key);
        }
        assert!(
            s.policy.small_target < 100,
            "small aims at {}",
            s.policy.small_target
        );
    }

    #[test]
    fn hits_count_to_two_and_no_further() {
        let mut s = shard(10);
        put(&mut s, 1, 1);
        for _ in 0..10 {
            hit(&s, 1);
        }
        let i = s.slab.find(h(1), &1).unwrap();
        assert_eq!(s.slab.links(i).freq.load(Ordering::Relaxed), MAX_FREQ);
    }

    #[test]
    fn replacing_keeps_the_place_and_the_frequency() {
        let mut s = shard(10);
        for key in 0..5 {
            put(&mut s, key, key);
        }
        hit(&s, 0);
        let before = s.slab.find(h(0), &0).unwrap();
        assert_eq!(put_with(&mut s, 0, 7, NEVER, 3, 0), vec![(0, 0)]);
        let i = s.slab.find(h(0), &0).unwrap();
        assert_eq!(i, before);
        let node = s.slab.node(i);
        assert_eq!(
            (node.value, node.weight, node.links.queue),
            (7, 3, Queue::Main)
        );
        assert_eq!(node.links.freq.load(Ordering::Relaxed), 1);
        assert_eq!(s.policy.main.head, i, "still the oldest");
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
        // Main (0 to 8) is over its share: it passes over 0, which was
        // hit, so small gives up its cold 9; then main evicts 1 to 3.
        assert_eq!(out, vec![(0, 0), (9, 9), (1, 1), (2, 2), (3, 3)]);
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
                Meta {
                    deadline: NEVER,
                    weight: 1,
                },
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
            s.remove(h(1), &1, || 0, &hasher, Keep::default()),
            Some(Removed::Live(1, 1))
        ));
        assert!(matches!(
            s.remove(h(3), &3, || 11, &hasher, Keep::default()),
            Some(Removed::Expired(3, 3))
        ));
        assert!(s.remove(h(1), &1, || 0, &hasher, Keep::default()).is_none());
        s.check();
        assert_eq!(
            s.remove_if_expired(h(6), &6, 10, &hasher, Keep::default()),
            None
        );
        assert_eq!(
            s.remove_if_expired(h(6), &6, 11, &hasher, Keep::default()),
            Some((6, 6))
        );
        s.check();
        let swept = s.remove_expired(11, Keep::default());
        assert_eq!(swept.len(), 20 - 2);
        assert!(swept.iter().all(|(k, _)| k % 3 == 0));
        s.check();
        assert_eq!(s.len(), 40 - 1);
        assert!(!s.may_expire());
        assert!(s.remove_expired(u64::MAX - 1, Keep::default()).is_empty());
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
        let taken = s.take_all();
        assert_eq!((taken.table.len(), taken.nodes.len()), (50, 50));
        assert_eq!(taken.into_iter().count(), 50);
        assert_eq!((s.len(), s.weight()), (0, 0));
        let held =
            s.slab.nodes.capacity() + s.slab.table.capacity() + s.expiry.deadlines.capacity();
        assert_eq!(held + s.policy.ghost.bytes() + s.policy.sketch.bytes(), 0);
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
                    let live = hit(&s, key).is_some() || s.slab.find(h(key), &key).is_none();
                    assert!(live, "a fresh insert is live or evicted");
                }
                4 | 5 => {
                    if let Some(v) = hit(&s, key) {
                        assert_eq!(v, key + 1);
                    }
                }
                6 => drop(s.remove(h(key), &key, || now, &hasher, Keep::default())),
                _ => {
                    now += 1;
                    if r >> 60 == 0 {
                        s.remove_expired(now, Keep::default());
                    }
                }
            }
            s.check();
        }
    }

    /// The entries the table, the slab and the deadlines have room for.
    fn rooms(s: &Shard) -> (usize, usize, usize) {
        (
            table_room(&s.slab.table),
            s.slab.nodes.capacity(),
            s.expiry.deadlines.capacity(),
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
                assert!(s
                    .remove_if_expired(h(key), &key, 11, &hasher, Keep::default())
                    .is_some());
            } else {
                assert!(s
                    .remove(h(key), &key, || 0, &hasher, Keep::default())
                    .is_some());
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
        assert_eq!(s.remove_expired(11, Keep::default()).len(), n as usize);
        s.check();
        assert_eq!(rooms(&s), (0, 0, 0), "emptied: all freed");
        for key in 0..n {
            put_with(&mut s, key, key, 10, 1, 0);
        }
        put_with(&mut s, n, n, 20, 1, 0);
        let full = rooms(&s);
        assert_eq!(s.remove_expired(11, Keep::default()).len(), n as usize);
        s.check();
        let (table, nodes, deadlines) = rooms(&s);
        assert!(nodes < 64 && deadlines < 64, "{:?}", rooms(&s));
        assert_eq!(
            table, full.0,
            "the sweep has no hasher for a table it leaves"
        );
        // The next removal shrinks the table.
        put(&mut s, n + 1, 0);
        assert!(s
            .remove(h(n + 1), &(n + 1), || 0, &hasher, Keep::default())
            .is_some());
        s.check();
        assert!(table_room(&s.slab.table) < 64);
        assert_eq!(s.remove_expired(21, Keep::default()).len(), 1);
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
            s.remove(h(key), &key, || 0, &hasher, Keep::default());
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
        let table = table_room(&s.slab.table);
        loop {
            // A removal hashes the key moved into the hole: the second
            // hash. A shrink hashes before it: two entries move, the
            // third panics.
            flaky.0.set(3);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.remove(h(key), &key, || 0, &flaky, Keep::default())
            }));
            if result.is_err() {
                break;
            }
            assert_eq!(
                table_room(&s.slab.table),
                table,
                "a shrink that did not hash"
            );
            key += 1;
            assert!(key < 400, "no removal shrank the table");
        }
        s.check();
        assert_eq!(
            s.len(),
            400 - key as usize,
            "the panicking removal changed nothing"
        );
        assert_eq!(table_room(&s.slab.table), table);
        assert!((key..400).all(|k| hit(&s, k) == Some(k)));
        assert!(s
            .remove(h(key), &key, || 0, &Hasher::default(), Keep::default())
            .is_some());
        assert!(
            table_room(&s.slab.table) < table,
            "the next removal shrinks"
        );
        s.check();
    }

    #[test]
    fn retain_and_set_capacity_keep_every_structure_consistent() {
        let mut s = shard(100); // holds all 64, weighing 96
        for key in 0..64 {
            let deadline = if key % 3 == 0 { 5 } else { NEVER };
            put_with(&mut s, key, key, deadline, 1 + key % 2, 0);
        }
        for key in (0..64).step_by(2) {
            hit(&s, key);
        }
        let mut out = Departures::default();
        let mut asked = 0;
        let keep = |k: &u32, _: &u32| {
            asked += 1;
            k % 5 != 0
        };
        assert!(s.retain(|| 10, keep, Keep::default(), &mut out).is_none());
        s.check();
        let gone = |k: &u32| k % 3 == 0 || k % 5 == 0;
        assert_eq!(asked, (0..64).filter(|k| k % 3 != 0).count());
        let mut left: Vec<_> = out.into_iter().map(|(k, _, c)| (k, c)).collect();
        left.sort_unstable_by_key(|&(k, _)| k);
        let want: Vec<_> = (0..64)
            .filter(gone)
            .map(|k| {
                let cause = if k % 3 == 0 {
                    RemovalCause::Expired
                } else {
                    RemovalCause::Removed
                };
                (k, cause)
            })
            .collect();
        assert_eq!(left, want);
        assert_eq!(s.expiry.expiring, 0, "every entry with a deadline left");
        assert_eq!(keys(&s), (0..64).filter(|k| !gone(k)).collect());
        assert!((0..64).filter(|k| !gone(k)).all(|k| hit(&s, k) == Some(k)));

        let mut out = Departures::default();
        s.set_capacity(10, false, &Hasher::default(), || 10, &mut out);
        s.check();
        assert!(
            s.weight() <= 10 && s.weight() + 2 > 10,
            "evicted to fit, no more"
        );
        assert!(out.into_iter().all(|(_, _, c)| c == RemovalCause::Evicted));
        for key in 100..200 {
            put(&mut s, key, key); // `put` checks every structure
        }
        s.set_capacity(
            1000,
            false,
            &Hasher::default(),
            || 10,
            &mut Departures::default(),
        );
        for key in 200..400 {
            put(&mut s, key, key);
        }
        assert!(s.weight() > 200, "grew past the old bound");
    }

    #[test]
    fn a_panicking_keep_stops_the_retain_with_the_shard_consistent() {
        let mut s = shard(100);
        for key in 0..50 {
            put(&mut s, key, key);
        }
        let mut out = Departures::default();
        let mut asked = 0;
        let keep = |k: &u32, _: &u32| {
            asked += 1;
            assert!(asked <= 20, "keep panicked");
            k % 2 == 1
        };
        let panic = s.retain(|| 0, keep, Keep::default(), &mut out);
        assert!(panic.is_some());
        s.check();
        assert_eq!(out.len(), 10, "only the rejected of the first 20 asked");
        assert_eq!(s.len(), 40);
    }
}
