//! The shard of a cache without a capacity: its tables and its expiry
//! logic, written single-threaded.
//!
//! An [`UnboundedShard`] keeps two tables: `lasting` for entries that never expire, stored
//! as bare `(key, value)` pairs, and `expiring` for entries with a deadline.
//! A key is in at most one of them. A cache that never uses a TTL thus pays
//! nothing for expiry: no deadline in its entries (a `u64 -> u64` entry is
//! 16 bytes, not 24), no clock read, and a lookup that probes one table.

use std::hash::{BuildHasher, Hash};
// Not `crate::sync`: see `idle.rs`.
use std::sync::atomic::AtomicU64;

use hashbrown::hash_table::{Entry as TableEntry, HashTable};

use super::sizing::{shrink, shrink_empty, sparse, table_room, table_with_capacity};
use super::{kept, Lookup, Meta, Removed, Replaced, Shard, WriteCounts};
use crate::clock::{is_expired, NEVER};
use crate::listener::{Departures, Panic, RemovalCause};
use crate::loading::Loading;
use crate::Equivalent;

/// An entry with a deadline (never [`NEVER`]).
#[derive(Debug)]
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) deadline: u64,
}

impl<K, V> From<Entry<K, V>> for (K, V) {
    fn from(entry: Entry<K, V>) -> Self {
        (entry.key, entry.value)
    }
}

/// Everything [`UnboundedShard::take_all`] took out, to be dropped after
/// unlocking.
#[derive(Debug, Default)]
pub(crate) struct Taken<K, V> {
    lasting: HashTable<(K, V)>,
    expiring: HashTable<Entry<K, V>>,
}

impl<K, V> IntoIterator for Taken<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::Chain<
        hashbrown::hash_table::IntoIter<(K, V)>,
        std::iter::Map<hashbrown::hash_table::IntoIter<Entry<K, V>>, fn(Entry<K, V>) -> (K, V)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let pair: fn(Entry<K, V>) -> (K, V) = Into::into;
        self.lasting
            .into_iter()
            .chain(self.expiring.into_iter().map(pair))
    }
}

/// Two hash tables of entries, addressed by a precomputed hash.
#[derive(Debug)]
pub(crate) struct UnboundedShard<K, V> {
    /// Entries that never expire.
    lasting: HashTable<(K, V)>,
    /// Entries with a deadline.
    expiring: HashTable<Entry<K, V>>,
    counts: WriteCounts,
    /// Keys being loaded by `get_or_insert_with`.
    loading: Loading<K, V>,
}

/// The room `initial_capacity` gave each table of every shard of a cache: a
/// removal never shrinks a table below it. Kept once per cache, not in each
/// shard, so that a shard and its lock fit one 128-byte line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keep {
    lasting: usize,
    expiring: usize,
}

impl<K, V> Default for UnboundedShard<K, V> {
    fn default() -> Self {
        Self::with_capacity(0, false)
    }
}

impl<K, V> UnboundedShard<K, V> {
    /// A shard with room for `capacity` entries in the table they will go
    /// to: `expiring` if most entries will have a TTL (the cache has a
    /// default TTL), else `lasting`.
    pub(crate) fn with_capacity(capacity: usize, expiring: bool) -> Self {
        let (lasting, expiring) = if expiring {
            (HashTable::new(), table_with_capacity(capacity))
        } else {
            (table_with_capacity(capacity), HashTable::new())
        };
        Self {
            lasting,
            expiring,
            counts: WriteCounts::default(),
            loading: Loading::default(),
        }
    }

    /// The room this shard's tables have now, to keep: called on a new
    /// shard, it is what `initial_capacity` gave it.
    pub(crate) fn room(&self) -> Keep {
        Keep {
            lasting: table_room(&self.lasting),
            expiring: table_room(&self.expiring),
        }
    }
}

impl<K: Hash + Eq, V> UnboundedShard<K, V> {
    /// Inserts or replaces the entry in `pending`. On replace, returns the
    /// key that was not stored and the old value, for the caller to drop
    /// after unlocking.
    ///
    /// The entry stays in `pending`, which the caller declares before it
    /// takes the lock, until no user code is left to run: if `Eq` or `Hash`
    /// panics, nothing has changed and the entry is dropped after the lock
    /// is released. A key that moves between the tables (its TTL changed) is
    /// taken out of the old one only after its place in the new one is
    /// reserved, so a panic never loses it.
    #[inline]
    fn put<S: BuildHasher>(
        &mut self,
        hash: u64,
        pending: &mut Option<(K, V)>,
        deadline: u64,
        hasher: &S,
    ) -> Option<(K, V)> {
        let (key, _) = pending.as_ref()?;
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        self.counts.inserts += 1;
        if deadline == NEVER {
            // Probes (Eq) and reserves room (Hash) before changing anything.
            let slot = self
                .lasting
                .entry(hash, |(k, _)| k == key, |(k, _)| hasher.hash_one(k));
            match slot {
                TableEntry::Occupied(mut slot) => {
                    let (key, value) = pending.take()?;
                    let old = std::mem::replace(&mut slot.get_mut().1, value);
                    Some((key, old))
                }
                TableEntry::Vacant(slot) => {
                    // A key with a deadline moves to `lasting`.
                    let moved = if self.expiring.is_empty() {
                        None
                    } else {
                        self.expiring.find_entry(hash, |e| e.key == *key).ok()
                    };
                    slot.insert(pending.take()?);
                    moved.map(|found| found.remove().0.into())
                }
            }
        } else {
            let slot = self
                .expiring
                .entry(hash, |e| e.key == *key, |e| hasher.hash_one(&e.key));
            match slot {
                TableEntry::Occupied(mut slot) => {
                    let (key, value) = pending.take()?;
                    let slot = slot.get_mut();
                    slot.deadline = deadline;
                    let old = std::mem::replace(&mut slot.value, value);
                    Some((key, old))
                }
                TableEntry::Vacant(slot) => {
                    // A key without one moves to `expiring`.
                    let moved = if self.lasting.is_empty() {
                        None
                    } else {
                        self.lasting.find_entry(hash, |(k, _)| k == key).ok()
                    };
                    let (key, value) = pending.take()?;
                    slot.insert(Entry {
                        key,
                        value,
                        deadline,
                    });
                    moved.map(|found| found.remove().0)
                }
            }
        }
    }

    /// Removes `key` from `lasting`, if it is there.
    fn take_lasting<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        hasher: &S,
        keep: Keep,
    ) -> Option<(K, V)>
    where
        Q: Equivalent<K> + ?Sized,
    {
        if self.lasting.is_empty() {
            return None;
        }
        self.shrink_lasting(hasher, keep);
        let found = self.lasting.find_entry(hash, |(k, _)| key.equivalent(k));
        Some(found.ok()?.remove().0)
    }

    /// Removes `key` from `expiring`, if it is there, expired or not.
    fn take_expiring<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        hasher: &S,
        keep: Keep,
    ) -> Option<Entry<K, V>>
    where
        Q: Equivalent<K> + ?Sized,
    {
        if self.expiring.is_empty() {
            return None;
        }
        self.shrink_expiring(hasher, keep);
        let found = self.expiring.find_entry(hash, |e| key.equivalent(&e.key));
        Some(found.ok()?.remove().0)
    }

    /// Shrinks `lasting` (not empty) if one removal would leave it sparse.
    /// Called before the removal, so that a `Hash` that panics while the
    /// table shrinks leaves everything as it was, and nothing taken out is
    /// dropped under the lock. If the key turns out not to be there, the
    /// table was at the threshold anyway.
    #[inline]
    fn shrink_lasting<S: BuildHasher>(&mut self, hasher: &S, keep: Keep) {
        let (len, keep) = (self.lasting.len() - 1, keep.lasting);
        if sparse(len, table_room(&self.lasting), keep) {
            shrink(&mut self.lasting, len, keep, |(k, _)| hasher.hash_one(k));
        }
    }

    /// [`shrink_lasting`](Self::shrink_lasting) for `expiring`.
    #[inline]
    fn shrink_expiring<S: BuildHasher>(&mut self, hasher: &S, keep: Keep) {
        let (len, keep) = (self.expiring.len() - 1, keep.expiring);
        if sparse(len, table_room(&self.expiring), keep) {
            shrink(&mut self.expiring, len, keep, |e| hasher.hash_one(&e.key));
        }
    }
}

impl<K, V> Shard<K, V> for UnboundedShard<K, V> {
    type Out = Replaced<K, V>;
    type Taken = Taken<K, V>;
    const WEIGHED: bool = false;

    /// Entries stored, expired ones included.
    fn len(&self) -> usize {
        self.lasting.len() + self.expiring.len()
    }

    /// Takes every entry out, leaving empty tables that own no memory.
    fn take_all(&mut self) -> Taken<K, V> {
        self.loading.supersede_all();
        Taken {
            lasting: std::mem::take(&mut self.lasting),
            expiring: std::mem::take(&mut self.expiring),
        }
    }

    /// Whether some stored entry has a deadline. When false, no entry can
    /// be expired and there is no need to read the clock.
    fn may_expire(&self) -> bool {
        !self.expiring.is_empty()
    }

    /// Whether any entry is expired at `now`.
    fn has_expired(&self, now: u64) -> bool {
        self.expiring.iter().any(|e| is_expired(e.deadline, now))
    }

    /// Removes every entry expired at `now` and returns them. A table the
    /// sweep empties shrinks back to the room `initial_capacity` gave it
    /// (none by default). The sweep has no hasher (the janitor holds only
    /// the shards), so a table it leaves sparse but not empty shrinks at
    /// the shard's next removal, which has one.
    fn remove_expired(&mut self, now: u64, keep: Keep) -> Vec<(K, V)> {
        let removed: Vec<_> = self
            .expiring
            .extract_if(|e| is_expired(e.deadline, now))
            .map(Into::into)
            .collect();
        self.counts.expirations += removed.len() as u64;
        shrink_empty(&mut self.expiring, keep.expiring);
        removed
    }

    /// Entries are not weighed: the weight is the count.
    fn weight(&self) -> u64 {
        self.len() as u64
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

    /// Finds `key` and applies `read` to its value if it is live.
    /// `now` is called only if the entry has a deadline.
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
        if !self.lasting.is_empty() {
            if let Some((_, value)) = self.lasting.find(hash, |(k, _)| key.equivalent(k)) {
                return Lookup::Live(read(value));
            }
        }
        if self.expiring.is_empty() {
            return Lookup::Missing;
        }
        match self.expiring.find(hash, |e| key.equivalent(&e.key)) {
            None => Lookup::Missing,
            Some(e) if is_expired(e.deadline, now()) => Lookup::Expired,
            Some(e) => Lookup::Live(read(&e.value)),
        }
    }

    /// [`get`](Self::get): an unbounded shard serves no cache with a
    /// time-to-idle or `refresh_after` (they get bounded shards), so there
    /// is nothing to touch and no refresh time.
    #[inline(always)]
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
        self.get(hash, key, now, |value| read(value, None))
    }

    /// None: a cache with `refresh_after` has bounded shards.
    #[inline]
    fn refresh_at<Q>(&self, _hash: u64, _key: &Q) -> Option<&AtomicU64>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        None
    }

    /// Inserts or replaces the entry in `pending` (see the private `put`);
    /// `meta.weight` and `now` are not used: nothing is evicted.
    #[inline]
    fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        pending: &mut Option<(K, V)>,
        meta: Meta,
        hasher: &S,
        _now: impl Fn() -> u64,
        out: &mut Replaced<K, V>,
    ) where
        K: Hash + Eq,
    {
        *out = Replaced(self.put(hash, pending, meta.deadline, hasher));
    }

    /// Removes `key`. An expired entry is removed too, but reported as such.
    /// A table that the removal leaves below a quarter full shrinks first
    /// (see [`sparse`]).
    fn remove<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        hasher: &S,
        keep: Keep,
    ) -> Option<Removed<K, V>>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        let removed = if let Some((key, value)) = self.take_lasting(hash, key, hasher, keep) {
            Removed::Live(key, value)
        } else {
            let entry = self.take_expiring(hash, key, hasher, keep)?;
            if is_expired(entry.deadline, now()) {
                Removed::Expired(entry.key, entry.value)
            } else {
                Removed::Live(entry.key, entry.value)
            }
        };
        match removed {
            Removed::Live(..) => self.counts.removals += 1,
            Removed::Expired(..) => self.counts.expirations += 1,
        }
        Some(removed)
    }

    /// The second half of the read-to-write upgrade: removes `key` only if it
    /// is still present and still expired at `now`. Another thread may have
    /// replaced it with a fresh value since the read lock was released.
    /// Shrinks `expiring` first if the removal would leave it sparse.
    fn remove_if_expired<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        hasher: &S,
        keep: Keep,
    ) -> Option<(K, V)>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        if self.expiring.is_empty() {
            return None;
        }
        self.shrink_expiring(hasher, keep);
        let found = self
            .expiring
            .find_entry(hash, |e| key.equivalent(&e.key))
            .ok()?;
        if !is_expired(found.get().deadline, now) {
            return None;
        }
        self.counts.expirations += 1;
        Some(found.remove().0.into())
    }

    /// Clones every live entry into `out`: all of `lasting`, and the
    /// entries of `expiring` not expired at `now` (read only if there are
    /// any).
    fn collect_live(&self, now: impl FnOnce() -> u64, out: &mut Vec<(K, V)>)
    where
        K: Clone,
        V: Clone,
    {
        out.reserve(self.len());
        let pair = |k: &K, v: &V| (k.clone(), v.clone());
        out.extend(self.lasting.iter().map(|(k, v)| pair(k, v)));
        if !self.expiring.is_empty() {
            let now = now();
            let live = self
                .expiring
                .iter()
                .filter(|e| !is_expired(e.deadline, now));
            out.extend(live.map(|e| pair(&e.key, &e.value)));
        }
    }

    /// Removes expired entries and those `keep` rejects (see the trait).
    /// A table left empty gives its memory back, as after a sweep.
    fn retain(
        &mut self,
        now: impl FnOnce() -> u64,
        mut keep: impl FnMut(&K, &V) -> bool,
        room: Keep,
        out: &mut Departures<K, V>,
    ) -> Option<Panic> {
        let mut panic = None;
        let judge = &mut |k: &K, v: &V| kept(&mut keep, &mut panic, k, v);
        for (key, value) in self.lasting.extract_if(|(k, v)| !judge(k, v)) {
            self.counts.removals += 1;
            out.push(key, value, RemovalCause::Removed);
        }
        if !self.expiring.is_empty() {
            let now = now();
            let gone =
                |e: &mut Entry<K, V>| is_expired(e.deadline, now) || !judge(&e.key, &e.value);
            for entry in self.expiring.extract_if(gone) {
                let cause = if is_expired(entry.deadline, now) {
                    self.counts.expirations += 1;
                    RemovalCause::Expired
                } else {
                    self.counts.removals += 1;
                    RemovalCause::Removed
                };
                out.push(entry.key, entry.value, cause);
            }
        }
        shrink_empty(&mut self.lasting, room.lasting);
        shrink_empty(&mut self.expiring, room.expiring);
        panic
    }

    /// Removes `key` if it is expired, or live and `pred` holds for it.
    fn remove_if<Q, S: BuildHasher>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        pred: impl FnOnce(&V) -> bool,
        hasher: &S,
        keep: Keep,
    ) -> Option<Removed<K, V>>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized,
    {
        let lasting = if self.lasting.is_empty() {
            None
        } else {
            self.lasting.find(hash, |(k, _)| key.equivalent(k))
        };
        if let Some((_, value)) = lasting {
            if !pred(value) {
                return None;
            }
            let (key, value) = self.take_lasting(hash, key, hasher, keep)?;
            self.counts.removals += 1;
            return Some(Removed::Live(key, value));
        }
        if self.expiring.is_empty() {
            return None;
        }
        let entry = self.expiring.find(hash, |e| key.equivalent(&e.key))?;
        let expired = is_expired(entry.deadline, now());
        if !expired && !pred(&entry.value) {
            return None;
        }
        let Entry { key, value, .. } = self.take_expiring(hash, key, hasher, keep)?;
        Some(if expired {
            self.counts.expirations += 1;
            Removed::Expired(key, value)
        } else {
            self.counts.removals += 1;
            Removed::Live(key, value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::BuildHasherDefault;

    type Hasher = BuildHasherDefault<DefaultHasher>;

    fn h(key: &str) -> u64 {
        Hasher::default().hash_one(key)
    }

    fn shard() -> UnboundedShard<String, u32> {
        UnboundedShard::default()
    }

    fn insert(
        s: &mut UnboundedShard<String, u32>,
        key: &str,
        value: u32,
        deadline: u64,
    ) -> Option<(String, u32)> {
        let mut pending = Some((key.to_owned(), value));
        let mut out = Replaced::default();
        let meta = Meta {
            deadline,
            weight: 1,
        };
        s.insert(
            h(key),
            &mut pending,
            meta,
            &Hasher::default(),
            || 0,
            &mut out,
        );
        assert!(pending.is_none(), "the entry went in");
        out.0
    }

    #[test]
    fn get_reads_live_and_reports_missing() {
        let mut s = shard();
        assert!(insert(&mut s, "a", 1, NEVER).is_none());
        assert_eq!(
            s.get(h("a"), "a", || unreachable!(), |v| *v),
            Lookup::Live(1)
        );
        assert_eq!(s.get(h("b"), "b", || 0, |v| *v), Lookup::Missing);
    }

    #[test]
    fn never_expiring_entries_do_not_read_the_clock() {
        let mut s = shard();
        insert(&mut s, "a", 1, NEVER);
        let got = s.get(h("a"), "a", || panic!("clock read"), |v| *v);
        assert_eq!(got, Lookup::Live(1));
    }

    #[test]
    fn get_reports_expired_after_the_deadline_only() {
        let mut s = shard();
        insert(&mut s, "a", 1, 10);
        assert_eq!(s.get(h("a"), "a", || 10, |v| *v), Lookup::Live(1));
        assert_eq!(s.get(h("a"), "a", || 11, |v| *v), Lookup::Expired);
        assert_eq!(s.len(), 1, "get does not remove; the caller upgrades");
    }

    #[test]
    fn insert_replaces_value_and_deadline() {
        let mut s = shard();
        insert(&mut s, "a", 1, 10);
        assert_eq!(insert(&mut s, "a", 2, NEVER), Some(("a".to_owned(), 1)));
        assert_eq!(s.get(h("a"), "a", || 100, |v| *v), Lookup::Live(2));
        assert_eq!(s.counts.inserts, 2);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn remove_distinguishes_live_and_expired() {
        let mut s = shard();
        insert(&mut s, "live", 1, 10);
        insert(&mut s, "old", 2, 5);
        assert!(matches!(
            s.remove(h("live"), "live", || 7, &Hasher::default(), Keep::default()),
            Some(Removed::Live(_, 1))
        ));
        assert!(matches!(
            s.remove(h("old"), "old", || 7, &Hasher::default(), Keep::default()),
            Some(Removed::Expired(..))
        ));
        assert!(s
            .remove(h("old"), "old", || 7, &Hasher::default(), Keep::default())
            .is_none());
        assert_eq!((s.counts.removals, s.counts.expirations), (1, 1));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn remove_if_expired_rechecks() {
        let mut s = shard();
        insert(&mut s, "a", 1, 10);
        assert!(
            s.remove_if_expired(h("a"), "a", 10, &Hasher::default(), Keep::default())
                .is_none(),
            "not expired yet"
        );
        // A fresh value replaced the expired one between read and write lock.
        insert(&mut s, "a", 2, 20);
        assert!(s
            .remove_if_expired(h("a"), "a", 11, &Hasher::default(), Keep::default())
            .is_none());
        assert_eq!(s.get(h("a"), "a", || 11, |v| *v), Lookup::Live(2));
        assert_eq!(
            s.remove_if_expired(h("a"), "a", 21, &Hasher::default(), Keep::default())
                .map(|(_, v)| v),
            Some(2)
        );
        assert!(
            s.remove_if_expired(h("a"), "a", 21, &Hasher::default(), Keep::default())
                .is_none(),
            "already gone"
        );
        assert_eq!(s.counts.expirations, 1);
    }

    #[test]
    fn remove_expired_sweeps_only_expired() {
        let mut s = shard();
        for i in 0..100u32 {
            let deadline = if i % 2 == 0 { u64::from(i) } else { NEVER };
            insert(&mut s, &i.to_string(), i, deadline);
        }
        assert!(s.has_expired(50));
        let removed = s.remove_expired(50, Keep::default());
        assert_eq!(removed.len(), 25, "even keys with deadline < 50");
        assert!(!s.has_expired(50));
        assert_eq!(s.len(), 75);
        assert_eq!(s.counts.expirations, 25);
    }

    #[test]
    fn shards_without_deadlines_are_never_swept() {
        let mut s = shard();
        insert(&mut s, "a", 1, NEVER);
        assert!(!s.may_expire());
        insert(&mut s, "b", 2, 10);
        assert!(s.may_expire());
        assert_eq!(s.remove_expired(11, Keep::default()).len(), 1);
        assert!(!s.may_expire(), "the only entry with a deadline is gone");
        assert!(s.remove_expired(u64::MAX - 1, Keep::default()).is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_key_moves_between_tables_when_its_ttl_changes() {
        let mut s = shard();
        insert(&mut s, "a", 1, NEVER);
        assert_eq!(insert(&mut s, "a", 2, 10), Some(("a".to_owned(), 1)));
        assert_eq!((s.lasting.len(), s.expiring.len()), (0, 1));
        assert_eq!(s.get(h("a"), "a", || 10, |v| *v), Lookup::Live(2));
        assert_eq!(insert(&mut s, "a", 3, NEVER), Some(("a".to_owned(), 2)));
        assert_eq!((s.lasting.len(), s.expiring.len()), (1, 0));
        assert_eq!(
            s.get(h("a"), "a", || unreachable!(), |v| *v),
            Lookup::Live(3)
        );
        assert_eq!(s.counts.inserts, 3);
    }

    #[test]
    fn an_expired_key_reinserted_without_ttl_is_live() {
        let mut s = shard();
        insert(&mut s, "a", 1, 10);
        insert(&mut s, "a", 2, NEVER);
        assert_eq!(s.get(h("a"), "a", || 100, |v| *v), Lookup::Live(2));
        assert!(s
            .remove_if_expired(h("a"), "a", 100, &Hasher::default(), Keep::default())
            .is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn capacity_goes_to_the_table_entries_will_use() {
        let plain: UnboundedShard<u8, u8> = UnboundedShard::with_capacity(100, false);
        assert!(plain.lasting.capacity() >= 100 && plain.expiring.capacity() == 0);
        let ttl: UnboundedShard<u8, u8> = UnboundedShard::with_capacity(100, true);
        assert!(ttl.expiring.capacity() >= 100 && ttl.lasting.capacity() == 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri would try to allocate the terabyte")]
    #[should_panic(expected = "initial_capacity asks for room for 1099511627776 entries")]
    fn an_impossible_capacity_panics_instead_of_aborting() {
        let _: UnboundedShard<u64, u64> = UnboundedShard::with_capacity(1 << 40, false);
    }

    #[test]
    fn take_all_empties_and_frees() {
        let mut s = shard();
        insert(&mut s, "a", 1, NEVER);
        insert(&mut s, "b", 2, 10);
        let taken = s.take_all();
        assert_eq!((taken.lasting.len(), taken.expiring.len()), (1, 1));
        assert_eq!(taken.into_iter().count(), 2);
        assert_eq!(s.len(), 0);
        assert!(!s.may_expire());
        assert_eq!(s.lasting.capacity() + s.expiring.capacity(), 0);
    }

    /// A hasher whose hashes panic once `armed` reaches 1 (counting down
    /// one per hash), to fail a shrink halfway.
    #[derive(Default)]
    struct Flaky {
        armed: std::cell::Cell<usize>,
    }

    impl BuildHasher for Flaky {
        type Hasher = DefaultHasher;
        fn build_hasher(&self) -> DefaultHasher {
            match self.armed.get() {
                0 => {}
                1 => panic!("Hash panics during the shrink"),
                n => self.armed.set(n - 1),
            }
            DefaultHasher::default()
        }
    }

    fn fill(s: &mut UnboundedShard<String, u32>, keys: std::ops::Range<u32>, deadline: u64) {
        for i in keys {
            insert(s, &i.to_string(), i, deadline);
        }
    }

    fn remove(s: &mut UnboundedShard<String, u32>, i: u32) -> Option<Removed<String, u32>> {
        let key = i.to_string();
        s.remove(h(&key), &key, || 0, &Hasher::default(), Keep::default())
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of String entries: minutes under Miri; tests/shrink.rs runs the shrinks there"
    )]
    fn removals_shrink_a_table_below_a_quarter_full() {
        let mut s = shard();
        fill(&mut s, 0..1000, NEVER);
        fill(&mut s, 1000..2000, 10);
        let full = (table_room(&s.lasting), table_room(&s.expiring));
        for i in 0..990 {
            assert!(remove(&mut s, i).is_some());
            assert!(s.lasting.len() * 4 >= table_room(&s.lasting) || table_room(&s.lasting) <= 32);
        }
        for i in 1000..1990 {
            let key = i.to_string();
            let removed =
                s.remove_if_expired(h(&key), &key, 11, &Hasher::default(), Keep::default());
            assert!(removed.is_some());
        }
        assert!(table_room(&s.lasting) < 32 && table_room(&s.expiring) < 32);
        assert!(full.0 > 1000 && full.1 > 1000);
        for i in (990..1000).chain(1990..2000) {
            let key = i.to_string();
            assert!(matches!(s.get(h(&key), &key, || 0, |v| *v), Lookup::Live(v) if v == i));
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of String entries: minutes under Miri; tests/shrink.rs runs the shrinks there"
    )]
    fn a_sweep_frees_a_table_it_empties_and_the_next_removal_shrinks_the_rest() {
        let mut s = shard();
        fill(&mut s, 0..1000, 10);
        assert_eq!(s.remove_expired(11, Keep::default()).len(), 1000);
        assert_eq!(table_room(&s.expiring), 0, "emptied: freed");
        fill(&mut s, 0..1000, 10);
        fill(&mut s, 1000..1010, 20);
        let full = table_room(&s.expiring);
        assert_eq!(s.remove_expired(11, Keep::default()).len(), 1000);
        assert_eq!(table_room(&s.expiring), full, "the sweep has no hasher");
        remove(&mut s, 1000);
        assert!(table_room(&s.expiring) < 32, "{}", table_room(&s.expiring));
        assert_eq!(s.len(), 9);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of String entries: minutes under Miri; tests/shrink.rs runs the shrinks there"
    )]
    fn tables_keep_the_room_asked_for() {
        let mut s = UnboundedShard::<String, u32>::with_capacity(500, false);
        let (room, keep) = (table_room(&s.lasting), s.room());
        fill(&mut s, 0..5000, NEVER);
        for i in 0..5000 {
            let key = i.to_string();
            s.remove(h(&key), &key, || 0, &Hasher::default(), keep);
        }
        assert_eq!(table_room(&s.lasting), room);
        let mut s = UnboundedShard::<String, u32>::with_capacity(500, true);
        let (room, keep) = (table_room(&s.expiring), s.room());
        fill(&mut s, 0..5000, 10);
        s.remove_expired(11, keep);
        assert_eq!(table_room(&s.expiring), room);
    }

    #[test]
    fn small_tables_never_shrink() {
        let mut s = shard();
        fill(&mut s, 0..20, NEVER);
        let room = table_room(&s.lasting);
        for i in 0..20 {
            remove(&mut s, i);
        }
        assert_eq!(table_room(&s.lasting), room);
    }

    /// Counts the capacity changes of `lasting` over `ops`.
    fn changes(
        s: &mut UnboundedShard<String, u32>,
        ops: impl IntoIterator<Item = (bool, u32)>,
    ) -> usize {
        let mut room = table_room(&s.lasting);
        let mut changes = 0;
        for (put, i) in ops {
            if put {
                insert(s, &i.to_string(), i, NEVER);
            } else {
                remove(s, i);
            }
            changes += usize::from(std::mem::replace(&mut room, table_room(&s.lasting)) != room);
        }
        changes
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of String entries: minutes under Miri; tests/shrink.rs runs the shrinks there"
    )]
    fn an_insert_remove_mix_at_either_threshold_does_not_thrash() {
        let mut s = shard();
        fill(&mut s, 0..1000, NEVER);
        // Remove until the table shrinks: the next removal's threshold.
        let mut next = 0;
        while changes(&mut s, [(false, next)]) == 0 {
            next += 1;
        }
        // Put the last key back and take it out, again and again.
        let mix = (0..1000).flat_map(|_| [(true, next), (false, next)]);
        assert_eq!(changes(&mut s, mix), 0, "at the shrink threshold");
        // Now the grow threshold: insert until the table grows.
        let mut key = 5000;
        while changes(&mut s, [(true, key)]) == 0 {
            key += 1;
        }
        let mix = (0..1000).flat_map(|_| [(false, key), (true, key)]);
        assert_eq!(changes(&mut s, mix), 0, "at the grow threshold");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "thousands of String entries: minutes under Miri; tests/shrink.rs runs the shrinks there"
    )]
    fn shrinking_is_amortized_constant_per_removal() {
        // Entries moved by every reallocation (grow or shrink), against the
        // operations: a drain, refills of a quarter, and drains again.
        let mut s = shard();
        let (mut moved, mut ops) = (0, 0);
        let mut run =
            |s: &mut UnboundedShard<String, u32>, put: bool, keys: std::ops::Range<u32>| {
                for i in keys {
                    let (len, room) = (s.lasting.len(), table_room(&s.lasting));
                    if put {
                        insert(s, &i.to_string(), i, NEVER);
                    } else {
                        remove(s, i);
                    }
                    ops += 1;
                    if table_room(&s.lasting) != room {
                        moved += len;
                    }
                }
            };
        run(&mut s, true, 0..4096);
        for round in 0..4 {
            run(&mut s, false, 0..4096 - round * 1024);
            run(&mut s, true, 0..3072 - round * 1024);
        }
        assert!(
            moved <= 3 * ops,
            "{moved} entries moved over {ops} operations"
        );
    }

    #[test]
    fn a_hash_that_panics_during_a_shrink_loses_nothing() {
        let mut s = shard();
        fill(&mut s, 0..200, NEVER);
        // Find the removal that shrinks, then fail the next shrink halfway.
        let mut next = 0;
        while s.lasting.len() * 4 >= table_room(&s.lasting) + 4 {
            remove(&mut s, next);
            next += 1;
        }
        let mut i = next;
        let flaky = Flaky::default();
        let (len, room) = (s.len(), table_room(&s.lasting));
        loop {
            flaky.armed.set(3); // two entries move, the third panics
            let key = i.to_string();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.remove(h(&key), &key, || 0, &flaky, Keep::default())
            }));
            if result.is_err() {
                break;
            }
            assert!(table_room(&s.lasting) == room, "a shrink that did not hash");
            i += 1;
            assert!(i < 200, "no removal shrank");
        }
        flaky.armed.set(0);
        assert_eq!(
            s.len() + (i - next) as usize,
            len,
            "the panicking removal changed nothing"
        );
        assert_eq!(table_room(&s.lasting), room);
        for k in i..200 {
            let key = k.to_string();
            assert_eq!(s.get(h(&key), &key, || 0, |v| *v), Lookup::Live(k));
        }
        assert!(remove(&mut s, i).is_some());
        assert!(
            table_room(&s.lasting) < room,
            "and the next removal shrinks"
        );
        insert(&mut s, "new", 1, NEVER);
        assert_eq!(s.get(h("new"), "new", || 0, |v| *v), Lookup::Live(1));
    }
}
