//! The bounded shard's deadlines, and the sweep that removes what expired.
//!
//! Deadlines live in a column beside the slab (`deadlines[i]` belongs to
//! node `i`), empty until an entry has one: a cache that never uses a TTL
//! stores none, and its lookups read no clock.
//!
//! With a time-to-idle, `deadlines[i]` is the earlier of node `i`'s write
//! deadline (its TTL) and its idle deadline, and a read moves it forward
//! under the read lock (`idle.rs`: hence `AtomicU64`, loaded relaxed, the
//! plain load of a `u64`). The write deadlines then wait in a second
//! column, `writes`, created once an entry has both; without it every
//! write deadline is [`NEVER`]. A cache without a time-to-idle never
//! stores into `deadlines` from a read and never creates `writes`.
//!
//! A cache built with [`refresh_after`](crate::CacheBuilder::refresh_after)
//! also keeps `refresh`: when each node's value becomes stale, or
//! [`NEVER`] while one caller refreshes it (`src/refresh.rs`). It is
//! created by the first write that gives a node a time, so a cache without
//! refresh never has one.
//!
//! Whether writes are stamped (given an idle deadline and a refresh time)
//! is fixed when the shard is built ([`Stamps`], boxed: one word in the
//! shard, whose lock slot has little room to spare): a shard that stamps
//! nothing tests one word per write and none per read, and the stamping
//! itself is out of line.

// Not `crate::sync`: see `idle.rs`.
use std::sync::atomic::{AtomicU64, Ordering};

use super::BoundedShard;
use crate::clock::{is_expired, NEVER};
use crate::refresh;
use crate::shard::idle::{touch, Tti};
use crate::shard::sizing::{shrunk, sparse};

/// What a shard stamps on each write, fixed when it is built: the cache's
/// time-to-idle and refresh age (0: none).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stamps {
    /// The time-to-idle; `tti.tti` is 0 without one.
    pub(crate) tti: Tti,
    /// The refresh age in clock nanoseconds; 0 without `refresh_after`.
    pub(crate) age: u64,
}

impl Stamps {
    /// The idle deadline and the refresh time of a write at `now` whose
    /// write deadline is `deadline`.
    fn at(&self, deadline: u64, now: u64) -> (u64, u64) {
        let idle = if self.tti.tti == 0 {
            NEVER
        } else {
            // An idle deadline past the clock's range is none, so the entry
            // ends at its TTL: give that as its idle deadline too, so the
            // shard keeps it as the write deadline a read caps at (an idle
            // deadline of NEVER beside a TTL is not recorded).
            match self.tti.written(now) {
                NEVER => deadline,
                idle => idle,
            }
        };
        (idle, refresh::at(now, self.age))
    }
}

/// One deadline per node, or none while no entry has one.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    pub(super) deadlines: Vec<AtomicU64>,
    /// The write deadline of each node, while some node has both a write
    /// and an idle deadline; else empty, and every write deadline is
    /// [`NEVER`].
    pub(super) writes: Vec<u64>,
    /// Nodes with a deadline; when 0 no clock is read.
    pub(super) expiring: usize,
    /// When each node's value is to be refreshed, in a cache with
    /// `refresh_after`; else empty.
    pub(super) refresh: Vec<AtomicU64>,
    /// What writes stamp, fixed at build time; `None` where there is
    /// nothing to stamp.
    stamps: Option<Box<Stamps>>,
    /// `stamps.is_some()`: the one test a write makes.
    stamping: bool,
}

impl Deadlines {
    /// No deadline yet, stamping `stamps` on every write.
    pub(crate) fn new(stamps: Stamps) -> Self {
        let stamping = stamps.tti.tti != 0 || stamps.age != 0;
        Self {
            stamps: stamping.then(|| Box::new(stamps)),
            stamping,
            ..Self::default()
        }
    }

    /// Empties the columns, keeping what writes stamp.
    pub(crate) fn clear(&mut self) {
        let stamps = self.stamps.take();
        *self = Self {
            stamping: stamps.is_some(),
            stamps,
            ..Self::default()
        };
    }

    /// Whether writes are stamped: then the clock is read for each, before
    /// anything changes, and handed to [`write`](Self::write).
    #[inline]
    pub(crate) fn stamping(&self) -> bool {
        self.stamping
    }

    /// Whether a read of a live entry with a deadline moves it.
    #[inline]
    pub(crate) fn idles(&self) -> bool {
        self.stamps
            .as_ref()
            .is_some_and(|stamps| stamps.tti.tti != 0)
    }

    /// Whether some node has a deadline.
    #[inline]
    pub(crate) fn may_expire(&self) -> bool {
        self.expiring > 0
    }

    /// Node `i`'s deadline, or `None` while no node has one.
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<u64> {
        self.deadlines
            .get(i as usize)
            .map(|deadline| deadline.load(Ordering::Relaxed))
    }

    /// Node `i`'s deadline, [`NEVER`] while no node has one.
    #[inline]
    pub(crate) fn deadline(&self, i: u32) -> u64 {
        self.get(i).unwrap_or(NEVER)
    }

    /// Records a read at `now` of node `i`, live and with a deadline, in a
    /// shard that [`idles`](Self::idles) (the step rule of `idle.rs`).
    #[inline]
    pub(crate) fn touch(&self, i: u32, now: u64) {
        let write = self.writes.get(i as usize).copied().unwrap_or(NEVER);
        if let (Some(deadline), Some(stamps)) = (self.deadlines.get(i as usize), &self.stamps) {
            touch(deadline, write, now, &stamps.tti);
        }
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
                .map(|deadline| deadline.load(Ordering::Relaxed))
                .any(|deadline| deadline != NEVER && is_expired(deadline, now))
    }

    /// Gives node `i` of `len` the write deadline `deadline` and the idle
    /// deadline `idle` ([`NEVER`] for none), keeping the count true.
    /// Returns whether node `i` now has a deadline, for its `timed` flag
    /// (`storage.rs`).
    #[inline]
    pub(crate) fn set(&mut self, i: u32, deadline: u64, idle: u64, len: usize) -> bool {
        if self.deadlines.is_empty() && deadline.min(idle) == NEVER {
            return false; // no deadline yet, and none now: inlined, nothing to do
        }
        self.set_deadline(i, deadline, idle, len)
    }

    /// [`set`](Self::set) where a deadline is or will be stored.
    #[inline(never)]
    fn set_deadline(&mut self, i: u32, deadline: u64, idle: u64, len: usize) -> bool {
        let earlier = deadline.min(idle);
        if self.deadlines.is_empty() {
            self.deadlines = (0..len).map(|_| AtomicU64::new(NEVER)).collect();
        }
        if self.writes.is_empty() && deadline != NEVER && idle != NEVER {
            self.writes = vec![NEVER; len];
        }
        if let Some(write) = self.writes.get_mut(i as usize) {
            *write = deadline;
        }
        let slot = self.deadlines[i as usize].get_mut();
        self.expiring = self.expiring + usize::from(earlier != NEVER) - usize::from(*slot != NEVER);
        *slot = earlier;
        earlier != NEVER
    }

    /// Gives node `i` of `len` the write deadline `deadline` and, in a
    /// shard that is [`stamping`](Self::stamping), the stamps of a write at
    /// `stamp` (the clock read for them; `None` where nothing is stamped).
    /// Returns whether node `i` now has a deadline, as [`set`](Self::set).
    #[inline]
    #[must_use]
    pub(crate) fn write(&mut self, i: u32, deadline: u64, stamp: Option<u64>, len: usize) -> bool {
        match stamp {
            None => self.set(i, deadline, NEVER, len),
            Some(now) => self.write_stamped(i, deadline, now, len),
        }
    }

    /// [`write`](Self::write) with stamps.
    #[cold]
    #[inline(never)]
    fn write_stamped(&mut self, i: u32, deadline: u64, now: u64, len: usize) -> bool {
        let (idle, refresh) = self
            .stamps
            .as_ref()
            .map_or((NEVER, NEVER), |stamps| stamps.at(deadline, now));
        let timed = self.set(i, deadline, idle, len);
        self.set_refresh(i, refresh, len);
        timed
    }

    /// Node `i`'s refresh time, in a cache with `refresh_after`.
    #[inline]
    pub(crate) fn refresh_at(&self, i: u32) -> Option<&AtomicU64> {
        self.refresh.get(i as usize)
    }

    /// Gives node `i` of `len` the refresh time `at` ([`NEVER`]: none).
    #[inline]
    pub(crate) fn set_refresh(&mut self, i: u32, at: u64, len: usize) {
        if self.refresh.is_empty() {
            if at == NEVER {
                return;
            }
            self.refresh = (0..len).map(|_| AtomicU64::new(NEVER)).collect();
        }
        *self.refresh[i as usize].get_mut() = at;
    }

    /// A slot for a node just appended (as node `len - 1`), written as by
    /// [`write`](Self::write); returns whether it has a deadline.
    #[inline]
    #[must_use]
    pub(crate) fn push(&mut self, deadline: u64, stamp: Option<u64>, len: usize) -> bool {
        if !self.deadlines.is_empty() {
            self.deadlines.push(AtomicU64::new(NEVER));
        }
        if !self.writes.is_empty() {
            self.writes.push(NEVER);
        }
        if !self.refresh.is_empty() {
            self.refresh.push(AtomicU64::new(NEVER));
        }
        self.write((len - 1) as u32, deadline, stamp, len)
    }

    /// Drops node `i`'s slots (its deadlines already cleared), moving the
    /// last into them, as the slab does with its nodes.
    pub(crate) fn swap_remove(&mut self, i: u32) {
        if !self.deadlines.is_empty() {
            self.deadlines.swap_remove(i as usize);
        }
        if !self.writes.is_empty() {
            self.writes.swap_remove(i as usize);
        }
        if !self.refresh.is_empty() {
            self.refresh.swap_remove(i as usize);
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
            if !self.writes.is_empty() {
                self.writes.shrink_to(shrunk(len, keep));
            }
            if !self.refresh.is_empty() {
                self.refresh.shrink_to(shrunk(len, keep));
            }
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
