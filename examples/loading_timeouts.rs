//! Loading behind request timeouts (issue 19's repro): one backend call
//! hangs while requests for its key keep arriving and time out.
//!
//! ```text
//! cargo run --release --features async --example loading_timeouts
//! ```
//!
//! Prints, on a 4-worker tokio runtime: the heap bytes still held after
//! 100 000 requests waited 1 ms each and timed out, while the load still
//! hangs (a counting global allocator, all threads); the time those
//! requests took, next to 100 000 plain timeouts; and the time to register
//! 10 000, 40 000 and 80 000 waiters on one flight.

#[cfg(feature = "async")]
mod run {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use shardcache::Cache;
    use tokio::sync::oneshot;

    /// The system allocator, counting the bytes held.
    struct Counting;

    static HELD: AtomicIsize = AtomicIsize::new(0);

    // SAFETY: every call goes to `System` unchanged; the counter is a
    // relaxed atomic add.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            // SAFETY: the caller's contract is `System`'s.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    const REQUESTS: usize = 100_000;

    /// A cache whose key 1 is loading, with the handle that ends the load.
    async fn hanging_load() -> (Arc<Cache<u32, u32>>, oneshot::Sender<()>) {
        let cache: Arc<Cache<u32, u32>> = Arc::new(Cache::new());
        let (release, released) = oneshot::channel::<()>();
        let (started, leader_started) = oneshot::channel::<()>();
        let leader = Arc::clone(&cache);
        tokio::spawn(async move {
            leader
                .get_or_insert_with_async(1, async {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    42
                })
                .await
        });
        leader_started.await.unwrap();
        (cache, release)
    }

    /// `REQUESTS` requests, each waiting 1 ms for `wait(i)` then timing out.
    async fn timed_out<F>(wait: impl Fn() -> F) -> Duration
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send,
    {
        let start = Instant::now();
        let requests: Vec<_> = (0..REQUESTS)
            .map(|_| tokio::spawn(tokio::time::timeout(Duration::from_millis(1), wait())))
            .collect();
        for request in requests {
            assert!(request.await.unwrap().is_err(), "the request timed out");
        }
        start.elapsed()
    }

    pub async fn main() {
        let plain = timed_out(std::future::pending::<()>).await;

        let (cache, release) = hanging_load().await;
        let before = HELD.load(Ordering::Relaxed);
        let cached = timed_out(|| {
            let cache = Arc::clone(&cache);
            async move { cache.get_or_insert_with_async(1, async { 0 }).await }
        })
        .await;
        let held = HELD.load(Ordering::Relaxed) - before;
        println!(
            "{REQUESTS} requests timed out while the load hangs: {:.3} s \
             (plain timeouts: {:.3} s); heap held after them: {held} bytes",
            cached.as_secs_f64(),
            plain.as_secs_f64()
        );
        release.send(()).unwrap();

        for n in [10_000, 40_000, 80_000] {
            let (cache, release) = hanging_load().await;
            let registered = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            let waiters: Vec<_> = (0..n)
                .map(|_| {
                    let (cache, registered) = (Arc::clone(&cache), Arc::clone(&registered));
                    tokio::spawn(async move {
                        // The get is polled first: counted once it waits.
                        tokio::select! {
                            biased;
                            value = cache.get_or_insert_with_async(1, async { 0 }) => value,
                            () = async {
                                registered.fetch_add(1, Ordering::SeqCst);
                                std::future::pending::<()>().await
                            } => unreachable!(),
                        }
                    })
                })
                .collect();
            while registered.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
            let took = start.elapsed();
            release.send(()).unwrap();
            for waiter in waiters {
                assert_eq!(waiter.await.unwrap(), 42);
            }
            println!(
                "{n} waiters registered on one flight in {:.1} ms",
                took.as_secs_f64() * 1e3
            );
        }
    }
}

#[cfg(feature = "async")]
fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap()
        .block_on(run::main());
}

#[cfg(not(feature = "async"))]
fn main() {
    eprintln!("run with --features async");
}
