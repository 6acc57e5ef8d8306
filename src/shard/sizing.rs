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
    let buckets = table.num_buckets();
    if buckets < 8 {
        buckets - 1
    } else {
        buckets / 8 * 7
    }
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
