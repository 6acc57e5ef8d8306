//! The bounded shard's deadlines, and the sweep that removes what expired.
//!
//! Deadlines live in a column beside the slab (`deadlines[i]` belongs to
//! node `i`), empty until an entry has one: a cache that never uses a TTL
//! stores none, and its lookups read no clock.

use super::BoundedShard;
use crate::clock::{is_expired, NEVER};
use crate::shard::sizing::{shrunk, sparse};

/// One deadline per node, or none while no entry has one.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    pub(super) deadlines: Vec<u64>,
    /// Nodes with a deadline; when 0 no clock is read.
    pub(super) expiring: usize,
}

impl Deadlines {
    /// Whether some node has a deadline.
    #[inline]
    pub(crate) fn may_expire(&self) -> bool {
        self.expiring > 0
    }

    /// Node `i`'s deadline, or `None` while no node has one.
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<u64> {
        self.deadlines.get(i as usize).copied()
    }

    /// Whether node `i` is expired at `now`.
    #[inline]
    pub(crate) fn expired(&self, i: u32, now: u64) -> bool {
        self.get(i)
            .is_some_and(|deadline| deadline != NEVER && is_expired(deadline, now))
    }

    /// Whether any node is expired at `now`.
    pub(crate) fn has_expired(&self, now: u64) -> bool {
        self.may_expire()
            && self
                .deadlines
                .iter()
                .any(|&deadline| deadline != NEVER && is_expired(deadline, now))
    }

    /// Gives node `i` of `len` `deadline`, keeping the count true.
    #[inline]
    pub(crate) fn set(&mut self, i: u32, deadline: u64, len: usize) {
        if self.deadlines.is_empty() && deadline == NEVER {
            return; // no TTL yet, and none now: inlined, nothing to do
        }
        self.set_deadline(i, deadline, len);
    }

    /// [`set`](Self::set) where a deadline is or will be stored.
    #[inline(never)]
    fn set_deadline(&mut self, i: u32, deadline: u64, len: usize) {
        if self.deadlines.is_empty() {
            self.deadlines = vec![NEVER; len];
        }
        let slot = &mut self.deadlines[i as usize];
        self.expiring =
            self.expiring + usize::from(deadline != NEVER) - usize::from(*slot != NEVER);
        *slot = deadline;
    }

    /// A slot for a node just appended (as node `len - 1`), with `deadline`.
    #[inline]
    pub(crate) fn push(&mut self, deadline: u64, len: usize) {
        if !self.deadlines.is_empty() {
            self.deadlines.push(NEVER);
        }
        self.set((len - 1) as u32, deadline, len);
    }

    /// Drops node `i`'s slot (its deadline already cleared), moving the
    /// last into it, as the slab does with its nodes.
    pub(crate) fn swap_remove(&mut self, i: u32) {
        if !self.deadlines.is_empty() {
            self.deadlines.swap_remove(i as usize);
        }
    }

    /// Whether `len` entries leave the column sparse.
    #[inline]
    pub(crate) fn sparse(&self, len: usize, keep: usize) -> bool {
        sparse(len, self.deadlines.capacity(), keep)
    }

    /// Shrinks the column if `len` entries leave it sparse.
    pub(crate) fn shrink(&mut self, len: usize, keep: usize) {
        if self.sparse(len, keep) {
            self.deadlines.shrink_to(shrunk(len, keep));
        }
    }
}

impl<K, V> BoundedShard<K, V> {
    /// Removes every entry expired at `now` and returns them. Needs no
    /// hasher: the table drops their slots by index, and the survivors are
    /// compacted to the front of the slab, every index renumbered in the
    /// table, the deadlines and the policy's links (`remove_marked`).
    pub(super) fn sweep(&mut self, now: u64) -> Vec<(K, V)> {
        if !self.expiry.has_expired(now) {
            return Vec::new();
        }
        let gone: Vec<bool> = (0..self.slab.len() as u32)
            .map(|i| self.expiry.expired(i, now))
            .collect();
        let removed = self.remove_marked(&gone);
        self.counts.expirations += removed.len() as u64;
        removed.into_iter().map(|node| node.into_pair()).collect()
    }
}
