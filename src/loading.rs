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

use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::cache::Cache;
use crate::listener::resume;
use crate::sync::{thread, Arc, AtomicBool, Condvar, Mutex, Ordering};
use crate::Equivalent;

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The value under `key`, or the one `init` makes, which is inserted
    /// with the default TTL. For one key at a time only one `init` runs:
    /// concurrent callers for the same key park until it returns and get
    /// its value; callers for other keys, even in the same shard, never wait
    /// for it. `init` runs with no lock held, so it may use the cache, except
    /// to load the same key again: that panics, as it would wait for itself.
    ///
    /// A `get` of the key while it loads returns `None` at once. An
    /// `insert`, `remove` or `clear` of the key while it loads wins: the
    /// loaded value is still returned to this caller and the waiting ones,
    /// but not stored over the newer state. If `init` panics, the panic
    /// reaches this caller, and the waiting callers start over: one of them
    /// loads with its own `init`.
    ///
    /// A hit costs what [`get`](Self::get) costs.
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
        let loaded: Result<V, Infallible> = self.try_get_or_insert_with(key, || Ok(init()));
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
        let (hash, index) = self.locate(&key);
        match self.lookup_at(hash, index, &key, V::clone) {
            Some(value) => Ok(value),
            None => self.load(hash, index, key, init),
        }
    }

    /// The miss path of [`try_get_or_insert_with`](Self::try_get_or_insert_with),
    /// out of line so that a hit costs what a `get` costs.
    #[cold]
    #[inline(never)]
    fn load<E>(
        &self,
        hash: u64,
        index: usize,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        loop {
            match self.join(hash, index, &key, true) {
                Join::Hit(value) => return Ok(value),
                Join::Wait(flight) => {
                    assert!(
                        !flight.loaded_by_this_thread(),
                        "shardcache: get_or_insert_with was called from inside the loader \
                         of the same key; it would wait for itself forever"
                    );
                    if let Some(value) = flight.wait() {
                        return Ok(value);
                    }
                    // Abandoned: look again, and lead if no one else does.
                    if let Some(value) = self.lookup_at(hash, index, &key, V::clone) {
                        return Ok(value);
                    }
                }
                Join::Lead(flight) => {
                    let lead = Lead::new(self, hash, index, flight);
                    let value = init()?;
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
    /// caller takes over with its own future. Unlike the blocking form, a
    /// future that awaits its own key is not detected: it waits forever.
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
        let loaded: Result<V, Infallible> = self
            .try_get_or_insert_with_async(key, async { Ok(init.await) })
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
        let (hash, index) = self.locate(&key);
        loop {
            if let Some(value) = self.lookup_at(hash, index, &key, V::clone) {
                return Ok(value);
            }
            match self.join(hash, index, &key, false) {
                Join::Hit(value) => return Ok(value),
                Join::Wait(flight) => {
                    if let Some(value) = EndOf(&flight).await {
                        return Ok(value);
                    }
                }
                Join::Lead(flight) => {
                    let lead = Lead::new(self, hash, index, flight);
                    let value = init.await?;
                    lead.land(key, value.clone());
                    return Ok(value);
                }
            }
        }
    }
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
struct Lead<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    cache: &'a Cache<K, V, S>,
    hash: u64,
    index: usize,
    flight: Option<Arc<Flight<V>>>,
}

impl<'a, K, V, S> Lead<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    fn new(cache: &'a Cache<K, V, S>, hash: u64, index: usize, flight: Arc<Flight<V>>) -> Self {
        Self {
            cache,
            hash,
            index,
            flight: Some(flight),
        }
    }

    /// Stores the loaded value and wakes the waiters with it. If storing
    /// panics (a weigher, `Hash` or `Eq`), the flight is abandoned by `drop`
    /// instead; a panicking listener is resumed after the waiters are woken.
    fn land(mut self, key: K, value: V) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let panic = self
            .cache
            .land(self.hash, self.index, key, value.clone(), flight);
        if let Some(flight) = self.flight.take() {
            flight.end(Some(value));
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
            self.cache.abandon(self.hash, self.index, &flight);
        }
    }
}

/// Awaits the end of a flight.
#[cfg(feature = "async")]
struct EndOf<'a, V>(&'a Flight<V>);

#[cfg(feature = "async")]
impl<V: Clone> std::future::Future for EndOf<'_, V> {
    type Output = Option<V>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<V>> {
        self.0.poll_end(cx)
    }
}

/// Where a load stands.
enum State<V> {
    Loading {
        /// Async waiters to wake when it ends.
        #[cfg(feature = "async")]
        wakers: Vec<std::task::Waker>,
    },
    Loaded(V),
    Abandoned,
}

/// One key's load, shared by its loader and its waiters.
pub(crate) struct Flight<V> {
    /// The thread of a blocking loader, to catch a loader that asks for its
    /// own key (which would wait for itself forever). `None` for an async
    /// loader, whose task may move between threads.
    owner: Option<thread::ThreadId>,
    state: Mutex<State<V>>,
    ended: Condvar,
    /// Set, under the shard's write lock, by an insert, `remove` or `clear`
    /// of the key while it loads.
    superseded: AtomicBool,
}

impl<V: Clone> Flight<V> {
    /// A flight loaded by the calling thread (`blocking`) or by a future.
    pub(crate) fn new(blocking: bool) -> Self {
        Self {
            owner: blocking.then(|| thread::current().id()),
            state: Mutex::new(State::Loading {
                #[cfg(feature = "async")]
                wakers: Vec::new(),
            }),
            ended: Condvar::default(),
            superseded: AtomicBool::new(false),
        }
    }

    /// Whether the calling thread is this flight's blocking loader.
    pub(crate) fn loaded_by_this_thread(&self) -> bool {
        self.owner == Some(thread::current().id())
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

    /// Polls for the end of the flight, registering `cx`'s waker if it has
    /// not ended.
    #[cfg(feature = "async")]
    pub(crate) fn poll_end(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<V>> {
        use std::task::Poll;
        let mut state = self.state.lock();
        match &mut *state {
            State::Loading { wakers } => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Loaded(value) => Poll::Ready(Some(value.clone())),
            State::Abandoned => Poll::Ready(None),
        }
    }

    /// Ends the flight with `value` (`None`: abandoned) and wakes every
    /// waiter. Call with no shard lock held.
    pub(crate) fn end(&self, value: Option<V>) {
        let ended = match value {
            Some(value) => State::Loaded(value),
            None => State::Abandoned,
        };
        let previous = std::mem::replace(&mut *self.state.lock(), ended);
        self.ended.notify_all();
        #[cfg(feature = "async")]
        if let State::Loading { wakers } = previous {
            wakers.into_iter().for_each(std::task::Waker::wake);
        }
        #[cfg(not(feature = "async"))]
        drop(previous);
    }

    /// Whether an insert, `remove` or `clear` of the key came while it
    /// loaded. Read under the shard's write lock.
    pub(crate) fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Relaxed)
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
