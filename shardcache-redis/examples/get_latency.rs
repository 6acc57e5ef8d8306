//! The benchmark: `get` latency and throughput of an L1 hit, an L2 hit
//! (the key dropped from L1 first, so the read goes to Redis) and a plain
//! Redis `GET` over the same kind of connection (one multiplexed RESP3
//! connection shared by all tasks), with 1 to 4 threads, against a
//! `redis-server` this example starts on a free port.
//!
//! ```text
//! cargo run --release -p shardcache-redis --example get_latency -- [--millis 1000]
//! ```

#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardcache_redis::NearCache;

const KEYS: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Subject {
    L1Hit,
    L2Hit,
    RedisGet,
}

fn millis() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--millis")
        .and_then(|i| args.get(i + 1))
        .map_or(1000, |v| v.parse().expect("a number"))
}

/// Runs `threads` tasks on a runtime of `threads` workers for `run`;
/// returns (operations, per-operation latencies in ns, sampled).
fn measure(url: &str, subject: Subject, threads: usize, run: Duration) -> (u64, Vec<u64>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache: NearCache<String> = NearCache::builder(url)
            .max_capacity(KEYS as u64 * 2)
            .build()
            .await
            .unwrap();
        let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|k| format!("bench:{k}")).collect());
        for key in keys.iter() {
            cache.set(key, &"x".repeat(100)).await.unwrap();
            cache.get(key).await.unwrap();
        }
        let client = redis::Client::open(format!("{url}/?protocol=resp3")).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let deadline = Instant::now() + run;
        let tasks: Vec<_> = (0..threads)
            .map(|t| {
                let (cache, keys, mut conn) = (cache.clone(), Arc::clone(&keys), conn.clone());
                tokio::spawn(async move {
                    let mut ops = 0u64;
                    let mut samples = Vec::new();
                    let mut i = t * 7;
                    while Instant::now() < deadline {
                        let key = &keys[i % KEYS];
                        i += 1;
                        let start = Instant::now();
                        match subject {
                            Subject::L1Hit => {
                                std::hint::black_box(cache.get(key).await.unwrap());
                            }
                            Subject::L2Hit => {
                                cache.evict_local(key);
                                std::hint::black_box(cache.get(key).await.unwrap());
                            }
                            Subject::RedisGet => {
                                let value: Option<Vec<u8>> = redis::cmd("GET")
                                    .arg(key)
                                    .query_async(&mut conn)
                                    .await
                                    .unwrap();
                                std::hint::black_box(value);
                            }
                        }
                        if ops.is_multiple_of(16) {
                            samples.push(start.elapsed().as_nanos() as u64);
                        }
                        ops += 1;
                        if subject == Subject::L1Hit && ops.is_multiple_of(1024) {
                            tokio::task::yield_now().await;
                        }
                    }
                    (ops, samples)
                })
            })
            .collect();
        let mut total = 0;
        let mut all = Vec::new();
        for task in tasks {
            let (ops, samples) = task.await.unwrap();
            total += ops;
            all.extend(samples);
        }
        if subject != Subject::RedisGet {
            let stats = cache.stats();
            let expected = match subject {
                Subject::L1Hit => stats.l1_hits,
                _ => stats.l2_hits,
            };
            assert!(expected >= total, "{subject:?}: {stats:?}");
        }
        all.sort_unstable();
        (total, all)
    })
}

fn main() {
    let server = server::RedisServer::start();
    let run = Duration::from_millis(millis());
    println!("subject    threads  ops/s         p50        p99     mean");
    let mut mean_at_one = Vec::new();
    for subject in [Subject::L1Hit, Subject::L2Hit, Subject::RedisGet] {
        for threads in 1..=4 {
            let (ops, lat) = measure(&server.url(), subject, threads, run);
            let pick = |p: f64| Duration::from_nanos(lat[((lat.len() - 1) as f64 * p) as usize]);
            let mean = Duration::from_nanos(lat.iter().sum::<u64>() / lat.len() as u64);
            if threads == 1 {
                mean_at_one.push((subject, mean));
            }
            println!(
                "{:<10} {threads:>7}  {:>11.0}  {:>9.1?}  {:>9.1?}  {:>7.1?}",
                format!("{subject:?}"),
                ops as f64 / run.as_secs_f64(),
                pick(0.5),
                pick(0.99),
                mean
            );
        }
    }
    let l1 = mean_at_one[0].1.as_nanos() as f64;
    let redis = mean_at_one[2].1.as_nanos() as f64;
    println!(
        "one thread: an L1 hit is {:.0}x faster than a Redis GET (mean latency)",
        redis / l1
    );
}
