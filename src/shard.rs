//! One shard's tables and its expiry logic, written single-threaded.
//!
//! A [`Shard`] knows nothing about locks or threads: the cache wraps each one
//! in a lock and calls these methods with the key's hash, computed once by the
//! caller. Every method that removes or replaces something hands it back, so
//! the caller can drop user values after releasing the lock.
//!
//! A shard keeps two tables: `lasting` for entries that never expire, stored
//! as bare `(key, value)` pairs, and `expiring` for entries with a deadline.
//! A key is in at most one of them. A cache that never uses a TTL thus pays
//! nothing for expiry: no deadline in its entries (a `u64 -> u64` entry is
//! 16 bytes, not 24), no clock read, and a lookup that probes one table.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::hash_table::{Entry as TableEntry, HashTable};

use crate::clock::{is_expired, NEVER};
use crate::loading::Loading;

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

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<T> {
    Live(T),
    Expired,
    Missing,
}

/// What [`Shard::remove`] took out. Both variants carry the value so it is
/// dropped outside the lock.
#[derive(Debug)]
pub(crate) enum Removed<K, V> {
    Live(K, V),
    Expired(K, V),
}

/// Everything [`Shard::take_all`] took out, to be dropped after unlocking.
pub(crate) type Taken<K, V> = (HashTable<(K, V)>, HashTable<Entry<K, V>>);

/// Counters kept under the shard's write lock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteCounts {
    pub(crate) inserts: u64,
    pub(crate) removals: u64,
    pub(crate) expirations: u64,
    pub(crate) evictions: u64,
}

/// An empty table with room for `capacity` entries. Panics with a clear
/// message, rather than aborting the process, when the room cannot be
/// allocated (an `initial_capacity` of `1 << 40`, say).
pub(crate) fn table_with_capacity<T>(capacity: usize) -> HashTable<T> {
    let mut table = HashTable::new();
    // The table is empty: nothing is rehashed, so the hasher is never called.
    if let Err(error) = table.try_reserve(capacity, |_: &T| 0) {
        too_large(capacity, &error);
    }
    table
}

/// The panic of an `initial_capacity` that cannot be allocated.
#[cold]
pub(crate) fn too_large(capacity: usize, error: &dyn fmt::Debug) -> ! {
    panic!(
        "shardcache: initial_capacity asks for room for {capacity} entries per shard, \
         which cannot be allocated ({error:?}); use a smaller initial_capacity"
    )
}

/// Two hash tables of entries, addressed by a precomputed hash.
#[derive(Debug)]
pub(crate) struct Shard<K, V> {
    /// Entries that never expire.
    lasting: HashTable<(K, V)>,
    /// Entries with a deadline.
    expiring: HashTable<Entry<K, V>>,
    pub(crate) counts: WriteCounts,
    /// Keys being loaded by `get_or_insert_with`.
    pub(crate) loading: Loading<K, V>,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Self::with_capacity(0, false)
    }
}

impl<K, V> Shard<K, V> {
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

    /// Entries stored, expired ones included.
    pub(crate) fn len(&self) -> usize {
        self.lasting.len() + self.expiring.len()
    }

    /// Takes every entry out, leaving empty tables that own no memory.
    pub(crate) fn take_all(&mut self) -> Taken<K, V> {
        self.loading.supersede_all();
        (
            std::mem::take(&mut self.lasting),
            std::mem::take(&mut self.expiring),
        )
    }

    /// Whether some stored entry has a deadline. When false, no entry can
    /// be expired and there is no need to read the clock.
    pub(crate) fn may_expire(&self) -> bool {
        !self.expiring.is_empty()
    }

    /// Whether any entry is expired at `now`.
    pub(crate) fn has_expired(&self, now: u64) -> bool {
        self.expiring.iter().any(|e| is_expired(e.deadline, now))
    }

    /// Removes every entry expired at `now` and returns them.
    pub(crate) fn remove_expired(&mut self, now: u64) -> Vec<(K, V)> {
        let removed: Vec<_> = self
            .expiring
            .extract_if(|e| is_expired(e.deadline, now))
            .map(Into::into)
            .collect();
        self.counts.expirations += removed.len() as u64;
        removed
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Finds `key` and applies `read` to its value if it is live.
    /// `now` is called only if the entry has a deadline.
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
        if !self.lasting.is_empty() {
            if let Some((_, value)) = self.lasting.find(hash, |(k, _)| k.borrow() == key) {
                return Lookup::Live(read(value));
            }
        }
        if self.expiring.is_empty() {
            return Lookup::Missing;
        }
        match self.expiring.find(hash, |e| e.key.borrow() == key) {
            None => Lookup::Missing,
            Some(e) if is_expired(e.deadline, now()) => Lookup::Expired,
            Some(e) => Lookup::Live(read(&e.value)),
        }
    }

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
    pub(crate) fn insert<S: BuildHasher>(
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
    fn take_lasting<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.lasting.is_empty() {
            return None;
        }
        let found = self.lasting.find_entry(hash, |(k, _)| k.borrow() == key);
        Some(found.ok()?.remove().0)
    }

    /// Removes `key` from `expiring`, if it is there, expired or not.
    fn take_expiring<Q>(&mut self, hash: u64, key: &Q) -> Option<Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.expiring.is_empty() {
            return None;
        }
        let found = self.expiring.find_entry(hash, |e| e.key.borrow() == key);
        Some(found.ok()?.remove().0)
    }

    /// Removes `key`. An expired entry is removed too, but reported as such.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
    ) -> Option<Removed<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if !self.loading.is_empty() {
            self.loading.supersede(hash, key);
        }
        let removed = if let Some((key, value)) = self.take_lasting(hash, key) {
            Removed::Live(key, value)
        } else {
            let entry = self.take_expiring(hash, key)?;
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
    pub(crate) fn remove_if_expired<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
    ) -> Option<Entry<K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let found = self
            .expiring
            .find_entry(hash, |e| e.key.borrow() == key)
            .ok()?;
        if !is_expired(found.get().deadline, now) {
            return None;
        }
        self.counts.expirations += 1;
        Some(found.remove().0)
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

    fn shard() -> Shard<String, u32> {
        Shard::default()
    }

    fn insert(
        s: &mut Shard<String, u32>,
        key: &str,
        value: u32,
        deadline: u64,
    ) -> Option<(String, u32)> {
        let mut pending = Some((key.to_owned(), value));
        let replaced = s.insert(h(key), &mut pending, deadline, &Hasher::default());
        assert!(pending.is_none(), "the entry went in");
        replaced
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
            s.remove(h("live"), "live", || 7),
            Some(Removed::Live(_, 1))
        ));
        assert!(matches!(
            s.remove(h("old"), "old", || 7),
            Some(Removed::Expired(..))
        ));
        assert!(s.remove(h("old"), "old", || 7).is_none());
        assert_eq!((s.counts.removals, s.counts.expirations), (1, 1));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn remove_if_expired_rechecks() {
        let mut s = shard();
        insert(&mut s, "a", 1, 10);
        assert!(
            s.remove_if_expired(h("a"), "a", 10).is_none(),
            "not expired yet"
        );
        // A fresh value replaced the expired one between read and write lock.
        insert(&mut s, "a", 2, 20);
        assert!(s.remove_if_expired(h("a"), "a", 11).is_none());
        assert_eq!(s.get(h("a"), "a", || 11, |v| *v), Lookup::Live(2));
        assert_eq!(
            s.remove_if_expired(h("a"), "a", 21).map(|e| e.value),
            Some(2)
        );
        assert!(
            s.remove_if_expired(h("a"), "a", 21).is_none(),
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
        let removed = s.remove_expired(50);
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
        assert_eq!(s.remove_expired(11).len(), 1);
        assert!(!s.may_expire(), "the only entry with a deadline is gone");
        assert!(s.remove_expired(u64::MAX - 1).is_empty());
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
        assert!(s.remove_if_expired(h("a"), "a", 100).is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn capacity_goes_to_the_table_entries_will_use() {
        let plain: Shard<u8, u8> = Shard::with_capacity(100, false);
        assert!(plain.lasting.capacity() >= 100 && plain.expiring.capacity() == 0);
        let ttl: Shard<u8, u8> = Shard::with_capacity(100, true);
        assert!(ttl.expiring.capacity() >= 100 && ttl.lasting.capacity() == 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri would try to allocate the terabyte")]
    #[should_panic(expected = "initial_capacity asks for room for 1099511627776 entries")]
    fn an_impossible_capacity_panics_instead_of_aborting() {
        let _: Shard<u64, u64> = Shard::with_capacity(1 << 40, false);
    }

    #[test]
    fn take_all_empties_and_frees() {
        let mut s = shard();
        insert(&mut s, "a", 1, NEVER);
        insert(&mut s, "b", 2, 10);
        let (lasting, expiring) = s.take_all();
        assert_eq!((lasting.len(), expiring.len()), (1, 1));
        assert_eq!(s.len(), 0);
        assert!(!s.may_expire());
        assert_eq!(s.lasting.capacity() + s.expiring.capacity(), 0);
    }
}
