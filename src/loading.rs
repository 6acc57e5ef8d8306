//! Single-flight loading: the [`Flight`] of one key's load, and the
//! [`Loading`] table of a shard's flights.
//!
//! A caller that misses a key in `get_or_insert_with` takes the shard's
//! write lock and looks again: a value (someone inserted it meanwhile) is
//! returned; a flight of the same key is joined; else it starts a flight,
//! registers it in the shard's `Loading` table, releases the lock and runs
//! the loader with no lock held. When the loader returns, the value and the
//! end of the flight go in under one write lock, and the flight's waiters
//! get the value. An insert, `remove` or `clear` of the key while it loads
//! marks the flight superseded (they hold the same lock, so no extra
//! synchronisation is needed): the loaded value is still returned, but not
//! stored over the newer state.
//!
//! A plain `get` never looks at flights: a key being loaded is simply
//! missing. Writers only check that the table is empty, one load of a field
//! of the shard they already hold.
//!
//! A flight ends `Loaded(value)` or `Abandoned` (the loader panicked,
//! failed, or its future was dropped): waiters then start over, and one of
//! them loads with its own loader.
//!
//! Blocking waiters park on the flight's condvar; async waiters each own a
//! slot of the flight's [`Waiters`], freed when the waiting future is
//! dropped. Before any caller waits, it checks that the wait would not close
//! a cycle of loaders (`src/cycles.rs`); while a loader runs, its flight is
//! on this thread's stack of running loaders for that check.

use std::any::type_name_of_val;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::cache::Cache;
use crate::compute::Compute;
use crate::cycles::{Edge, Node, Running, Waiting};
use crate::listener::{resume, Panic};
use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering};
#[cfg(any(feature = "async", test))]
use crate::waiters::{Slot, Waiters};
use crate::Equivalent;

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The value under `key`, or the one `init` makes, which is inserted
    /// with the TTL [`expire_after`](crate::CacheBuilder::expire_after)
    /// computes for it, else the default TTL. For one key at a time only one `init` runs:
    /// concurrent callers for the same key park until it returns and get
    /// its value; callers for other keys, even in the same shard, never wait
    /// for it. `init` runs with no lock held, so it may use the cache,
    /// loading other keys too.
    ///
    /// # Panics
    ///
    /// If waiting for the key's load would close a cycle of loaders: `init`
    /// of a key that is loading loads the same key (directly or through
    /// other keys' loaders: A's loader waits for B while B's loader waits for
    /// A, on any threads, blocking or async, in any caches of this crate).
    /// The caller whose wait would close the cycle panics instead of waiting
    /// forever, with a message naming the loaders on the cycle (their
    /// types); the panic unwinds through its loader, whose load is
    /// abandoned, so the other loads go on. A loader that waits for several
    /// loads at once (`join!`) is seen through the one it polled last; see
    /// `docs/DESIGN.md`, "Loading".
    ///
    /// A [`compute`](Self::compute) of the key in progress is waited for
    /// as a load is: its value is returned (if it stored none, this caller
    /// loads). A `get` of the key while it loads returns `None` at once. An
    /// `insert`, `remove` or `clear` of the key while it loads wins: the
    /// loaded value is still returned to this caller and the waiting ones,
    /// but not stored over the newer state. If `init` panics, the panic
    /// reaches this caller, and the waiting callers start over: one of them
    /// loads with its own `init`.
    ///
    /// A hit costs what [`get`](Self::get) costs. In a cache built with
    /// [`refresh_after`](crate::CacheBuilder::refresh_after), a hit on a
    /// stale value makes the first such caller run `init` to refresh it
    /// (and get the new value) while the others get the old one at once;
    /// this holds for every loading method.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::new();
    /// let value = cache.get_or_insert_with(7, || "loaded once".to_owned());
    /// assert_eq!(value, "loaded once");
    /// let again = cache.get_or_insert_with(7, || unreachable!("already cached"));
    /// assert_eq!(again, "loaded once");
    /// ```
    #[inline]
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        let name = type_name_of_val(&init);
        let loaded: Result<V, Infallible> = self.get_or_try_load(key, name, || Ok(init()));
        match loaded {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`get_or_insert_with`](Self::get_or_insert_with), with a loader
    /// that may fail. An error is returned to this caller and nothing is
    /// stored; callers that were waiting for this load start over, one at a
    /// time running their own `init`, so a failing backend sees at most one
    /// call per key at a time, and each caller gets its own error (no
    /// `Clone` or `Arc` needed on `E`).
    ///
    /// # Panics
    ///
    /// As [`get_or_insert_with`](Self::get_or_insert_with), if waiting would
    /// close a cycle of loaders: a panic, not an `Err`, since `E` is the
    /// caller's type.
    ///
    /// ```
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// let failed = cache.try_get_or_insert_with(1, || Err("database down"));
    /// assert_eq!(failed, Err("database down"));
    /// assert_eq!(cache.get(&1), None);
    /// let loaded = cache.try_get_or_insert_with(1, || Ok::<_, &str>(10));
    /// assert_eq!(loaded, Ok(10));
    /// ```
    #[inline]
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        self.get_or_try_load(key, type_name_of_val(&init), init)
    }

    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) with the
    /// loader's name for a cycle's message.
    #[inline]
    fn get_or_try_load<E>(
        &self,
        key: K,
        name: &'static str,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let (hash, index) = self.locate(&key);
        if self.refreshes() {
            return self.get_or_refresh(hash, index, key, name, init);
        }
        match self.lookup_at::<K, V, true>(hash, index, &key, V::clone) {
            Some(value) => Ok(value),
            None => self.load(hash, index, key, name, init),
        }
    }

    /// The miss path of [`try_get_or_insert_with`](Self::try_get_or_insert_with),
    /// out of line so that a hit costs what a `get` costs.
    #[cold]
    #[inline(never)]
    pub(crate) fn load<E>(
        &self,
        hash: u64,
        index: usize,
        key: K,
        name: &'static str,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        loop {
            match self.join(hash, index, &key) {
                Join::Hit(value) => return Ok(value),
                Join::Wait(flight) => {
                    let waiting = Waiting::begin(|| node(&flight));
                    let ended = flight.wait();
                    drop(waiting);
                    if let Some(value) = ended {
                        return Ok(value);
                    }
                    // Abandoned: look again, and lead if no one else does.
                    if let Some(value) = self.lookup_at::<K, V, true>(hash, index, &key, V::clone) {
                        return Ok(value);
                    }
                }
                Join::Lead(flight) => {
                    let lead = Lead::new(self, hash, index, flight, None);
                    let value = lead.run(name, init)?;
                    lead.land(key, value.clone());
                    return Ok(value);
                }
            }
        }
    }

    /// As [`get_or_insert_with`](Self::get_or_insert_with), loading from a
    /// future; concurrent callers for the key await it without blocking
    /// their thread. Works with any executor. If the loading future is
    /// dropped before it completes (its caller was cancelled), a waiting
    /// caller takes over with its own future. A waiting future that is
    /// dropped (a timeout, say) leaves nothing behind: its waker is
    /// released at once, not when the load ends.
    ///
    /// # Panics
    ///
    /// As [`get_or_insert_with`](Self::get_or_insert_with), if waiting would
    /// close a cycle of loaders (a loading future that awaits its own key,
    /// or a cycle through other keys' loaders): the poll that would close it
    /// panics.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::new();
    /// let value = cache
    ///     .get_or_insert_with_async(7, async { "fetched".to_owned() })
    ///     .await;
    /// assert_eq!(value, "fetched");
    /// # });
    /// ```
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn get_or_insert_with_async(
        &self,
        key: K,
        init: impl std::future::Future<Output = V>,
    ) -> V {
        let name = type_name_of_val(&init);
        let loaded: Result<V, Infallible> = self
            .get_or_try_load_async(key, name, async { Ok(init.await) })
            .await;
        match loaded {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// As [`try_get_or_insert_with`](Self::try_get_or_insert_with), loading
    /// from a future; see
    /// [`get_or_insert_with_async`](Self::get_or_insert_with_async).
    ///
    /// # Panics
    ///
    /// As [`get_or_insert_with_async`](Self::get_or_insert_with_async), if
    /// waiting would close a cycle of loaders: a panic, not an `Err`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use shardcache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new();
    /// let failed = cache.try_get_or_insert_with_async(1, async { Err("timeout") }).await;
    /// assert_eq!(failed, Err("timeout"));
    /// # });
    /// ```
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn try_get_or_insert_with_async<E>(
        &self,
        key: K,
        init: impl std::future::Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        let name = type_name_of_val(&init);
        self.get_or_try_load_async(key, name, init).await
    }

    /// [`try_get_or_insert_with_async`](Self::try_get_or_insert_with_async)
    /// with the loader's name for a cycle's message.
    #[cfg(feature = "async")]
    async fn get_or_try_load_async<E>(
        &self,
        key: K,
        name: &'static str,
        init: impl std::future::Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        let (hash, index) = self.locate(&key);
        let init = if self.refreshes() {
            match self
                .get_or_refresh_async(hash, index, &key, name, init)
                .await
            {
                Ok(found) => return found,
                Err(init) => init,
            }
        } else {
            init
        };
        loop {
            if let Some(value) = self.lookup_at::<K, V, true>(hash, index, &key, V::clone) {
                return Ok(value);
            }
            match self.join(hash, index, &key) {
                Join::Hit(value) => return Ok(value),
                Join::Wait(flight) => {
                    if let Some(value) = EndOf::new(&flight).await {
                        return Ok(value);
                    }
                }
                Join::Lead(flight) => {
                    let lead = Lead::new(self, hash, index, flight, None);
                    let mut init = std::pin::pin!(init);
                    let value =
                        std::future::poll_fn(|cx| lead.run(name, || init.as_mut().poll(cx)))
                            .await?;
                    lead.land(key, value.clone());
                    return Ok(value);
                }
            }
        }
    }
}

/// `flight` as a node of the wait-for graph.
pub(crate) fn node<V: Clone + Send + Sync + 'static>(flight: &Arc<Flight<V>>) -> Arc<dyn Node> {
    Arc::clone(flight) as Arc<dyn Node>
}

/// What a caller that missed a key does next (see [`Cache::join`]).
pub(crate) enum Join<V> {
    /// Someone inserted it meanwhile.
    Hit(V),
    /// Someone is loading it.
    Wait(Arc<Flight<V>>),
    /// This caller loads it.
    Lead(Arc<Flight<V>>),
}

/// A leader's hold on its flight: ending it with a value (`land`), or, if
/// dropped first (the loader failed, panicked or was cancelled), abandoning
/// it so a waiter takes over.
pub(crate) struct Lead<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    cache: &'a Cache<K, V, S>,
    hash: u64,
    index: usize,
    flight: Option<Arc<Flight<V>>>,
    /// The key, for a refresh: abandoning it makes the entry stale again.
    refreshed: Option<K>,
}

impl<'a, K, V, S> Lead<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The hold on `flight`, registered in shard `index` for the key
    /// hashing to `hash`: of a load or a `compute` (`refreshed` is `None`),
    /// or of a refresh of the key `refreshed` (`src/refresh.rs`).
    pub(crate) fn new(
        cache: &'a Cache<K, V, S>,
        hash: u64,
        index: usize,
        flight: Arc<Flight<V>>,
        refreshed: Option<K>,
    ) -> Self {
        Self {
            cache,
            hash,
            index,
            flight: Some(flight),
            refreshed,
        }
    }

    /// Runs `loader` (a blocking loader, or one poll of an async one) with
    /// this flight on the thread's stack of running loaders, named `name`.
    pub(crate) fn run<T>(&self, name: &'static str, loader: impl FnOnce() -> T) -> T {
        let _running = self
            .flight
            .as_ref()
            .map(|flight| Running::enter(node(flight), name));
        loader()
    }

    /// Stores the loaded value and wakes the waiters with it.
    pub(crate) fn land(self, key: K, value: V) {
        let (hash, index) = (self.hash, self.index);
        let cache = self.cache;
        self.finish(Some(value.clone()), |flight| {
            cache.settle(hash, index, key, Compute::Put(value), flight)
        });
    }

    /// Ends the flight: `store` writes its outcome under the shard's lock
    /// and takes the flight out of the shard, then the waiters are woken
    /// with `end` (`None`: they start over). If `store` panics (a weigher,
    /// `expire_after`, `Hash` or `Eq`), the flight is abandoned by `drop`
    /// instead; a panicking listener (the panic `store` returns) is resumed
    /// after the waiters are woken.
    pub(crate) fn finish(
        mut self,
        end: Option<V>,
        store: impl FnOnce(&Arc<Flight<V>>) -> Option<Panic>,
    ) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let panic = store(flight);
        if let Some(flight) = self.flight.take() {
            flight.end(end);
        }
        resume(panic);
    }
}

impl<K, V, S> Drop for Lead<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            let refreshed = self.refreshed.as_ref();
            self.cache
                .abandon(self.hash, self.index, &flight, refreshed);
        }
    }
}

/// Awaits the end of a flight, holding a slot of its waiters from the
/// first poll until it is dropped or sees the end.
#[cfg(any(feature = "async", test))]
struct EndOf<'a, V: Clone + Send + Sync + 'static> {
    flight: &'a Arc<Flight<V>>,
    slot: Slot,
    /// The running loader's edge to the flight, if a loader awaits it.
    waiting: Waiting,
}

#[cfg(any(feature = "async", test))]
impl<'a, V: Clone + Send + Sync + 'static> EndOf<'a, V> {
    fn new(flight: &'a Arc<Flight<V>>) -> Self {
        Self {
            flight,
            slot: None,
            waiting: Waiting::NONE,
        }
    }
}

#[cfg(any(feature = "async", test))]
impl<V: Clone + Send + Sync + 'static> std::future::Future for EndOf<'_, V> {
    type Output = Option<V>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<V>> {
        use std::task::Poll;
        let this = &mut *self;
        let mut state = this.flight.state.lock();
        let ended = match &mut *state {
            State::Loading { waiters, .. } => {
                waiters.register(&mut this.slot, cx.waker());
                None
            }
            State::Loaded(value) => Some(Some(value.clone())),
            State::Abandoned => Some(None),
        };
        drop(state);
        if let Some(ended) = ended {
            // The end took the slab with the slot in it.
            this.slot = None;
            this.waiting = Waiting::NONE;
            return Poll::Ready(ended);
        }
        // Each pending poll records the wait from the loaders running now,
        // and panics (the drop frees the slot) if it closes a cycle.
        this.waiting = Waiting::NONE;
        this.waiting = Waiting::begin(|| node(this.flight));
        Poll::Pending
    }
}

#[cfg(any(feature = "async", test))]
impl<V: Clone + Send + Sync + 'static> Drop for EndOf<'_, V> {
    fn drop(&mut self) {
        if self.slot.is_none() {
            return;
        }
        let mut state = self.flight.state.lock();
        let waker = match &mut *state {
            State::Loading { waiters, .. } => waiters.cancel(&mut self.slot),
            State::Loaded(_) | State::Abandoned => None,
        };
        drop(state);
        // A task's last waker may free the task: with no lock held.
        drop(waker);
    }
}

/// Where a load stands.
enum State<V> {
    Loading {
        /// Async waiters to wake when it ends.
        #[cfg(any(feature = "async", test))]
        waiters: Waiters,
        /// The flight this one's loader waits for now, if any.
        waits: Option<Edge>,
    },
    Loaded(V),
    Abandoned,
}

/// One key's load, shared by its loader and its waiters.
pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    ended: Condvar,
    /// Set, under the shard's write lock, by an insert, `remove` or `clear`
    /// of the key while it loads.
    superseded: AtomicBool,
}

impl<V: Clone> Flight<V> {
    /// A flight that loads.
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State::Loading {
                #[cfg(any(feature = "async", test))]
                waiters: Waiters::new(),
                waits: None,
            }),
            ended: Condvar::default(),
            superseded: AtomicBool::new(false),
        }
    }

    /// Parks until the flight ends: the value, or `None` if it was
    /// abandoned.
    pub(crate) fn wait(&self) -> Option<V> {
        let mut state = self.state.lock();
        loop {
            match &*state {
                State::Loading { .. } => state = self.ended.wait(state),
                State::Loaded(value) => return Some(value.clone()),
                State::Abandoned => return None,
            }
        }
    }

    /// Ends the flight with `value` (`None`: abandoned) and wakes every
    /// waiter, each once. Call with no shard lock held.
    pub(crate) fn end(&self, value: Option<V>) {
        let ended = match value {
            Some(value) => State::Loaded(value),
            None => State::Abandoned,
        };
        let previous = std::mem::replace(&mut *self.state.lock(), ended);
        self.ended.notify_all();
        #[cfg(any(feature = "async", test))]
        if let State::Loading { waiters, .. } = previous {
            waiters.wake_all();
        }
        #[cfg(not(any(feature = "async", test)))]
        drop(previous);
    }

    /// Whether an insert, `remove` or `clear` of the key came while it
    /// loaded. Read under the shard's write lock.
    pub(crate) fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Relaxed)
    }
}

impl<V: Send + Sync> Node for Flight<V> {
    fn waits(&self) -> Option<Edge> {
        match &*self.state.lock() {
            State::Loading { waits, .. } => waits.clone(),
            State::Loaded(_) | State::Abandoned => None,
        }
    }

    fn wait_for(&self, edge: Edge) {
        let previous = match &mut *self.state.lock() {
            State::Loading { waits, .. } => waits.replace(edge),
            State::Loaded(_) | State::Abandoned => None,
        };
        drop(previous);
    }

    fn stop_waiting_for(&self, to: usize) {
        let previous = match &mut *self.state.lock() {
            State::Loading { waits, .. } if waits.as_ref().is_some_and(|e| e.points_to(to)) => {
                waits.take()
            }
            _ => None,
        };
        drop(previous);
    }
}

impl<V> fmt::Debug for Flight<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight")
            .field("superseded", &self.superseded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The flights of one shard, found by key like its entries. Lives inside
/// the shard, under its lock. Boxed, and only while a key loads: a shard
/// and its lock fit one 128-byte line, and an empty table would take 32 of
/// them.
pub(crate) struct Loading<K, V> {
    table: Option<Box<Flights<K, V>>>,
}

/// Each loading key with its flight.
type Flights<K, V> = HashTable<(K, Arc<Flight<V>>)>;

impl<K, V> Default for Loading<K, V> {
    fn default() -> Self {
        Self { table: None }
    }
}

impl<K, V> Loading<K, V> {
    /// Whether no key of the shard is loading: the one check writers make.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_none()
    }

    /// Marks every flight superseded (`clear`).
    pub(crate) fn supersede_all(&self) {
        for (_, flight) in self.table.iter().flat_map(|table| table.iter()) {
            flight.superseded.store(true, Ordering::Relaxed);
        }
    }

    /// Takes `flight` (found with `hash`) out of the table, returning the
    /// key it held, to be dropped after unlocking. The table goes with its
    /// last flight.
    pub(crate) fn remove(&mut self, hash: u64, flight: &Arc<Flight<V>>) -> Option<K> {
        let table = self.table.as_mut()?;
        let found = table
            .find_entry(hash, |(_, f)| Arc::ptr_eq(f, flight))
            .ok()?;
        let key = found.remove().0 .0;
        if table.is_empty() {
            self.table = None;
        }
        Some(key)
    }
}

impl<K: Hash + Eq, V> Loading<K, V> {
    /// The flight loading `key`, if any.
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Arc<Flight<V>>>
    where
        Q: Equivalent<K> + ?Sized,
    {
        let table = self.table.as_ref()?;
        let (_, flight) = table.find(hash, |(k, _)| key.equivalent(k))?;
        Some(Arc::clone(flight))
    }

    /// Registers `flight` as loading `key`.
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hash: u64,
        key: K,
        flight: Arc<Flight<V>>,
        hasher: &S,
    ) {
        self.table
            .get_or_insert_with(Box::default)
            .insert_unique(hash, (key, flight), |(k, _)| hasher.hash_one(k));
    }

    /// Marks the flight loading `key` superseded, if there is one: an
    /// insert or `remove` of the key came while it loaded.
    #[inline]
    pub(crate) fn supersede<Q>(&self, hash: u64, key: &Q)
    where
        Q: Equivalent<K> + ?Sized,
    {
        if let Some(flight) = self.find(hash, key) {
            flight.superseded.store(true, Ordering::Relaxed);
        }
    }
}

impl<K, V> fmt::Debug for Loading<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loading")
            .field(
                "flights",
                &self.table.as_ref().map_or(0, |table| table.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;
    use crate::waiters::slots_visited;

    /// A task's waker: counts its wakes; its `Arc` counts the clones held.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn tasks(n: usize) -> Vec<(std::sync::Arc<Task>, Waker)> {
        (0..n)
            .map(|_| {
                let task = std::sync::Arc::new(Task::default());
                (std::sync::Arc::clone(&task), Waker::from(task))
            })
            .collect()
    }

    fn poll(end: &mut EndOf<'_, u32>, waker: &Waker) -> Poll<Option<u32>> {
        Pin::new(end).poll(&mut Context::from_waker(waker))
    }

    fn waiters_of(flight: &Flight<u32>) -> (usize, usize) {
        match &*flight.state.lock() {
            State::Loading { waiters, .. } => (waiters.len(), waiters.capacity()),
            State::Loaded(_) | State::Abandoned => (0, 0),
        }
    }

    /// Many waiters of one flight, each its own task: registering,
    /// re-registering and dropping each visits one slot (the waiter list
    /// of a Vec scanned with `will_wake` visited n²/2), and a dropped
    /// waiter's waker is released at once, while the load still runs.
    #[test]
    fn waiters_register_and_leave_in_constant_time_and_release_their_wakers() {
        let n = if cfg!(miri) { 100 } else { 100_000 };
        let flight = Arc::new(Flight::<u32>::new());
        let tasks = tasks(n);
        let mut ends: Vec<EndOf<'_, u32>> = (0..n).map(|_| EndOf::new(&flight)).collect();
        let before = slots_visited();
        for (end, (_, waker)) in ends.iter_mut().zip(&tasks) {
            assert_eq!(poll(end, waker), Poll::Pending);
        }
        // A second poll with the same waker, then with another one.
        for (end, (_, waker)) in ends.iter_mut().zip(&tasks) {
            assert_eq!(poll(end, waker), Poll::Pending);
        }
        for (end, (_, waker)) in ends.iter_mut().zip(tasks.iter().rev()) {
            assert_eq!(poll(end, waker), Poll::Pending);
        }
        assert_eq!(waiters_of(&flight).0, n);
        drop(ends);
        let visited = slots_visited() - before;
        assert_eq!(visited, 4 * n as u64, "one slot per poll and per drop");
        assert_eq!(waiters_of(&flight), (0, 0), "the slab is freed");
        for (task, _) in &tasks {
            assert_eq!(std::sync::Arc::strong_count(task), 2, "a waker is held");
        }
        flight.end(Some(1));
        assert!(tasks
            .iter()
            .all(|(task, _)| task.0.load(Ordering::SeqCst) == 0));
    }

    /// The end wakes each live waiter once, whatever was cancelled around
    /// it; each then sees the value, and a waiter polled after the end
    /// registers nothing.
    #[test]
    fn the_end_wakes_every_live_waiter_once() {
        let flight = Arc::new(Flight::<u32>::new());
        let tasks = tasks(5);
        let mut ends: Vec<EndOf<'_, u32>> = (0..5).map(|_| EndOf::new(&flight)).collect();
        for (end, (_, waker)) in ends.iter_mut().zip(&tasks) {
            assert_eq!(poll(end, waker), Poll::Pending);
        }
        let cancelled = ends.remove(1);
        drop(cancelled);
        flight.end(Some(7));
        let woken: Vec<usize> = tasks
            .iter()
            .map(|(t, _)| t.0.load(Ordering::SeqCst))
            .collect();
        assert_eq!(woken, [1, 0, 1, 1, 1]);
        let late = &tasks[1].1;
        for end in &mut ends {
            assert_eq!(poll(end, late), Poll::Ready(Some(7)));
        }
        assert_eq!(poll(&mut EndOf::new(&flight), late), Poll::Ready(Some(7)));
        drop(ends);
        for (task, _) in &tasks {
            assert_eq!(std::sync::Arc::strong_count(task), 2);
        }
    }
}
