//! [`CacheBuilder`]: every setting of a cache, validated where it is given.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Duration;

use crate::baseline::SingleLockCache;
use crate::cache::Cache;
use crate::clock::{Clock, ClockSource};
use crate::listener::{Listener, RemovalCause};
use crate::sync::Arc;

/// The most shards a cache can have.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

/// Default shard count of an unbounded cache: `256 * cores`, rounded up to
/// a power of two, at most 1024. [docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md) has the sweep this rule
/// comes from: readers never meet on a shard, but writers do, and two
/// threads at 50% writes gained up to a fifth from 128 to 512 shards on 2
/// cores while one thread lost 1-2%.
pub(crate) fn default_shards() -> usize {
    shards_per_core(256)
}

/// The most shards a bounded cache gets by default: `64 * cores`, rounded
/// up to a power of two, at most 1024. Fewer than the unbounded default:
/// each shard evicts on its own, and the finer the capacity is split the
/// sooner an unlucky shard evicts while others have room
/// (`docs/HITRATIO.md` was measured with this rule).
pub(crate) fn bounded_default_shards() -> usize {
    shards_per_core(64)
}

/// `per_core * cores`, rounded up to a power of two, at most 1024.
fn shards_per_core(per_core: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores
        .saturating_mul(per_core)
        .next_power_of_two()
        .clamp(1, 1024)
}

/// The fewest entries a bounded cache's default shard count leaves each
/// shard: the policy's small queue and its windows are fractions of a
/// shard (1% and 3% at first), and a shard much
/// smaller than this splits the capacity so finely that an unlucky shard
/// evicts while others have room ([docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md) has the measurements).
pub(crate) const MIN_SHARD_CAPACITY: u64 = 256;

/// The default shard count of a bounded cache: `default` (see
/// [`bounded_default_shards`]), or fewer so that each shard holds at least
/// [`MIN_SHARD_CAPACITY`].
pub(crate) fn bounded_shards(capacity: u64, default: usize) -> usize {
    let most = (capacity / MIN_SHARD_CAPACITY).clamp(1, default as u64);
    // The largest power of two at most `most`.
    1 << (u64::BITS - 1 - most.leading_zeros())
}

/// A weigher, shared by the cache.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// The TTL of an entry computed from it, shared by the cache.
pub(crate) type ExpireAfter<K, V> = Arc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;

/// Configures and builds a [`Cache`].
///
/// Every setting has a default: [`Cache::new`] is `Cache::builder().build()`.
///
/// ```
/// use std::time::Duration;
/// use shardcache::Cache;
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .shards(128)
///     .default_ttl(Duration::from_secs(300))
///     .cleanup_interval(Duration::from_secs(30))
///     .initial_capacity(10_000)
///     .build();
/// cache.insert("k".to_owned(), vec![1, 2, 3]);
/// assert_eq!(cache.get("k"), Some(vec![1, 2, 3]));
/// ```
pub struct CacheBuilder<K, V, S = ahash::RandomState> {
    /// Set by [`shards`](Self::shards); else derived at build time.
    pub(crate) shards: Option<usize>,
    pub(crate) max_capacity: Option<u64>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) default_ttl: Duration,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) time_to_idle: Option<Duration>,
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) cleanup_interval: Duration,
    pub(crate) initial_capacity: usize,
    pub(crate) hasher: S,
    pub(crate) clock: ClockSource,
    pub(crate) record_stats: bool,
    /// Set by the hidden [`__stripes`](Self::__stripes); else one per core.
    pub(crate) stripes: Option<usize>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> CacheBuilder<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: None,
            max_capacity: None,
            weigher: None,
            listener: None,
            default_ttl: Duration::ZERO,
            expire_after: None,
            time_to_idle: None,
            refresh_after: None,
            cleanup_interval: Duration::ZERO,
            initial_capacity: 0,
            hasher: ahash::RandomState::new(),
            clock: ClockSource::default(),
            record_stats: false,
            stripes: None,
            _types: PhantomData,
        }
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Number of shards, rounded up to a power of two.
    ///
    /// More shards mean fewer writers meeting on one lock, at a cost of 256
    /// bytes per shard (its 128-byte slot and its share of the reader
    /// counters) once a shard of its group of 16 is written, plus an empty
    /// table. The default is 256 per core, rounded up to a power of two, at
    /// most 1024; see [docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md). A bounded cache defaults to 64
    /// per core, or fewer so that each shard holds at least 256 units of
    /// [`max_capacity`](Self::max_capacity); setting `shards` overrides
    /// both.
    ///
    /// # Panics
    ///
    /// If `n` is 0 or more than 65536.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().shards(100).build();
    /// assert_eq!(cache.shard_count(), 128);
    /// ```
    pub fn shards(mut self, n: usize) -> Self {
        assert!(
            (1..=MAX_SHARDS).contains(&n),
            "shardcache: shards({n}) is out of range; use 1 to {MAX_SHARDS} \
             (it is rounded up to a power of two)"
        );
        self.shards = Some(n.next_power_of_two());
        self
    }

    /// Reader stripes of the shard locks, a power of two from 1 to 16,
    /// instead of one per core (at most 16). Hidden: for benchmarks and
    /// footprint tests that simulate another machine; the default is right
    /// for the machine the cache runs on.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// // A 128-core machine's lock layout, on any machine.
    /// let cache: Cache<u32, u32> = Cache::builder().shards(1024).__stripes(16).build();
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is not a power of two from 1 to 16.
    #[doc(hidden)]
    pub fn __stripes(mut self, n: usize) -> Self {
        let max = crate::locks::MAX_STRIPES;
        assert!(
            n.is_power_of_two() && n <= max,
            "shardcache: __stripes({n}) must be a power of two from 1 to {max}"
        );
        self.stripes = Some(n);
        self
    }

    /// Bounds the cache: after an insert returns, the total weight stored
    /// (see [`weigher`](Self::weigher); by default every entry weighs 1, so
    /// this is an entry count) is at most `max`. Unset, the default, the
    /// cache never evicts.
    ///
    /// Eviction is S3-FIFO ([docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md)): new keys pass through a small
    /// FIFO and stay only if read again, so a scan of one-time keys does not
    /// flush the keys that are read often. A hit costs at most a relaxed
    /// store to the entry's own frequency counter. Expired entries are
    /// evicted first whenever the policy meets them.
    ///
    /// The capacity is split exactly over the shards (the first
    /// `max % shards` hold one unit more), and each shard evicts on its
    /// own. So an entry heavier than its shard's share, about
    /// `max / shard_count()`, is not stored at all (it counts as an
    /// eviction, and an older value under its key is removed), and the
    /// cache may evict while another shard has room. The default shard count
    /// of a bounded cache leaves each shard at least 256 units.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().max_capacity(1000).build();
    /// for key in 0..10_000 {
    ///     cache.insert(key, key);
    /// }
    /// assert!(cache.weighted_size() <= 1000);
    /// assert_eq!(cache.max_capacity(), Some(1000));
    /// ```
    pub fn max_capacity(mut self, max: u64) -> Self {
        self.max_capacity = Some(max);
        self
    }

    /// How much each entry counts against [`max_capacity`](Self::max_capacity)
    /// (its size in bytes, say). The default gives every entry weight 1.
    ///
    /// The weigher runs on every insert, before any lock is taken; if it
    /// panics, the insert does not happen and the cache is unchanged.
    ///
    /// Replacing a value keeps the entry's place in the eviction order. If
    /// the new value is heavier and its shard must make room, eviction
    /// proceeds in that order, so an entry that was next in line (never read
    /// since it came in) may be the one evicted, new value and all. A
    /// weigher without `max_capacity` makes a cache that tracks
    /// [`Cache::weighted_size`] and never evicts.
    ///
    /// A weight of 0 is allowed, as in quick_cache, and counts nothing
    /// against `max_capacity`: such entries never make the cache evict, so
    /// a cache whose entries all weigh 0 grows without bound
    /// (`max_capacity(10)` then holds a million entries). Among heavier
    /// entries the bound holds for those, and a weightless entry is evicted
    /// only if the policy meets it while making room for them, which
    /// nothing guarantees; it leaves when it expires, is removed or
    /// replaced. Return at least 1 for entries that must count.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<String, Vec<u8>> = Cache::builder()
    ///     .max_capacity(64 << 20) // 64 MiB of values
    ///     .weigher(|_key, value: &Vec<u8>| value.len().try_into().unwrap_or(u32::MAX))
    ///     .build();
    /// cache.insert("blob".to_owned(), vec![0; 1024]);
    /// assert_eq!(cache.weighted_size(), 1024);
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Time to live of entries inserted with [`Cache::insert`].
    /// `Duration::ZERO`, the default, means they never expire.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .default_ttl(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert(1, 1);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The TTL of an entry stored by [`insert`](Cache::insert) or by a
    /// loader (`get_or_insert_with` and the other loading methods),
    /// computed from the entry: `Some(ttl)` for this entry, `None` for the
    /// [default](Self::default_ttl). Use it when the lifetime comes with the
    /// data (an HTTP `max-age`, a token's expiry, a DNS record's TTL).
    ///
    /// [`insert_with_ttl`](Cache::insert_with_ttl) still wins: `f` is not
    /// called for it. `Some(ttl)` means what `insert_with_ttl(key, value,
    /// ttl)` means: `Duration::ZERO`, or a TTL too large for the clock,
    /// never expires. `f` runs on every such insert with no lock held,
    /// before the weigher; if it panics, nothing is stored and the panic
    /// reaches the caller (in a load, the waiting callers start over).
    /// A cache with neither this nor a default TTL never reads the clock
    /// on inserts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// #[derive(Clone)]
    /// struct Record { addr: [u8; 4], ttl_secs: u64 }
    ///
    /// let clock = ManualClock::new();
    /// let dns: Cache<&str, Record> = Cache::builder()
    ///     .expire_after(|_name, record: &Record| Some(Duration::from_secs(record.ttl_secs)))
    ///     .clock(clock.clone())
    ///     .build();
    /// dns.insert("short.example", Record { addr: [10, 0, 0, 1], ttl_secs: 30 });
    /// dns.insert("long.example", Record { addr: [10, 0, 0, 2], ttl_secs: 3600 });
    /// clock.advance(Duration::from_secs(60));
    /// assert!(dns.get("short.example").is_none());
    /// assert_eq!(dns.get("long.example").map(|r| r.addr), Some([10, 0, 0, 2]));
    /// ```
    pub fn expire_after(
        mut self,
        f: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expire_after = Some(Arc::new(f));
        self
    }

    /// An entry neither read nor written for `tti` expires (listener cause
    /// `Expired`), as a session does. With a TTL too (the default, or
    /// [`expire_after`](Self::expire_after)'s, or `insert_with_ttl`'s),
    /// whichever ends first.
    ///
    /// A read is a [`get`](Cache::get), a hit of a loading method
    /// ([`get_or_insert_with`](Cache::get_or_insert_with) and the others)
    /// or a [`compute`](Cache::compute); [`contains_key`](Cache::contains_key),
    /// [`iter`](Cache::iter), [`retain`](Cache::retain) and
    /// [`remove_if`](Cache::remove_if) are not, and keep nothing alive. A
    /// write (an insert, a load, a `compute` that stores) starts the idle
    /// time over, exactly.
    ///
    /// A read moves the entry's idle deadline in steps of `tti / 32` (at
    /// least 1 ms, or `tti` if it is shorter), so that a hot key read by
    /// every core is not written on every `get`: each thread stores into
    /// an entry at most once per step, and a read within a step of the
    /// last store writes nothing. An entry therefore expires no sooner than
    /// `tti` after its last read and at most one step later.
    ///
    /// `Duration::ZERO`, the default, or a `tti` too large for the clock,
    /// means entries never go idle. A cache built without it pays nothing
    /// for it; with it, every entry keeps two deadlines (16 bytes instead
    /// of 8) and reads the clock on every `get`. Idle entries are removed
    /// like expired ones: when looked up, by
    /// [`remove_expired`](Cache::remove_expired), or by the
    /// [janitor](Self::cleanup_interval).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let sessions: Cache<&str, u32> = Cache::builder()
    ///     .time_to_idle(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// sessions.insert("alice", 1);
    /// sessions.insert("bob", 2);
    /// for _ in 0..5 {
    ///     clock.advance(Duration::from_secs(50));
    ///     assert_eq!(sessions.get("alice"), Some(1)); // read: kept alive
    /// }
    /// assert!(sessions.get("bob").is_none()); // idle for 250 s
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.time_to_idle = Some(tti);
        self
    }

    /// With the loading methods ([`get_or_insert_with`](Cache::get_or_insert_with),
    /// [`try_get_or_insert_with`](Cache::try_get_or_insert_with) and their
    /// `_async` forms), a value stored more than `age` ago is reloaded by
    /// one caller while every other caller gets the old value at once, so a
    /// hot key is never missing while it reloads. The age counts from the
    /// last write of the entry (an insert, a load, a `compute` or a
    /// refresh).
    ///
    /// There is no executor here: the caller whose hit finds the value
    /// stale first runs the reload inline, with its own loader and no lock
    /// held, and gets the new value (or the loader's `Err`, or its panic);
    /// the callers that hit the key meanwhile get the old value without
    /// waiting. The reloaded value is stored as an insert would store it:
    /// a fresh TTL ([`expire_after`](Self::expire_after), else the
    /// default), the listener told `Replaced` once. A refresh that fails,
    /// panics or (async) is cancelled stores nothing: the old value stays
    /// until its TTL ends, and the next hit tries again. An `insert`,
    /// `remove` or `clear` of the key while it refreshes wins: the refresh
    /// stores nothing. A plain [`get`](Cache::get) never refreshes, and an
    /// expired entry is a miss (the caller loads and waits), not a refresh.
    ///
    /// `age` is useful below the TTL: with `age` at or above it the entry
    /// expires before it is ever stale, and refresh never happens.
    /// `Duration::ZERO`, the default, or an `age` too large for the clock,
    /// means no refresh. A cache built without it pays nothing for it;
    /// with it, every entry keeps one more `u64`, and writes read the
    /// clock (as with [`time_to_idle`](Self::time_to_idle), such a cache
    /// without a capacity gets bounded shards with no bound).
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let prices: Cache<&str, u32> = Cache::builder()
    ///     .default_ttl(Duration::from_secs(600))
    ///     .refresh_after(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// assert_eq!(prices.get_or_insert_with("apple", || 10), 10);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(prices.get_or_insert_with("apple", || unreachable!()), 10);
    /// clock.advance(Duration::from_secs(40)); // 70 s old: stale
    /// // This caller reloads; callers hitting it meanwhile would get 10.
    /// assert_eq!(prices.get_or_insert_with("apple", || 12), 12);
    /// assert_eq!(prices.get("apple"), Some(12));
    /// ```
    pub fn refresh_after(mut self, age: Duration) -> Self {
        self.refresh_after = Some(age);
        self
    }

    /// How often the background janitor sweeps expired entries out.
    /// `Duration::ZERO`, the default, registers nothing: expired entries are
    /// then removed only when looked up, removed, or by
    /// [`Cache::remove_expired`].
    ///
    /// One janitor thread (`shardcache-janitor`) serves every cache of the
    /// process that has a cleanup interval, each on its own interval: it
    /// starts with the first such cache and is stopped and joined when the
    /// last one is closed or dropped, so 2000 caches cost one thread, not
    /// 2000.
    ///
    /// Within each interval the janitor visits every shard of the cache
    /// once, one at a time, spread evenly over the interval: it wakes
    /// `shards` times per interval for this cache, so an interval of a few
    /// milliseconds keeps the thread busy. A visit to a shard with no
    /// expired entry takes only its read lock. Visits run one at a time on
    /// the shared thread: a slow removal listener delays the sweeps of every
    /// other cache (nothing is skipped, and readers never see an expired
    /// entry meanwhile), so a listener should hand slow work elsewhere.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::Cache;
    ///
    /// let sessions: Cache<u32, u32> = Cache::builder()
    ///     .default_ttl(Duration::from_secs(60))
    ///     .cleanup_interval(Duration::from_secs(10))
    ///     .build();
    /// let tokens: Cache<u32, u32> = Cache::builder()
    ///     .cleanup_interval(Duration::from_millis(500))
    ///     .build(); // swept by the same thread, on its own interval
    /// sessions.close(); // the janitor no longer sweeps it; dropping does it too
    /// drop(tokens); // the last one: the janitor thread is stopped and joined
    /// ```
    pub fn cleanup_interval(mut self, every: Duration) -> Self {
        self.cleanup_interval = every;
        self
    }

    /// Room for `n` entries without growing, spread evenly over the shards
    /// (in the table for entries with a TTL if a default TTL is set, else
    /// in the one for entries without). A bounded cache reserves at most its
    /// capacity.
    ///
    /// The room stays: tables shrink when removals leave them below a
    /// quarter full, but never below this.
    ///
    /// # Panics
    ///
    /// [`build`](Self::build) panics with a clear message, instead of the
    /// process aborting, if the room cannot be allocated.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().initial_capacity(1 << 20).build();
    /// assert!(cache.is_empty());
    /// ```
    pub fn initial_capacity(mut self, n: usize) -> Self {
        self.initial_capacity = n;
        self
    }

    /// The hasher. Keys are hashed once per operation with it (a lookup
    /// that finds its entry expired hashes the key once more, to remove the
    /// entry under the write lock); the hash picks the shard and the slot
    /// within it. The default is `ahash::RandomState`.
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32, RandomState> = Cache::builder()
    ///     .hasher(RandomState::new())
    ///     .build();
    /// cache.insert(1, 2);
    /// assert_eq!(cache.get(&1), Some(2));
    /// ```
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            shards: self.shards,
            max_capacity: self.max_capacity,
            weigher: self.weigher,
            listener: self.listener,
            default_ttl: self.default_ttl,
            expire_after: self.expire_after,
            time_to_idle: self.time_to_idle,
            refresh_after: self.refresh_after,
            cleanup_interval: self.cleanup_interval,
            initial_capacity: self.initial_capacity,
            hasher,
            clock: self.clock,
            record_stats: self.record_stats,
            stripes: self.stripes,
            _types: PhantomData,
        }
    }

    /// The clock that expiry reads. The default is [`CoarseClock`](crate::CoarseClock);
    /// tests pass a [`ManualClock`](crate::ManualClock).
    ///
    /// The clock is read while a shard lock is held, so it must be cheap and
    /// must not use the cache.
    ///
    /// ```
    /// use shardcache::{Cache, ManualClock};
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().clock(ManualClock::new()).build();
    /// # let _ = cache;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = ClockSource::Custom(Arc::new(clock));
        self
    }

    /// Whether to count hits, misses, inserts, removals and expirations for
    /// [`Cache::stats`]. Off by default: counting hits costs every `get` an
    /// atomic increment (see [docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md) for the measured cost).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().record_stats(true).build();
    /// cache.get(&1);
    /// assert_eq!(cache.stats().misses, 1);
    /// ```
    pub fn record_stats(mut self, enabled: bool) -> Self {
        self.record_stats = enabled;
        self
    }

    /// Calls `listener` once for every entry that leaves the cache, with its
    /// key, its value and the [`RemovalCause`]: expired (however it was
    /// found), evicted, replaced by an insert, removed, or cleared. Without a
    /// listener, entries that leave are simply dropped, at no cost.
    ///
    /// The listener runs after the shard lock is released, on the thread
    /// that did the work: the caller of `insert`, `get`, `remove`, `clear`
    /// or `remove_expired`, or the janitor thread for its sweeps. It may use
    /// the cache. An insert that replaces a value tells the listener the key
    /// it was given (equal to the stored one) and the old value; `remove`
    /// clones the value it returns to tell the listener. An insert over an
    /// entry that had expired but was not yet removed reports `Replaced`.
    ///
    /// If the listener panics, the other entries of the same operation are
    /// still told, then the first panic resumes in the caller, with the
    /// cache consistent and the operation complete. On the janitor thread
    /// the panic is reported by the panic hook, as usual, and the janitor
    /// carries on.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use shardcache::{Cache, RemovalCause};
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&evicted);
    /// let cache: Cache<u32, String> = Cache::builder()
    ///     .max_capacity(100)
    ///     .removal_listener(move |_key, _value, cause| {
    ///         if cause == RemovalCause::Evicted {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build();
    /// for key in 0..1000 {
    ///     cache.insert(key, key.to_string());
    /// }
    /// assert_eq!(evicted.load(Ordering::Relaxed), 900);
    /// ```
    pub fn removal_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The bound on the total weight, if the cache is to track weights:
    /// `max_capacity`, or no bound at all for a weigher without one.
    pub(crate) fn bound(&self) -> Option<u64> {
        match (self.max_capacity, &self.weigher) {
            (Some(max), _) => Some(max),
            (None, Some(_)) => Some(u64::MAX),
            (None, None) => None,
        }
    }

    /// The shard count to build with.
    pub(crate) fn shard_count(&self) -> usize {
        match (self.shards, self.max_capacity) {
            (Some(n), _) => n,
            (None, Some(max)) => bounded_shards(max, bounded_default_shards()),
            (None, None) => default_shards(),
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Builds the cache and, if a cleanup interval is set, registers it with
    /// the process's janitor thread (starting the thread if no other cache
    /// has).
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::builder().build();
    /// cache.insert("a", 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn build(self) -> Cache<K, V, S> {
        Cache::from_builder(self)
    }

    /// Builds the single-lock baseline with the same settings (the shard
    /// count is ignored: it has one lock and one map), for code that
    /// configures both designs from one builder.
    /// [`SingleLockCache::builder`] offers only the settings the baseline
    /// has.
    ///
    /// # Panics
    ///
    /// If [`max_capacity`](Self::max_capacity), [`weigher`](Self::weigher),
    /// [`removal_listener`](Self::removal_listener) or
    /// [`expire_after`](Self::expire_after) is set: the baseline
    /// is the unbounded seed design this crate replaces.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let before = Cache::<u32, u32>::builder().build_single_lock();
    /// before.insert(1, 1);
    /// assert_eq!(before.get(&1), Some(1));
    /// ```
    pub fn build_single_lock(self) -> SingleLockCache<K, V, S>
    where
        S: Send + Sync + 'static,
    {
        assert!(
            self.bound().is_none()
                && self.listener.is_none()
                && self.expire_after.is_none()
                && self.time_to_idle.is_none()
                && self.refresh_after.is_none(),
            "shardcache: SingleLockCache is the unbounded seed design; \
             build_single_lock() takes no max_capacity, weigher, removal_listener, expire_after, \
             time_to_idle or refresh_after"
        );
        SingleLockCache::from_builder(self)
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("shards", &self.shard_count())
            .field("max_capacity", &self.max_capacity)
            .field("weigher", &self.weigher.is_some())
            .field("removal_listener", &self.listener.is_some())
            .field("default_ttl", &self.default_ttl)
            .field("expire_after", &self.expire_after.is_some())
            .field("time_to_idle", &self.time_to_idle)
            .field("refresh_after", &self.refresh_after)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("initial_capacity", &self.initial_capacity)
            .field("clock", &self.clock)
            .field("record_stats", &self.record_stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shards_is_a_power_of_two_in_range() {
        for n in [default_shards(), bounded_default_shards()] {
            assert!(n.is_power_of_two() && (1..=1024).contains(&n));
        }
        assert!(bounded_default_shards() <= default_shards());
    }

    #[test]
    #[should_panic(expected = "shards(0) is out of range; use 1 to 65536")]
    fn zero_shards_panics_with_a_clear_message() {
        let _ = CacheBuilder::<u8, u8>::new().shards(0);
    }

    #[test]
    #[should_panic(expected = "shards(65537) is out of range")]
    fn too_many_shards_panics_with_a_clear_message() {
        let _ = CacheBuilder::<u8, u8>::new().shards(MAX_SHARDS + 1);
    }

    #[test]
    fn shards_round_up() {
        let count = |n| CacheBuilder::<u8, u8>::new().shards(n).shard_count();
        assert_eq!(count(1), 1);
        assert_eq!(count(3), 4);
        assert_eq!(count(MAX_SHARDS), MAX_SHARDS);
    }

    #[test]
    fn bounded_caches_leave_each_shard_enough_room() {
        assert_eq!(bounded_shards(0, 128), 1);
        assert_eq!(bounded_shards(100, 128), 1);
        assert_eq!(bounded_shards(511, 128), 1);
        assert_eq!(bounded_shards(512, 128), 2);
        assert_eq!(bounded_shards(10_000, 128), 32);
        assert_eq!(bounded_shards(1 << 20, 128), 128);
        assert_eq!(bounded_shards(u64::MAX, 1024), 1024);
        let built = |b: CacheBuilder<u8, u8>| b.shard_count();
        assert_eq!(built(CacheBuilder::new().max_capacity(100)), 1);
        assert_eq!(
            built(CacheBuilder::new().max_capacity(100).shards(64)),
            64,
            "shards() overrides"
        );
        assert_eq!(
            built(CacheBuilder::new().weigher(|_, _| 1)),
            default_shards(),
            "a weigher alone does not bound the cache"
        );
    }
}
