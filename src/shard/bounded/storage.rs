//! The bounded shard's storage: a slab of nodes and the index that finds
//! them. It knows keys, values and weights; what a policy keeps per entry
//! is the opaque `L` in each node, and what the policy keeps per shard is
//! none of its business.
//!
//! ```text
//! table: HashTable<u32>   indices into `nodes`, found by the key's hash
//! nodes: Vec<Node>        dense: Node { key, value, weight, links: L }
//! ```
//!
//! `nodes` has no holes: removing node `i` moves the last node into `i`
//! and repoints its table slot ([`Slab::take`]); the caller repoints
//! whatever else refers to it (the policy's links, the deadlines). Indices
//! are `u32`, so a shard holds at most `u32::MAX - 1` entries.
//!
//! Every index in the table is that of a node (`< nodes.len()`), and no
//! two slots hold the same index, whatever the keys' `Hash` does: a slot
//! is found for removal or repointing by its key's hash and its index, and
//! if a `Hash` that changed its mind hides it, by a scan of the table
//! ([`unindex`], [`repoint`], cold). A lookup relies on this
//! to read the node without a bounds check ([`Slab::find`]); the hashbrown
//! table never makes up an index, it only loses slots to a `Hash` that
//! panics while it grows.
//!
//! The table grows (hashbrown's doubling) only while its entries would
//! fill it more than 5/8 ([`index_room`]; in a shard of unit weights, at
//! most to what its most entries need). Otherwise, once removals'
//! tombstones have used up its free slots, it is rebuilt at the same size
//! ([`Slab::reserve_slot`]): an evicting shard replaces entries forever,
//! and hashbrown doubles a table that tombstones fill unless its entries
//! use at most half its room, so the index of a full shard would double
//! for good.

// The lookup's unchecked read of a node (the invariant above).
#![allow(unsafe_code)]

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::shard::sizing::{
    index_room, pack_room, shrink, shrink_empty, shrunk, sparse, table_room, table_with_capacity,
    too_large, unpack_room,
};
use crate::Equivalent;

/// No node: the end of a list, or a node that is gone.
pub(crate) const NIL: u32 = u32::MAX;

/// An entry, with the policy's state for it.
pub(crate) struct Node<K, V, L> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) weight: u32,
    pub(crate) links: L,
}

impl<K, V, L> Node<K, V, L> {
    /// A node of `key` and `value`, weighing `weight`, with `links`.
    pub(crate) fn new(key: K, value: V, weight: u32, links: L) -> Self {
        Self {
            key,
            value,
            weight,
            links,
        }
    }

    /// The key and the value, for the caller to drop or hand on.
    pub(crate) fn into_pair(self) -> (K, V) {
        (self.key, self.value)
    }
}

/// Nodes in a dense slab, found by key through a table of indices.
pub(crate) struct Slab<K, V, L> {
    pub(super) table: HashTable<u32>,
    pub(super) nodes: Vec<Node<K, V, L>>,
    /// Most entries the shard can hold when every entry weighs 1; growing
    /// `nodes` stops there.
    most_entries: usize,
    /// The room `initial_capacity` gave `table` and `nodes`; a removal
    /// never shrinks them below it.
    keep_table: u32,
    keep_nodes: u32,
}

/// Everything [`Slab::take_all`] took out.
pub(crate) type Taken<K, V, L> = (HashTable<u32>, Vec<Node<K, V, L>>);

impl<K, V, L> Slab<K, V, L> {
    /// An empty slab with room for `reserve` entries, never holding more
    /// than `most_entries` nodes' room.
    pub(crate) fn new(reserve: usize, most_entries: usize) -> Self {
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
            most_entries,
        }
    }

    /// Changes the most entries the slab grows to (the shard's capacity
    /// changed).
    pub(crate) fn set_most_entries(&mut self, most_entries: usize) {
        self.most_entries = most_entries;
    }

    /// Entries stored.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`.
    #[inline]
    pub(crate) fn node(&self, i: u32) -> &Node<K, V, L> {
        &self.nodes[i as usize]
    }

    /// Node `i`, which the table gave: an index the table holds is always
    /// a node's (module docs), so no bounds check.
    ///
    /// # Safety
    ///
    /// `i` came from [`find`](Slab::find) on this slab with no change to
    /// it since (a shared borrow of the slab held from that call to this).
    #[inline]
    pub(crate) unsafe fn found(&self, i: u32) -> &Node<K, V, L> {
        debug_assert!((i as usize) < self.nodes.len(), "index {i} is no node");
        // SAFETY: the caller's `i` came from the table, unchanged since;
        // every index the table holds is below `nodes.len()` (module docs).
        unsafe { self.nodes.get_unchecked(i as usize) }
    }

    /// Node `i`, to change.
    #[inline]
    pub(crate) fn node_mut(&mut self, i: u32) -> &mut Node<K, V, L> {
        &mut self.nodes[i as usize]
    }

    /// The policy state of node `i`.
    #[inline]
    pub(crate) fn links(&self, i: u32) -> &L {
        &self.nodes[i as usize].links
    }

    /// The policy state of node `i`, to change.
    #[inline]
    pub(crate) fn links_mut(&mut self, i: u32) -> &mut L {
        &mut self.nodes[i as usize].links
    }

    /// The policy state of every node, with its index.
    pub(crate) fn all_links_mut(&mut self) -> impl Iterator<Item = &mut L> {
        self.nodes.iter_mut().map(|node| &mut node.links)
    }

    /// The room `initial_capacity` gave the slab, which columns beside it
    /// (the deadlines) keep too.
    pub(crate) fn keep_nodes(&self) -> usize {
        unpack_room(self.keep_nodes)
    }

    /// Takes every node out, leaving a slab that owns no memory.
    pub(crate) fn take_all(&mut self) -> Taken<K, V, L> {
        (
            std::mem::take(&mut self.table),
            std::mem::take(&mut self.nodes),
        )
    }

    /// Removes the nodes whose `gone` flag is set, keeping the others in
    /// order at the front, and returns them with each old index's new one
    /// ([`NIL`] for the removed). Runs no user code: the table drops and
    /// renumbers its slots by index. The table shrinks only if it is left
    /// empty (that needs no hasher); the slab if it is sparse.
    pub(crate) fn compact(&mut self, gone: &[bool]) -> (Vec<Node<K, V, L>>, Vec<u32>) {
        let mut renumber = vec![NIL; self.nodes.len()];
        let kept = partition(&mut self.nodes, gone, |i, to| renumber[i] = to as u32);
        let removed = self.nodes.split_off(kept);
        self.table.retain(|i| {
            let to = renumber[*i as usize];
            *i = to;
            to != NIL
        });
        shrink_empty(&mut self.table, unpack_room(self.keep_table));
        self.shrink_nodes(kept);
        (removed, renumber)
    }

    /// Shrinks `nodes` if `len` entries leave it sparse (see [`sparse`]).
    /// Moves the nodes without changing their indices.
    pub(crate) fn shrink_nodes(&mut self, len: usize) {
        let keep = self.keep_nodes();
        if sparse(len, self.nodes.capacity(), keep) {
            self.nodes.shrink_to(shrunk(len, keep));
        }
    }

    /// Whether one removal would leave the table or the slab below a
    /// quarter full.
    #[inline]
    pub(crate) fn sparse_after_removal(&self) -> bool {
        let len = self.nodes.len() - 1;
        let table = self.table.len().saturating_sub(1);
        sparse(table, table_room(&self.table), unpack_room(self.keep_table))
            || sparse(len, self.nodes.capacity(), self.keep_nodes())
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
}

/// Drops the slot of node `i` from `table`, if any, where its key's hash
/// did not find it: a `Hash` that changed its mind, or a slot lost to one
/// that panicked. A scan, so that no slot outlives its node (module docs).
/// Not generic: one copy, out of the way of the code around its callers.
#[cold]
#[inline(never)]
fn unindex(table: &mut HashTable<u32>, i: u32) {
    table.retain(|j| *j != i);
}

/// Points the slot of node `from` in `table`, if any, at `to`, where its
/// key's hash did not find it (see [`unindex`]).
#[cold]
#[inline(never)]
fn repoint(table: &mut HashTable<u32>, from: u32, to: u32) {
    for j in table.iter_mut().filter(|j| **j == from) {
        *j = to;
    }
}

/// Moves the elements of `v` whose `gone` flag is clear to the front, in
/// order, calling `moved(from, to)` for each; returns how many there are.
pub(crate) fn partition<T>(
    v: &mut [T],
    gone: &[bool],
    mut moved: impl FnMut(usize, usize),
) -> usize {
    let mut kept = 0;
    for (i, &gone) in gone.iter().enumerate() {
        if !gone {
            v.swap(kept, i);
            moved(i, kept);
            kept += 1;
        }
    }
    kept
}

impl<K: Hash, V, L> Slab<K, V, L> {
    /// The hash of node `i`'s key.
    #[inline]
    pub(crate) fn hash_of<S: BuildHasher>(&self, i: u32, hasher: &S) -> u64 {
        hasher.hash_one(&self.nodes[i as usize].key)
    }
}

impl<K: Hash + Eq, V, L> Slab<K, V, L> {
    /// Index of `key`'s node.
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| {
                debug_assert!((i as usize) < nodes.len(), "index {i} is no node");
                // SAFETY: `i` is in the table, so it is a node's (module
                // docs); saves the hit a bounds check (5 instructions per
                // `get` under `compare --callgrind`).
                let node = unsafe { nodes.get_unchecked(i as usize) };
                key.equivalent(&node.key)
            })
            .copied()
    }

    /// Makes room for one more node in the table and the slab. Growing the
    /// table hashes the stored keys: done before anything changes.
    pub(crate) fn reserve<S: BuildHasher>(&mut self, hasher: &S) {
        assert!(
            self.nodes.len() < NIL as usize,
            "shardcache: a shard cannot hold more than {} entries",
            NIL - 1
        );
        self.reserve_slot(hasher);
        self.reserve_node();
    }

    /// Makes room in the index for one slot more, so that the next
    /// [`push`](Self::push) or [`replace`](Self::replace) neither grows it
    /// nor runs `Hash`. Only once its free slots are used up (by entries,
    /// or by the tombstones removals leave) does it hash every stored key:
    /// a table that its entries, one more, and the shard's most entries
    /// would fill at most 5/8 ([`index_room`]) is rebuilt at its size
    /// ([`rebuild`](Self::rebuild)); a smaller one grows as hashbrown grows
    /// it (twice the buckets, or a rehash in place if at most half full).
    #[inline]
    pub(crate) fn reserve_slot<S: BuildHasher>(&mut self, hasher: &S) {
        if self.table.capacity() > self.table.len() {
            return;
        }
        if table_room(&self.table) >= self.full_room() {
            self.rebuild(hasher);
        } else {
            let nodes = &self.nodes;
            self.table
                .reserve(1, |&i| hasher.hash_one(&nodes[i as usize].key));
        }
    }

    /// The room of the index at its full size: what its entries and one
    /// more need, never more than the shard's most entries need (see
    /// [`index_room`]).
    #[inline(never)]
    fn full_room(&self) -> usize {
        index_room(self.most_entries.min(self.table.len() + 1))
    }

    /// Rebuilds the index at its size (or one slot larger, if it is full
    /// of entries), without its tombstones: a new table, filled with every
    /// slot's index under its key's hash, replaces the old one. If a
    /// `Hash` panics, the new table is dropped and the old one is left as
    /// it was, as hashbrown's own resize does.
    #[cold]
    #[inline(never)]
    fn rebuild<S: BuildHasher>(&mut self, hasher: &S) {
        let room = table_room(&self.table).max(self.table.len() + 1);
        let mut table = HashTable::with_capacity(room);
        let nodes = &self.nodes;
        let hash = |&i: &u32| hasher.hash_one(&nodes[i as usize].key);
        for &i in &self.table {
            // Room for every slot: `hash` is not called again.
            table.insert_unique(hash(&i), i, hash);
        }
        self.table = table;
    }

    /// Appends `node`, whose key hashes to `hash`, after a
    /// [`reserve`](Self::reserve); returns its index.
    pub(crate) fn push<S: BuildHasher>(
        &mut self,
        hash: u64,
        node: Node<K, V, L>,
        hasher: &S,
    ) -> u32 {
        let i = self.nodes.len() as u32;
        self.nodes.push(node);
        let nodes = &self.nodes;
        self.table
            .insert_unique(hash, i, |&i| hasher.hash_one(&nodes[i as usize].key));
        i
    }

    /// Gives node `i`, whose key hashed to `old_hash`, the key `key`
    /// hashing to `hash` and `value`, in place, and returns the old key
    /// and value; the node keeps its weight and links for the caller to
    /// set. Nothing else moves. Call it only after a
    /// [`reserve_slot`](Self::reserve_slot): then the index does not grow,
    /// and no `Hash` runs.
    #[inline]
    pub(crate) fn replace<S: BuildHasher>(
        &mut self,
        i: u32,
        old_hash: u64,
        hash: u64,
        key: K,
        value: V,
        hasher: &S,
    ) -> (K, V) {
        // Where `old_hash` does not find the slot (a `Hash` that changed
        // its mind), it stays, and no other is made: then the new key may
        // not be found, but no index is in the table twice (module docs).
        let slot = self.table.find_entry(old_hash, |&j| j == i);
        let found = slot.map(|slot| slot.remove()).is_ok();
        let node = &mut self.nodes[i as usize];
        let old = (
            std::mem::replace(&mut node.key, key),
            std::mem::replace(&mut node.value, value),
        );
        if found {
            let nodes = &self.nodes;
            self.table
                .insert_unique(hash, i, |&j| hasher.hash_one(&nodes[j as usize].key));
        }
        old
    }

    /// The hash of the key [`take`](Self::take)`(i, ..)` moves into `i`, if
    /// any: the last node's. Hashed before anything changes.
    #[inline]
    pub(crate) fn moved_hash<S: BuildHasher>(&self, i: u32, hasher: &S) -> Option<u64> {
        let last = (self.nodes.len() - 1) as u32;
        (i != last).then(|| self.hash_of(last, hasher))
    }

    /// Removes node `i`, whose key hashes to `hash`, and moves the last
    /// node into its place, repointing its table slot with `moved_hash`
    /// (from [`moved_hash`](Self::moved_hash)). Returns the node and the
    /// index the moved node came from, for the caller to repoint the rest.
    pub(crate) fn take(
        &mut self,
        i: u32,
        hash: u64,
        moved_hash: Option<u64>,
    ) -> (Node<K, V, L>, Option<u32>) {
        let last = (self.nodes.len() - 1) as u32;
        match self.table.find_entry(hash, |&j| j == i) {
            Ok(slot) => drop(slot.remove()),
            Err(_) => unindex(&mut self.table, i),
        }
        let node = self.nodes.swap_remove(i as usize);
        let moved = moved_hash.map(|moved_hash| {
            match self.table.find_mut(moved_hash, |&j| j == last) {
                Some(slot) => *slot = i,
                None => repoint(&mut self.table, last, i),
            }
            last
        });
        (node, moved)
    }

    /// Before a removal that leaves the slab sparse, shrinks the table and
    /// then the slab. The table's shrink runs `Hash` on every key; if it
    /// panics, hashbrown leaves the table as it was, and nothing has been
    /// taken out yet.
    #[cold]
    #[inline(never)]
    pub(crate) fn shrink_before_removal<S: BuildHasher>(&mut self, hasher: &S) {
        let len = self.table.len().saturating_sub(1);
        let keep = unpack_room(self.keep_table);
        if sparse(len, table_room(&self.table), keep) {
            let nodes = &self.nodes;
            shrink(&mut self.table, len, keep, |&i| {
                hasher.hash_one(&nodes[i as usize].key)
            });
        }
        self.shrink_nodes(self.nodes.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Hasher = ahash::RandomState;

    fn hasher() -> Hasher {
        Hasher::with_seeds(1, 2, 3, 4)
    }

    /// A slab of `len` entries, keys `key(0..len)` and values `0..len`, in
    /// a shard of at most `most`.
    fn full<K: Hash + Eq>(
        len: usize,
        most: usize,
        key: impl Fn(u64) -> K,
        hasher: &Hasher,
    ) -> Slab<K, u64, ()> {
        let mut slab = Slab::new(0, most);
        for k in 0..len as u64 {
            slab.reserve(hasher);
            slab.push(hasher.hash_one(key(k)), Node::new(key(k), k, 1, ()), hasher);
        }
        slab
    }

    /// Replaces `rounds` times its entries in `slab` by new keys, as
    /// evictions do, and returns the most buckets its index had.
    fn churn(slab: &mut Slab<u64, u64, ()>, rounds: usize, hasher: &Hasher) -> usize {
        let most = slab.len();
        let mut buckets = slab.table.num_buckets();
        for step in 0..rounds * most {
            let i = (step * 7919 % most) as u32;
            let old = slab.node(i).key;
            let key = (most + step) as u64;
            slab.reserve_slot(hasher);
            let hashes = (hasher.hash_one(old), hasher.hash_one(key));
            let (gone, _) = slab.replace(i, hashes.0, hashes.1, key, key, hasher);
            assert_eq!(gone, old);
            buckets = buckets.max(slab.table.num_buckets());
        }
        for i in 0..most as u32 {
            let key = slab.node(i).key;
            assert_eq!(slab.find(hasher.hash_one(key), &key), Some(i));
        }
        assert_eq!(slab.table.len(), most);
        buckets
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of table operations; the tests below run `find` unchecked"
    )]
    fn churn_never_grows_a_full_index_past_the_room_its_most_entries_need() {
        let hasher = hasher();
        // 150 entries fill 256 buckets 59%: hashbrown would double the
        // table once tombstones use its growth room up (150 > 224 / 2).
        let mut slab = full(150, 150, |k| k, &hasher);
        assert_eq!(slab.table.num_buckets(), 256);
        assert_eq!(churn(&mut slab, 40, &hasher), 256);
        // Weighed entries have no most entries: the 150 it holds decide.
        let mut slab = full(150, usize::MAX, |k| k, &hasher);
        assert_eq!(churn(&mut slab, 40, &hasher), 256);
        // 200 entries would fill 256 buckets 78%, over `INDEX_LOAD`: the
        // index may take 512, and never more.
        let mut slab = full(200, 200, |k| k, &hasher);
        assert!(churn(&mut slab, 40, &hasher) <= 512);
        assert_eq!(table_room(&slab.table), index_room(200));
    }

    /// A key whose `Hash` panics while `PANIC` is set.
    #[derive(PartialEq, Eq)]
    struct Key(u64);

    thread_local! {
        static PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    impl Hash for Key {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            assert!(!PANIC.with(std::cell::Cell::get), "user Hash panicked");
            self.0.hash(state);
        }
    }

    /// A key whose `Hash` gives another value at each call.
    #[derive(PartialEq, Eq)]
    struct Fickle(u64);

    thread_local! {
        static CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    impl Hash for Fickle {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            let call = CALLS.with(|c| c.replace(c.get() + 1));
            (self.0, call).hash(state);
        }
    }

    /// Every slot of `slab`'s table holds a node's index, and no index
    /// twice: what `find` relies on to read the node unchecked.
    fn assert_slots_are_nodes<K, V, L>(slab: &Slab<K, V, L>) {
        let mut seen = vec![false; slab.len()];
        for &i in &slab.table {
            assert!(
                (i as usize) < slab.len(),
                "slot {i} past {} nodes",
                slab.len()
            );
            assert!(!seen[i as usize], "two slots hold {i}");
            seen[i as usize] = true;
        }
    }

    #[test]
    fn a_hash_that_changes_its_mind_leaves_no_slot_without_its_node() {
        let hasher = hasher();
        let mut slab = full(40, 64, Fickle, &hasher);
        // Each hash below is wrong, as a hash of the stored key would be:
        // the slots are found by scanning.
        for step in 0..20 {
            let i = (step * 7 % slab.len()) as u32;
            slab.reserve_slot(&hasher);
            let (old, new) = (hasher.hash_one(Fickle(0)), hasher.hash_one(Fickle(0)));
            slab.replace(i, old, new, Fickle(100 + step as u64), 0, &hasher);
            assert_slots_are_nodes(&slab);
            let i = (step * 11 % slab.len()) as u32;
            let moved = slab.moved_hash(i, &hasher);
            slab.take(i, hasher.hash_one(Fickle(0)), moved);
            assert_slots_are_nodes(&slab);
        }
        // The last node too: its slot would be the one past the end.
        let last = (slab.len() - 1) as u32;
        slab.take(last, hasher.hash_one(Fickle(0)), None);
        assert_slots_are_nodes(&slab);
        for key in 0..200 {
            assert_eq!(slab.find(hasher.hash_one(Fickle(key)), &Fickle(key)), None);
        }
    }

    #[test]
    fn a_hash_panic_during_a_rebuild_leaves_the_index_as_it_was() {
        let hasher = hasher();
        let mut slab = full(20, 20, Key, &hasher);
        let buckets = slab.table.num_buckets();
        PANIC.with(|p| p.set(true));
        let rebuilt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slab.rebuild(&hasher);
        }));
        PANIC.with(|p| p.set(false));
        assert!(rebuilt.is_err());
        assert_eq!(slab.table.num_buckets(), buckets);
        for key in 0..20 {
            assert_eq!(
                slab.find(hasher.hash_one(Key(key)), &Key(key)),
                Some(key as u32)
            );
        }
    }
}
