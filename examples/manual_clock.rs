//! `cargo run --example manual_clock`, `cargo test --example manual_clock`:
//! how to test your own code that keeps entries in a [`Cache`] with a TTL,
//! without sleeping.
//!
//! # The pattern
//!
//! [`TokenStore`] below is the kind of type an application builds on a
//! cache: bearer tokens that expire after a fixed idle time, renewed each
//! time they are used (sliding expiry), and revocable. It lets its caller
//! choose the cache's [`Clock`]: [`TokenStore::new`] uses the default
//! [`CoarseClock`](shardcache::CoarseClock), the real time, and
//! [`TokenStore::with_clock`] takes any other. The tests give it a
//! [`ManualClock`] and keep a clone: time then stands still until a test
//! calls [`ManualClock::advance`], which moves it for the cache at once. So
//! a test of a 15-minute expiry runs in microseconds, and it checks the
//! exact edge (a token is still valid at its deadline and invalid one
//! nanosecond later), which a test that sleeps could only approximate, and
//! flakily on a loaded machine.
//!
//! Two rules make this work, and a type of your own needs the same:
//!
//! * every TTL it uses goes through the cache (here the builder's
//!   `default_ttl`), never through `Instant::now()` in your own code, so
//!   that one injected clock governs all of it;
//! * a clone of the clock outlives the cache's own: clones of a
//!   `ManualClock` share one time.
//!
//! The tests run under plain `cargo test` (Cargo.toml sets `test = true`
//! for this example); `main` walks through the same story, printing each
//! step, and also finishes at once.

use std::sync::Arc;
use std::time::Duration;

use shardcache::{Cache, Clock, ManualClock};

/// An opaque bearer token, as handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u64);

/// Bearer tokens for signed-in users: each expires when it has not been
/// used for `idle_ttl`; each successful [`check`](Self::check) renews it.
#[derive(Debug)]
pub struct TokenStore {
    /// Token to user name. The cache's default TTL is the idle timeout.
    tokens: Cache<Token, Arc<str>>,
}

impl TokenStore {
    /// A store on the real (coarse, 1 ms) clock, as production code uses it.
    pub fn new(idle_ttl: Duration) -> Self {
        Self::from_cache(Cache::builder().default_ttl(idle_ttl).build())
    }

    /// A store whose expiry reads `clock`: tests pass a [`ManualClock`].
    pub fn with_clock(idle_ttl: Duration, clock: impl Clock) -> Self {
        Self::from_cache(Cache::builder().default_ttl(idle_ttl).clock(clock).build())
    }

    fn from_cache(tokens: Cache<Token, Arc<str>>) -> Self {
        Self { tokens }
    }

    /// Signs `user` in: a new token, valid for the idle TTL from now.
    pub fn issue(&self, user: &str) -> Token {
        // A real store would draw from a CSPRNG; rand's default RNG is one.
        let token = Token(rand::random());
        self.tokens.insert(token, Arc::from(user));
        token
    }

    /// The user `token` belongs to, if it is valid; using it renews it for
    /// another idle TTL.
    pub fn check(&self, token: Token) -> Option<Arc<str>> {
        let user = self.tokens.get(&token)?;
        // Re-inserting restarts the entry's TTL. A concurrent `revoke`
        // between the two calls would be undone; a real store that must
        // not allow that would revoke by marking the value instead.
        self.tokens.insert(token, Arc::clone(&user));
        Some(user)
    }

    /// Signs the token out; whether it was still valid.
    pub fn revoke(&self, token: Token) -> bool {
        self.tokens.remove(&token).is_some()
    }
}

/// The idle timeout of the demonstration and the tests.
const IDLE: Duration = Duration::from_secs(15 * 60);

fn main() {
    let clock = ManualClock::new();
    let store = TokenStore::with_clock(IDLE, clock.clone());

    let alice = store.issue("alice");
    let bob = store.issue("bob");
    println!("t = 0      issued tokens to alice and bob (idle timeout 15 min)");

    clock.advance(Duration::from_secs(10 * 60));
    let user = store.check(alice);
    println!("t = 10 min alice's token -> {user:?} (renewed until t = 25 min)");

    clock.advance(Duration::from_secs(5 * 60));
    println!(
        "t = 15 min bob's token   -> {:?} (valid through its deadline)",
        store.check(bob)
    );
    // That check renewed bob too, until t = 30 min.
    clock.advance(Duration::from_secs(15 * 60) + Duration::from_nanos(1));
    println!(
        "t = 30 min + 1 ns: alice -> {:?}, bob -> {:?} (both idle past 15 min)",
        store.check(alice),
        store.check(bob)
    );

    let carol = store.issue("carol");
    println!(
        "carol signs in and out: revoke -> {}, then check -> {:?}",
        store.revoke(carol),
        store.check(carol)
    );
    println!("30 simulated minutes, no sleeping.");

    // Production code builds the same type on the real clock.
    let production = TokenStore::new(IDLE);
    let dave = production.issue("dave");
    println!("on the real clock: dave -> {:?}", production.check(dave));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store and the clock that drives it.
    fn store() -> (TokenStore, ManualClock) {
        let clock = ManualClock::new();
        (TokenStore::with_clock(IDLE, clock.clone()), clock)
    }

    #[test]
    fn a_token_is_valid_through_its_deadline_and_not_after() {
        let (store, clock) = store();
        let token = store.issue("alice");
        clock.advance(IDLE);
        assert_eq!(store.check(token).as_deref(), Some("alice"));

        let token = store.issue("bob");
        clock.advance(IDLE + Duration::from_nanos(1));
        assert_eq!(store.check(token), None);
    }

    #[test]
    fn using_a_token_renews_it() {
        let (store, clock) = store();
        let token = store.issue("alice");
        // Used every 10 minutes for two hours: never idle for 15.
        for _ in 0..12 {
            clock.advance(Duration::from_secs(10 * 60));
            assert_eq!(store.check(token).as_deref(), Some("alice"));
        }
        clock.advance(IDLE + Duration::from_nanos(1));
        assert_eq!(store.check(token), None);
    }

    #[test]
    fn an_unused_token_expires_while_a_used_one_lives() {
        let (store, clock) = store();
        let used = store.issue("alice");
        let idle = store.issue("bob");
        clock.advance(Duration::from_secs(10 * 60));
        assert!(store.check(used).is_some());
        clock.advance(Duration::from_secs(10 * 60));
        assert!(store.check(used).is_some(), "renewed 10 minutes ago");
        assert_eq!(store.check(idle), None, "idle for 20 minutes");
    }

    #[test]
    fn a_revoked_token_is_rejected_at_once() {
        let (store, _clock) = store();
        let token = store.issue("alice");
        assert!(store.revoke(token));
        assert_eq!(store.check(token), None);
        assert!(!store.revoke(token), "already revoked");
    }

    #[test]
    fn an_expired_token_cannot_be_revoked() {
        let (store, clock) = store();
        let token = store.issue("alice");
        clock.advance(IDLE * 2);
        assert!(!store.revoke(token));
    }

    #[test]
    fn the_real_clock_store_works_too() {
        let store = TokenStore::new(IDLE);
        let token = store.issue("alice");
        assert_eq!(store.check(token).as_deref(), Some("alice"));
    }
}
