//! redis-rs's client-side cache (`cache-aio`) against NearCache on one
//! workload: one reader (a cached connection, or an instance), Zipf reads
//! over 10 000 keys with every 50th operation a write from another
//! connection, cache capacity 2 500; then the latency of a cached hit.
//!
//! ```text
//! cd shardcache-redis/compare-csc && cargo run --release
//! ```
#[path = "../../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use redis::caching::CacheConfig;
use shardcache_redis::NearCache;

const KEYS: u64 = 10_000;
const OPS: u64 = 200_000;

fn zipf(rng: &mut impl Rng) -> u64 {
    let h = (KEYS as f64).ln() + 0.5772;
    let x = rng.random::<f64>() * h;
    ((x - 0.5772).exp().floor() as u64).min(KEYS - 1)
}

#[tokio::main]
async fn main() {
    let server = server::RedisServer::start();
    let url = server.url();
    let resp3 = format!("{url}/?protocol=resp3");
    let client = redis::Client::open(resp3.as_str()).unwrap();
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();
    for k in 0..KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("item:{k}"))
            .arg(0u64)
            .query_async(&mut writer)
            .await
            .unwrap();
    }
    // redis-rs cache-aio
    let config = redis::AsyncConnectionConfig::new()
        .set_cache_config(CacheConfig::new().set_size(NonZeroUsize::new(2_500).unwrap()));
    let mut csc = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let near: NearCache<u64> = NearCache::builder(&url)
        .max_capacity(2_500)
        .build()
        .await
        .unwrap();

    for subject in ["redis-rs cache-aio", "NearCache"] {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut lat = Vec::with_capacity(OPS as usize);
        let start = Instant::now();
        for i in 0..OPS {
            let k = zipf(&mut rng);
            let key = format!("item:{k}");
            if i % 50 == 0 {
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(i)
                    .query_async(&mut writer)
                    .await
                    .unwrap();
                continue;
            }
            let t = Instant::now();
            if subject == "NearCache" {
                std::hint::black_box(
                    near.get_or_load(&key, || async { Ok::<u64, std::io::Error>(0) })
                        .await
                        .unwrap(),
                );
            } else {
                let v: Option<u64> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut csc)
                    .await
                    .unwrap();
                std::hint::black_box(v);
            }
            lat.push(t.elapsed().as_nanos() as u64);
        }
        let elapsed = start.elapsed();
        lat.sort_unstable();
        let p = |q: f64| Duration::from_nanos(lat[((lat.len() - 1) as f64 * q) as usize]);
        let hit_ratio = if subject == "NearCache" {
            near.stats().l1_hit_ratio()
        } else {
            let s = csc.get_cache_statistics().unwrap();
            s.hit as f64 / (s.hit + s.miss) as f64
        };
        println!(
            "{subject:<20} hit ratio {hit_ratio:.3}  read p50 {:>8.1?}  p90 {:>8.1?}  p99 {:>8.1?}  {:.0} ops/s",
            p(0.5), p(0.9), p(0.99), OPS as f64 / elapsed.as_secs_f64()
        );
    }
    // Hit latency alone: one hot key read again and again.
    let _: Option<u64> = redis::cmd("GET")
        .arg("item:0")
        .query_async(&mut csc)
        .await
        .unwrap();
    near.get("item:0").await.unwrap();
    for subject in ["redis-rs cache-aio", "NearCache"] {
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            if subject == "NearCache" {
                std::hint::black_box(near.get("item:0").await.unwrap());
            } else {
                let v: Option<u64> = redis::cmd("GET")
                    .arg("item:0")
                    .query_async(&mut csc)
                    .await
                    .unwrap();
                std::hint::black_box(v);
            }
        }
        println!("{subject:<20} cached hit: {:.0?} per read", t.elapsed() / n);
    }
}
