//! A fleet of `NearCache` instances in one process, against a
//! `redis-server` this example starts on a free port (it must be on
//! `PATH`). Each instance reads keys drawn from a skewed distribution and
//! writes a few; at the end it prints, per instance, the L1 hit ratio, the
//! Redis reads saved, and the invalidation lag (from a write's start to
//! the instance dropping the key) at p50 and p99.
//!
//! ```text
//! cargo run --release -p shardcache-redis --example near_cache -- \
//!     [--instances 4] [--secs 5] [--keys 10000] [--write-percent 2]
//! ```

#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use shardcache_redis::{Invalidation, NearCache};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// Skewed key choice: key `k` with probability about 1/(k+1) (Zipf, s=1).
fn zipf(rng: &mut impl Rng, keys: u64) -> u64 {
    let h = (keys as f64).ln() + 0.5772;
    let x = rng.random::<f64>() * h;
    ((x - 0.5772).exp().floor() as u64).min(keys - 1)
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    Duration::from_nanos(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let instances = arg("--instances", 4) as usize;
    let secs = arg("--secs", 5);
    let keys = arg("--keys", 10_000);
    let write_percent = arg("--write-percent", 2) as u32;
    let server = server::RedisServer::start();
    let origin = Instant::now();
    let nanos = move || origin.elapsed().as_nanos() as u64;
    // When the latest write of each key started.
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect());

    let mut caches = Vec::new();
    let mut lags = Vec::new();
    for _ in 0..instances {
        let lag = Arc::new(Mutex::new(Vec::new()));
        let (record, started) = (Arc::clone(&lag), Arc::clone(&started));
        let cache: NearCache<String> = NearCache::builder(&server.url())
            .max_capacity(keys / 4)
            .default_ttl(Duration::from_secs(60))
            .on_invalidation(move |event| {
                if let Invalidation::Key(key) = event {
                    if let Some(k) = key
                        .strip_prefix("item:")
                        .and_then(|k| k.parse::<u64>().ok())
                    {
                        let at = started[k as usize].load(Ordering::Relaxed);
                        if at > 0 {
                            record.lock().unwrap().push(nanos().saturating_sub(at));
                        }
                    }
                }
            })
            .build()
            .await
            .unwrap();
        caches.push(cache);
        lags.push(lag);
    }

    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = caches
        .iter()
        .enumerate()
        .map(|(i, cache)| {
            let (cache, started) = (cache.clone(), Arc::clone(&started));
            tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(i as u64);
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let k = zipf(&mut rng, keys);
                    let key = format!("item:{k}");
                    if rng.random_range(0..100) < write_percent {
                        started[k as usize].store(nanos(), Ordering::Relaxed);
                        cache.set(&key, &format!("v{ops}")).await.unwrap();
                    } else {
                        cache
                            .get_or_load(&key, || async move {
                                Ok::<_, std::io::Error>(format!("loaded {k}"))
                            })
                            .await
                            .unwrap();
                    }
                    ops += 1;
                    if ops.is_multiple_of(256) {
                        tokio::task::yield_now().await;
                    }
                }
                ops
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    println!(
        "{instances} instances, {keys} keys (Zipf), {write_percent}% writes, {secs} s: \
         {total} operations ({:.0}/s)",
        total as f64 / secs as f64
    );
    println!("instance  L1 hit ratio  Redis reads saved  loads  invalidations  lag p50    lag p99");
    let mut all = Vec::new();
    for (i, (cache, lag)) in caches.iter().zip(&lags).enumerate() {
        let stats = cache.stats();
        let mut lag = lag.lock().unwrap().clone();
        lag.sort_unstable();
        all.extend_from_slice(&lag);
        let reads = stats.l1_hits + stats.l2_hits + stats.loads;
        println!(
            "{i:>8}  {:>12.3}  {:>17}  {:>5}  {:>13}  {:>9.0?}  {:>9.0?}",
            stats.l1_hit_ratio(),
            format!("{}/{}", stats.l1_hits, reads),
            stats.loads,
            stats.invalidations,
            percentile(&lag, 0.5),
            percentile(&lag, 0.99)
        );
    }
    all.sort_unstable();
    println!(
        "all       invalidation lag p50 {:.0?}, p99 {:.0?} ({} invalidations)",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len()
    );
}
