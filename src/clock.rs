//! Time, injected: the [`Clock`] trait, the default [`CoarseClock`] and the
//! [`ManualClock`] for tests.
//!
//! Expiry is computed in whole nanoseconds on a `u64` time line whose origin
//! each clock chooses. [`NEVER`] (`u64::MAX`) marks an entry that does not
//! expire; any deadline that would reach it (a huge TTL, or a clock near the
//! end of its range) saturates to it, so overflow means "never expires".

use std::fmt;
use std::time::Duration;

use crate::sync::{Arc, AtomicU64, Ordering};

/// The deadline of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

/// A source of monotonic time for expiry.
///
/// `now_nanos` returns nanoseconds since an origin the clock chooses; it must
/// never go backwards. The cache calls it only for entries that can expire:
/// on inserts with a non-zero TTL, on reads of such entries, and in sweeps.
/// A cache whose entries never expire never reads its clock.
///
/// The default is [`CoarseClock`]; tests use [`ManualClock`]. Implement it
/// yourself to use another time source:
///
/// ```
/// use std::time::{Duration, Instant};
/// use shardcache::{Cache, Clock};
///
/// /// Exact time at the price of an `Instant::now()` per expiring read.
/// #[derive(Debug)]
/// struct PreciseClock(Instant);
///
/// impl Clock for PreciseClock {
///     fn now_nanos(&self) -> u64 {
///         self.0.elapsed().as_nanos() as u64
///     }
/// }
///
/// let cache: Cache<u32, u32> = Cache::builder()
///     .default_ttl(Duration::from_secs(60))
///     .clock(PreciseClock(Instant::now()))
///     .build();
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds elapsed since this clock's origin. Never decreases.
    ///
    /// ```
    /// use shardcache::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.now_nanos(), 0);
    /// ```
    fn now_nanos(&self) -> u64;
}

/// Deadline of an entry inserted at `now` with time to live `ttl`.
///
/// `Duration::ZERO` and any deadline past the end of the clock's range mean
/// [`NEVER`]. The entry is live while `now <= deadline`.
pub(crate) fn deadline(now: u64, ttl: Duration) -> u64 {
    if ttl.is_zero() {
        return NEVER;
    }
    u64::try_from(ttl.as_nanos())
        .ok()
        .and_then(|ttl| now.checked_add(ttl))
        .unwrap_or(NEVER)
}

/// Whether an entry with this deadline is expired at `now`.
#[inline]
pub(crate) fn is_expired(deadline: u64, now: u64) -> bool {
    now > deadline
}

/// A clock for tests: time stands still until [`advance`](Self::advance)
/// moves it.
///
/// Clones share the same time, so a test keeps one handle and gives the other
/// to the cache.
///
/// ```
/// use std::time::Duration;
/// use shardcache::{Cache, ManualClock};
///
/// let clock = ManualClock::new();
/// let cache: Cache<&str, u32> = Cache::builder().clock(clock.clone()).build();
/// cache.insert_with_ttl("session", 7, Duration::from_secs(30));
///
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(cache.get("session"), Some(7)); // live up to and including the deadline
/// clock.advance(Duration::from_nanos(1));
/// assert_eq!(cache.get("session"), None);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock that reads zero until advanced.
    ///
    /// ```
    /// use shardcache::{Clock, ManualClock};
    ///
    /// assert_eq!(ManualClock::new().now_nanos(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `by`, for this clock and all its clones.
    /// Saturates at the end of the clock's range instead of wrapping.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardcache::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let shared = clock.clone();
    /// clock.advance(Duration::from_millis(5));
    /// assert_eq!(shared.now_nanos(), 5_000_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let mut current = self.nanos.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(by);
            match self.nanos.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now_nanos", &self.now_nanos())
            .finish()
    }
}

#[cfg(not(shardcache_loom))]
mod coarse {
    //! One process-wide ticker thread keeps a coarse "now" in a static
    //! atomic. It runs only while some [`CoarseClock`](super::CoarseClock) that has been read is
    //! alive, and is stopped and joined when the last one is dropped.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// How often the ticker refreshes the coarse time.
    pub(super) const TICK: Duration = Duration::from_millis(1);

    /// Nanoseconds since [`origin`], refreshed every [`TICK`].
    static NOW: AtomicU64 = AtomicU64::new(0);
    static TICKER: Mutex<Weak<Ticker>> = Mutex::new(Weak::new());

    fn origin() -> Instant {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        *ORIGIN.get_or_init(Instant::now)
    }

    fn refresh() {
        let now = u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX);
        NOW.fetch_max(now, Ordering::Relaxed);
    }

    #[inline]
    pub(super) fn now() -> u64 {
        NOW.load(Ordering::Relaxed)
    }

    /// Keeps the ticker thread alive; the last one dropped stops it.
    #[derive(Debug)]
    pub(super) struct Ticker {
        stop: Arc<(Mutex<bool>, Condvar)>,
        thread: Option<JoinHandle<()>>,
    }

    impl Ticker {
        /// Joins the running ticker, or starts one. The coarse time is fresh
        /// when this returns.
        pub(super) fn acquire() -> Arc<Ticker> {
            let mut slot = TICKER.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(ticker) = slot.upgrade() {
                return ticker;
            }
            refresh();
            let stop = Arc::new((Mutex::new(false), Condvar::new()));
            let signal = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name("shardcache-clock".into())
                .spawn(move || {
                    let (stopped, wake) = &*signal;
                    let mut stopped = stopped.lock().unwrap_or_else(PoisonError::into_inner);
                    while !*stopped {
                        stopped = wake
                            .wait_timeout(stopped, TICK)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        refresh();
                    }
                })
                .expect("shardcache: could not spawn the coarse clock thread");
            let ticker = Arc::new(Ticker {
                stop,
                thread: Some(thread),
            });
            *slot = Arc::downgrade(&ticker);
            ticker
        }
    }

    impl Drop for Ticker {
        fn drop(&mut self) {
            let (stopped, wake) = &*self.stop;
            *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
            wake.notify_all();
            if let Some(thread) = self.thread.take() {
                // The ticker never panics; a join error would only repeat one.
                let _ = thread.join();
            }
        }
    }
}

/// The default clock: a coarse, shared, monotonic time with 1 ms resolution.
///
/// Reading the OS clock (`Instant::now()`) costs more than a whole cache
/// lookup, so this clock does not: one process-wide background thread
/// (`shardcache-clock`) stores the time in an atomic every millisecond, and
/// a read is a single relaxed load. The thread starts the first time any
/// `CoarseClock` is read and is stopped and joined when the last clock that
/// was read is dropped; caches whose entries never expire never start it.
///
/// Precision: deadlines are computed and checked on this coarse time line,
/// so an entry expires within about one tick (1 ms) of its exact deadline,
/// more only if the machine starves the ticker thread of CPU. Use a custom
/// [`Clock`] if you need exact expiry.
///
/// ```
/// use shardcache::{Clock, CoarseClock};
///
/// let clock = CoarseClock::new();
/// let before = clock.now_nanos();
/// assert!(clock.now_nanos() >= before);
/// ```
#[derive(Default)]
pub struct CoarseClock {
    #[cfg(not(shardcache_loom))]
    ticker: std::sync::OnceLock<std::sync::Arc<coarse::Ticker>>,
    #[cfg(shardcache_loom)]
    origin: std::sync::OnceLock<std::time::Instant>,
}

impl CoarseClock {
    /// A handle to the process-wide coarse time. Starts nothing until read.
    ///
    /// ```
    /// let clock = shardcache::CoarseClock::new();
    /// # let _ = clock;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How often the coarse time is refreshed: its resolution.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(shardcache::CoarseClock::RESOLUTION, Duration::from_millis(1));
    /// ```
    pub const RESOLUTION: Duration = Duration::from_millis(1);
}

impl Clone for CoarseClock {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    #[cfg(not(shardcache_loom))]
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.ticker.get_or_init(coarse::Ticker::acquire);
        coarse::now()
    }

    #[cfg(shardcache_loom)]
    fn now_nanos(&self) -> u64 {
        let origin = self.origin.get_or_init(std::time::Instant::now);
        origin.elapsed().as_nanos() as u64
    }
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("resolution", &Self::RESOLUTION)
            .finish()
    }
}

#[cfg(not(shardcache_loom))]
const _: () = assert!(coarse::TICK.as_nanos() == CoarseClock::RESOLUTION.as_nanos());

/// The clock a cache reads: the default one inline, any other behind a
/// pointer (it is read only for entries that can expire).
#[derive(Clone)]
pub(crate) enum ClockSource {
    Coarse(CoarseClock),
    Custom(Arc<dyn Clock>),
}

impl ClockSource {
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match self {
            ClockSource::Coarse(clock) => clock.now_nanos(),
            ClockSource::Custom(clock) => clock.now_nanos(),
        }
    }
}

impl Default for ClockSource {
    fn default() -> Self {
        ClockSource::Coarse(CoarseClock::new())
    }
}

impl fmt::Debug for ClockSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockSource::Coarse(clock) => clock.fmt(f),
            ClockSource::Custom(_) => f.write_str("CustomClock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_zero_ttl_never_expires() {
        assert_eq!(deadline(123, Duration::ZERO), NEVER);
    }

    #[test]
    fn deadline_saturates_instead_of_overflowing() {
        assert_eq!(deadline(1, Duration::MAX), NEVER);
        assert_eq!(deadline(u64::MAX - 1, Duration::from_nanos(5)), NEVER);
        assert_eq!(deadline(10, Duration::from_nanos(5)), 15);
    }

    #[test]
    fn live_through_the_deadline_expired_after() {
        assert!(!is_expired(15, 15));
        assert!(is_expired(15, 16));
        assert!(!is_expired(NEVER, u64::MAX));
    }

    #[test]
    fn manual_clock_saturates() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_nanos(), u64::MAX);
    }

    #[test]
    fn coarse_clock_is_monotonic_and_moves() {
        let clock = CoarseClock::new();
        let first = clock.now_nanos();
        let mut last = first;
        // Bounded poll: the ticker refreshes every millisecond.
        for _ in 0..10_000 {
            let now = clock.now_nanos();
            assert!(now >= last);
            last = now;
            if now > first {
                return;
            }
            std::thread::yield_now();
            std::thread::sleep(Duration::from_micros(100));
        }
        panic!("coarse clock did not advance within a second");
    }
}
