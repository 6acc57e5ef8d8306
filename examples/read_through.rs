//! `cargo run --release --example read_through`: shardcache as a
//! read-through cache in front of a slow SQLite query. Eight threads ask for
//! Zipf-distributed ids through `Cache::try_get_or_insert_with`, which runs
//! the query only for a key that is missing, once however many threads miss
//! it together; the run counts every query and checks that none was
//! redundant, and compares latencies with and without the cache. `--help`
//! lists the flags; `--quick` is the CI smoke run.
//!
//! # Method
//!
//! * **The database** is a SQLite file (`rusqlite`, SQLite compiled in)
//!   written to the system's temp folder at start and deleted at the end,
//!   also when the run fails (not when it is killed: the file is named
//!   `shardcache-read-through-<pid>.sqlite3`). It has `--rows` rows of
//!   `items(id, next, price, name)`, `next` a fixed pseudo-random other row.
//!   Every worker thread opens its own read-only connection (a connection
//!   serves one thread at a time), with the file memory-mapped, so after
//!   the first touch a read is a memory read, not a system call. Not an
//!   in-memory database: connections share one only in SQLite's
//!   shared-cache mode (`file::memory:?cache=shared`), where they share one
//!   b-tree and each statement step holds its mutex, so the threads'
//!   queries would take turns and the baseline would measure that lock.
//! * **The query** for id `k` is the row's name and the sum of `price` over
//!   [`HOPS`] steps along the `next` links from `k`: a recursive CTE of
//!   `HOPS` primary-key lookups. It is deterministic, costs the same for
//!   every id, and stands for any expensive read. `HOPS` is tuned so that
//!   the median is about 1 ms on one thread of the 2-core VM this was
//!   written on, at the default 100 000 rows (0.97 to 1.03 ms measured;
//!   about 0.8 ms at `--quick`'s 10 000, whose b-tree is shallower). The
//!   run measures it first (201 queries on one thread, ids spread evenly)
//!   and prints the median.
//! * **Requests.** `--threads` threads each make their share of the
//!   requests, for ids drawn from a Zipf distribution of exponent
//!   [`ZIPF_EXPONENT`] over all rows (id 1 the most frequent), each thread
//!   from its own fixed seed. Drawing the id is not timed.
//! * **Baseline phase.** Every request runs the query on the thread's
//!   connection. It makes `--baseline-requests` requests, fewer than the
//!   cache phase because each costs a query.
//! * **Cache phase.** Every request is
//!   `cache.try_get_or_insert_with(id, || load(id))` on a fresh cache with a
//!   TTL of `--ttl-ms`, bounded to `--capacity` entries (fewer than the ids
//!   requested, so it evicts), with stats on and a removal listener. The
//!   cache's clock is the default `CoarseClock`; the load log reads a
//!   `CoarseClock` too, which is one process-wide time line, so its times
//!   and the cache's expiry agree exactly.
//! * **Latency** of each request, from the call to its return, goes into an
//!   hdrhistogram (3 significant digits). With more threads than cores,
//!   the OS runs each thread for time slices of a few milliseconds: most
//!   queries run within one slice and take their single-thread time (the
//!   baseline's p50), and those cut off wait for the other threads' slices
//!   (the p99, tens of milliseconds with 8 threads on 2 cores). A cache
//!   hit takes no slice's worth of anything: its latency is a `get`.
//!
//! # What is counted
//!
//! * **requests**: calls to `try_get_or_insert_with`.
//! * **database loads**: runs of the `init` closure, each one query. Every
//!   load is classified by the load log, which keeps, per key, the time the
//!   previous load of that key ended:
//!   - *first loads*: the key had never been loaded; their number is the
//!     distinct keys loaded (every distinct key requested, since a first
//!     request of a key always loads it);
//!   - *after the TTL*: it started at least one TTL after the previous
//!     load of its key ended. The previous value was inserted after that
//!     end, so it had expired: this is the load of a new TTL generation;
//!   - *within the TTL, after an eviction*: it started less than a TTL
//!     after the previous load ended, so the previous value had not expired
//!     but was gone: the bounded cache had evicted it. For every key, the
//!     run checks that the removal listener reported at least as many
//!     evictions of the key as it had such loads;
//!   - *within the TTL, unexplained*: the rest, which would be loads the
//!     cache should have saved (a value lost, or two threads loading one
//!     key). Must be 0.
//!
//!   A separate check counts the loads of each key in progress at once:
//!   `try_get_or_insert_with` runs one `init` per key at a time, so the
//!   most ever seen must be 1. Either check failing makes the run exit
//!   with an error.
//! * **hit ratio**: the share of requests answered without running a
//!   query, `1 - loads / requests`. It counts as answered the requests that
//!   arrived while another thread was loading their key and waited for
//!   that load. What limits it here: requests are issued back to back and
//!   a hit costs next to nothing, so the run's pace is set by the loads,
//!   about 2 000 a second on 2 cores. Within one TTL the threads thus load
//!   only about `TTL x 2000` keys, and a request for any other key misses:
//!   a longer TTL or a more skewed distribution raise the ratio, a smaller
//!   capacity lowers it.
//! * **cache.stats()**: how the cache counted. Each call makes one lookup,
//!   a hit or a miss; a miss then takes the shard's write lock and either
//!   finds the value just inserted, or waits for the load of the key in
//!   progress, or starts one (an insert). So **misses that ran no query**,
//!   `misses - loads`, are the requests that single-flight loading saved:
//!   without it each would have run the query again.
//! * **removals by cause**: what the removal listener was told, by
//!   `RemovalCause`: `Expired` (an expired entry removed, here when a
//!   lookup or an eviction found it), `Evicted` (removed to make room for a
//!   new one), and the causes a read-through cache does not produce.
//! * **values check**: a sample of keys read back through the cache equal
//!   the database's rows.
//!
//! # Time
//!
//! On a 2-core VM shared with other builds: the default run about 20 s,
//! most of it the cache phase's 17 000-odd queries; `--quick` about 2.5 s.

use std::error::Error;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use shardcache::{Cache, Clock, CoarseClock, RemovalCause};

/// A row's id, the cache's key.
type Id = u32;

/// Links followed by one query: about 1 ms on one thread of a 2-core VM.
const HOPS: u32 = 3100;

/// Exponent of the Zipf distribution of requested ids.
const ZIPF_EXPONENT: f64 = 1.2;

/// Seed of thread `t`'s request stream is `SEED + t`.
const SEED: u64 = 0x5eed_cafe;

/// Queries timed, on one thread, to measure the query's median.
const CALIBRATION_QUERIES: Id = 201;

/// Keys whose cached value is compared with the database after the run.
const CHECKED_KEYS: Id = 100;

/// A read-through cache in front of a SQLite query of about 1 ms: the
/// latency of Zipf-distributed requests from several threads with the
/// cache and without it, the queries the cache ran (and a check that none
/// was redundant), its hit ratio and its removals by cause.
///
/// The database is a temporary file with --rows rows; the query follows a
/// chain of 3100 rows. Ids are drawn from Zipf(1.2). The baseline phase
/// queries the database for every request; the cache phase asks the cache,
/// which loads missing keys with try_get_or_insert_with. Exits with an
/// error if the cache ran a query it should have saved. The module docs of
/// examples/read_through.rs give the method and what each number means.
#[derive(Debug, Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// Requests of the cache phase, over all threads.
    /// [default: 100000; --quick 10000]
    #[arg(long, value_name = "N")]
    requests: Option<u64>,

    /// Requests of the baseline phase, over all threads.
    /// [default: 2000; --quick 200]
    #[arg(long, value_name = "N")]
    baseline_requests: Option<u64>,

    /// Worker threads, each with its own database connection.
    #[arg(long, default_value_t = 8, value_name = "N")]
    threads: u64,

    /// Rows in the database; ids requested are 1 to N.
    /// [default: 100000; --quick 10000]
    #[arg(long, value_name = "N")]
    rows: Option<Id>,

    /// Time to live of a cached row, in milliseconds.
    /// [default: 3000; --quick 500]
    #[arg(long, value_name = "MS")]
    ttl_ms: Option<u64>,

    /// Entries the cache holds at most; 0 for unbounded.
    /// [default: 3000; --quick 500]
    #[arg(long, value_name = "N")]
    capacity: Option<u64>,

    /// A smoke run for CI: 10000 rows, 10000 requests, TTL 500 ms,
    /// capacity 500 (a few seconds).
    #[arg(long)]
    quick: bool,
}

/// The settings of a run, defaults filled in.
#[derive(Debug)]
struct Settings {
    requests: u64,
    baseline_requests: u64,
    threads: u64,
    rows: Id,
    ttl: Duration,
    capacity: u64,
}

impl Settings {
    fn resolve(args: &Args) -> Result<Self, Box<dyn Error>> {
        /// The flag's value, or its default for this kind of run.
        fn pick<T>(value: Option<T>, quick: bool, default: T, quick_default: T) -> T {
            value.unwrap_or(if quick { quick_default } else { default })
        }
        let quick = args.quick;
        let settings = Self {
            requests: pick(args.requests, quick, 100_000, 10_000),
            baseline_requests: pick(args.baseline_requests, quick, 2_000, 200),
            threads: args.threads,
            rows: pick(args.rows, quick, 100_000, 10_000),
            ttl: Duration::from_millis(pick(args.ttl_ms, quick, 3_000, 500)),
            capacity: pick(args.capacity, quick, 3_000, 500),
        };
        if [
            settings.requests,
            settings.baseline_requests,
            settings.threads,
        ]
        .contains(&0)
            || settings.rows == 0
            || settings.ttl.is_zero()
        {
            return Err("every flag but --capacity must be at least 1".into());
        }
        Ok(settings)
    }
}

/// What the query returns for one id: the value the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    name: String,
    /// The sum of `price` over the `HOPS` rows of the chain from this one.
    chain_price: i64,
}

/// The database file, deleted when dropped.
struct TempDatabase {
    path: PathBuf,
}

impl TempDatabase {
    /// Writes `rows` rows to a new file in the temp folder.
    fn create(rows: Id) -> Result<Self, Box<dyn Error>> {
        let path = std::env::temp_dir().join(format!(
            "shardcache-read-through-{}.sqlite3",
            std::process::id()
        ));
        // A file left by an earlier run killed with this process id.
        if path.exists() {
            fs::remove_file(&path)?;
        }
        let database = Self { path };
        let mut conn = Connection::open(&database.path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             CREATE TABLE items (
                 id INTEGER PRIMARY KEY,
                 next INTEGER NOT NULL,
                 price INTEGER NOT NULL,
                 name TEXT NOT NULL
             );",
        )?;
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare("INSERT INTO items (id, next, price, name) VALUES (?1, ?2, ?3, ?4)")?;
            for id in 1..=rows {
                // A fixed multiplicative hash: every row links to another.
                let next = id.wrapping_mul(0x9e37_79b1) % rows + 1;
                let price = id.wrapping_mul(7919) % 1000;
                insert.execute((id, next, price, format!("item-{id:06}")))?;
            }
        }
        tx.commit()?;
        Ok(database)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        // Nothing to do if it is already gone; a failure to delete a temp
        // file must not hide the run's result.
        let _ = fs::remove_file(&self.path);
    }
}

/// One thread's read-only connection and its prepared query.
struct Db {
    conn: Connection,
}

/// The query: the row's name and the sum of `price` along `HOPS` links.
const ITEM_QUERY: &str = "
    WITH RECURSIVE walk(id, hop, total) AS (
        SELECT ?1, 0, 0
        UNION ALL
        SELECT items.next, walk.hop + 1, walk.total + items.price
        FROM walk JOIN items ON items.id = walk.id
        WHERE walk.hop < ?2
    )
    SELECT items.name, walk.total
    FROM items, walk
    WHERE items.id = ?1 AND walk.hop = ?2";

impl Db {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Map up to 1 GiB of the file: reads become memory reads.
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
        Ok(Self { conn })
    }

    fn item(&self, id: Id) -> rusqlite::Result<Item> {
        self.conn
            .prepare_cached(ITEM_QUERY)?
            .query_row((id, HOPS), |row| {
                Ok(Item {
                    name: row.get(0)?,
                    chain_price: row.get(1)?,
                })
            })
    }
}

/// Draws ranks 1 to n with probability proportional to `1 / rank^s`, by
/// binary search in the cumulative distribution.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: Id, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-s);
                total
            })
            .collect();
        Self { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> Id {
        let total = self.cdf[self.cdf.len() - 1];
        let u = rng.random::<f64>() * total;
        let index = self.cdf.partition_point(|&c| c <= u);
        // `u < total`, so the index is in range; `min` guards rounding.
        index.min(self.cdf.len() - 1) as Id + 1
    }
}

/// What the load log knows about one key.
#[derive(Debug, Default)]
struct KeyHistory {
    loads: u32,
    /// When the last load ended, on the coarse clock (nanoseconds).
    last_end: u64,
    /// Loads that started less than a TTL after the previous one ended.
    within_ttl: u32,
    /// Evictions the removal listener reported.
    evicted: u32,
}

/// Every load of the cache phase, per key, and the removals by cause.
struct LoadLog {
    clock: CoarseClock,
    ttl_nanos: u64,
    /// Indexed by id (0 unused).
    keys: Vec<Mutex<KeyHistory>>,
    /// Loads of each key in progress now.
    in_flight: Vec<AtomicU32>,
    most_in_flight: AtomicU32,
    /// Removals told to the listener, indexed by [`CAUSES`], then others.
    removals: [AtomicU64; CAUSES.len() + 1],
}

/// The causes counted one by one; `RemovalCause` may gain more.
const CAUSES: [RemovalCause; 5] = [
    RemovalCause::Expired,
    RemovalCause::Evicted,
    RemovalCause::Replaced,
    RemovalCause::Removed,
    RemovalCause::Cleared,
];

/// The loads, classified as the module docs describe.
#[derive(Debug, Default)]
struct LoadCounts {
    total: u64,
    first: u64,
    after_ttl: u64,
    after_eviction: u64,
    unexplained: u64,
}

impl LoadLog {
    fn new(rows: Id, ttl: Duration) -> Self {
        let slots = rows as usize + 1;
        Self {
            clock: CoarseClock::new(),
            ttl_nanos: u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX),
            keys: (0..slots).map(|_| Mutex::default()).collect(),
            in_flight: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            most_in_flight: AtomicU32::new(0),
            removals: Default::default(),
        }
    }

    fn history(&self, id: Id) -> MutexGuard<'_, KeyHistory> {
        self.keys[id as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `query` for `id` as one logged load.
    fn load<T>(&self, id: Id, query: impl FnOnce() -> T) -> T {
        let in_flight = &self.in_flight[id as usize];
        let now_loading = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.most_in_flight.fetch_max(now_loading, Ordering::AcqRel);
        let start = self.clock.now_nanos();
        {
            let mut key = self.history(id);
            if key.loads > 0 && start.saturating_sub(key.last_end) < self.ttl_nanos {
                key.within_ttl += 1;
            }
        }
        let value = query();
        {
            // Read before the cache inserts the value, which it stamps with
            // a time no earlier than this.
            let end = self.clock.now_nanos();
            let mut key = self.history(id);
            key.loads += 1;
            key.last_end = end;
        }
        in_flight.fetch_sub(1, Ordering::AcqRel);
        value
    }

    /// The removal listener's work.
    fn removed(&self, id: Id, cause: RemovalCause) {
        let slot = CAUSES
            .iter()
            .position(|&c| c == cause)
            .unwrap_or(CAUSES.len());
        self.removals[slot].fetch_add(1, Ordering::Relaxed);
        if cause == RemovalCause::Evicted {
            self.history(id).evicted += 1;
        }
    }

    fn counts(&self) -> LoadCounts {
        let mut counts = LoadCounts::default();
        for key in &self.keys {
            let key = key.lock().unwrap_or_else(PoisonError::into_inner);
            if key.loads == 0 {
                continue;
            }
            let (loads, within) = (u64::from(key.loads), u64::from(key.within_ttl));
            let explained = within.min(u64::from(key.evicted));
            counts.total += loads;
            counts.first += 1;
            counts.after_ttl += loads - 1 - within;
            counts.after_eviction += explained;
            counts.unexplained += within - explained;
        }
        counts
    }
}

/// One phase's latencies and wall time.
struct Phase {
    latency: Histogram<u64>,
    elapsed: Duration,
}

/// Runs `requests` requests from `threads` threads, each with its own
/// connection; `request(db, id)` serves one.
fn run_phase<R>(
    settings: &Settings,
    database: &TempDatabase,
    zipf: &Zipf,
    requests: u64,
    request: R,
) -> Result<Phase, Box<dyn Error>>
where
    R: Fn(&Db, Id) -> rusqlite::Result<Arc<Item>> + Sync,
{
    let threads = settings.threads;
    let start_line = Barrier::new(threads as usize + 1);
    let (elapsed, results) = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (start_line, request) = (&start_line, &request);
                // The first `requests % threads` threads take one more.
                let share = requests / threads + u64::from(t < requests % threads);
                scope.spawn(move || -> rusqlite::Result<Histogram<u64>> {
                    let db = Db::open(database.path());
                    let mut rng = StdRng::seed_from_u64(SEED + t);
                    let mut latency = new_histogram();
                    start_line.wait();
                    let db = db?;
                    for _ in 0..share {
                        let id = zipf.sample(&mut rng);
                        let began = Instant::now();
                        black_box(request(&db, id)?);
                        latency.saturating_record(nanos(began.elapsed()));
                    }
                    Ok(latency)
                })
            })
            .collect();
        start_line.wait();
        let began = Instant::now();
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect();
        (began.elapsed(), results)
    });
    let mut latency = new_histogram();
    for result in results {
        latency.add(result?)?;
    }
    Ok(Phase { latency, elapsed })
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `850 ns`, `12.3 µs`, `1.02 ms`, `3.40 s`.
fn human(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The median time of the query on one thread, over ids spread evenly.
fn query_median(database: &TempDatabase, rows: Id) -> Result<(Duration, Item), Box<dyn Error>> {
    let db = Db::open(database.path())?;
    let first = db.item(1)?;
    let mut times = Vec::new();
    for i in 0..CALIBRATION_QUERIES {
        // Evenly spread: 1 + i * rows / CALIBRATION_QUERIES, without overflow.
        let id = 1 + (u64::from(i) * u64::from(rows) / u64::from(CALIBRATION_QUERIES)) as Id;
        let began = Instant::now();
        black_box(db.item(id)?);
        times.push(began.elapsed());
    }
    times.sort_unstable();
    Ok((times[times.len() / 2], first))
}

fn print_latency(label: &str, phase: &Phase, requests: u64) {
    let h = &phase.latency;
    println!(
        "  {label:<15} {:>9} {:>9} {:>9} {:>9}   {requests} requests in {:.2} s",
        human(h.value_at_quantile(0.5)),
        human(h.value_at_quantile(0.99)),
        human(h.value_at_quantile(0.999)),
        human(h.max()),
        phase.elapsed.as_secs_f64(),
    );
}

/// One line of the report: a label, a number, a note.
fn row(label: &str, value: impl std::fmt::Display, note: &str) {
    let line = format!("{label:<38} {value:>8}  {note}");
    println!("{}", line.trim_end());
}

fn main() -> Result<(), Box<dyn Error>> {
    let settings = Settings::resolve(&Args::parse())?;
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let began = Instant::now();
    let database = TempDatabase::create(settings.rows)?;
    println!(
        "database: {} rows in {} ({:.2} s to write)",
        settings.rows,
        database.path().display(),
        began.elapsed().as_secs_f64()
    );
    let (median, first) = query_median(&database, settings.rows)?;
    println!(
        "query: median {} on one thread ({CALIBRATION_QUERIES} queries, {HOPS} links each); \
         id 1 is {:?}, chain price {}",
        human(nanos(median)),
        first.name,
        first.chain_price
    );
    println!(
        "{} threads on {cores} cores, ids Zipf({ZIPF_EXPONENT}) over 1..={}",
        settings.threads, settings.rows
    );

    let zipf = Zipf::new(settings.rows, ZIPF_EXPONENT);
    let baseline = run_phase(
        &settings,
        &database,
        &zipf,
        settings.baseline_requests,
        |db, id| db.item(id).map(Arc::new),
    )?;

    let log = Arc::new(LoadLog::new(settings.rows, settings.ttl));
    let listener_log = Arc::clone(&log);
    let mut builder = Cache::<Id, Arc<Item>>::builder()
        .default_ttl(settings.ttl)
        .record_stats(true)
        .removal_listener(move |id, _item, cause| listener_log.removed(id, cause));
    if settings.capacity > 0 {
        builder = builder.max_capacity(settings.capacity);
    }
    let cache = builder.build();
    let cached = run_phase(&settings, &database, &zipf, settings.requests, |db, id| {
        cache.try_get_or_insert_with(id, || log.load(id, || db.item(id).map(Arc::new)))
    })?;

    // Snapshots first: the value check below reads the cache.
    let loads = log.counts();
    let most_in_flight = log.most_in_flight.load(Ordering::Acquire);
    let stats = cache.stats();
    let removals = log.removals.each_ref().map(|n| n.load(Ordering::Relaxed));
    let (checked, sampled) = check_values(&cache, &database, settings.rows)?;

    let capacity = match cache.max_capacity() {
        Some(capacity) => capacity.to_string(),
        None => "unbounded".to_owned(),
    };
    println!(
        "\ncache: TTL {:?}, capacity {capacity}, shards {}",
        settings.ttl,
        cache.shard_count()
    );
    println!(
        "\nlatency per request  {:>9} {:>9} {:>9} {:>9}",
        "p50", "p99", "p99.9", "max"
    );
    print_latency("database only", &baseline, settings.baseline_requests);
    print_latency("through cache", &cached, settings.requests);

    let requests = settings.requests;
    let share = |n: u64| format!("({:.1}% of requests)", 100.0 * n as f64 / requests as f64);
    println!();
    row("requests", requests, "");
    row("database loads", loads.total, &share(loads.total));
    row("  first loads (distinct keys)", loads.first, "");
    row("  after the TTL (a new generation)", loads.after_ttl, "");
    row(
        "  within the TTL, after an eviction",
        loads.after_eviction,
        "",
    );
    row(
        "  within the TTL, unexplained",
        loads.unexplained,
        "(must be 0)",
    );
    row(
        "most loads of one key at once",
        most_in_flight,
        "(must be 1)",
    );
    row(
        "hit ratio (requests without a query)",
        format!("{:.4}", (requests - loads.total) as f64 / requests as f64),
        "",
    );
    row(
        "misses that ran no query",
        stats.misses.saturating_sub(loads.total),
        "(answered by another thread's load)",
    );
    println!(
        "cache.stats(): hits {}, misses {}, inserts {}, expirations {}, evictions {}",
        stats.hits, stats.misses, stats.inserts, stats.expirations, stats.evictions
    );
    print!("removal listener:");
    for (cause, count) in CAUSES.iter().zip(removals) {
        print!(" {cause:?} {count}");
    }
    if removals[CAUSES.len()] > 0 {
        print!(", other {}", removals[CAUSES.len()]);
    }
    println!();
    println!("values check: {checked} of ids 1..={sampled} cached, each equal to its row");
    println!("total time {:.1} s", began.elapsed().as_secs_f64());

    if loads.unexplained > 0 || most_in_flight > 1 {
        return Err("the cache ran queries it should have saved (see above)".into());
    }
    Ok(())
}

/// Compares the cached values of ids 1 to [`CHECKED_KEYS`] with the
/// database; returns how many were cached, and how many ids it looked up.
fn check_values(
    cache: &Cache<Id, Arc<Item>>,
    database: &TempDatabase,
    rows: Id,
) -> Result<(Id, Id), Box<dyn Error>> {
    let db = Db::open(database.path())?;
    let sampled = CHECKED_KEYS.min(rows);
    let mut checked = 0;
    for id in 1..=sampled {
        if let Some(item) = cache.get(&id) {
            if *item != db.item(id)? {
                return Err(format!("the cached value of id {id} differs from its row").into());
            }
            checked += 1;
        }
    }
    Ok((checked, sampled))
}
