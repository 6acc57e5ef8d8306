//! [`Cache`]: hashing, shard choice, and the locking facade over [`Shard`]s.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use crate::builder::{CacheBuilder, ExpireAfter, Weigher};
use crate::clock::{deadline, ClockSource, NEVER};
use crate::compute::{Begin, Compute};
use crate::janitor::{Janitor, Sweep};
use crate::listener::{deliver, resume, Departures, Listener, Panic, RemovalCause};
use crate::loading::{Flight, Join};
use crate::locks::{default_stripes, ShardLocks};
use crate::refresh;
use crate::shard::{
    BoundedShard, Keep, Lookup, Meta, Out, Removed, Shard, Stamps, Tti, UnboundedShard,
};
use crate::stats::{ReadCounters, Stats};
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};
use crate::Equivalent;

/// Multiplier that mixes a hash before its top bits pick the shard
/// (Fibonacci hashing: 2^64 / the golden ratio). A hasher whose high bits
/// are weak, such as an identity hasher for integer keys, still spreads
/// sequential keys over every shard.
const SHARD_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// A concurrent cache: keys hashed once (again only to remove an entry a
/// lookup found expired) onto a power-of-two number of shards, each a
/// reader-writer lock around its own hash tables, with an optional time to
/// live per entry and an optional background janitor.
/// Readers of a shard do not write any memory that other threads read, so
/// reads scale with cores, even on one hot key.
///
/// Reads return clones, never guards, so no lock is ever held in your code.
/// For large values, store `Arc<T>` and the clone is a reference-count bump.
/// Share the cache between threads by cloning it: a clone is a handle to
/// the same cache (one atomic increment), as with moka.
///
/// ```
/// use std::thread;
/// use shardcache::Cache;
///
/// let cache: Cache<u64, String> = Cache::new();
/// let writers: Vec<_> = (0..4)
///     .map(|t| {
///         let cache = cache.clone();
///         thread::spawn(move || {
///             for i in 0..100 {
///                 cache.insert(t * 100 + i, format!("value {i}"));
///             }
///         })
///     })
///     .collect();
/// for w in writers {
///     w.join().unwrap();
/// }
/// assert_eq!(cache.len(), 400);
/// assert_eq!(cache.get(&205).as_deref(), Some("value 5"));
/// ```
pub struct Cache<K, V, S = ahash::RandomState> {
    inner: Arc<Inner<K, V, S>>,
}

/// What every handle of one cache shares. The last handle to drop it
/// stops the janitor.
struct Inner<K, V, S> {
    hasher: S,
    shards: Arc<Shards<K, V>>,
    /// Right shift that brings the shard bits of a mixed hash to the bottom.
    shift: u32,
    /// Shard count - 1.
    mask: usize,
    default_ttl: Duration,
    /// Whether `default_ttl` or `expire_after` is set: inserts read the
    /// clock only then.
    expires: bool,
    /// The TTL computed from the entry, if the cache was built with one.
    expire_after: Option<ExpireAfter<K, V>>,
    /// Whether [`insert`](Cache::insert) has more to do than store with
    /// no deadline in unbounded shards: a TTL, or bounded shards.
    insert_special: bool,
    /// Whether [`insert`](Cache::insert) goes to
    /// [`insert_other`](Cache::insert_other): bounded shards, or an
    /// `expire_after`.
    insert_other: bool,
    /// The time-to-idle; `tti` is 0 without one.
    tti: Tti,
    /// The age after which the loading methods refresh a value, in clock
    /// nanoseconds; 0 without `refresh_after` (see `src/refresh.rs`).
    refresh: u64,
    /// Whether the cache has a bound (its shards may be bounded shards
    /// without one: a cache with a time-to-idle).
    bounded: bool,
    record_stats: bool,
    /// Set only for bounded caches built with a weigher.
    weigher: Option<Weigher<K, V>>,
    janitor: Janitor,
}

/// Shard `index`'s part of `capacity` split over `count` shards: exactly,
/// the first `capacity % count` shards holding one unit more than the rest.
fn share(capacity: u64, count: usize, index: usize) -> u64 {
    let count = count as u64;
    capacity / count + u64::from((index as u64) < capacity % count)
}

/// What the cache and its janitor share.
pub(crate) struct Shards<K, V> {
    tables: Tables<K, V>,
    /// What unbounded shards' removals never shrink their tables below.
    keep: Keep,
    reads: ReadCounters,
    clock: ClockSource,
    listener: Option<Listener<K, V>>,
    /// The bound set by the builder or by `set_max_capacity`, if any (a
    /// bounded cache built with only a weigher has none until then).
    max_capacity: AtomicU64,
    capped: AtomicBool,
}

/// The shards' locked tables; which kind is fixed when the cache is built.
/// A cache without a capacity keeps the plain [`UnboundedShard`], so it
/// pays nothing for eviction: no byte per entry, no work in `get`. Both
/// kinds implement [`Shard`]: every operation below is written once.
enum Tables<K, V> {
    Unbounded(ShardLocks<UnboundedShard<K, V>>),
    Bounded(ShardLocks<BoundedShard<K, V>>),
}

/// Evaluates `$body` with `$locks` bound to the shards' locks, whichever
/// kind they are (the body is compiled once per kind, statically: the
/// match costs two instructions).
macro_rules! with_locks {
    ($tables:expr, $locks:ident => $body:expr) => {
        match $tables {
            Tables::Unbounded($locks) => $body,
            Tables::Bounded($locks) => $body,
        }
    };
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache with the default shard count, no TTL and no janitor.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::new();
    /// cache.insert("a", 1);
    /// assert_eq!(cache.get("a"), Some(1));
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }
}

impl<K, V> Cache<K, V> {
    /// Starts configuring a cache; see [`CacheBuilder`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .default_ttl(Duration::from_secs(60))
    ///     .build();
    /// # let _ = cache;
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V> Default for Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    pub(crate) fn from_builder(builder: CacheBuilder<K, V, S>) -> Self {
        let count = builder.shard_count();
        debug_assert!(count.is_power_of_two());
        let per_shard = builder.initial_capacity.div_ceil(count);
        let stripes = builder.stripes.unwrap_or_else(default_stripes);
        // Shards are allocated on their first write, in groups (see
        // `ShardLocks`), unless the user asked for room now: then at once,
        // so that room that cannot be had fails the build.
        let eager = per_shard > 0;
        let tti = builder.time_to_idle.and_then(Tti::new);
        let refresh = builder.refresh_after.map_or(0, refresh::age);
        let expiring =
            !builder.default_ttl.is_zero() || builder.expire_after.is_some() || tti.is_some();
        // Only bounded shards keep idle deadlines and refresh times: a
        // cache with a time-to-idle or `refresh_after` and no bound gets
        // them with no bound (see docs/DESIGN.md, "Time to idle").
        let bound = builder.bound();
        let shard_bound = bound.or((tti.is_some() || refresh != 0).then_some(u64::MAX));
        let (tables, keep) = match shard_bound {
            None => {
                let init = move |index: usize| {
                    // Past `count` (fewer shards than a group): never used.
                    UnboundedShard::with_capacity(
                        if index < count { per_shard } else { 0 },
                        expiring,
                    )
                };
                // Every shard gets the same room: kept once, for removals.
                let keep = init(0).room();
                let locks = ShardLocks::new(count, stripes, eager, Box::new(init));
                (Tables::Unbounded(locks), keep)
            }
            Some(capacity) => {
                let unit = builder.weigher.is_none();
                let stamps = Stamps {
                    tti: tti.unwrap_or_default(),
                    age: refresh,
                };
                let init = move |index: usize| {
                    if index >= count {
                        return BoundedShard::new(0, 0, unit);
                    }
                    BoundedShard::new(share(capacity, count, index), per_shard, unit)
                        .stamped(stamps)
                };
                let locks = ShardLocks::new(count, stripes, eager, Box::new(init));
                (Tables::Bounded(locks), Keep::default())
            }
        };
        let shards = Arc::new(Shards {
            tables,
            keep,
            reads: ReadCounters::new(stripes),
            clock: builder.clock,
            listener: builder.listener,
            max_capacity: AtomicU64::new(builder.max_capacity.unwrap_or(0)),
            capped: AtomicBool::new(builder.max_capacity.is_some()),
        });
        let janitor = if builder.cleanup_interval.is_zero() {
            Janitor::disabled()
        } else {
            Janitor::start(Arc::downgrade(&shards), builder.cleanup_interval)
        };
        let inner = Inner {
            hasher: builder.hasher,
            shards,
            shift: (u64::BITS - count.trailing_zeros()).min(u64::BITS - 1),
            mask: count - 1,
            default_ttl: builder.default_ttl,
            expires: expiring,
            insert_special: expiring || shard_bound.is_some(),
            insert_other: builder.expire_after.is_some() || shard_bound.is_some(),
            expire_after: builder.expire_after,
            tti: tti.unwrap_or_default(),
            refresh,
            bounded: bound.is_some(),
            record_stats: builder.record_stats,
            weigher: builder.weigher,
            janitor,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The shard that `hash` belongs to.
    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // The top log2(shards) bits of the mixed hash; `shift` is at most
        // 63 (one shard: the mask is 0), so this never overflows.
        (hash.wrapping_mul(SHARD_MIX) >> self.inner.shift) as usize & self.inner.mask
    }

    /// Inserts `value` under `key` with the TTL that
    /// [`expire_after`](CacheBuilder::expire_after) computes for it, else
    /// the default TTL, replacing any previous value and its TTL.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::new();
    /// cache.insert("a", 1);
    /// cache.insert("a", 2);
    /// assert_eq!(cache.get("a"), Some(2));
    /// ```
    #[inline]
    pub fn insert(&self, key: K, value: V) {
        // No reference to `key` or `value` escapes here (`insert_other`
        // takes them out of line, by value): they stay in registers.
        let deadline = if self.inner.insert_special {
            if self.inner.insert_other {
                return self.insert_other(key, value);
            }
            deadline(self.inner.shards.clock.now(), self.inner.default_ttl)
        } else {
            NEVER
        };
        self.insert_at(key, value, deadline);
    }

    /// [`insert`](Self::insert) into bounded shards, or with
    /// `expire_after`'s TTL: the deadline is computed in the function that
    /// inserts, not before a call to it. Out of line, so that `insert`
    /// stays small enough to inline; a test and a jump, with no frame.
    #[inline(never)]
    fn insert_other(&self, key: K, value: V) {
        match &self.inner.shards.tables {
            Tables::Bounded(locks) if !self.inner.expires => {
                self.insert_bounded(key, value, locks, NEVER);
            }
            Tables::Bounded(locks) => self.insert_bounded_expiring(key, value, locks),
            Tables::Unbounded(_) => self.insert_computed(key, value),
        }
    }

    /// [`insert`](Self::insert) with `expire_after`'s TTL, into unbounded
    /// shards.
    #[inline(never)]
    fn insert_computed(&self, key: K, value: V) {
        let deadline = self.deadline_for(&key, &value);
        self.insert_at(key, value, deadline);
    }

    /// Inserts `value` under `key`, live for `ttl` from now, replacing any
    /// previous value and its TTL. `Duration::ZERO`, or a TTL too large for
    /// the clock, means it never expires.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<&str, u32> = Cache::builder().clock(clock.clone()).build();
    /// cache.insert_with_ttl("short", 1, Duration::from_secs(1));
    /// cache.insert_with_ttl("forever", 2, Duration::MAX);
    /// clock.advance(Duration::from_secs(3600));
    /// assert_eq!(cache.get("short"), None);
    /// assert_eq!(cache.get("forever"), Some(2));
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        let deadline = if ttl.is_zero() {
            NEVER
        } else {
            deadline(self.inner.shards.clock.now(), ttl)
        };
        match &self.inner.shards.tables {
            Tables::Bounded(locks) => self.insert_bounded(key, value, locks, deadline),
            Tables::Unbounded(_) => self.insert_at(key, value, deadline),
        }
    }

    /// The deadline of `key` and `value` stored now by an insert or a
    /// load: `expire_after`'s TTL, else the default TTL; with neither,
    /// [`NEVER`] and no clock read.
    #[inline]
    pub(crate) fn deadline_for(&self, key: &K, value: &V) -> u64 {
        if !self.inner.expires {
            return NEVER;
        }
        match &self.inner.expire_after {
            None => deadline(self.inner.shards.clock.now(), self.inner.default_ttl),
            Some(f) => self.computed_deadline(f, key, value),
        }
    }

    /// The deadline from `f`'s TTL for the entry, or the default TTL; the
    /// clock is read only for a TTL that ends. Out of line: user code.
    #[inline(never)]
    fn computed_deadline(&self, f: &ExpireAfter<K, V>, key: &K, value: &V) -> u64 {
        let ttl = f(key, value).unwrap_or(self.inner.default_ttl);
        if ttl.is_zero() {
            NEVER
        } else {
            deadline(self.inner.shards.clock.now(), ttl)
        }
    }

    /// Inserts into unbounded shards with the deadline computed (every
    /// caller sends a bounded insert to
    /// [`insert_bounded`](Self::insert_bounded)). Inlined into the caller:
    /// the unbounded half is small, and everything rare (a listener) is
    /// out of line.
    #[inline]
    fn insert_at(&self, key: K, value: V, deadline: u64) {
        let hash = self.inner.hasher.hash_one(&key);
        let index = self.shard_index(hash);
        match &self.inner.shards.tables {
            Tables::Unbounded(locks) => self.insert_into(locks, index, hash, key, value, deadline),
            Tables::Bounded(_) => bounded_insert_at(),
        }
    }

    /// [`insert`](Self::insert) into bounded shards that expire entries:
    /// the deadline, then [`insert_bounded`](Self::insert_bounded).
    #[inline(never)]
    fn insert_bounded_expiring(&self, key: K, value: V, locks: &ShardLocks<BoundedShard<K, V>>) {
        let deadline = self.deadline_for(&key, &value);
        self.insert_bounded(key, value, locks, deadline);
    }

    /// The insert into bounded shards, the one place that calls the
    /// bounded shard's (so that it is inlined here). Called straight from
    /// [`insert`](Self::insert), it is the whole insert in one frame
    /// (through `insert_at`, a second frame was saved and restored on
    /// every call). Every argument fits a register.
    #[inline(never)]
    fn insert_bounded(
        &self,
        key: K,
        value: V,
        locks: &ShardLocks<BoundedShard<K, V>>,
        deadline: u64,
    ) {
        let (hash, index) = self.locate(&key);
        self.insert_into(locks, index, hash, key, value, deadline);
    }

    /// The insert, for either kind of shard.
    #[inline(always)]
    fn insert_into<T: Shard<K, V>>(
        &self,
        locks: &ShardLocks<T>,
        index: usize,
        hash: u64,
        key: K,
        value: V,
        deadline: u64,
    ) {
        // The weigher runs before the lock is taken: if it panics, nothing
        // has changed.
        let meta = self.meta::<T>(&key, &value, deadline);
        let clock = &self.inner.shards.clock;
        // Declared before the guard: if `Eq` or `Hash` panics under the
        // lock, the entry, and whatever the insert pushed out, are dropped
        // after it is released.
        let mut out = T::Out::default();
        let mut pending = Some((key, value));
        locks.write(index).insert(
            hash,
            &mut pending,
            meta,
            &self.inner.hasher,
            || clock.now(),
            &mut out,
        );
        // The unused key and what went out are dropped or handed to the
        // listener here, after unlocking.
        out.finish(|| self.inner.shards.listener.as_ref());
    }

    /// What a shard of kind `T` needs to know of a new entry: its deadline,
    /// and its weight if `T` weighs entries (the weigher runs here, before
    /// any lock is taken). An idle deadline and a refresh time are the
    /// shard's to stamp: it was built knowing whether it keeps them.
    #[inline(always)]
    fn meta<T: Shard<K, V>>(&self, key: &K, value: &V, deadline: u64) -> Meta {
        let weight = if T::WEIGHED {
            self.inner
                .weigher
                .as_ref()
                .map_or(1, |weigh| weigh(key, value))
        } else {
            1
        };
        Meta { deadline, weight }
    }

    /// Returns a clone of the value under `key`, or `None` if there is none
    /// or it has expired. An expired entry is removed.
    ///
    /// The key may be any borrowed form of `K` (`&str` for `String` keys).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<String, u32> = Cache::new();
    /// cache.insert("a".to_owned(), 1);
    /// assert_eq!(cache.get("a"), Some(1));
    /// assert_eq!(cache.get("b"), None);
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.lookup::<Q, V, true>(key, V::clone)
    }

    /// Whether `key` has a live value. An expired entry is removed, as by
    /// [`get`](Self::get). Not a read for
    /// [`time_to_idle`](CacheBuilder::time_to_idle): it keeps no entry
    /// alive.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// cache.insert(1, 1);
    /// assert!(cache.contains_key(&1));
    /// assert!(!cache.contains_key(&2));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.lookup::<Q, (), false>(key, |_| ()).is_some()
    }

    /// The hot path: one hash, one read lock, one probe (a second only if
    /// the shard holds entries with a TTL), `read` on the value. `ACCESS`:
    /// a read for the time-to-idle (`get`, a loading method's hit), not a
    /// look (`contains_key`).
    #[inline]
    fn lookup<Q, R, const ACCESS: bool>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let (hash, index) = self.locate(key);
        self.lookup_at::<Q, R, ACCESS>(hash, index, key, read)
    }

    /// `key`'s hash and shard.
    #[inline]
    pub(crate) fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, usize) {
        let hash = self.inner.hasher.hash_one(key);
        (hash, self.shard_index(hash))
    }

    /// [`lookup`](Self::lookup) with the hash already computed.
    #[inline]
    pub(crate) fn lookup_at<Q, R, const ACCESS: bool>(
        &self,
        hash: u64,
        index: usize,
        key: &Q,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        // `self.inner.shards` is loaded again where it is used: kept, the
        // pointer was spilled on the hit path for the clock and the stats.
        let now = || self.inner.shards.clock.now();
        // The read guard is a temporary: it is released at the end of this
        // statement, before anything else happens.
        let found = with_locks!(&self.inner.shards.tables, locks => match locks.read(index) {
            Some(shard) if ACCESS => shard.access(hash, key, now, |value, _| read(value)),
            Some(shard) => shard.get(hash, key, now, read),
            None => Lookup::Missing,
        });
        let result = match found {
            Lookup::Live(value) => Some(value),
            Lookup::Missing => None,
            Lookup::Expired => {
                self.remove_expired_key(key);
                None
            }
        };
        if self.inner.record_stats {
            self.inner.shards.reads.record(result.is_some());
        }
        result
    }

    /// [`remove_expired_entry`](Self::remove_expired_entry) after a
    /// lookup, hashing `key` again: the hit keeps neither its hash nor its
    /// shard past the read lock.
    #[inline(never)]
    fn remove_expired_key<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let (hash, index) = self.locate(key);
        self.remove_expired_entry(index, hash, key);
    }

    /// Removes `key` and returns its value if it was live. An expired entry
    /// is removed too, and `None` returned.
    ///
    /// A shard's table that the removal leaves below a quarter full shrinks
    /// first (to 1.5x its entries, never below
    /// [`initial_capacity`](CacheBuilder::initial_capacity), and not at all
    /// when it has room for 32 entries or fewer), so memory follows the
    /// contents; amortized over the removals, this costs O(1) each. If
    /// `Hash` panics during that shrink, the panic reaches the caller and
    /// the entry stays, with every other.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::new();
    /// cache.insert("a", 1);
    /// assert_eq!(cache.remove("a"), Some(1));
    /// assert_eq!(cache.remove("a"), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let index = self.shard_index(hash);
        let now = || self.inner.shards.clock.now();
        let keep = self.inner.shards.keep;
        let removed = with_locks!(&self.inner.shards.tables, locks => locks
            .write_existing(index)
            .and_then(|mut shard| shard.remove(hash, key, now, &self.inner.hasher, keep)));
        self.departed(removed?)
    }

    /// Hands what a removal took out to the listener (a clone of the
    /// value, if live, for the caller) after unlocking, and returns the
    /// value if it was live.
    fn departed(&self, removed: Removed<K, V>) -> Option<V> {
        match removed {
            Removed::Live(key, value) => {
                if let Some(listener) = &self.inner.shards.listener {
                    let told = value.clone();
                    resume(deliver(
                        Some(listener),
                        [(key, told, RemovalCause::Removed)],
                    ));
                }
                Some(value)
            }
            Removed::Expired(key, value) => {
                self.inner.shards.depart(key, value, RemovalCause::Expired);
                None
            }
        }
    }

    /// Removes `key` if its value is live and `pred` holds for it, and
    /// returns the value; `None` if there is no live value or `pred` said
    /// no. An expired entry is removed (the listener is told `Expired`)
    /// without asking `pred`. The check and the removal are one step: no
    /// other write to the key comes between them.
    ///
    /// `pred` runs under the shard's write lock, so it must not use this
    /// cache (that would deadlock), and should be quick. If it panics,
    /// nothing is removed and the panic reaches the caller; the cache stays
    /// usable. The key may be any type [`Equivalent`] to `K`, as for
    /// [`get`](Self::get).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::new();
    /// cache.insert("a", 1);
    /// assert_eq!(cache.remove_if("a", |v| *v > 1), None);
    /// assert_eq!(cache.remove_if("a", |v| *v == 1), Some(1));
    /// assert!(!cache.contains_key("a"));
    /// ```
    pub fn remove_if<Q>(&self, key: &Q, pred: impl FnOnce(&V) -> bool) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let (hash, index) = self.locate(key);
        let now = || self.inner.shards.clock.now();
        let keep = self.inner.shards.keep;
        let removed = with_locks!(&self.inner.shards.tables, locks => locks
            .write_existing(index)
            .and_then(|mut shard| shard.remove_if(hash, key, now, pred, &self.inner.hasher, keep)));
        self.departed(removed?)
    }

    /// Live entries, cloned, shard by shard. No lock is held between
    /// items; an entry inserted or removed while iterating may or may not
    /// be seen; no live entry present throughout is missed, and none is
    /// seen twice.
    ///
    /// Each shard is cloned out under its read lock (the same `Clone` a
    /// [`get`](Self::get) runs there), then yielded from a buffer, so the
    /// iterator holds one shard's entries at a time. It is not an access:
    /// a bounded cache's eviction order does not change, and expired
    /// entries are skipped but not removed.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// for i in 0..10 {
    ///     cache.insert(i, i * i);
    /// }
    /// let mut entries: Vec<(u32, u32)> = cache.iter().collect();
    /// entries.sort();
    /// assert_eq!(entries[3], (3, 9));
    /// assert_eq!(entries.len(), 10);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
    {
        Iter {
            shards: &self.inner.shards,
            next: 0,
            batch: Vec::new(),
        }
    }

    /// Removes every entry for which `keep` returns false (listener cause
    /// `Removed`), shard by shard; expired entries leave too (cause
    /// `Expired`), without asking `keep`. The listener has been told of
    /// every removal, and the values dropped, when `retain` returns.
    ///
    /// `keep` runs under each shard's write lock, so it must not use this
    /// cache (that would deadlock), and should be quick. If it panics,
    /// `keep` is not called again: what it already rejected is removed (and
    /// the listener told), every other entry stays, and the panic reaches
    /// the caller. Not an access: the entries kept keep their place in a
    /// bounded cache's eviction order.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// for i in 0..10 {
    ///     cache.insert(i, i);
    /// }
    /// cache.retain(|_key, value| value % 2 == 0);
    /// assert_eq!(cache.len(), 5);
    /// assert_eq!(cache.get(&3), None);
    /// assert_eq!(cache.get(&4), Some(4));
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let shards = &*self.inner.shards;
        let now = || shards.clock.now();
        let mut first_panic = None;
        with_locks!(&shards.tables, locks => {
            for index in 0..locks.len() {
                // Declared before the guard: if `keep` panics, what it
                // rejected already is still told, after unlocking.
                let mut out = Departures::default();
                let panic = match locks.write_existing(index) {
                    Some(mut shard) => shard.retain(now, &mut keep, shards.keep, &mut out),
                    None => continue,
                };
                let told = deliver(shards.listener.as_ref(), out);
                // `keep`'s panic wins: it is never called again.
                resume(panic);
                first_panic = first_panic.or(told);
            }
        });
        resume(first_panic);
    }

    /// Changes the bound on the total weight; once it returns,
    /// [`weighted_size`](Self::weighted_size)` <= max`. Shrinking evicts,
    /// shard by shard, what the policy would evict for an insert
    /// (listener cause `Evicted`, or `Expired` for an expired entry);
    /// growing lets the cache fill further. The shard count stays what the
    /// cache was built with (see [`CacheBuilder::shards`]), so a cache
    /// grown far past its first bound keeps few shards; each shard's share
    /// is split as at build time. Concurrent calls: the last to store its
    /// bound wins.
    ///
    /// # Panics
    ///
    /// On an unbounded cache (built without
    /// [`max_capacity`](CacheBuilder::max_capacity) or a
    /// [`weigher`](CacheBuilder::weigher)): it has no policy to evict with.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).build();
    /// for i in 0..100 {
    ///     cache.insert(i, i);
    /// }
    /// cache.set_max_capacity(10);
    /// assert!(cache.weighted_size() <= 10);
    /// assert_eq!(cache.max_capacity(), Some(10));
    /// ```
    pub fn set_max_capacity(&self, max: u64) {
        let shards = &*self.inner.shards;
        let (Tables::Bounded(locks), true) = (&shards.tables, self.inner.bounded) else {
            panic!(
                "shardcache: set_max_capacity on an unbounded cache; build it with max_capacity"
            );
        };
        shards.max_capacity.store(max, Ordering::Relaxed);
        shards.capped.store(true, Ordering::Release);
        let unit = self.inner.weigher.is_none();
        let mut first_panic = None;
        for index in 0..locks.len() {
            let mut out = Departures::default();
            {
                // Allocates a shard never written yet: its share must
                // change too.
                let mut shard = locks.write(index);
                // Read under the lock: with calls racing, every shard ends
                // with the share of the last bound stored.
                let max = shards.max_capacity.load(Ordering::Relaxed);
                let share = share(max, locks.len(), index);
                let now = || shards.clock.now();
                shard.set_capacity(share, unit, &self.inner.hasher, now, &mut out);
            }
            first_panic = first_panic.or(deliver(shards.listener.as_ref(), out));
        }
        resume(first_panic);
    }

    /// The second look of a caller that missed `key` in
    /// `get_or_insert_with`, under the shard's write lock: the value if
    /// someone inserted it meanwhile, the flight to wait for if someone is
    /// loading it, or a new flight for this caller to lead.
    pub(crate) fn join(&self, hash: u64, index: usize, key: &K) -> Join<V>
    where
        K: Clone,
    {
        let now = || self.inner.shards.clock.now();
        with_locks!(&self.inner.shards.tables, locks => {
            let mut shard = locks.write(index);
            if let Lookup::Live(value) = shard.access(hash, key, now, |value, _| value.clone()) {
                return Join::Hit(value);
            }
            if let Some(flight) = shard.loading().find(hash, key) {
                return Join::Wait(flight);
            }
            let flight = Arc::new(Flight::new());
            let copy = key.clone();
            shard
                .loading_mut()
                .insert(hash, copy, Arc::clone(&flight), &self.inner.hasher);
            Join::Lead(flight)
        })
    }

    /// Whether the cache was built with `refresh_after`.
    #[inline]
    pub(crate) fn refreshes(&self) -> bool {
        self.inner.refresh != 0
    }

    /// A loading method's lookup in a cache with `refresh_after`: the live
    /// value, and whether this caller claimed its refresh (it was stale),
    /// under one read lock and one probe, which finds the value and its
    /// refresh time together. `Eq` runs before anything is cloned or
    /// claimed, and the claim comes after the clone: a panic of either
    /// leaves no clone under the lock and no claim that nobody refreshes.
    pub(crate) fn lookup_claiming(&self, hash: u64, index: usize, key: &K) -> Option<(V, bool)> {
        let shards = &*self.inner.shards;
        let now = shards.clock.now();
        let read = |value: &V, at: Option<&std::sync::atomic::AtomicU64>| {
            let value = value.clone();
            (value, at.is_some_and(|at| refresh::claim(at, now)))
        };
        let found = with_locks!(&shards.tables, locks => match locks.read(index) {
            Some(shard) => shard.access(hash, key, || now, read),
            None => Lookup::Missing,
        });
        // The tail of `lookup_at`, written again: a helper shared by both
        // cost the plain `get` 2 instructions (`compare --callgrind`).
        let result = match found {
            Lookup::Live(found) => Some(found),
            Lookup::Missing => None,
            Lookup::Expired => {
                self.remove_expired_entry(index, hash, key);
                None
            }
        };
        if self.inner.record_stats {
            shards.reads.record(result.is_some());
        }
        result
    }

    /// The second step of a refresh, under the shard's write lock: a new
    /// flight for the caller that claimed it, or `None` (it returns the
    /// old value) if the entry is no longer the one claimed (written or
    /// removed since), or if a load or `compute` of the key runs: then the
    /// claim is given back, for a later hit.
    pub(crate) fn begin_refresh(&self, hash: u64, index: usize, key: &K) -> Option<Arc<Flight<V>>>
    where
        K: Clone,
    {
        with_locks!(&self.inner.shards.tables, locks => {
            let mut shard = locks.write(index);
            let claimed = shard
                .refresh_at(hash, key)
                .is_some_and(|at| at.load(std::sync::atomic::Ordering::Relaxed) == NEVER);
            if !claimed {
                return None;
            }
            if shard.loading().find(hash, key).is_some() {
                refresh::retry(&*shard, hash, key);
                return None;
            }
            let flight = Arc::new(Flight::new());
            let copy = key.clone();
            shard
                .loading_mut()
                .insert(hash, copy, Arc::clone(&flight), &self.inner.hasher);
            Some(flight)
        })
    }

    /// The first step of a `compute` of `key`, under the shard's write
    /// lock: the flight to wait for if the key is loading or computing,
    /// else a new flight for this caller and a clone of the live value. An
    /// expired entry met here is taken out, to be handed to the listener
    /// (cause `Expired`) by the caller, once it holds its flight's guard.
    pub(crate) fn begin_compute(
        &self,
        hash: u64,
        index: usize,
        key: &K,
    ) -> (Begin<V>, Option<(K, V)>)
    where
        K: Clone,
    {
        let clock = &self.inner.shards.clock;
        let mut expired = None;
        let begun = with_locks!(&self.inner.shards.tables, locks => {
            let mut shard = locks.write(index);
            match shard.loading().find(hash, key) {
                Some(flight) => Begin::Wait(flight),
                None => {
                    let now = || clock.now();
                    let current = match shard.access(hash, key, now, |value, _| value.clone()) {
                        Lookup::Live(value) => Some(value),
                        Lookup::Missing => None,
                        Lookup::Expired => {
                            let (now, keep) = (clock.now(), self.inner.shards.keep);
                            expired = shard.remove_if_expired(hash, key, now, &self.inner.hasher, keep);
                            None
                        }
                    };
                    let flight = Arc::new(Flight::new());
                    let copy = key.clone();
                    shard
                        .loading_mut()
                        .insert(hash, copy, Arc::clone(&flight), &self.inner.hasher);
                    Begin::Lead(flight, current)
                }
            }
        });
        if let (Begin::Lead(_, current), true) = (&begun, self.inner.record_stats) {
            self.inner.shards.reads.record(current.is_some());
        }
        (begun, expired)
    }

    /// The last step of a load or a `compute`, under one write lock: takes
    /// `flight` out of the shard and applies `action` (a load's is `Put`
    /// of the loaded value, with its TTL as `insert` computes it), unless
    /// an insert, `remove` or `clear` of the key came while it ran (then it
    /// stores nothing: the load or compute happened just before that
    /// write). Returns the listener's first panic, for the caller to
    /// resume after waking the waiters.
    pub(crate) fn settle(
        &self,
        hash: u64,
        index: usize,
        key: K,
        action: Compute<V>,
        flight: &Arc<Flight<V>>,
    ) -> Option<Panic> {
        with_locks!(&self.inner.shards.tables, locks => {
            self.settle_in(locks, hash, index, key, action, flight)
        })
    }

    /// [`settle`](Self::settle), for either kind of shard.
    fn settle_in<T: Shard<K, V>>(
        &self,
        locks: &ShardLocks<T>,
        hash: u64,
        index: usize,
        key: K,
        action: Compute<V>,
        flight: &Arc<Flight<V>>,
    ) -> Option<Panic> {
        // User code (`expire_after`, the weigher) runs before the lock.
        let meta = match &action {
            Compute::Put(value) => self.meta::<T>(&key, value, self.deadline_for(&key, value)),
            Compute::Keep | Compute::Remove => Meta {
                deadline: NEVER,
                weight: 1,
            },
        };
        let clock = &self.inner.shards.clock;
        let now = || clock.now();
        let mut out = T::Out::default();
        let mut removed = None;
        let mut pending = None;
        let mut shard = locks.write(index);
        let copy = shard.loading_mut().remove(hash, flight);
        if !flight.is_superseded() {
            match action {
                Compute::Put(value) => {
                    pending = Some((key, value));
                    shard.insert(hash, &mut pending, meta, &self.inner.hasher, now, &mut out);
                }
                Compute::Remove => {
                    let keep = self.inner.shards.keep;
                    removed = shard.remove(hash, &key, now, &self.inner.hasher, keep);
                }
                Compute::Keep => {}
            }
        }
        drop(shard);
        drop((copy, pending));
        let listener = self.inner.shards.listener.as_ref();
        let first = out.deliver(listener);
        let removed = removed.map(|removed| match removed {
            Removed::Live(key, value) => (key, value, RemovalCause::Removed),
            Removed::Expired(key, value) => (key, value, RemovalCause::Expired),
        });
        first.or(deliver(listener, removed))
    }

    /// Hands an entry that a `compute` found expired to the listener.
    pub(crate) fn depart_expired(&self, expired: Option<(K, V)>) -> Option<Panic> {
        let expired = expired.map(|(key, value)| (key, value, RemovalCause::Expired));
        deliver(self.inner.shards.listener.as_ref(), expired)
    }

    /// Ends a failed, panicked or cancelled load: takes `flight` out of the
    /// shard and wakes its waiters, who start over. A refresh of `refreshed`
    /// that nothing superseded makes its entry stale again, under the same
    /// lock, for the next hit to retry (see `src/refresh.rs`).
    pub(crate) fn abandon(
        &self,
        hash: u64,
        index: usize,
        flight: &Arc<Flight<V>>,
        refreshed: Option<&K>,
    ) {
        let copy = with_locks!(&self.inner.shards.tables, locks => {
            let mut shard = locks.write(index);
            if let Some(key) = refreshed.filter(|_| !flight.is_superseded()) {
                refresh::retry(&*shard, hash, key);
            }
            shard.loading_mut().remove(hash, flight)
        });
        drop(copy);
        flight.end(None);
    }

    /// The write half of the read-to-write upgrade. The read lock has been
    /// released, so another thread may have replaced or removed the entry:
    /// it is removed only if it is still there and still expired.
    fn remove_expired_entry<Q>(&self, index: usize, hash: u64, key: &Q)
    where
        Q: Equivalent<K> + ?Sized,
    {
        let now = self.inner.shards.clock.now();
        let keep = self.inner.shards.keep;
        let removed = with_locks!(&self.inner.shards.tables, locks => locks
            .write_existing(index)
            .and_then(|mut shard| shard.remove_if_expired(hash, key, now, &self.inner.hasher, keep)));
        // Dropped or handed to the listener after the write lock is
        // released.
        if let Some((key, value)) = removed {
            self.inner.shards.depart(key, value, RemovalCause::Expired);
        }
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Removes every expired entry now, one shard at a time, and returns how
    /// many were removed. The janitor does the same in the background.
    ///
    /// A table the sweep empties gives its memory back (down to the room
    /// [`initial_capacity`](CacheBuilder::initial_capacity) asked for). A
    /// table it leaves below a quarter full but not empty shrinks at its
    /// shard's next [`remove`](Self::remove): the sweep has no hasher to
    /// move the entries left with.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder().clock(clock.clone()).build();
    /// cache.insert_with_ttl(1, 1, Duration::from_secs(1));
    /// cache.insert(2, 2);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(cache.len(), 2); // expired entries count until removed
    /// assert_eq!(cache.remove_expired(), 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn remove_expired(&self) -> usize {
        let mut removed = 0;
        let mut first_panic = None;
        for index in 0..self.shard_count() {
            let (count, panic) = self.inner.shards.sweep(index);
            removed += count;
            first_panic = first_panic.or(panic);
        }
        resume(first_panic);
        removed
    }

    /// Sweeps one shard, exactly as one step of the janitor does. For the
    /// model checker in `loom-tests/`; not part of the public API.
    #[doc(hidden)]
    pub fn __sweep_shard(&self, index: usize) -> usize {
        let (removed, panic) = self.inner.shards.sweep(index);
        resume(panic);
        removed
    }

    /// Entries stored, summed over the shards. Expired entries count until
    /// they are removed (by a lookup, `remove`, `remove_expired` or the
    /// janitor). Under concurrent writes the sum is approximate.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// cache.insert(1, 1);
    /// cache.insert(2, 2);
    /// assert_eq!(cache.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.shards.len()
    }

    /// Whether no entries are stored (expired ones included).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// assert!(cache.is_empty());
    /// cache.insert(1, 1);
    /// assert!(!cache.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        with_locks!(&self.inner.shards.tables, locks => {
            (0..locks.len()).all(|index| locks.read(index).is_none_or(|shard| shard.len() == 0))
        })
    }

    /// The bound on the total weight set by
    /// [`CacheBuilder::max_capacity`], or `None` for an unbounded cache.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let bounded: Cache<u32, u32> = Cache::builder().max_capacity(1000).build();
    /// assert_eq!(bounded.max_capacity(), Some(1000));
    /// let unbounded: Cache<u32, u32> = Cache::new();
    /// assert_eq!(unbounded.max_capacity(), None);
    /// ```
    pub fn max_capacity(&self) -> Option<u64> {
        self.inner.shards.max_capacity()
    }

    /// The total weight stored, summed over the shards: the sum of the
    /// [weigher](CacheBuilder::weigher)'s results, or the number of entries
    /// when there is no weigher. Expired entries count until they are
    /// removed. Under concurrent writes the sum is approximate.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder()
    ///     .max_capacity(100)
    ///     .weigher(|_key, value: &String| value.len() as u32)
    ///     .build();
    /// cache.insert(1, "four".to_owned());
    /// cache.insert(2, "three".to_owned());
    /// assert_eq!(cache.weighted_size(), 9);
    /// ```
    pub fn weighted_size(&self) -> u64 {
        with_locks!(&self.inner.shards.tables, locks => (0..locks.len())
            .map(|index| locks.read(index).map_or(0, |shard| shard.weight()))
            .sum())
    }

    /// Removes every entry and frees the shards' tables, one shard at a
    /// time. Values are dropped after each shard's lock is released.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        let listener = self.inner.shards.listener.as_ref();
        let mut first_panic = None;
        with_locks!(&self.inner.shards.tables, locks => {
            for index in 0..locks.len() {
                let taken = locks
                    .write_existing(index)
                    .map(|mut shard| shard.take_all());
                let Some(taken) = taken else {
                    continue;
                };
                let all = taken.into_iter();
                let panic = deliver(listener, all.map(|(k, v)| (k, v, RemovalCause::Cleared)));
                first_panic = first_panic.or(panic);
            }
        });
        resume(first_panic);
    }

    /// Number of shards (a power of two).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().shards(16).build();
    /// assert_eq!(cache.shard_count(), 16);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.inner.shards.count()
    }

    /// The counters, summed over the shards; all zero unless the cache was
    /// built with [`record_stats(true)`](CacheBuilder::record_stats).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().record_stats(true).build();
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// assert_eq!(cache.stats().hits, 1);
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        if self.inner.record_stats {
            with_locks!(&self.inner.shards.tables, locks => {
                for index in 0..locks.len() {
                    if let Some(shard) = locks.read(index) {
                        stats += shard.counts();
                    }
                }
            });
            self.inner.shards.reads.add_to(&mut stats);
        }
        stats
    }

    /// Takes the cache off the janitor's list: if the janitor is sweeping
    /// it right now, waits for that sweep to end, so that once `close`
    /// returns the janitor never touches the cache again (and calls its
    /// listener no more). If this was the last cache with a cleanup
    /// interval, the janitor thread is stopped and joined. Idempotent;
    /// the cache keeps working, expired entries are then removed lazily or
    /// by [`remove_expired`](Self::remove_expired). It closes the cache for
    /// every handle (every [`clone`](Clone::clone) of it); dropping the last
    /// handle does the same.
    ///
    /// Do not call it (or drop the cache) while holding a lock that this
    /// cache's listener, or the `Drop` of its keys and values, may take:
    /// the sweep `close` waits for may be waiting for that lock. On the
    /// janitor thread itself (from a listener) it waits for nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .cleanup_interval(Duration::from_millis(10))
    ///     .build();
    /// cache.close();
    /// cache.close();
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// ```
    pub fn close(&self) {
        self.inner.janitor.stop();
    }
}

impl<K, V> Shards<K, V> {
    /// Hands one entry that left to the listener, or drops it. Call with no
    /// lock held.
    fn depart(&self, key: K, value: V, cause: RemovalCause) {
        resume(deliver(self.listener.as_ref(), [(key, value, cause)]));
    }

    /// The bound on the total weight, if any.
    fn max_capacity(&self) -> Option<u64> {
        let capped = self.capped.load(Ordering::Acquire);
        capped.then(|| self.max_capacity.load(Ordering::Relaxed))
    }

    /// Number of shards.
    #[inline]
    fn count(&self) -> usize {
        with_locks!(&self.tables, locks => locks.len())
    }

    /// Entries stored, summed over the shards.
    fn len(&self) -> usize {
        with_locks!(&self.tables, locks => {
            (0..locks.len())
                .map(|index| locks.read(index).map_or(0, |shard| shard.len()))
                .sum()
        })
    }
}

impl<K, V> Sweep for Shards<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn steps(&self) -> usize {
        self.count()
    }

    /// One sweep step, on the janitor thread: a panic of the listener is
    /// dropped (the panic hook has reported it), so the janitor keeps going.
    fn sweep_step(&self, index: usize) -> usize {
        let (removed, _panic) = self.sweep(index);
        removed
    }
}

impl<K, V> Shards<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Finds expired entries under the read lock, so readers are not blocked
    /// when there are none; removes them under the write lock with a fresh
    /// check; hands them to the listener (or drops them) after releasing it.
    /// Returns how many it removed and the listener's first panic.
    fn sweep(&self, index: usize) -> (usize, Option<Panic>) {
        let now = with_locks!(&self.tables, locks => {
            let Some(shard) = locks.read(index) else {
                return (0, None);
            };
            if !shard.may_expire() {
                return (0, None);
            }
            let now = self.clock.now();
            if !shard.has_expired(now) {
                return (0, None);
            }
            now
        });
        let removed: Vec<(K, V)> =
            with_locks!(&self.tables, locks => locks.write(index).remove_expired(now, self.keep));
        let count = removed.len();
        let expired = removed
            .into_iter()
            .map(|(k, v)| (k, v, RemovalCause::Expired));
        (count, deliver(self.listener.as_ref(), expired))
    }
}

/// The iterator of [`Cache::iter`]: clones one shard's live entries at a
/// time, under its read lock, and yields them with no lock held.
struct Iter<'a, K, V> {
    shards: &'a Shards<K, V>,
    /// The next shard to clone.
    next: usize,
    /// The current shard's entries not yet yielded.
    batch: Vec<(K, V)>,
}

impl<K: Clone, V: Clone> Iterator for Iter<'_, K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(entry) = self.batch.pop() {
                return Some(entry);
            }
            let shards = self.shards;
            let index = self.next;
            if index == shards.count() {
                return None;
            }
            self.next += 1;
            let now = || shards.clock.now();
            // A shard never written has nothing to clone.
            with_locks!(&shards.tables, locks => if let Some(shard) = locks.read(index) {
                shard.collect_live(now, &mut self.batch);
            });
        }
    }
}

impl<K, V, S> Drop for Inner<K, V, S> {
    fn drop(&mut self) {
        // Stop the janitor before the shards go, so it never drops them.
        self.janitor.stop();
    }
}

/// A handle to the same cache, as moka's `Cache::clone`: an atomic
/// increment, no copy of any entry. Every handle sees every other's
/// writes; the cache (and its janitor) lives until the last handle is
/// dropped, and [`close`](Cache::close) on any handle closes it for all.
///
/// ```
/// use std::thread;
/// use shardcache::Cache;
///
/// let cache: Cache<u64, u64> = Cache::new();
/// let writer = {
///     let cache = cache.clone();
///     thread::spawn(move || cache.insert(1, 10))
/// };
/// writer.join().unwrap();
/// assert_eq!(cache.get(&1), Some(10));
/// ```
impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.inner.shards.len())
            .field("shards", &self.inner.shards.count())
            .field("max_capacity", &self.inner.shards.max_capacity())
            .field("default_ttl", &self.inner.default_ttl)
            .field("expire_after", &self.inner.expire_after.is_some())
            .field("time_to_idle", &Duration::from_nanos(self.inner.tti.tti))
            .field("clock", &self.inner.shards.clock)
            .field("janitor", &self.inner.janitor)
            .field("record_stats", &self.inner.record_stats)
            .finish_non_exhaustive()
    }
}

/// [`Cache::insert_at`] met a bounded shard: every caller sends a bounded
/// insert to `insert_bounded`, so this is a bug in the facade.
#[cold]
#[inline(never)]
fn bounded_insert_at() -> ! {
    unreachable!("shardcache: a bounded insert went through insert_at")
}
