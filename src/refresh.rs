//! Refresh ([`refresh_after`](crate::CacheBuilder::refresh_after)): a
//! loading method's hit on a value older than the age reloads it through
//! one caller while the others keep getting the old value.
//!
//! Each entry of such a cache has a refresh time (`now + age` at its last
//! write) in a column beside its deadlines (`shard/bounded/expiry.rs`;
//! like a time-to-idle, refresh makes a cache without a capacity use
//! bounded shards with no bound). A loading method's hit reads the clock
//! and, under the read lock, finds the entry stale when `now` has reached
//! its refresh time: one `compare_exchange` of that time to [`NEVER`]
//! elects the caller that refreshes, and every other hit then finds it not
//! stale and returns the old value, writing nothing. A hit on a value not
//! yet stale only loads the time.
//!
//! The elected caller registers a flight of the single-flight table
//! (`src/loading.rs`) under the write lock, runs its loader with no lock
//! held, and lands the value as a load does ([`Cache::settle`] with a
//! `Put`: a fresh TTL, a fresh refresh time, `Replaced` for the old
//! value). The flight is what makes the refresh exclusive against loads
//! and computes of the key, and what an `insert`, `remove` or `clear`
//! marks superseded, so that the refresh stores nothing over them. A
//! refresh that fails, panics or is cancelled abandons its flight, and,
//! unless superseded, sets the refresh time back to 0 under the same
//! write lock, so the next hit tries again.

use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
// Not `crate::sync`: see `shard/idle.rs`; the election is a filter, the
// flight table under the shard's lock is what loom checks.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cache::Cache;
use crate::clock::NEVER;
use crate::loading::Lead;
use crate::shard::Shard;

/// `age` in clock nanoseconds, or 0 (no refresh) for `Duration::ZERO` or
/// an age too long for the clock.
pub(crate) fn age(age: Duration) -> u64 {
    u64::try_from(age.as_nanos())
        .ok()
        .filter(|&age| age != NEVER)
        .unwrap_or(0)
}

/// The refresh time of a value written at `now` in a cache whose refresh
/// age is `age` (0: none, [`NEVER`]).
#[inline]
pub(crate) fn at(now: u64, age: u64) -> u64 {
    if age == 0 {
        NEVER
    } else {
        now.saturating_add(age)
    }
}

/// Whether this hit at `now` is the one that refreshes: the entry is
/// stale and this caller swapped its refresh time to [`NEVER`] first.
#[inline]
pub(crate) fn claim(at: &AtomicU64, now: u64) -> bool {
    let when = at.load(Ordering::Relaxed);
    when != NEVER
        && now >= when
        && at
            .compare_exchange(when, NEVER, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Makes `key`'s entry, claimed for a refresh that will not run or did
/// not land, stale again for the next hit. Called under the shard's write
/// lock, possibly while a loader's panic unwinds: a panic of `Eq` is
/// swallowed (the entry then refreshes no more until it is written again).
pub(crate) fn retry<K: Hash + Eq, V, T: Shard<K, V>>(shard: &T, hash: u64, key: &K) {
    if let Ok(Some(at)) = catch_unwind(AssertUnwindSafe(|| shard.refresh_at(hash, key))) {
        let _ = at.compare_exchange(NEVER, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// A loading method in a cache with `refresh_after`: a hit, a hit
    /// that refreshes, or the miss path.
    #[cold]
    #[inline(never)]
    pub(crate) fn get_or_refresh<E>(
        &self,
        hash: u64,
        index: usize,
        key: K,
        name: &'static str,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        match self.lookup_claiming(hash, index, &key) {
            Some((value, false)) => Ok(value),
            Some((old, true)) => {
                let Some(flight) = self.begin_refresh(hash, index, &key) else {
                    return Ok(old);
                };
                drop(old);
                let lead = Lead::new(self, hash, index, flight, Some(key.clone()));
                let value = lead.run(name, init)?;
                lead.land(key, value.clone());
                Ok(value)
            }
            None => self.load(hash, index, key, name, init),
        }
    }

    /// [`get_or_refresh`](Self::get_or_refresh) for the async loading
    /// methods: `Err(init)` on a miss, for the caller's miss path. The
    /// refresh ends when its future is dropped (as an abandoned load).
    #[cfg(feature = "async")]
    pub(crate) async fn get_or_refresh_async<E, F>(
        &self,
        hash: u64,
        index: usize,
        key: &K,
        name: &'static str,
        init: F,
    ) -> Result<Result<V, E>, F>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        let (old, stale) = match self.lookup_claiming(hash, index, key) {
            Some(found) => found,
            None => return Err(init),
        };
        let flight = match stale.then(|| self.begin_refresh(hash, index, key)) {
            Some(Some(flight)) => flight,
            _ => return Ok(Ok(old)),
        };
        drop(old);
        let lead = Lead::new(self, hash, index, flight, Some(key.clone()));
        let mut init = std::pin::pin!(init);
        let loaded = std::future::poll_fn(|cx| lead.run(name, || init.as_mut().poll(cx))).await;
        let value = match loaded {
            Ok(value) => value,
            Err(error) => return Ok(Err(error)),
        };
        lead.land(key.clone(), value.clone());
        Ok(Ok(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_stale_time_and_none_before_it() {
        let at = AtomicU64::new(10);
        assert!(!claim(&at, 9), "not yet stale");
        assert!(claim(&at, 10));
        assert!(!claim(&at, 11), "claimed: the others keep the old value");
        assert_eq!(at.load(Ordering::Relaxed), NEVER);
        assert_eq!(super::at(5, 0), NEVER, "no refresh age");
        assert_eq!(super::at(NEVER - 1, 5), NEVER, "saturates: never");
        assert_eq!(age(Duration::ZERO), 0);
        assert_eq!(age(Duration::MAX), 0, "too long: no refresh");
        assert_eq!(age(Duration::from_nanos(7)), 7);
    }
}
