//! [`RemovalCause`], the removal listener, and [`Departures`]: the entries
//! an operation took out, held until its lock is released.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::sync::Arc;

/// Why an entry left the cache, as told to the
/// [removal listener](crate::CacheBuilder::removal_listener).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use shardcache::{Cache, RemovalCause};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let cache: Cache<&str, u32> = Cache::builder()
///     .removal_listener(move |key, value, cause| log.lock().unwrap().push((key, value, cause)))
///     .build();
/// cache.insert("a", 1);
/// cache.insert("a", 2);
/// cache.remove("a");
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [("a", 1, RemovalCause::Replaced), ("a", 2, RemovalCause::Removed)]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Its time to live ran out, and a lookup, `remove`, a sweep
    /// (`remove_expired` or the janitor) or eviction removed it.
    Expired,
    /// A bounded cache removed it to make room, or did not store it
    /// because it was heavier than a shard may hold.
    Evicted,
    /// An insert of the same key replaced its value.
    Replaced,
    /// [`Cache::remove`](crate::Cache::remove) took it out.
    Removed,
    /// [`Cache::clear`](crate::Cache::clear) took it out.
    Cleared,
}

impl RemovalCause {
    /// Whether the cache removed the entry on its own (it expired or was
    /// evicted), rather than because the program replaced, removed or
    /// cleared it.
    ///
    /// ```
    /// use shardcache::RemovalCause;
    ///
    /// assert!(RemovalCause::Evicted.was_evicted());
    /// assert!(RemovalCause::Expired.was_evicted());
    /// assert!(!RemovalCause::Removed.was_evicted());
    /// ```
    pub fn was_evicted(self) -> bool {
        matches!(self, Self::Expired | Self::Evicted)
    }
}

/// A removal listener, shared by the cache and its janitor.
pub(crate) type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;

/// One entry that left, and why.
pub(crate) type Departure<K, V> = (K, V, RemovalCause);

/// The entries one operation took out, to be handed to the listener (or
/// dropped) after the lock is released. Holds one inline, so the usual
/// insert into a full cache (one eviction) does not allocate.
pub(crate) struct Departures<K, V> {
    first: Option<Departure<K, V>>,
    rest: Vec<Departure<K, V>>,
}

impl<K, V> Default for Departures<K, V> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<K, V> Departures<K, V> {
    /// Adds one.
    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if self.first.is_none() {
            self.first = Some((key, value, cause));
        } else {
            self.rest.push((key, value, cause));
        }
    }

    /// How many it holds.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl<K, V> IntoIterator for Departures<K, V> {
    type Item = Departure<K, V>;
    type IntoIter = std::iter::Chain<
        std::option::IntoIter<Departure<K, V>>,
        std::vec::IntoIter<Departure<K, V>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<K, V> fmt::Debug for Departures<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Departures")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A panic caught from the listener, to be resumed later.
pub(crate) type Panic = Box<dyn Any + Send>;

/// Hands every departure to `listener`, or drops them all if there is none.
/// Call it with no lock held. A panicking listener (or `Drop` of a key or
/// value) does not stop the others from being told or dropped: the first
/// panic is returned, for the caller to resume once its work is done (or,
/// on the janitor thread, to drop: the panic hook has already reported
/// it).
#[must_use]
pub(crate) fn deliver<K, V>(
    listener: Option<&Listener<K, V>>,
    departures: impl IntoIterator<Item = Departure<K, V>>,
) -> Option<Panic> {
    if listener.is_none() && !std::mem::needs_drop::<(K, V)>() {
        // Nothing to tell and nothing to run: no user code, so no panic
        // to catch (an evicting insert of `u64 -> u64` saves about 20
        // instructions).
        return None;
    }
    let mut first_panic = None;
    for (key, value, cause) in departures {
        // One at a time: a `Drop` or a listener that panics is caught, and
        // the rest are still dropped or told. Two panics in one batch would
        // otherwise abort the process (a panic while unwinding).
        let told = catch_unwind(AssertUnwindSafe(|| match listener {
            Some(listener) => listener(key, value, cause),
            None => drop((key, value)),
        }));
        if let Err(panic) = told {
            first_panic.get_or_insert(panic);
        }
    }
    first_panic
}

/// Resumes `panic`, if there is one. Inlined: a caller that knows there
/// is none (an insert without a listener, of values with no `Drop`) makes
/// no call.
#[inline]
pub(crate) fn resume(panic: Option<Panic>) {
    if let Some(panic) = panic {
        resume_unwind(panic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn recorder() -> (Listener<u32, u32>, Arc<Mutex<Vec<u32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let listener: Listener<u32, u32> = Arc::new(move |key, _, _| {
            log.lock().unwrap().push(key);
            assert!(key != 2, "listener panics on 2");
        });
        (listener, seen)
    }

    fn three() -> Departures<u32, u32> {
        let mut d = Departures::default();
        for key in 1..=3 {
            d.push(key, key, RemovalCause::Evicted);
        }
        assert_eq!(d.len(), 3);
        d
    }

    #[test]
    fn a_panicking_listener_is_told_the_rest_and_the_panic_kept() {
        let (listener, seen) = recorder();
        let panic = deliver(Some(&listener), three());
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
        let resumed = catch_unwind(AssertUnwindSafe(|| resume(panic)));
        assert!(resumed.is_err());
    }

    #[test]
    fn without_a_listener_departures_are_dropped() {
        let value = Arc::new(());
        let mut d = Departures::default();
        d.push(1, Arc::clone(&value), RemovalCause::Removed);
        d.push(2, Arc::clone(&value), RemovalCause::Removed);
        assert!(deliver(None, d).is_none());
        assert_eq!(Arc::strong_count(&value), 1);
    }
}
