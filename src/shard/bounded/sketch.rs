//! [`Sketch`]: an approximate count of how often each key was used lately,
//! kept by the write path only.
//!
//! The eviction policy (`policy.rs`) consults it when a key the ghost
//! remembers comes back: the key goes straight to the main queue only if it
//! has been used more often than the entry it would push out. Reads never
//! touch the sketch (they would write a shared line on every hit); it learns
//! of a key's uses when the ghost returns it or `small` promotes it. A
//! resident of `main` keeps the uses the CLOCK finds when it passes over it
//! in its own node instead (an "owed" count, [`Sketch::owe`]), halved as the
//! counters are; the policy adds them to the key's estimate when it weighs
//! the entry as `main`'s victim ([`Sketch::used_more`]). The ghost is its doorkeeper (TinyLFU's, Einziger et
//! al. 2017): a key inserted for the first time moves no counter, only
//! [`tick`](Sketch::tick)s toward the next aging, so keys used once (most
//! of a scan, half the misses of a uniform load) cost one increment.
//!
//! A count-min sketch (Cormode and Muthukrishnan, 2005) of 4-bit counters,
//! 16 to a `u64`, four per key, as in Caffeine's TinyLFU: an estimate is
//! the smallest of a key's four counters, never below the true count since
//! the last aging. Aging halves every counter after `10 x entries`
//! additions and ticks, so old popularity fades. Four counters per entry the shard
//! holds: 2 to 4 bytes per entry.

/// 4-bit counters, 16 per word.
#[derive(Debug, Default)]
pub(crate) struct Sketch {
    words: Box<[u64]>,
    /// The most entries [`fit`](Self::fit) was asked for: the words and the
    /// period only change when this grows.
    fitted: usize,
    /// Additions since the last aging.
    additions: u32,
    /// Additions between two agings.
    period: u32,
    /// How many times the counts were halved, wrapping.
    ages: u8,
}

/// Multipliers that give each of a key's four counters its own bits.
const SEEDS: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];

/// The highest count.
const MAX: u64 = 15;

/// The fewest words a sketch has once it has any.
const MIN_WORDS: usize = 4;

impl Sketch {
    /// Word and bit offset of counter `row` of `hash`.
    #[inline]
    fn counter(&self, hash: u64, row: usize) -> (usize, u32) {
        let h = (hash ^ (hash >> 29)).wrapping_mul(SEEDS[row]);
        let h = h ^ (h >> 32);
        let word = h as usize & (self.words.len() - 1);
        // The nibble comes from bits the word index never uses (below 2^40
        // words), so growing the table keeps every counter in its nibble.
        (word, ((h >> 40) & 15) as u32 * 4)
    }

    /// Counts one more use of `hash`.
    pub(crate) fn add(&mut self, hash: u64) {
        if self.words.is_empty() {
            return;
        }
        let mut added = false;
        for row in 0..SEEDS.len() {
            let (word, shift) = self.counter(hash, row);
            if (self.words[word] >> shift) & MAX < MAX {
                self.words[word] += 1 << shift;
                added = true;
            }
        }
        if added {
            self.additions += 1;
            if self.additions >= self.period {
                self.age();
            }
        }
    }

    /// Counts a use of a key the doorkeeper (the policy's ghost) kept out:
    /// no counter moves, but the use counts toward the next aging, as a
    /// sample of the whole stream (TinyLFU's reset counts every use).
    #[inline]
    pub(crate) fn tick(&mut self) {
        self.additions += 1;
        if self.additions >= self.period && !self.words.is_empty() {
            self.age();
        }
    }

    /// Halves every counter.
    #[cold]
    fn age(&mut self) {
        for word in self.words.iter_mut() {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
        self.ages = self.ages.wrapping_add(1);
    }

    /// The uses an `owed` byte ([`owe`](Self::owe)'s result) holds, as
    /// the sketch would count them now: halved, to the nearest, at each
    /// aging since it was stamped, and 0 after four (a counter of 15 is 0
    /// by then too; the 4-bit stamp wraps after 16).
    #[inline]
    pub(crate) fn owed(&self, owed: u8) -> u8 {
        let lag = self.ages.wrapping_sub(owed >> 4) & 15;
        if lag >= 4 {
            0
        } else {
            ((owed & 15) + (1 << lag >> 1)) >> lag
        }
    }

    /// `owed` (0 for none) with one more use, up to 15, stamped with the
    /// current aging in its high 4 bits. The use ticks the aging period
    /// as [`add`](Self::add) would: the sketch ages at the same pace
    /// whether a use is counted here or in the counters.
    #[inline]
    pub(crate) fn owe(&mut self, owed: u8) -> u8 {
        self.tick();
        let n = (self.owed(owed) + 1).min(MAX as u8);
        (self.ages & 15) << 4 | n
    }

    /// Counter `row` of `hash`.
    #[inline]
    fn count(&self, hash: u64, row: usize) -> u64 {
        let (word, shift) = self.counter(hash, row);
        (self.words[word] >> shift) & MAX
    }

    /// Uses of `hash` since about the last aging (never fewer).
    pub(crate) fn estimate(&self, hash: u64) -> u64 {
        if self.words.is_empty() {
            return 0;
        }
        let mut least = MAX;
        for row in 0..SEEDS.len() {
            least = least.min(self.count(hash, row));
        }
        least
    }

    /// Whether `estimate(hash) > estimate(other()) + owed`, where `owed` is
    /// the uses `other`'s entry holds uncounted ([`owed`](Self::owed)'s
    /// result), reading `other`'s counters only until one is low enough
    /// (the smallest decides), and computing `other` only if `hash` was
    /// counted more than `owed`. Inlined: out of line it cost the
    /// read-through `insert` 20 instructions (`compare --callgrind`).
    #[inline]
    pub(crate) fn used_more(&self, hash: u64, owed: u8, other: impl FnOnce() -> u64) -> bool {
        let least = self.estimate(hash);
        if least <= u64::from(owed) {
            return false;
        }
        let least = least - u64::from(owed);
        let other = other();
        (0..SEEDS.len()).any(|row| self.count(other, row) < least)
    }

    /// Keeps four counters per entry: doubles while there are fewer. The
    /// counters of word `i` belong to word `i` or `i + old_len` of the new
    /// table, so the word is copied to both: no count is lost.
    /// Ages after `10 x entries` additions, for the most entries seen.
    ///
    /// Inlined, with the rest out of line: an insert into a full shard calls
    /// it every time with the same count.
    #[inline]
    pub(crate) fn fit(&mut self, entries: usize) {
        if entries > self.fitted {
            self.refit(entries);
        }
    }

    /// [`fit`](Self::fit) for more entries than ever before.
    #[cold]
    #[inline(never)]
    fn refit(&mut self, entries: usize) {
        self.fitted = entries;
        let period = u32::try_from(entries.max(16).saturating_mul(10)).unwrap_or(u32::MAX);
        self.period = self.period.max(period);
        let want = (entries.next_power_of_two() / 4).max(MIN_WORDS);
        if self.words.len() >= want {
            return;
        }
        let old = &self.words;
        let mut len = self.words.len().max(MIN_WORDS / 2);
        while len < want {
            len *= 2;
        }
        let words = if old.is_empty() {
            vec![0; len].into_boxed_slice()
        } else {
            (0..len).map(|i| old[i & (old.len() - 1)]).collect()
        };
        self.words = words;
    }

    /// Forgets everything and frees the table.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Bytes held, for tests of the footprint.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    #[test]
    fn counts_never_fall_short_and_saturate() {
        let mut s = Sketch::default();
        assert_eq!(s.estimate(1), 0, "an empty sketch counts nothing");
        s.add(1);
        assert_eq!(s.estimate(1), 0, "nor does it count before it is sized");
        s.fit(64);
        for (n, h) in hashes(32).enumerate() {
            for _ in 0..=n % 5 {
                s.add(h);
            }
        }
        for (n, h) in hashes(32).enumerate() {
            assert!(s.estimate(h) >= (n % 5 + 1) as u64);
        }
        for _ in 0..100 {
            s.add(7);
        }
        assert_eq!(s.estimate(7), MAX);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "counter arithmetic over 40 000 comparisons; safe code, cargo test runs it"
    )]
    fn used_more_agrees_with_the_estimates() {
        let mut s = Sketch::default();
        s.fit(64);
        for (n, h) in hashes(200).enumerate() {
            for _ in 0..n % 7 {
                s.add(h);
            }
        }
        let all: Vec<u64> = hashes(200).chain([1, 2, 3]).collect();
        for &a in all.iter().step_by(3) {
            for &b in all.iter().step_by(5) {
                let expected = s.estimate(a) > s.estimate(b);
                assert_eq!(s.used_more(a, 0, || b), expected, "{a:#x} against {b:#x}");
            }
        }
        let mut fresh = Sketch::default();
        fresh.fit(64);
        assert!(!fresh.used_more(1, 0, || unreachable!("not needed: nothing was counted")));
    }

    #[test]
    fn owed_uses_age_as_the_counters_do() {
        let mut s = Sketch::default();
        s.fit(16); // ages every 160 additions and ticks
        let mut owed = 0;
        for n in 1..=20u8 {
            owed = s.owe(owed);
            assert_eq!(s.owed(owed), n.min(15), "a counter's top");
        }
        assert_eq!(s.additions, 20, "each use ticks the period");
        let ages = [(1, 8), (2, 4), (3, 2), (4, 0)]; // 15 halved, to the nearest
        for (n, want) in ages {
            s.age();
            assert_eq!(s.owed(owed), want, "after {n} agings");
        }
        // A use owed after an aging starts from what is left.
        let mut owed = s.owe(0);
        s.age();
        owed = s.owe(owed);
        assert_eq!(s.owed(owed), 2, "1 halved to the nearest is 1");
        s.age();
        s.age();
        assert_eq!(
            s.owed(owed),
            1,
            "2 is 1 after one aging, 0.5 is 1 after two"
        );
        assert_eq!(s.owed(0), 0);
    }

    #[test]
    fn aging_halves_the_counts() {
        let mut s = Sketch::default();
        s.fit(16);
        assert_eq!(s.words.len(), MIN_WORDS);
        for _ in 0..8 {
            s.add(42);
        }
        let before = s.estimate(42);
        s.age();
        assert_eq!(s.estimate(42), before / 2);
        // The period ages it by itself: 10 additions per counter.
        assert_eq!(s.period, 160);
        let mut s = Sketch::default();
        s.fit(16);
        for h in hashes(159) {
            s.add(h);
        }
        assert_eq!(s.additions, 159);
        s.add(1);
        assert_eq!(s.additions, 80, "aged at the 160th addition");
    }

    #[test]
    fn ticks_count_toward_aging_without_moving_a_counter() {
        let mut s = Sketch::default();
        s.tick();
        assert_eq!(s.additions, 1, "an unsized sketch only counts");
        s.fit(16);
        s.add(42);
        s.add(42);
        for _ in 0..156 {
            s.tick();
        }
        assert_eq!((s.additions, s.estimate(42)), (159, 2));
        s.tick();
        assert_eq!(
            (s.additions, s.estimate(42)),
            (80, 1),
            "aged at the 160th use"
        );
    }

    #[test]
    fn growing_keeps_the_counts() {
        let mut s = Sketch::default();
        s.fit(16);
        for (n, h) in hashes(40).enumerate() {
            for _ in 0..n % 4 {
                s.add(h);
            }
        }
        let before: Vec<u64> = hashes(40).map(|h| s.estimate(h)).collect();
        s.fit(4096);
        assert_eq!(s.bytes(), 1024 * 8);
        let after: Vec<u64> = hashes(40).map(|h| s.estimate(h)).collect();
        for ((n, b), a) in before.iter().enumerate().zip(&after) {
            assert!(a <= b && *a >= (n % 4) as u64, "key {n}: {b} then {a}");
        }
        s.clear();
        assert_eq!(s.bytes(), 0);
    }
}
