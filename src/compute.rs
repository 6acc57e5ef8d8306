//! [`Cache::compute`]: an atomic read-modify-write of one key, with the
//! user's function run outside every lock.
//!
//! A compute is a flight of the single-flight table (`src/loading.rs`):
//! under the shard's write lock it waits for any flight of the key (a load
//! or another compute), or registers its own and clones the live value;
//! `f` then runs with no lock held; its decision goes in under one more
//! write lock, unless an insert, `remove` or `clear` of the key came
//! meanwhile (they mark the flight superseded under the same lock): then
//! the compute stores nothing, as if it had happened just before that
//! write. Computes and loads of one key therefore run one at a time, and
//! no update is lost.

use std::any::type_name_of_val;
use std::hash::{BuildHasher, Hash};

use crate::cache::Cache;
use crate::cycles::Waiting;
use crate::listener::resume;
use crate::loading::{node, Flight, Lead};
use crate::sync::Arc;

/// What [`Cache::compute`]'s function decides for the key.
///
/// ```
/// use shardcache::{Cache, Compute};
///
/// let cache: Cache<&str, u32> = Cache::new();
/// cache.compute("hits", |old| Compute::Put(old.map_or(1, |n| n + 1)));
/// assert_eq!(cache.get("hits"), Some(1));
/// cache.compute("hits", |_| Compute::Keep);
/// assert_eq!(cache.get("hits"), Some(1));
/// cache.compute("hits", |_| Compute::Remove);
/// assert_eq!(cache.get("hits"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compute<V> {
    /// Leave the entry as it is (present or not).
    Keep,
    /// Store this value, with a fresh TTL (as [`Cache::insert`] gives).
    Put(V),
    /// Remove the entry (listener cause `Removed`).
    Remove,
}

/// What a compute does first (see [`Cache::begin_compute`]).
pub(crate) enum Begin<V> {
    /// The key is loading or computing: wait, then start over.
    Wait(Arc<Flight<V>>),
    /// This caller computes, from the live value if there is one.
    Lead(Arc<Flight<V>>, Option<V>),
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Atomically replaces the entry for `key` by what `f` decides from
    /// the current live value: [`Compute::Put`] stores a value (with a
    /// fresh TTL), [`Compute::Remove`] removes the entry,
    /// [`Compute::Keep`] leaves it. Returns what `f` decided: the value
    /// `Put` stored or the live value `Keep` left (a clone), else `None`.
    /// A bounded cache may evict a value `Put` stored at once, as it may
    /// evict an `insert`ed one (the listener hears `Evicted`); it is
    /// returned all the same.
    ///
    /// Computes of one key run one at a time, and after any load of the
    /// key in progress (`get_or_insert_with` and the other loading
    /// methods wait for a compute in turn), so no update is lost: 8
    /// threads each adding 1 ten thousand times leave 80 000. `f` runs
    /// with no lock held; a `get` of the key meanwhile sees the value `f`
    /// was given. An `insert`, `remove` or `clear` of the key while `f`
    /// runs wins: the compute stores nothing (it happened just before that
    /// write) and returns what it would have stored.
    ///
    /// `f` may use the cache: read it, insert or load other keys. It must
    /// not `compute` or load the same key (that waits for itself: it
    /// panics, as a loader that loads its own key does), and an `insert`
    /// or `remove` of the same key from `f` supersedes this compute.
    ///
    /// If `f` panics, nothing changes (an expired entry met on the way
    /// still leaves, as it would on a `get`), the panic reaches the
    /// caller, and the computes and loads waiting for this one go on.
    ///
    /// Stats: a hit if a live value was found, else a miss; an insert for
    /// `Put`, a removal for a `Remove` of a live entry. The listener hears
    /// `Replaced` for a value `Put` replaces and `Removed` for one `Remove`
    /// takes out.
    ///
    /// # Panics
    ///
    /// If waiting for the key's flight would close a cycle of loaders and
    /// computes (see [`get_or_insert_with`](Self::get_or_insert_with)).
    ///
    /// ```
    /// use std::thread;
    /// use shardcache::{Cache, Compute};
    ///
    /// let cache: Cache<&str, u64> = Cache::new();
    /// let threads: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let cache = cache.clone(); // a handle to the same cache
    ///         thread::spawn(move || {
    ///             for _ in 0..100 {
    ///                 cache.compute("counter", |n| Compute::Put(n.copied().unwrap_or(0) + 1));
    ///             }
    ///         })
    ///     })
    ///     .collect();
    /// for t in threads {
    ///     t.join().unwrap();
    /// }
    /// assert_eq!(cache.get("counter"), Some(400));
    /// ```
    pub fn compute(&self, key: K, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<V> {
        let name = type_name_of_val(&f);
        let (hash, index) = self.locate(&key);
        loop {
            let (begun, expired) = self.begin_compute(hash, index, &key);
            match begun {
                Begin::Wait(flight) => {
                    let waiting = Waiting::begin(|| node(&flight));
                    drop(flight.wait());
                    drop(waiting);
                }
                Begin::Lead(flight, current) => {
                    let lead = Lead::new(self, hash, index, flight, None);
                    let departed = self.depart_expired(expired);
                    let action = lead.run(name, || f(current.as_ref()));
                    let stored = match &action {
                        Compute::Put(value) => Some(value.clone()),
                        Compute::Keep => current,
                        Compute::Remove => None,
                    };
                    lead.finish(stored.clone(), |flight| {
                        self.settle(hash, index, key, action, flight)
                    });
                    resume(departed);
                    return stored;
                }
            }
        }
    }
}
