//! [`Ghost`]: a bounded, approximate memory of hashes recently evicted.
//!
//! The eviction policy (`policy.rs`) asks one question of it: "was this key
//! evicted not long ago?" A yes sends a returning key straight to the main
//! queue. The answer may be wrong both ways, and both are cheap: a false
//! "yes" (two keys sharing a slot and a fingerprint, about 1 in 32 768 per
//! lookup) promotes one key too early; a false "no" (its slot overwritten
//! since) sends it through the small queue again.
//!
//! It is a direct-mapped table of 16-bit fingerprints, two slots per entry
//! its shard holds, 4 to 8 bytes per entry in all. A FIFO of hashes plus a
//! hash set, as the S3-FIFO paper describes, remembers exactly the last N
//! evictions but costs about 20 bytes per remembered hash; here a
//! fingerprint survives `n` later evictions with probability
//! `(1 - 1/slots)^n`, so recent evictions are remembered and old ones fade.
//!
//! The policy also keeps two short ones, a slot per 32 entries each, as
//! windows over the latest evictions from each queue
//! ([`fit_slots`](Ghost::fit_slots)): 1/8 byte per entry for both.

/// Fingerprints of evicted hashes; 0 marks an empty slot.
#[derive(Debug, Default)]
pub(crate) struct Ghost {
    slots: Box<[u16]>,
}

/// The fewest slots a ghost has once it has any: only shards of fewer
/// than 8 entries get more than two slots per entry. A floor of 64 made a
/// 10-entry cache's ghost six times its size, and it then sent back keys
/// whose reuse was too far off to pay (`docs/HITRATIO.md`).
const MIN_SLOTS: usize = 16;

impl Ghost {
    /// Where `hash` goes and what is stored there. The hash is mixed first
    /// (a hasher with weak bits, such as an identity hasher, would put
    /// sequential keys in one slot with one fingerprint), with a multiplier
    /// of its own: the shard index comes from the top bits of another one.
    /// The slot comes from bits 32 and up, so a table twice as large uses
    /// one more bit; the fingerprint from bits 16-31, never 0.
    #[inline]
    fn place(&self, hash: u64) -> Option<(usize, u16)> {
        if self.slots.is_empty() {
            return None;
        }
        let mixed = hash.wrapping_mul(0xd6e8_feb8_6659_fd93);
        let slot = (mixed >> 32) as usize & (self.slots.len() - 1);
        Some((slot, (mixed >> 16) as u16 | 1))
    }

    /// Remembers `hash`, forgetting whatever shared its slot.
    pub(crate) fn insert(&mut self, hash: u64) {
        if let Some((slot, print)) = self.place(hash) {
            self.slots[slot] = print;
        }
    }

    /// Whether `hash` was remembered; forgets it if so, since the key is
    /// about to be resident again.
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        match self.place(hash) {
            Some((slot, print)) if self.slots[slot] == print => {
                self.slots[slot] = 0;
                true
            }
            _ => false,
        }
    }

    /// Keeps at least two slots per resident entry: doubles while there are
    /// fewer. A fingerprint in slot `i` of the old table belongs to slot `i`
    /// or `i + old_len` of the new one (the new index has one more hash
    /// bit), so it is copied to both: nothing remembered is forgotten.
    ///
    /// Inlined, with the growth out of line: an insert into a full shard
    /// calls it every time and almost never grows.
    #[inline]
    pub(crate) fn fit(&mut self, entries: usize) {
        let want = entries.saturating_mul(2).max(MIN_SLOTS);
        if self.slots.len() < want {
            self.grow(want);
        }
    }

    /// Keeps at least `slots` slots (a power of two, at least 1), with no
    /// floor: for the policy's short windows, which must forget after about
    /// `slots` insertions however small the shard is.
    #[inline]
    pub(crate) fn fit_slots(&mut self, slots: usize) {
        let want = slots.max(1).next_power_of_two();
        if self.slots.len() < want {
            self.grow(want);
        }
    }

    /// Doubles the slots until there are `want`, keeping what is remembered.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, want: usize) {
        let mut len = self.slots.len().max(1);
        while len < want {
            len *= 2;
        }
        let old = &self.slots;
        let slots = if old.is_empty() {
            vec![0; len].into_boxed_slice()
        } else {
            (0..len).map(|i| old[i & (old.len() - 1)]).collect()
        };
        self.slots = slots;
    }

    /// Forgets everything and frees the table.
    pub(crate) fn clear(&mut self) {
        self.slots = Box::default();
    }

    /// Whether `hash` is remembered, without forgetting it.
    #[cfg(test)]
    pub(crate) fn contains(&self, hash: u64) -> bool {
        self.place(hash)
            .is_some_and(|(slot, print)| self.slots[slot] == print)
    }

    /// Bytes held, for tests of the footprint.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u16>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_taken() {
        let mut g = Ghost::default();
        assert!(!g.take(7), "an empty ghost remembers nothing");
        g.fit(1);
        g.insert(0xdead_beef_0000_0007);
        let other = (0..u64::MAX)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .find(|&h| {
                let (slot, print) = g.place(h).unwrap();
                (slot, print) != g.place(0xdead_beef_0000_0007).unwrap()
                    && slot == g.place(0xdead_beef_0000_0007).unwrap().0
            })
            .unwrap();
        assert!(!g.take(other), "same slot, other print");
        assert!(g.take(0xdead_beef_0000_0007));
        assert!(!g.take(0xdead_beef_0000_0007), "taken once");
    }

    #[test]
    fn growing_keeps_what_it_remembered() {
        let mut g = Ghost::default();
        g.fit(10);
        let hashes: Vec<u64> = (0..20u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for &h in &hashes {
            g.insert(h);
        }
        let before: Vec<bool> = hashes
            .iter()
            .map(|&h| g.place(h).is_some_and(|(s, p)| g.slots[s] == p))
            .collect();
        g.fit(1000);
        assert!(g.slots.len() >= 2000 && g.slots.len().is_power_of_two());
        for (&h, &was) in hashes.iter().zip(&before) {
            assert_eq!(g.take(h), was, "hash {h:#x}");
        }
    }

    #[test]
    fn a_window_has_no_floor_and_forgets_quickly() {
        let mut g = Ghost::default();
        g.fit_slots(3);
        assert_eq!(g.bytes(), 4 * 2, "rounded up to a power of two, no floor");
        g.fit_slots(0);
        assert_eq!(g.bytes(), 4 * 2, "never shrinks");
        let hashes: Vec<u64> = (0..64u64)
            .map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for &h in &hashes {
            g.insert(h);
        }
        let kept = hashes.iter().filter(|&&h| g.contains(h)).count();
        assert!(kept <= 4, "4 slots remember at most 4 hashes, not {kept}");
        assert!(g.contains(hashes[63]), "the latest is remembered");
    }

    #[test]
    fn holds_two_to_four_slots_per_entry() {
        let mut g = Ghost::default();
        g.fit(1000);
        assert_eq!(g.bytes(), 2048 * 2);
        g.fit(1024);
        assert_eq!(g.bytes(), 2048 * 2, "no growth while there is room");
        g.clear();
        assert_eq!(g.bytes(), 0);
        g.fit(10);
        assert_eq!(g.bytes(), 32 * 2, "two slots per entry in a tiny shard too");
        let mut g = Ghost::default();
        g.fit(1);
        assert_eq!(g.bytes(), MIN_SLOTS * 2);
    }
}
