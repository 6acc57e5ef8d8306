//! The shards behind [`Cache`](crate::Cache): one contract, two kinds.
//!
//! A shard knows nothing about locks or threads: the cache wraps each one in
//! a lock and calls the methods of [`Shard`] with the key's hash, computed
//! once by the caller. Every method that removes or replaces something
//! hands it back, so the caller can drop user values (and call the
//! listener) after releasing the lock.
//!
//! - [`UnboundedShard`] (`unbounded.rs`): two hash tables of entries, one
//!   for entries without a deadline and one for those with, and nothing
//!   else: no byte per entry, no work in `get` for eviction.
//! - [`BoundedShard`] (`bounded/`): storage (a slab of nodes and an index),
//!   the eviction policy behind a narrow interface, and the deadlines.
//! - `sizing.rs`: the room tables start with and when they shrink, shared
//!   by both.
//! - `idle.rs`: the time-to-idle and the rule by which a read moves an
//!   entry's deadline; only the bounded kind keeps idle deadlines and
//!   refresh times (the stamps of a write, fixed when the shard is built),
//!   and a cache with a time-to-idle or `refresh_after` but no capacity
//!   gets it with no bound.
//!
//! The cache holds one kind or the other for its whole life, in an enum of
//! two lock arrays; each operation matches on it once (two instructions)
//! and runs code compiled for that kind: the trait is for writing the
//! facade once, never for dynamic dispatch.

mod bounded;
mod idle;
mod sizing;
mod unbounded;

use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
// Not `crate::sync`: see `idle.rs`.
use std::sync::atomic::AtomicU64;

pub(crate) use bounded::{BoundedShard, Stamps};
pub(crate) use idle::Tti;
pub(crate) use unbounded::{Keep, UnboundedShard};

use crate::listener::{self, Departures, Listener, Panic, RemovalCause};
use crate::loading::Loading;
use crate::Equivalent;

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

/// Counters kept under the shard's write lock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteCounts {
    pub(crate) inserts: u64,
    pub(crate) removals: u64,
    pub(crate) expirations: u64,
    pub(crate) evictions: u64,
}

/// What the facade computed about an entry before taking the lock (user
/// code, such as the weigher, runs there, never under the lock). Two
/// words, passed in registers: what a shard stamps on a write besides (an
/// idle deadline, a refresh time) it knows from when it was built, and
/// reads the clock for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// When the entry expires, in clock nanoseconds, or
    /// [`NEVER`](crate::clock::NEVER).
    pub(crate) deadline: u64,
    /// Its weight; 1 without a weigher. An unbounded shard ignores it.
    pub(crate) weight: u32,
}

/// What one write took out of a shard, handed to the listener (or dropped)
/// once the lock is released. Each kind of shard picks the cheapest that
/// holds what it can push out.
pub(crate) trait Out<K, V>: Default {
    /// Tells the listener of every entry, or drops them; returns the first
    /// panic, for the caller to resume. Call with no lock held.
    fn deliver(self, listener: Option<&Listener<K, V>>) -> Option<Panic>;

    /// [`deliver`](Self::deliver), then resumes the first panic. Takes
    /// the listener through a closure, so that a kind that may have nothing
    /// to tell looks it up only when it has something.
    #[inline]
    fn finish<'a>(self, listener: impl FnOnce() -> Option<&'a Listener<K, V>>)
    where
        K: 'a,
        V: 'a,
    {
        listener::resume(self.deliver(listener()));
    }
}

impl<K, V> Out<K, V> for Departures<K, V> {
    #[inline]
    fn deliver(self, listener: Option<&Listener<K, V>>) -> Option<Panic> {
        if listener.is_none() && !std::mem::needs_drop::<(K, V)>() {
            // `deliver` would return at once too; tested here, the
            // departures are not moved into a call first (an evicting
            // insert of `u64 -> u64` saves about 20 instructions).
            return None;
        }
        listener::deliver(listener, self)
    }
}

/// The one entry an insert into an unbounded shard can push out: the value
/// it replaced. Without a listener it is dropped where it stands (a panic
/// of its `Drop` unwinds from the insert, with no lock held), so an insert
/// of plain values carries no `catch_unwind`.
#[derive(Debug)]
pub(crate) struct Replaced<K, V>(Option<(K, V)>);

impl<K, V> Default for Replaced<K, V> {
    #[inline]
    fn default() -> Self {
        Self(None)
    }
}

impl<K, V> Out<K, V> for Replaced<K, V> {
    #[inline]
    fn deliver(self, listener: Option<&Listener<K, V>>) -> Option<Panic> {
        match (self.0, listener) {
            (Some((key, old)), Some(listener)) => tell_replaced(listener, key, old),
            _ => None,
        }
    }

    #[inline]
    fn finish<'a>(self, listener: impl FnOnce() -> Option<&'a Listener<K, V>>)
    where
        K: 'a,
        V: 'a,
    {
        if let Some((key, old)) = self.0 {
            if let Some(listener) = listener() {
                listener::resume(tell_replaced(listener, key, old));
            }
        }
    }
}

/// Tells the listener of a replaced value; out of line, so that an insert
/// without a listener carries none of this code.
#[cold]
#[inline(never)]
fn tell_replaced<K, V>(listener: &Listener<K, V>, key: K, old: V) -> Option<Panic> {
    listener::deliver(Some(listener), [(key, old, RemovalCause::Replaced)])
}

/// Asks `retain`'s `keep` about one entry, catching its panic: after one,
/// `keep` is never asked again (its state may be broken) and every entry it
/// has not judged stays.
pub(crate) fn kept<K, V>(
    keep: &mut impl FnMut(&K, &V) -> bool,
    panic: &mut Option<Panic>,
    key: &K,
    value: &V,
) -> bool {
    if panic.is_some() {
        return true;
    }
    match catch_unwind(AssertUnwindSafe(|| keep(key, value))) {
        Ok(kept) => kept,
        Err(caught) => {
            *panic = Some(caught);
            true
        }
    }
}

/// The contract between the cache and a shard. Every operation the cache
/// offers is one method here, with one signature for every kind, so the
/// facade in `cache.rs` is written once (generic over `T: Shard<K, V>`)
/// and a new kind of shard, or a new operation, is one method each.
///
/// Conventions, for every method:
/// - `hash` is the key's hash from the cache's hasher; `hasher` is that
///   hasher, for the keys the shard must rehash (a table that grows or
///   shrinks, a victim's key).
/// - `now` is the clock, called at most once and only if some entry can
///   expire (an insert into a shard that stamps writes reads it once more,
///   for the stamps); `now: u64` is a time already read.
/// - `keep` is the room `initial_capacity` gave each table, kept once per
///   cache (a shard and its lock fit one 128-byte line); a shard that keeps
///   its own ignores it.
/// - User code (`Hash`, `Eq`) may panic in any method that takes a key or
///   a hasher: the shard is left consistent, and what was taken out is
///   handed back, never dropped under the lock.
pub(crate) trait Shard<K, V> {
    /// What [`insert`](Self::insert) pushes out.
    type Out: Out<K, V>;
    /// What [`take_all`](Self::take_all) takes out, to be dropped (or told
    /// to the listener) after unlocking.
    type Taken: IntoIterator<Item = (K, V)>;
    /// Whether inserts are weighed: the facade runs the weigher only then.
    const WEIGHED: bool;

    /// Entries stored, expired ones included.
    fn len(&self) -> usize;

    /// Total weight stored, expired entries included; [`len`](Self::len)
    /// where entries are not weighed.
    fn weight(&self) -> u64;

    /// The counters of writes.
    fn counts(&self) -> WriteCounts;

    /// Keys being loaded by `get_or_insert_with`.
    fn loading(&self) -> &Loading<K, V>;

    /// [`loading`](Self::loading), to change.
    fn loading_mut(&mut self) -> &mut Loading<K, V>;

    /// Whether some stored entry has a deadline. When false, no entry can
    /// be expired and there is no need to read the clock.
    fn may_expire(&self) -> bool;

    /// Whether any entry is expired at `now`.
    fn has_expired(&self, now: u64) -> bool;

    /// Finds `key` and applies `read` to its value if it is live, doing
    /// whatever bookkeeping a hit does in this kind (under the read lock:
    /// nothing another core reads).
    fn get<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V) -> R,
    ) -> Lookup<R>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized;

    /// [`get`](Self::get), as an access (a `get` of the cache, a hit of a
    /// loading method, a `compute`): in a shard built with a time-to-idle,
    /// a live entry's deadline moves by the step rule of `idle.rs`, the
    /// one write a read lock allows, to the entry's own deadline. `read`
    /// gets the value and, in a shard that keeps them, the entry's refresh
    /// time (see `src/refresh.rs`), found by the same probe: a caller that
    /// ignores it pays nothing (inlined, the load is dropped). A kind that
    /// keeps neither reads, and hands `read` `None`.
    fn access<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        read: impl FnOnce(&V, Option<&AtomicU64>) -> R,
    ) -> Lookup<R>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized;

    /// The refresh time of `key`'s entry (see `src/refresh.rs`), in a
    /// cache with `refresh_after`; `None` for a missing entry, or a kind
    /// that keeps none (only the bounded kind does). Expiry is not
    /// checked: the caller (a write that claims or gives back a refresh)
    /// has seen the entry live.
    fn refresh_at<Q>(&self, hash: u64, key: &Q) -> Option<&AtomicU64>
    where
        K: Hash + Eq,
        Q: Equivalent<K> + ?Sized;

    /// Inserts or replaces the entry in `pending` with `meta`, and makes
    /// room for it. What went out (the replaced value, evicted entries) is
    /// pushed to `out`. The entry stays in `pending`, which the caller
    /// declares before it takes the lock, until no user code is left to
    /// run: if `Eq` or `Hash` panics, the entry is dropped after unlocking.
    fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        pending: &mut Option<(K, V)>,
        meta: Meta,
        hasher: &S,
        now: impl Fn() -> u64,
        out: &mut Self::Out,
    ) where
        K: Hash + Eq;

    /// Removes `key`. An expired entry is removed too, but reported as
    /// such. If the removal leaves a table below a quarter full, it shrinks
    /// first (see `sizing.rs`).
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
        Q: Equivalent<K> + ?Sized;

    /// The second half of the read-to-write upgrade: removes `key` only if
    /// it is still present and still expired at `now` (another thread may
    /// have replaced it since the read lock was released).
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
        Q: Equivalent<K> + ?Sized;

    /// Removes every entry expired at `now` and returns them. Runs no user
    /// code: the janitor, which calls it, holds no hasher.
    fn remove_expired(&mut self, now: u64, keep: Keep) -> Vec<(K, V)>;

    /// Clones every entry live at `now` into `out`. Not an access: no hit
    /// is recorded, so a bounded shard's policy state is unchanged. User
    /// code here is `Clone`, as in a `get`.
    fn collect_live(&self, now: impl FnOnce() -> u64, out: &mut Vec<(K, V)>)
    where
        K: Clone,
        V: Clone;

    /// Removes every entry expired at `now` (cause `Expired`, `keep` not
    /// asked) and every live one for which `keep` returns false (cause
    /// `Removed`), pushing them to `out`, which the caller declares before
    /// it takes the lock. Runs no user code but `keep`. A panic of `keep`
    /// is caught: `keep` is not called again, the entries it did not judge
    /// stay, and the panic is returned for the caller to resume once `out`
    /// has been delivered. `room` is what `keep` is to the other methods. A
    /// table left sparse shrinks at the shard's next
    /// removal (as after a sweep: no `Hash` runs here).
    fn retain(
        &mut self,
        now: impl FnOnce() -> u64,
        keep: impl FnMut(&K, &V) -> bool,
        room: Keep,
        out: &mut Departures<K, V>,
    ) -> Option<Panic>;

    /// Removes `key` if its value is live and `pred` holds for it
    /// (`Removed::Live`), or if it is expired (`Removed::Expired`, `pred`
    /// not called). `pred` runs under the lock before anything changes, so
    /// its panic leaves the shard as it was. Shrinks as
    /// [`remove`](Self::remove) does.
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
        Q: Equivalent<K> + ?Sized;

    /// Takes every entry out, leaving an empty shard that owns no memory,
    /// and marks every flight superseded.
    fn take_all(&mut self) -> Self::Taken;
}
