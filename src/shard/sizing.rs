//! Sizing shared by both kinds of shard: how much room a table starts
//! with, when a table or slab is sparse enough to shrink and to what, and
//! the panic of a room that cannot be allocated.

use std::fmt;

use hashbrown::HashTable;

/// An empty table with room for `capacity` entries. Panics with a clear
/// message, rather than aborting the process, when the room cannot be
/// allocated (an `initial_capacity` of `1 << 40`, say).
pub(crate) fn table_with_capacity<T>(capacity: usize) -> HashTable<T> {
    let mut table = HashTable::new();
    // The table is empty: nothing is rehashed, so the hasher is never called.
    if let Err(error) = table.try_reserve(capacity, |_: &T| 0) {
        too_large(capacity, &error);
    }
    table
}

/// The room a bounded shard's index table needs for `entries`: the room
/// of the fewest buckets (a power of two) that hold `entries` at most
/// [`INDEX_LOAD`] full; `usize::MAX` if that overflows. A table with that
/// room or more is rebuilt at its size, not grown, once tombstones have
/// used its free slots up (`Slab::reserve_slot`).
pub(crate) fn index_room(entries: usize) -> usize {
    let (num, den) = INDEX_LOAD;
    entries
        .checked_mul(den)
        .map(|n| n.div_ceil(num).max(1))
        .and_then(usize::checked_next_power_of_two)
        .map_or(usize::MAX, room_of_buckets)
}

/// How full (entries over buckets) a bounded shard's index table is at
/// most when it is rebuilt rather than grown: 5/8. Evictions leave
/// tombstones that use up a table's growth room, and a table at its room
/// is then rebuilt, hashing every key again; the fuller the table, the
/// sooner. Replacing random entries of a hashbrown table, it is rebuilt
/// after about 14 times its entries' replacements 48% full, 2.3 times 62%
/// full, 0.55 times 76% full, 0.04 times 86% full. Above 5/8 the index
/// takes twice the buckets instead, which is what hashbrown doubles it to
/// anyway once tombstones fill it: at 76% a rebuild at the same size cost
/// the read-through `get` 33 and `insert` 38 instructions more than the
/// doubled table (`compare --callgrind`, 390 entries per shard), for 6.5
/// bytes per entry less.
pub(crate) const INDEX_LOAD: (usize, usize) = (5, 8);

/// The entries a table of `buckets` buckets has room for (see
/// [`table_room`]).
#[inline]
fn room_of_buckets(buckets: usize) -> usize {
    if buckets < 8 {
        buckets - 1
    } else {
        buckets / 8 * 7
    }
}

/// Tables (and slabs) with room for at most this many entries never
/// shrink, so that a shard holding a handful of entries does not free and
/// reallocate as they come and go.
pub(crate) const MIN_SHRINK: usize = 32;

/// Whether room for `capacity` entries, holding `len`, should shrink: it is
/// below a quarter full, and above both [`MIN_SHRINK`] and `keep` (the room
/// the user asked for with `initial_capacity`).
#[inline]
pub(crate) fn sparse(len: usize, capacity: usize, keep: usize) -> bool {
    len < capacity / 4 && capacity > keep.max(MIN_SHRINK)
}

/// The room a sparse table of `len` entries shrinks to: 1.5 `len`, never
/// below `keep`. A hash table rounds it up to a power of two buckets, 7/8
/// of them usable, so it lands between a third and two thirds full: at
/// least a quarter of its entries must go before it shrinks again, and it
/// grows again (at 7/8) only after about a third more come in. Each shrink
/// moves `len` entries after at least `len / 3` removals, so removals stay
/// amortized O(1), and an insert/remove mix at either threshold never
/// reallocates back and forth.
#[inline]
pub(crate) fn shrunk(len: usize, keep: usize) -> usize {
    (len + len / 2).max(keep)
}

/// The room to keep, as stored in a shard: `u32` keeps the shard's lock
/// slot within one 128-byte line. Room past `u32::MAX` saturates, and
/// [`unpack_room`] reads that as "never shrink".
pub(crate) fn pack_room(room: usize) -> u32 {
    u32::try_from(room).unwrap_or(u32::MAX)
}

/// The room a [`pack_room`] value stands for.
#[inline]
pub(crate) fn unpack_room(keep: u32) -> usize {
    if keep == u32::MAX {
        usize::MAX
    } else {
        keep as usize
    }
}

/// The entries `table`'s allocation has room for. Not
/// `HashTable::capacity`, which counts only the slots still free of
/// tombstones and so moves as entries come and go: this is 7/8 of the
/// buckets (all but one below 8), as hashbrown sizes them.
#[inline]
pub(crate) fn table_room<T>(table: &HashTable<T>) -> usize {
    room_of_buckets(table.num_buckets())
}

/// Shrinks `table` to room for [`shrunk`]`(len, keep)` entries. `hash`
/// runs the user's `Hash` on every entry: hashbrown moves them into a new
/// allocation and frees the old one only once all are moved, so if `hash`
/// panics the table is left exactly as it was (the new allocation is freed,
/// no entry is dropped). Kept out of line: it runs once per many removals.
#[cold]
#[inline(never)]
pub(crate) fn shrink<T>(
    table: &mut HashTable<T>,
    len: usize,
    keep: usize,
    hash: impl Fn(&T) -> u64,
) {
    table.shrink_to(shrunk(len, keep), hash);
}

/// Shrinks `table`, which holds no entry, to room for `keep` entries if it
/// is sparse. Needs no hasher: an empty table moves nothing.
pub(crate) fn shrink_empty<T>(table: &mut HashTable<T>, keep: usize) {
    if table.is_empty() && sparse(0, table_room(table), keep) {
        table.shrink_to(keep, |_| unreachable!("an empty table rehashes nothing"));
    }
}

/// The panic of an `initial_capacity` that cannot be allocated.
#[cold]
pub(crate) fn too_large(capacity: usize, error: &dyn fmt::Debug) -> ! {
    panic!(
        "shardcache: initial_capacity asks for room for {capacity} entries per shard, \
         which cannot be allocated ({error:?}); use a smaller initial_capacity"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_of_the_most_entries_is_at_most_five_eighths_full() {
        // The room of 256 buckets is 224; 160 entries fill them 5/8.
        assert_eq!(index_room(160), 224);
        assert_eq!(index_room(161), 448);
        assert_eq!(index_room(1), 1);
        assert_eq!(index_room(usize::MAX), usize::MAX);
        for most in [2, 3, 7, 100, 1953, 7777] {
            let buckets = (index_room(most) + 1).next_power_of_two();
            assert!(most * 8 <= buckets * 5, "{most} in {buckets}");
            assert!(most * 8 > buckets / 2 * 5, "{most} in {buckets}: too many");
        }
        let table = table_with_capacity::<u32>(index_room(150));
        assert_eq!(table_room(&table), index_room(150));
    }
}
