//! The exact policies, replayed on a trace's dense ids: an LRU, and Belady's
//! optimal policy in two variants.
//!
//! * OPT (with bypass): on a miss with the cache full, let `f` be the
//!   resident key whose next request is farthest in the future. If the
//!   requested key's own next request is at least as far as `f`'s (or never
//!   comes), the key is not admitted; otherwise `f` is evicted and the key
//!   admitted. No policy that may decline to admit (as moka's and
//!   quick_cache's admission filters do) can have more hits: the bound.
//! * OPT-admit (Belady's MIN): every missed key is admitted, evicting `f`.
//!   The bound for policies that must admit every missed key.
//!
//! Both keep the resident keys in a max-heap ordered by next request. A hit
//! pushes the key's new next request and leaves the old entry behind: that
//! entry names a position already passed, below every live entry, so it
//! never reaches the top while the cache is full, and the heap is compacted
//! when such entries outnumber the live ones.

use std::collections::BinaryHeap;

/// The "next request" of a key that is not requested again.
pub const NEVER: u32 = u32::MAX;

/// `next[i]` is the position of the next request for the key of request
/// `i`, or [`NEVER`]. `ids` are dense, `0..distinct`, and fewer than
/// `u32::MAX`.
pub fn next_uses(ids: &[u32], distinct: usize) -> Vec<u32> {
    let mut last = vec![NEVER; distinct];
    let mut next = vec![NEVER; ids.len()];
    for (i, &id) in ids.iter().enumerate().rev() {
        next[i] = last[id as usize];
        last[id as usize] = i as u32;
    }
    next
}

/// Hits of Belady's policy with room for `capacity` keys; `bypass` says
/// whether a missed key may be left out (see the module docs). `next` is
/// [`next_uses`] of `ids`.
pub fn opt_hits(ids: &[u32], next: &[u32], distinct: usize, capacity: usize, bypass: bool) -> u64 {
    assert!(capacity > 0, "a cache holds at least one key");
    let mut resident = vec![false; distinct];
    let mut len = 0;
    let mut hits = 0;
    // Entries are `next << 32 | id`: ordered by next request.
    let mut heap: BinaryHeap<u64> = BinaryHeap::with_capacity(2 * capacity + 1024);
    for (i, (&id, &next_use)) in ids.iter().zip(next).enumerate() {
        let entry = u64::from(next_use) << 32 | u64::from(id);
        let id = id as usize;
        if resident[id] {
            hits += 1;
            heap.push(entry);
        } else if len < capacity {
            resident[id] = true;
            len += 1;
            heap.push(entry);
        } else {
            let farthest = *heap.peek().expect("a full cache has a live entry");
            if bypass && u64::from(next_use) >= farthest >> 32 {
                continue;
            }
            heap.pop();
            resident[(farthest & u64::from(u32::MAX)) as usize] = false;
            resident[id] = true;
            heap.push(entry);
        }
        if heap.len() > 2 * capacity + 1024 {
            heap.retain(|&e| (e >> 32) as usize > i);
        }
    }
    hits
}

/// A least-recently-used list over dense ids: a doubly linked list in two
/// arrays, the sentinel at index `distinct`, most recent first.
struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    resident: Vec<bool>,
    sentinel: usize,
}

impl Lru {
    fn new(distinct: usize) -> Lru {
        let sentinel = distinct;
        Lru {
            prev: vec![sentinel as u32; distinct + 1],
            next: vec![sentinel as u32; distinct + 1],
            resident: vec![false; distinct],
            sentinel,
        }
    }

    fn unlink(&mut self, id: usize) {
        let (p, n) = (self.prev[id], self.next[id]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn push_front(&mut self, id: usize) {
        let first = self.next[self.sentinel];
        self.prev[id] = self.sentinel as u32;
        self.next[id] = first;
        self.prev[first as usize] = id as u32;
        self.next[self.sentinel] = id as u32;
    }

    fn least_recent(&self) -> usize {
        self.prev[self.sentinel] as usize
    }
}

/// Hits of an exact LRU with room for `capacity` keys: O(1) per request.
pub fn lru_hits(ids: &[u32], distinct: usize, capacity: usize) -> u64 {
    assert!(capacity > 0, "a cache holds at least one key");
    let mut lru = Lru::new(distinct);
    let mut len = 0;
    let mut hits = 0;
    for &id in ids {
        let id = id as usize;
        if lru.resident[id] {
            hits += 1;
            lru.unlink(id);
        } else if len < capacity {
            len += 1;
            lru.resident[id] = true;
        } else {
            let victim = lru.least_recent();
            lru.unlink(victim);
            lru.resident[victim] = false;
            lru.resident[id] = true;
        }
        lru.push_front(id);
    }
    hits
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Dense ids of a trace written as letters.
    fn ids(trace: &str) -> (Vec<u32>, usize) {
        let mut dense = HashMap::new();
        let ids = trace
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| {
                let next = dense.len() as u32;
                *dense.entry(c).or_insert(next)
            })
            .collect();
        (ids, dense.len())
    }

    fn opt(trace: &str, capacity: usize, bypass: bool) -> u64 {
        let (ids, distinct) = ids(trace);
        opt_hits(&ids, &next_uses(&ids, distinct), distinct, capacity, bypass)
    }

    fn lru(trace: &str, capacity: usize) -> u64 {
        let (ids, distinct) = ids(trace);
        lru_hits(&ids, distinct, capacity)
    }

    #[test]
    fn next_uses_point_at_the_next_request() {
        let (ids, distinct) = ids("abacb");
        assert_eq!(next_uses(&ids, distinct), vec![2, 4, NEVER, NEVER, NEVER]);
    }

    #[test]
    fn lru_by_hand() {
        // cap 2: a b | c evicts a | a evicts b | d evicts c | b evicts a |
        // a evicts d: no hits.
        assert_eq!(lru("abcadba", 2), 0);
        // cap 3: a b c | a hit | d evicts b | b evicts c | a hit.
        assert_eq!(lru("abcadba", 3), 2);
        assert_eq!(lru("aaaa", 1), 3);
        assert_eq!(lru("abab", 1), 0);
    }

    #[test]
    fn opt_textbook_example() {
        // The reference string of Silberschatz's OS textbook: Belady's MIN
        // with 3 frames has 9 faults in 20 requests.
        let trace = "70120304230321201701";
        assert_eq!(opt(trace, 3, false), 11);
        assert!(opt(trace, 3, true) >= 11);
    }

    #[test]
    fn opt_bypass_by_hand() {
        // cap 1, a b a: MIN admits b and loses a; bypass keeps a.
        assert_eq!(opt("aba", 1, false), 0);
        assert_eq!(opt("aba", 1, true), 1);
        // cap 2, a b c a b: MIN evicts b (farther) for c, then hits a:
        // 1 hit; bypass keeps a and b: 2 hits.
        assert_eq!(opt("abcab", 2, false), 1);
        assert_eq!(opt("abcab", 2, true), 2);
        // A loop of 3 keys with room for 2: OPT keeps hitting.
        assert_eq!(opt("abcabcabc", 2, true), 4);
        assert_eq!(lru("abcabcabc", 2), 0);
    }

    /// The best hit count over every choice of admission and victim, by
    /// dynamic programming backwards over (position, set of resident keys).
    /// A missed key is admitted while there is room; when full, it evicts
    /// any resident key or, with `bypass`, is left out.
    fn brute_force(ids: &[u32], distinct: usize, capacity: usize, bypass: bool) -> u64 {
        let sets = 1usize << distinct;
        let mut later = vec![0u64; sets];
        for &id in ids.iter().rev() {
            let bit = 1usize << id;
            let now: Vec<u64> = (0..sets)
                .map(|set| {
                    if set & bit != 0 {
                        1 + later[set]
                    } else if (set.count_ones() as usize) < capacity {
                        later[set | bit]
                    } else {
                        let evict = (0..distinct)
                            .filter(|v| set & (1 << v) != 0)
                            .map(|v| later[(set & !(1 << v)) | bit]);
                        let skip = bypass.then_some(later[set]);
                        evict.chain(skip).max().unwrap_or(0)
                    }
                })
                .collect();
            later = now;
        }
        later[0]
    }

    #[test]
    fn opt_matches_brute_force_and_beats_lru() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..300 {
            let distinct = 2 + round % 4;
            let len = 4 + round % 13;
            let ids: Vec<u32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % distinct as u64) as u32
                })
                .collect();
            let next = next_uses(&ids, distinct);
            for capacity in 1..distinct {
                let with = opt_hits(&ids, &next, distinct, capacity, true);
                let without = opt_hits(&ids, &next, distinct, capacity, false);
                let case = format!("{ids:?} capacity {capacity}");
                assert_eq!(with, brute_force(&ids, distinct, capacity, true), "{case}");
                assert_eq!(
                    without,
                    brute_force(&ids, distinct, capacity, false),
                    "{case}"
                );
                assert!(lru_hits(&ids, distinct, capacity) <= without, "{case}");
            }
        }
    }

    #[test]
    fn compaction_keeps_opt_exact() {
        // 20000 requests over 6 keys with room for 3: the stale entries of
        // hits overflow the heap's bound many times over.
        let ids: Vec<u32> = (0..20_000u32)
            .map(|i| (i * 7 + i / 3 + i / 11) % 6)
            .collect();
        let next = next_uses(&ids, 6);
        for bypass in [true, false] {
            assert_eq!(
                opt_hits(&ids, &next, 6, 3, bypass),
                brute_force(&ids, 6, 3, bypass)
            );
        }
    }
}
