//! A fleet of `NearCache` instances reading and writing a small key set,
//! each logging what it did, and a checker of those logs.
//!
//! Key `k` is written only by instance `k % n`, with versions 1, 2, 3...,
//! so Redis's order of a key's writes is its version order. Times are
//! nanoseconds of the system clock, comparable across processes.
//!
//! The rule checked: an instance applies its invalidations one at a time
//! and tells its hook after each (`at`). Event `e` (the key, or a flush)
//! was applied after the previous event's hook returned (`prev`), so every
//! write of the key that had returned by `prev` had been executed by
//! Redis before the invalidation was applied. A read of the key that starts
//! after `at` must return at least the newest such write's version. A
//! smaller version is a stale read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};
use shardcache_redis::{Invalidation, NearCache};

/// Nanoseconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64
}

/// How long a coherence run lasts: `SHARDCACHE_REDIS_SECS`, else `default`.
pub fn run_time(default: f64) -> Duration {
    let secs = std::env::var("SHARDCACHE_REDIS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

pub fn key_name(key: usize) -> String {
    format!("key:{key}")
}

fn key_index(name: &str) -> Option<usize> {
    name.strip_prefix("key:")?.parse().ok()
}

/// What one instance did.
#[derive(Default, Debug)]
pub struct Log {
    /// (key, version, started, returned) of each write that succeeded.
    pub writes: Vec<(usize, u64, u64, u64)>,
    /// (at, key or `None` for a flush) of each invalidation, in order.
    pub events: Vec<(u64, Option<usize>)>,
    /// (key, version, started) of each read that returned a value.
    pub reads: Vec<(usize, u64, u64)>,
    /// Calls that failed (Redis unavailable).
    pub errors: u64,
    /// Whether the instance was connected when it stopped.
    pub connected_at_end: bool,
    /// Keys this instance still read differently from Redis 5 s after
    /// every writer had stopped (an invalidation it never got).
    pub diverged: u64,
}

impl Log {
    /// One line per record, for a child process to hand its log over.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v, s, r) in &self.writes {
            out += &format!("W {k} {v} {s} {r}\n");
        }
        for (at, key) in &self.events {
            match key {
                Some(k) => out += &format!("E {at} {k}\n"),
                None => out += &format!("E {at} -\n"),
            }
        }
        for (k, v, s) in &self.reads {
            out += &format!("R {k} {v} {s}\n");
        }
        out += &format!(
            "X {} {} {}\n",
            self.errors, self.connected_at_end as u8, self.diverged
        );
        out
    }

    pub fn from_text(text: &str) -> Self {
        let mut log = Log::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let n = |i: usize| f[i].parse::<u64>().expect("a number");
            match f[0] {
                "W" => log.writes.push((n(1) as usize, n(2), n(3), n(4))),
                "E" => log
                    .events
                    .push((n(1), (f[2] != "-").then(|| n(2) as usize))),
                "R" => log.reads.push((n(1) as usize, n(2), n(3))),
                "X" => {
                    log.errors = n(1);
                    log.connected_at_end = n(2) == 1;
                    log.diverged = n(3);
                }
                other => panic!("unknown record {other}"),
            }
        }
        log
    }
}

/// How an instance is run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// When every instance stops writing (`now()` nanoseconds).
    pub end_at: u64,
    pub instances: usize,
    pub keys: usize,
    pub run: Duration,
    /// Redis command timeout of each instance.
    pub timeout: Duration,
    /// Percentage of operations that are writes.
    pub write_percent: u32,
}

impl Plan {
    pub fn new(instances: usize, run: Duration) -> Self {
        Self {
            end_at: now() + run.as_nanos() as u64,
            instances,
            keys: 16,
            run,
            timeout: Duration::from_secs(1),
            write_percent: 10,
        }
    }
}

/// Writes version 0 of every key.
pub fn seed(url: &str, keys: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache: NearCache<u64> = NearCache::builder(url).build().await.unwrap();
        for k in 0..keys {
            cache.set(&key_name(k), &0).await.unwrap();
        }
    });
}

/// Runs instance `index` of `plan` on its own single-threaded runtime in
/// the calling thread, until the run ends; returns its log.
pub fn run_instance(url: &str, index: usize, plan: Plan) -> Log {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(instance(url, index, plan))
}

async fn instance(url: &str, index: usize, plan: Plan) -> Log {
    let events = Arc::new(Mutex::new(Vec::new()));
    let hook_events = Arc::clone(&events);
    let cache: NearCache<u64> = NearCache::builder(url)
        .timeout(plan.timeout)
        .reconnect_backoff(Duration::from_millis(5), Duration::from_millis(100))
        .on_invalidation(move |event| {
            let key = match event {
                Invalidation::Key(name) => match key_index(name) {
                    Some(k) => Some(k),
                    None => return,
                },
                _ => None,
            };
            hook_events.lock().unwrap().push((now(), key));
        })
        .build()
        .await
        .unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(index as u64 * 7919 + now() % 1000);
    let own: Vec<usize> = (0..plan.keys)
        .filter(|k| k % plan.instances == index)
        .collect();
    let mut versions: HashMap<usize, u64> = own.iter().map(|&k| (k, 0)).collect();
    let mut log = Log::default();
    let mut ops = 0u64;
    while now() < plan.end_at {
        ops += 1;
        if !own.is_empty() && rng.random_range(0..100) < plan.write_percent {
            let key = own[rng.random_range(0..own.len())];
            let version = versions[&key] + 1;
            // A failed write may still have happened: never reuse its version.
            versions.insert(key, version);
            let started = now();
            match cache.set(&key_name(key), &version).await {
                Ok(()) => log.writes.push((key, version, started, now())),
                Err(_) => log.errors += 1,
            }
        } else {
            let key = rng.random_range(0..plan.keys);
            let started = now();
            match cache.get(&key_name(key)).await {
                Ok(Some(version)) => log.reads.push((key, *version, started)),
                Ok(None) => panic!("key {key} vanished from Redis"),
                Err(_) => log.errors += 1,
            }
        }
        // Leave the other instances (and the server) room on small machines.
        if ops.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // Recovered on its own: connected again within a few seconds.
    let recovered = Instant::now() + Duration::from_secs(10);
    while !cache.is_connected() && Instant::now() < recovered {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.connected_at_end = cache.is_connected();
    log.diverged = diverged(url, &cache, plan).await;
    log.events = std::mem::take(&mut *events.lock().unwrap());
    log
}

/// Once every writer has stopped, each key must read here as it reads in
/// Redis within 5 s: an instance that missed an invalidation (say, while
/// its connection was down) and kept its old copy never converges. Returns
/// the number of keys that did not.
async fn diverged(url: &str, cache: &NearCache<u64>, plan: Plan) -> u64 {
    // Every writer stopped at `end_at`; a write in flight then has returned
    // (or failed) a timeout later.
    let settled = plan.end_at + plan.timeout.as_nanos() as u64;
    tokio::time::sleep(Duration::from_nanos(settled.saturating_sub(now()))).await;
    let mut direct = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut diverged = 0;
    for k in 0..plan.keys {
        loop {
            let truth: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key_name(k))
                .query_async(&mut direct)
                .await
                .unwrap();
            let truth = truth.map(|bytes| postcard::from_bytes::<u64>(&bytes).unwrap());
            let here = cache.get(&key_name(k)).await.ok().flatten().map(|v| *v);
            if here == truth {
                break;
            }
            if Instant::now() > give_up {
                diverged += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    diverged
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Report {
    pub reads: u64,
    pub writes: u64,
    pub stale: u64,
    pub errors: u64,
    pub invalidations: u64,
    pub flushes: u64,
    /// Nanoseconds from a write's start to an instance applying an
    /// invalidation of the key, for each key invalidation.
    pub lags: Vec<u64>,
    pub first_stale: Option<String>,
    pub all_connected_at_end: bool,
    /// Keys some instance read differently from Redis after the writers
    /// stopped, summed over instances.
    pub diverged: u64,
}

impl Report {
    pub fn lag_percentile(&self, p: f64) -> Duration {
        if self.lags.is_empty() {
            return Duration::ZERO;
        }
        let mut lags = self.lags.clone();
        lags.sort_unstable();
        let i = ((lags.len() - 1) as f64 * p).round() as usize;
        Duration::from_nanos(lags[i])
    }

    pub fn summary(&self) -> String {
        format!(
            "{} reads, {} writes, {} stale, {} diverged, {} errors, {} invalidations, \
             {} flushes, invalidation lag from write start p50 {:?} p99 {:?}",
            self.reads,
            self.writes,
            self.stale,
            self.diverged,
            self.errors,
            self.invalidations,
            self.flushes,
            self.lag_percentile(0.5),
            self.lag_percentile(0.99)
        )
    }

    /// No stale read, and every instance recovered.
    pub fn assert_coherent(&self) {
        eprintln!("{}", self.summary());
        assert_eq!(self.stale, 0, "stale reads; first: {:?}", self.first_stale);
        assert!(self.reads > 0, "no read succeeded");
        assert!(self.all_connected_at_end, "an instance did not reconnect");
        assert_eq!(self.diverged, 0, "instances kept copies Redis had changed");
    }
}

/// Checks every instance's reads against every instance's writes.
pub fn check(logs: &[Log], keys: usize) -> Report {
    // Per key: (returned, version) by return time, with the running maximum.
    let mut returned: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    // Per key: (started, version) by start time, for the lag.
    let mut started: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
    for log in logs {
        for &(k, v, s, r) in &log.writes {
            returned[k].push((r, v));
            started[k].push((s, v));
        }
    }
    for list in returned.iter_mut().chain(started.iter_mut()) {
        list.sort_unstable();
        let mut max = 0;
        for entry in list.iter_mut() {
            max = max.max(entry.1);
            entry.1 = max;
        }
    }
    // The newest version of `key` whose write had returned by `t`.
    let newest_by = |key: usize, t: u64| -> u64 {
        let list = &returned[key];
        let n = list.partition_point(|&(r, _)| r <= t);
        if n == 0 {
            0
        } else {
            list[n - 1].1
        }
    };
    let mut report = Report {
        all_connected_at_end: true,
        ..Report::default()
    };
    for (instance, log) in logs.iter().enumerate() {
        report.writes += log.writes.len() as u64;
        report.errors += log.errors;
        report.all_connected_at_end &= log.connected_at_end;
        report.diverged += log.diverged;
        // Per key: (at, required version) of each event that concerns it.
        let mut required: Vec<Vec<(u64, u64)>> = vec![Vec::new(); keys];
        let mut prev = 0;
        for &(at, key) in &log.events {
            match key {
                Some(k) => {
                    report.invalidations += 1;
                    required[k].push((at, newest_by(k, prev)));
                    let list = &started[k];
                    let n = list.partition_point(|&(s, _)| s <= at);
                    if n > 0 {
                        report.lags.push(at - list[n - 1].0);
                    }
                }
                None => {
                    report.flushes += 1;
                    for (k, list) in required.iter_mut().enumerate() {
                        list.push((at, newest_by(k, prev)));
                    }
                }
            }
            prev = at;
        }
        for list in &mut required {
            let mut max = 0;
            for entry in list.iter_mut() {
                max = max.max(entry.1);
                entry.1 = max;
            }
        }
        for &(k, version, start) in &log.reads {
            report.reads += 1;
            let list = &required[k];
            let n = list.partition_point(|&(at, _)| at <= start);
            let need = if n == 0 { 0 } else { list[n - 1].1 };
            if version < need {
                report.stale += 1;
                report.first_stale.get_or_insert_with(|| {
                    format!(
                        "instance {instance} read key {k} version {version} at {start}, \
                         needed {need}"
                    )
                });
            }
        }
    }
    report
}

/// Runs the fleet in threads, `fault` on the calling thread halfway
/// through, and checks it.
pub fn run_threads(url: &str, plan: Plan, fault: impl FnOnce()) -> Report {
    seed(url, plan.keys);
    // The run starts once the server is seeded.
    let plan = Plan {
        end_at: now() + plan.run.as_nanos() as u64,
        ..plan
    };
    let handles: Vec<_> = (0..plan.instances)
        .map(|i| {
            let url = url.to_owned();
            std::thread::spawn(move || run_instance(&url, i, plan))
        })
        .collect();
    std::thread::sleep(plan.run / 2);
    fault();
    let logs: Vec<Log> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    check(&logs, plan.keys)
}
