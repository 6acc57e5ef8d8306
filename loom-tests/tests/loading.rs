//! loom models of single-flight loading (`src/loading.rs`):
//! `get_or_insert_with` and `try_get_or_insert_with` racing each other and
//! the writers that supersede a load, and async waiters racing the end of
//! the load they wait for.
//!
//! Run them as the other models (`tests/models.rs`), with the library on
//! loom's locks, atomics and threads:
//!
//! ```text
//! cd loom-tests
//! RUSTFLAGS="--cfg shardcache_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loading
//! ```
//!
//! The same rules as there: every model lists the outcomes it allows, each
//! execution asserts its outcome is one of them, and after all executions
//! the model asserts every allowed outcome was reached. Racing operations
//! run on spawned threads; the model's own thread sets up, joins and checks.
//! One shard and a fixed hasher. See `docs/TESTING.md`.
//!
//! The outcomes use the cache's counters to tell the paths apart: a
//! `get_or_insert_with` counts a miss for each look that finds nothing
//! before it joins or leads a load (one, or two for a caller that waited for
//! a load that was abandoned), none for the look under the write lock that
//! decides; a hit only when its first look finds the value. `inserts`
//! counts a loaded value that was stored, and not one an insert, `remove`
//! or `clear` superseded.
//!
//! No model lets a loader panic: under loom 0.7 a caught panic that unwinds
//! through loom's locks poisons them for the other threads (its threads
//! share one OS thread's panic count), which aborts the run. A loader that
//! returns `Err` is abandoned by the same `Lead` guard (`docs/TESTING.md`).
#![cfg(shardcache_loom)]

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::explore;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use shardcache::{Cache, ManualClock};

/// A fixed hasher, so every execution places keys identically.
type Hasher = ahash::RandomState;

type TestCache = Cache<u32, u32, Hasher>;

const KEY: u32 = 7;

/// An empty cache: one shard (so every key meets on one lock), the fixed
/// hasher, a manual clock (never advanced: no entry expires), stats on, no
/// janitor, no default TTL.
fn empty_cache() -> Arc<TestCache> {
    Arc::new(
        Cache::builder()
            .shards(1)
            .record_stats(true)
            .clock(ManualClock::new())
            .hasher(Hasher::with_seeds(1, 2, 3, 4))
            .build(),
    )
}

/// Runs `f(cache)` on a new loom thread with its own handle to `cache`.
fn spawn<T, F>(cache: &Arc<TestCache>, f: F) -> thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce(&TestCache) -> T + Send + 'static,
{
    let cache = Arc::clone(cache);
    thread::spawn(move || f(&cache))
}

/// Counts a loader's runs, and fails if two loaders of the key ever run at
/// once. The two atomic operations around a run are switch points, so loom
/// interleaves other threads while a loader runs.
#[derive(Clone, Default)]
struct Loaders {
    /// Loaders running now.
    running: Arc<AtomicUsize>,
    /// Loaders started, ever.
    runs: Arc<AtomicUsize>,
}

impl Loaders {
    /// Runs `load` as a loader: counted, and alone.
    fn run<T>(&self, load: impl FnOnce() -> T) -> T {
        let before = self.running.fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "two loaders of one key ran at once");
        self.runs.fetch_add(1, Ordering::SeqCst);
        let loaded = load();
        self.running.fetch_sub(1, Ordering::SeqCst);
        loaded
    }

    /// Other loaders of the same key: counted apart, but never running at
    /// once with these.
    fn sibling(&self) -> Self {
        Self {
            running: Arc::clone(&self.running),
            runs: Arc::default(),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// Model L1. Two `get_or_insert_with` of one key on an empty cache, loading
/// 1 and 2. One loader runs; both callers get its value, and it is stored.
///
/// Outcome: (first caller's value, second's, misses), `v` being 1 or 2,
/// whichever caller led.
/// - `(v, v, 2)`: both missed their first look; the other caller then waited
///   for the load, or found the value under the write lock. The outcome does
///   not tell these two apart; a mutation that breaks the waiting path fails
///   this model (`docs/TESTING.md`), so it is reached.
/// - `(v, v, 1)`: the leader stored `v` before the other's first look, which
///   hit.
#[test]
fn l1_two_loaders_of_one_key() {
    explore(&[(1, 1, 1), (1, 1, 2), (2, 2, 1), (2, 2, 2)], || {
        let cache = empty_cache();
        let loaders = Loaders::default();
        let callers: Vec<_> = [1, 2]
            .into_iter()
            .map(|value| {
                let loaders = loaders.clone();
                spawn(&cache, move |cache| {
                    cache.get_or_insert_with(KEY, || loaders.run(|| value))
                })
            })
            .collect();
        let got: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(got[0], got[1], "the callers got different values");
        assert_eq!(loaders.runs(), 1, "not exactly one loader ran");
        let stats = cache.stats();
        assert_eq!(stats.inserts, 1, "the loaded value was not stored once");
        assert_eq!(
            cache.get(&KEY),
            Some(got[0]),
            "the loaded value is not cached"
        );
        assert_eq!(cache.len(), 1);
        (got[0], got[1], stats.misses)
    });
}

/// A loader's error.
#[derive(Debug)]
struct Failed;

/// Model L2. One caller's loader fails (`try_get_or_insert_with` returning
/// `Err`), another caller loads 2. The failed load is abandoned (by the
/// same `Lead` guard's `drop` that abandons a panicking one, see
/// `docs/TESTING.md` for why the model does not panic) and never blocks the
/// other: it ends with 2 stored, having run its own loader once. No thread
/// hangs (loom fails a model whose threads all block).
///
/// Outcome: (what the failing caller got, `None` for its error; misses).
/// - `(None, 2)`: the failing caller led; the other led after it (its join
///   came after the abandon).
/// - `(None, 3)`: the other waited for the failing load, saw it abandoned,
///   missed again and led with its own loader.
/// - `(Some(2), 1)`: the other stored 2 first; the first look hit, the
///   failing loader never ran.
/// - `(Some(2), 2)`: the other was loading or had just stored 2; the first
///   caller waited for it or found it under the write lock.
#[test]
fn l2_loader_fails_while_another_waits() {
    explore(&[(None, 2), (None, 3), (Some(2), 1), (Some(2), 2)], || {
        let cache = empty_cache();
        let failing = Loaders::default();
        let loading = failing.sibling();
        let first = {
            let failing = failing.clone();
            spawn(&cache, move |cache| {
                cache
                    .try_get_or_insert_with(KEY, || failing.run(|| Err(Failed)))
                    .ok()
            })
        };
        let other = {
            let loading = loading.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || loading.run(|| 2))
            })
        };
        let first = first.join().unwrap();
        assert_eq!(other.join().unwrap(), 2);
        assert_eq!(loading.runs(), 1, "the other loader did not run once");
        assert_eq!(
            failing.runs(),
            usize::from(first.is_none()),
            "the failing loader ran without failing its caller"
        );
        let stats = cache.stats();
        assert_eq!(cache.get(&KEY), Some(2), "the loaded value is not cached");
        assert_eq!(cache.len(), 1);
        (first, stats.misses)
    });
}

/// Model L3. `get_or_insert_with(KEY, || 1)` races `insert(KEY, 2)`. The
/// insert always wins: the cache ends with 2.
///
/// Outcome: (what the loading caller got, inserts, misses).
/// - `(2, 1, 0)`: the insert came before the first look, which hit.
/// - `(2, 1, 1)`: it came between the first look and the join, which found
///   2 under the write lock; no loader ran.
/// - `(1, 1, 1)`: it came while the loader ran: the flight was superseded,
///   the caller got 1, and 1 was not stored.
/// - `(1, 2, 1)`: it came after the loaded 1 was stored, and replaced it.
#[test]
fn l3_insert_races_load() {
    explore(&[(2, 1, 0), (2, 1, 1), (1, 1, 1), (1, 2, 1)], || {
        let cache = empty_cache();
        let loaders = Loaders::default();
        let loading = {
            let loaders = loaders.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || loaders.run(|| 1))
            })
        };
        let writer = spawn(&cache, |cache| cache.insert(KEY, 2));
        let got = loading.join().unwrap();
        writer.join().unwrap();
        assert_eq!(loaders.runs(), usize::from(got == 1));
        let stats = cache.stats();
        assert_eq!(cache.get(&KEY), Some(2), "the inserted value was lost");
        assert_eq!(cache.len(), 1);
        (got, stats.inserts, stats.misses)
    });
}

/// Model L4. `get_or_insert_with(KEY, || 1)` races `remove(KEY)`. The
/// loading caller always gets 1, from its own loader; whether 1 stays
/// depends on when the remove came.
///
/// Outcome: (what `remove` returned, what is cached after, inserts).
/// - `(None, Some(1), 1)`: the remove came before the join (found nothing,
///   and no flight to supersede); the loaded 1 was stored.
/// - `(None, None, 0)`: it came while the loader ran: the flight was
///   superseded, so 1 was not stored (a remove of a key being loaded wins,
///   even though it found no entry).
/// - `(Some(1), None, 1)`: it came after 1 was stored, and removed it.
#[test]
fn l4_remove_races_load() {
    explore(
        &[(None, Some(1), 1), (None, None, 0), (Some(1), None, 1)],
        || {
            let cache = empty_cache();
            let loaders = Loaders::default();
            let loading = {
                let loaders = loaders.clone();
                spawn(&cache, move |cache| {
                    cache.get_or_insert_with(KEY, || loaders.run(|| 1))
                })
            };
            let remover = spawn(&cache, |cache| cache.remove(&KEY));
            assert_eq!(loading.join().unwrap(), 1);
            let removed = remover.join().unwrap();
            assert_eq!(loaders.runs(), 1);
            let stats = cache.stats();
            let after = cache.get(&KEY);
            assert_eq!(cache.len(), usize::from(after.is_some()));
            (removed, after, stats.inserts)
        },
    );
}

/// Model L5. `get_or_insert_with(KEY, || 1)` races `clear()`, which
/// supersedes every flight of the shard.
///
/// Outcome: (what is cached after, inserts).
/// - `(Some(1), 1)`: `clear` came before the join; 1 was stored.
/// - `(None, 0)`: it came while the loader ran; 1 was not stored.
/// - `(None, 1)`: it came after 1 was stored, and cleared it.
#[test]
fn l5_clear_races_load() {
    explore(&[(Some(1), 1), (None, 0), (None, 1)], || {
        let cache = empty_cache();
        let loaders = Loaders::default();
        let loading = {
            let loaders = loaders.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || loaders.run(|| 1))
            })
        };
        let clearer = spawn(&cache, |cache| cache.clear());
        assert_eq!(loading.join().unwrap(), 1);
        clearer.join().unwrap();
        assert_eq!(loaders.runs(), 1);
        let stats = cache.stats();
        let after = cache.get(&KEY);
        assert_eq!(cache.len(), usize::from(after.is_some()));
        (after, stats.inserts)
    });
}

/// Model L6. Two `try_get_or_insert_with` of one key whose loaders both
/// fail, with errors 1 and 2. Each caller gets its own error from its own
/// loader, the loaders never run at once (a failing backend sees one call
/// per key at a time), and nothing is stored.
///
/// Outcome: misses.
/// - `2`: each led in turn (the second joined after the first abandoned).
/// - `3`: one waited for the other's load, saw it abandoned, missed again
///   and led.
#[test]
fn l6_two_failing_loaders() {
    explore(&[2, 3], || {
        let cache = empty_cache();
        let loaders = Loaders::default();
        let callers: Vec<_> = [1, 2]
            .into_iter()
            .map(|error| {
                let loaders = loaders.clone();
                spawn(&cache, move |cache| {
                    cache.try_get_or_insert_with(KEY, || loaders.run(|| Err::<u32, _>(error)))
                })
            })
            .collect();
        let got: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
        assert_eq!(got, [Err(1), Err(2)], "a caller did not get its own error");
        assert_eq!(loaders.runs(), 2);
        let stats = cache.stats();
        assert_eq!((stats.inserts, cache.len()), (0, 0), "a failed load stored");
        stats.misses
    });
}

/// Model L7. A `get` races `get_or_insert_with(KEY, || 1)`, whose loader
/// raises a flag (release) when it starts; the reader reads the flag
/// (acquire) before its `get`. A `get` never waits for a load: one that
/// comes after the loader started and before the value was stored returns
/// `None` at once.
///
/// Outcome: (the reader saw the flag, its `get`). Every combination:
/// `(true, None)` is the `get` during the load; `(false, Some(1))` read the
/// flag before the loader started and looked after the value was stored.
#[test]
fn l7_get_during_load_misses() {
    explore(
        &[
            (false, None),
            (false, Some(1)),
            (true, None),
            (true, Some(1)),
        ],
        || {
            let cache = empty_cache();
            let started = Arc::new(AtomicBool::new(false));
            let loading = {
                let started = Arc::clone(&started);
                spawn(&cache, move |cache| {
                    cache.get_or_insert_with(KEY, || {
                        started.store(true, Ordering::Release);
                        1
                    })
                })
            };
            let reader = {
                let started = Arc::clone(&started);
                spawn(&cache, move |cache| {
                    let during = started.load(Ordering::Acquire);
                    (during, cache.get(&KEY))
                })
            };
            assert_eq!(loading.join().unwrap(), 1);
            let seen = reader.join().unwrap();
            assert_eq!(cache.get(&KEY), Some(1));
            seen
        },
    );
}

/// A task's waker for model L8: counts its wakes; its `Arc`'s count shows
/// whether the flight still holds a clone. The count is std's (only read
/// after the threads are joined).
#[derive(Default)]
struct Task(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Task {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Model L8. An async waiter is cancelled while the load it waits for
/// ends, next to one that waits to the end. The blocking loader of the key
/// spawns both waiters, so its flight is registered before they look, and
/// returns 1 at once, so the flight ends while they poll: the cancelled
/// one polls its future once with its own waker and drops it; the other
/// runs its future to completion under loom's `block_on`, which fails the
/// model if its wake-up is lost (all threads blocked). Afterwards the
/// cancelled waiter's waker is held by nothing (its slot was freed, or
/// taken by the end and woken), was woken at most once, and the key holds 1.
///
/// Outcome: (the cancelled waiter's poll was pending, its wakes).
/// - `(true, 0)`: it registered and was dropped before the end, which woke
///   nothing of it.
/// - `(true, 1)`: it registered, the end took its slot and woke it, and its
///   drop found the flight ended.
/// - `(false, 0)`: it polled after the end and got the value.
#[test]
fn l8_async_waiter_cancelled_while_the_load_ends() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    explore(&[(false, 0), (true, 0), (true, 1)], || {
        let cache = empty_cache();
        let task = std::sync::Arc::new(Task::default());
        let mut waiters = Vec::new();
        let loaded = cache.get_or_insert_with(KEY, || {
            let waker = Waker::from(std::sync::Arc::clone(&task));
            waiters.push(spawn(&cache, move |cache| {
                let mut cancelled = Box::pin(cache.get_or_insert_with_async(KEY, async { 3 }));
                let polled = cancelled.as_mut().poll(&mut Context::from_waker(&waker));
                drop(cancelled);
                match polled {
                    Poll::Pending => None,
                    Poll::Ready(value) => Some(value),
                }
            }));
            waiters.push(spawn(&cache, |cache| {
                loom::future::block_on(cache.get_or_insert_with_async(KEY, async { 2 })).into()
            }));
            1
        });
        assert_eq!(loaded, 1);
        let got: Vec<Option<u32>> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(
            got[1],
            Some(1),
            "the waiter that stayed got the loaded value"
        );
        assert!(matches!(got[0], None | Some(1)), "{:?}", got[0]);
        assert_eq!(
            std::sync::Arc::strong_count(&task),
            1,
            "the cancelled waiter's waker is still held"
        );
        assert_eq!(cache.get(&KEY), Some(1));
        let wakes = task.0.load(std::sync::atomic::Ordering::SeqCst);
        (got[0].is_none(), wakes)
    });
}

/// A cache as [`empty_cache`], built with `refresh_after(1 s)`, holding
/// `KEY -> 1` written at 0 s, its clock at 2 s: the value is stale.
fn stale_cache() -> (Arc<TestCache>, ManualClock) {
    let clock = ManualClock::new();
    let cache: TestCache = Cache::builder()
        .shards(1)
        .record_stats(true)
        .refresh_after(Duration::from_secs(1))
        .clock(clock.clone())
        .hasher(Hasher::with_seeds(1, 2, 3, 4))
        .build();
    cache.insert(KEY, 1);
    clock.advance(Duration::from_secs(2));
    (Arc::new(cache), clock)
}

/// Model L9. A loading hit on a stale `KEY -> 1` refreshes it (loading 2)
/// while `insert(KEY, 3)` races it. The insert always wins: 3 is cached
/// after, and the entry is not left claimed (a later stale hit refreshes).
///
/// Outcome: (what the loading caller got, loader runs, inserts counted,
/// the setup's included).
/// - `(3, 0, 2)`: the insert came before the hit, which found 3 fresh.
/// - `(1, 0, 2)`: it came between the claim (read lock) and the flight
///   (write lock): the entry is no longer the one claimed, the caller
///   keeps the old value and loads nothing.
/// - `(2, 1, 2)`: it came while the loader ran: the refresh was
///   superseded and stored nothing.
/// - `(2, 1, 3)`: it came after the refreshed 2 was stored.
#[test]
fn l9_insert_races_refresh() {
    explore(&[(3, 0, 2), (1, 0, 2), (2, 1, 2), (2, 1, 3)], || {
        let (cache, clock) = stale_cache();
        let loaders = Loaders::default();
        let refreshing = {
            let loaders = loaders.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || loaders.run(|| 2))
            })
        };
        let writer = spawn(&cache, |cache| cache.insert(KEY, 3));
        let got = refreshing.join().unwrap();
        writer.join().unwrap();
        let inserts = cache.stats().inserts;
        assert_eq!(cache.get(&KEY), Some(3), "the inserted value was lost");
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.get_or_insert_with(KEY, || 4), 4, "left claimed");
        (got, loaders.runs(), inserts)
    });
}

/// Model L10. Two loading hits on a stale `KEY -> 1`, loading 2 and 3:
/// exactly one refreshes; the other gets the old value, or the new one if
/// it came after the refresh landed.
///
/// Outcome: (first caller's value, second's).
/// - `(2, 1)`, `(1, 3)`: one refreshed; the other hit while it ran.
/// - `(2, 2)`, `(3, 3)`: one refreshed; the other hit after it landed.
#[test]
fn l10_two_hits_on_a_stale_key_one_refresh() {
    explore(&[(2, 1), (2, 2), (1, 3), (3, 3)], || {
        let (cache, _clock) = stale_cache();
        let first = Loaders::default();
        let second = first.sibling();
        let a = {
            let first = first.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || first.run(|| 2))
            })
        };
        let b = {
            let second = second.clone();
            spawn(&cache, move |cache| {
                cache.get_or_insert_with(KEY, || second.run(|| 3))
            })
        };
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(first.runs() + second.runs(), 1, "one refresh");
        (a, b)
    });
}
