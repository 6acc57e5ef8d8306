//! # shardcache
//!
//! A sharded, lock-striped, in-memory cache for hot read paths: many threads
//! reading one cache on every request.
//!
//! ```
//! use std::time::Duration;
//! use shardcache::Cache;
//!
//! let cache: Cache<String, u64> = Cache::builder()
//!     .default_ttl(Duration::from_secs(60))
//!     .build();
//! cache.insert("answer".to_owned(), 42);
//! assert_eq!(cache.get("answer"), Some(42));
//! ```
//!
//! ## How it works
//!
//! A key is hashed once (twice only when a lookup finds its entry expired
//! and removes it). Bits of that hash pick one of N shards (a power of
//! two); each shard is a reader-writer lock around its own hash tables, and
//! the same hash finds the slot in the table. The locks count their readers
//! per thread stripe, so a `get` writes only a cache line of its own thread's
//! stripe: threads reading the same shard, even the same key, do not slow
//! each other down. A `get` takes one read lock, clones the value out, and
//! releases the lock; no guard ever escapes to your code, so you cannot
//! deadlock by holding one. Writes are exclusive per shard. See
//! [docs/DESIGN.md](https://github.com/shardcache/shardcache/blob/main/docs/DESIGN.md) for the numbers behind each choice.
//!
//! ## Expiry
//!
//! Each entry may carry a time to live ([`Cache::insert_with_ttl`], or
//! [`CacheBuilder::default_ttl`] for [`Cache::insert`]). An entry inserted at
//! `T` with TTL `t` is live while `now <= T + t`. A zero TTL, or one too
//! large for the clock, means it never expires. Expired entries are never
//! returned; they are removed when looked up, by [`Cache::remove_expired`],
//! or by the background janitor ([`CacheBuilder::cleanup_interval`]), which
//! sweeps one shard at a time. With [`CacheBuilder::time_to_idle`], an
//! entry neither read nor written for that long expires too, whichever
//! ends first.
//!
//! ## Capacity
//!
//! A cache is unbounded unless built with [`CacheBuilder::max_capacity`]
//! (an entry count, or any weight a [`CacheBuilder::weigher`] defines).
//! A bounded cache evicts with an S3-FIFO-based policy in each shard: a hit
//! costs at most a relaxed store to the entry's own counter, all eviction
//! work happens in `insert`, and [docs/HITRATIO.md](https://github.com/shardcache/shardcache/blob/main/docs/HITRATIO.md) measures its hit ratio
//! against moka, quick_cache and the optimal policy.
//! [`Cache::set_max_capacity`] changes the bound at run time.
//!
//! ## Many entries at once
//!
//! [`Cache::iter`] clones the live entries out one shard at a time, with
//! no lock held between items; [`Cache::retain`] and [`Cache::remove_if`]
//! remove what a closure rejects. Neither counts as an access, so a bounded
//! cache's eviction order does not change.
//!
//! ## Loading and listening
//!
//! [`Cache::get_or_insert_with`] loads a missing key once, however many
//! threads miss it at the same time (and, with the `async` feature,
//! [`Cache::get_or_insert_with_async`] from a future). A
//! [removal listener](CacheBuilder::removal_listener) is told of every
//! entry that leaves, with its [`RemovalCause`]. With
//! [`CacheBuilder::refresh_after`], a loading hit on a value older than
//! that reloads it in one caller while every other caller gets the old
//! value at once. [`Cache::compute`] replaces one key's value atomically
//! from the live one (a counter, a list to append to).
//!
//! ## Time
//!
//! Expiry reads a [`Clock`], and only for entries that can expire. The
//! default [`CoarseClock`] costs one atomic load per read (1 ms resolution);
//! tests inject a [`ManualClock`] and move time by hand. Entries inserted
//! without a TTL are stored without a deadline, so a cache that never uses
//! TTLs pays nothing for them.
//!
//! ## Failure
//!
//! Your `Eq` and `Clone` (and `Hash`, when a table grows or a bounded
//! cache evicts), and the closures of `retain` and `remove_if`, run while a
//! shard lock is held, so they must not use the same cache: a `Clone` that reads the cache can deadlock against a
//! waiting writer, as with any reader-writer lock. `Drop`, the removal
//! listener, loaders and weighers are safe: they run with no lock held, and
//! replaced, removed and evicted values are dropped after the lock is
//! released.
//!
//! Locks never poison. A panic in your `Hash`, `Eq` or `Clone` unwinds out
//! of the call that ran it and leaves the cache usable, with every entry
//! either fully inserted or not at all. (A `Hash` that panics while a shard
//! grows may make that shard forget entries; a cache may always forget.)
//!
//! ## Lifecycle
//!
//! One janitor thread (`shardcache-janitor`) sweeps every cache of the
//! process that has a cleanup interval. A `Cache` is a handle: its clones
//! share one cache. [`Cache::close`] on any handle, or dropping the last
//! handle, takes the cache off the janitor's list (waiting out a sweep of it
//! in progress); the last cache to leave stops and joins the thread. The
//! janitor holds only weak references to the shards.
//!
//! ## The baseline
//!
//! [`baseline::SingleLockCache`] is the design this crate replaces: one lock,
//! one map. It has the same API, and exists so benchmarks can show what
//! sharding buys.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod baseline;
mod builder;
mod cache;
mod clock;
mod compute;
mod cycles;
mod janitor;
mod listener;
mod loading;
mod locks;
mod refresh;
mod shard;
mod stats;
mod sync;
#[cfg(any(feature = "async", test))]
mod waiters;

pub use builder::CacheBuilder;
pub use cache::Cache;
pub use clock::{Clock, CoarseClock, ManualClock};
pub use compute::Compute;
pub use listener::RemovalCause;
pub use stats::Stats;

/// The trait of keys that [`Cache::get`], [`Cache::contains_key`],
/// [`Cache::remove`] and [`Cache::remove_if`] accept: any `Q` that hashes
/// like a `K` and compares equal to it. It is the `equivalent` crate's trait
/// (through hashbrown), the one `indexmap`, `quick_cache` and hashbrown's
/// maps take, so one impl serves them all. Every `Q` that `K` borrows as
/// (`&str` for `String`) has it already.
///
/// ```
/// use std::hash::{Hash, Hasher};
/// use shardcache::{Cache, Equivalent};
///
/// #[derive(Hash, PartialEq, Eq)]
/// struct Route { host: String, port: u16 }
///
/// /// A borrowed `Route`: hashes exactly as `Route` does.
/// struct RouteRef<'a> { host: &'a str, port: u16 }
///
/// impl Hash for RouteRef<'_> {
///     fn hash<H: Hasher>(&self, state: &mut H) {
///         self.host.hash(state); // as the derive hashes `Route`'s fields
///         self.port.hash(state);
///     }
/// }
///
/// impl Equivalent<Route> for RouteRef<'_> {
///     fn equivalent(&self, key: &Route) -> bool {
///         self.host == key.host && self.port == key.port
///     }
/// }
///
/// let cache: Cache<Route, u32> = Cache::new();
/// cache.insert(Route { host: "a.example".into(), port: 443 }, 1);
/// // No `String` is allocated to look it up.
/// assert_eq!(cache.get(&RouteRef { host: "a.example", port: 443 }), Some(1));
/// ```
pub use hashbrown::Equivalent;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
