//! The bounded shard's operations on many entries at once: cloning the
//! live ones (`iter`), removing those a predicate rejects (`retain`), and
//! changing the capacity (`set_max_capacity`).
//!
//! None of them is an access: no frequency is bumped, and the entries that
//! stay keep their queue and their place in it, so the next eviction picks
//! what it would have picked anyway. Removals leave the ghost alone (only
//! evictions feed it), as a `remove` does.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering;

use super::storage::{partition, Node, NIL};
use super::{BoundedShard, Links};
use crate::clock::NEVER;
use crate::listener::{Departures, Panic, RemovalCause};
use crate::shard::kept;
#[cfg(doc)]
use crate::shard::Shard;

/// The most entries a shard of `capacity` can hold: `capacity` when every
/// entry weighs 1 (`unit`), else no bound.
pub(super) fn most_entries(capacity: u64, unit: bool) -> usize {
    if unit {
        usize::try_from(capacity).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    }
}

impl<K, V> BoundedShard<K, V> {
    /// Clones every node not expired at `now` (read only if some node has
    /// a deadline) into `out`.
    pub(super) fn clone_live(&self, now: impl FnOnce() -> u64, out: &mut Vec<(K, V)>)
    where
        K: Clone,
        V: Clone,
    {
        let now = self.expiry.may_expire().then(now);
        out.reserve(self.slab.len());
        for (i, node) in self.slab.nodes.iter().enumerate() {
            if now.is_some_and(|now| self.expiry.expired(i as u32, now)) {
                continue;
            }
            out.push((node.key.clone(), node.value.clone()));
        }
    }

    /// Removes the nodes expired at `now` (read only if some node has a
    /// deadline) and those `keep` rejects; see [`Shard::retain`].
    pub(super) fn retain_nodes(
        &mut self,
        now: impl FnOnce() -> u64,
        mut keep: impl FnMut(&K, &V) -> bool,
        out: &mut Departures<K, V>,
    ) -> Option<Panic> {
        let now = self.expiry.may_expire().then(now);
        let mut panic = None;
        let causes: Vec<Option<RemovalCause>> = (0..self.slab.len() as u32)
            .map(|i| {
                if now.is_some_and(|now| self.expiry.expired(i, now)) {
                    return Some(RemovalCause::Expired);
                }
                let node = self.slab.node(i);
                let kept = kept(&mut keep, &mut panic, &node.key, &node.value);
                (!kept).then_some(RemovalCause::Removed)
            })
            .collect();
        let mut gone: Vec<bool> = causes.iter().map(Option::is_some).collect();
        if !gone.contains(&true) {
            return panic;
        }
        let removed = self.remove_marked(&gone);
        let mut causes = causes;
        let kept = partition(&mut causes, &gone, |_, _| ());
        gone.clear();
        for (node, cause) in removed.into_iter().zip(causes.drain(kept..).flatten()) {
            match cause {
                RemovalCause::Expired => self.counts.expirations += 1,
                _ => self.counts.removals += 1,
            }
            let (key, value) = node.into_pair();
            out.push(key, value, cause);
        }
        panic
    }

    /// Removes the nodes whose `gone` flag is set from the policy, the
    /// deadlines and the slab, renumbering the survivors, which keep their
    /// order. Runs no user code. Returns the removed nodes in the order
    /// [`partition`] leaves them: partition a column with the same flags
    /// to line it up with them.
    pub(super) fn remove_marked(&mut self, gone: &[bool]) -> Vec<Node<K, V, Links>> {
        for (i, &gone) in gone.iter().enumerate() {
            if gone {
                self.policy.unlink(&mut self.slab, i as u32);
            }
        }
        let (removed, renumber) = self.slab.compact(gone);
        let deadlines = &mut self.expiry.deadlines;
        if !deadlines.is_empty() {
            let kept = partition(deadlines, gone, |_, _| ());
            let expiring = deadlines[kept..]
                .iter()
                .filter(|d| d.load(Ordering::Relaxed) != NEVER)
                .count();
            self.expiry.expiring -= expiring;
            deadlines.truncate(kept);
        }
        let writes = &mut self.expiry.writes;
        if !writes.is_empty() {
            let kept = partition(writes, gone, |_, _| ());
            writes.truncate(kept);
        }
        let refresh = &mut self.expiry.refresh;
        if !refresh.is_empty() {
            let kept = partition(refresh, gone, |_, _| ());
            refresh.truncate(kept);
        }
        self.policy.renumber(&mut self.slab, |i| {
            if i == NIL {
                NIL
            } else {
                renumber[i as usize]
            }
        });
        // No hasher here: the slab shrinks now, the table only if it is
        // empty, else at the shard's next removal.
        self.expiry.shrink(self.slab.len(), self.slab.keep_nodes());
        removed
    }
}

impl<K: Hash + Eq, V> BoundedShard<K, V> {
    /// Sets the capacity to `capacity` (`unit`: every entry weighs 1) and
    /// evicts until the shard is within it, as an insert does: cause
    /// `Evicted`, or `Expired` for an expired victim.
    pub(crate) fn set_capacity<S: BuildHasher>(
        &mut self,
        capacity: u64,
        unit: bool,
        hasher: &S,
        now: impl FnOnce() -> u64,
        out: &mut Departures<K, V>,
    ) {
        let most = most_entries(capacity, unit);
        self.policy.set_capacity(capacity, most);
        self.slab.set_most_entries(most);
        self.make_room(0, false, hasher, now, out);
    }
}
