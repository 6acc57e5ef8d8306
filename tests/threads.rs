//! Caches leave no threads behind. Alone in its own test binary, so no
//! other test's threads change the count.

use std::time::Duration;

use shardcache::{Cache, ManualClock};

/// Threads in this process, from `/proc/self/status`.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "counts threads in /proc/self/status"
)]
#[cfg_attr(miri, ignore = "Miri has no /proc and counts its own threads")]
fn a_thousand_caches_with_janitors_leave_no_threads() {
    let before = threads();
    for i in 0..1000u64 {
        // Half with the default clock: entries with a TTL start the shared
        // coarse-clock ticker, which must stop with the last cache.
        let builder = Cache::builder()
            .shards(4)
            .cleanup_interval(Duration::from_millis(1));
        let cache: Cache<u64, u64> = if i % 2 == 0 {
            builder.clock(ManualClock::new()).build()
        } else {
            builder.build()
        };
        cache.insert_with_ttl(i, i, Duration::from_secs(60));
        assert_eq!(cache.get(&i), Some(i));
        if i % 3 == 0 {
            cache.close();
        }
    }
    assert_eq!(
        threads(),
        before,
        "a janitor or ticker thread outlived its cache"
    );
}
