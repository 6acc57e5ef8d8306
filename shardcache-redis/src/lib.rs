//! A near cache: a bounded in-process [`shardcache::Cache`] (L1) in front of
//! a shared Redis (L2), kept coherent across a fleet by Redis's
//! server-assisted client-side caching (`CLIENT TRACKING`, Redis 6+).
//!
//! A service that runs as several instances gives each one a
//! [`NearCache`] over the same Redis. A read is answered from memory when
//! the instance has the key (nanoseconds), else from Redis (one round
//! trip, one `GET` per key per instance at a time), else from the loader
//! you pass (the source of truth), whose value goes to Redis for the other
//! instances. A write goes to Redis first; Redis then tells every instance
//! that read the key to drop it.
//!
//! ```no_run
//! # async fn run() -> Result<(), shardcache_redis::Error> {
//! use std::time::Duration;
//! use shardcache_redis::NearCache;
//!
//! let cache: NearCache<Vec<String>> = NearCache::builder("redis://127.0.0.1:6379")
//!     .max_capacity(50_000)
//!     .default_ttl(Duration::from_secs(600))
//!     .build()
//!     .await?;
//! let roles = cache
//!     .get_or_load("roles:ada", || async {
//!         // The database, only when neither tier has the key.
//!         Ok::<_, std::io::Error>(vec!["admin".to_owned()])
//!     })
//!     .await?;
//! assert_eq!(roles[0], "admin");
//! // Every instance that cached "roles:ada" drops it.
//! cache.set("roles:ada", &vec!["reader".to_owned()]).await?;
//! # Ok(()) }
//! ```
//!
//! # Protocol
//!
//! Each instance has one RESP3 connection with `CLIENT TRACKING on`:
//! the server remembers which keys the connection read and, when any
//! client modifies one, sends it an `invalidate` push with the key (once;
//! a later read tracks the key again). A `FLUSHALL` or `FLUSHDB` sends a
//! null list (L1 is emptied); a key that expires or is evicted in Redis is
//! invalidated like a written one. Reads, writes and invalidations share
//! the connection, so an invalidation sent before a reply is applied before
//! that reply is seen.
//!
//! # The race
//!
//! Redis executes this instance's `GET`, then another client's write of
//! the key, and sends the `GET`'s reply (the old value) and then the
//! invalidation. The reply goes from the task that reads the socket to the
//! caller, which stores it in L1; the invalidation is applied on the
//! reading task meanwhile, so the old value could enter L1 after its
//! invalidation was applied, and stay there. The read runs as a [`shardcache::Cache`] flight
//! (`try_get_or_insert_with_async`), and the invalidation removes the key
//! from L1, which marks the flight superseded: its reply is not stored.
//! That alone is not enough: callers that joined the flight after the
//! invalidation would still be handed its reply. So each value read
//! carries a stamp (a per-key-stripe count of applied invalidations, and a
//! count of flushes) taken before its `GET` was sent, and a caller returns
//! it only if no invalidation of the key was applied between that and its
//! own start; otherwise it reads again (counted in
//! [`NearStats::rereads`]). See `docs/NEARCACHE.md` in the repository.
//!
//! # Faults
//!
//! When the connection breaks, or a command takes longer than the
//! [`timeout`](NearCacheBuilder::timeout), the instance may have missed
//! invalidations: it drops the connection, empties L1 and reconnects in the
//! background with exponential backoff. Until it is back, nothing is served
//! from or stored in L1, and reads fail with [`Error::Unavailable`] or go
//! to the loader, as [`Unavailable`] chosen with
//! [`when_unavailable`](NearCacheBuilder::when_unavailable) says. No call
//! waits longer than about the timeout on Redis.
//!
//! # Why redis-rs
//!
//! The client is [redis-rs](https://docs.rs/redis) (crate `redis`, with
//! tokio): the most used Rust client, maintained by the Redis project. It
//! speaks RESP3 and hands push messages to a callback *synchronously, on
//! the task that reads the socket, in wire order*, which is what makes
//! "an invalidation before a reply is applied before the reply" hold with
//! no extra bookkeeping, and it reports a closed connection as a push too.
//! fred has the same features behind a larger API with its own reconnect
//! logic, which would hide the moments when L1 must be flushed. redis-rs's
//! own client-side cache (feature `cache-aio`) keeps raw replies in a
//! plain LRU, without single-flight loading or a loader.
//!
//! # Tests and longer runs
//!
//! The crate's tests start their own `redis-server` (it must be on
//! `PATH`) on a free loopback port. The coherence runs last a few seconds;
//! set `SHARDCACHE_REDIS_SECS` to run them longer.

#![deny(missing_docs)]

mod builder;
mod codec;
mod error;
mod link;
mod near;
mod stats;

pub use builder::{NearCacheBuilder, Unavailable};
pub use codec::{Codec, Postcard};
pub use error::{BoxError, Error};
pub use near::NearCache;
pub use stats::NearStats;

/// An invalidation an instance applied, as told to the hook set with
/// [`NearCacheBuilder::on_invalidation`].
///
/// ```
/// use shardcache_redis::Invalidation;
///
/// let event = Invalidation::Key("user:7");
/// assert!(matches!(event, Invalidation::Key(key) if key == "user:7"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation<'a> {
    /// Redis said the key changed (written, deleted, expired or evicted);
    /// it was dropped from L1.
    Key(&'a str),
    /// The server was flushed (`FLUSHALL`, `FLUSHDB`); L1 was emptied.
    Flushed,
    /// The connection broke or timed out; L1 was emptied, and a new
    /// connection is being made.
    Disconnected,
}

#[cfg(test)]
#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;
