//! A writer that waits for a slow reader sleeps instead of spinning.
//!
//! A `get` clones its value under the shard's read lock, so a slow `Clone`
//! holds every writer of that shard out. The writer spins briefly, then
//! parks until the last reader leaves (`src/locks.rs`); before, it yielded
//! in a loop and burnt a whole core for as long as the clone took.
//!
//! Linux only: the writer's CPU time comes from `/proc/thread-self`.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use shardcache::Cache;

/// A value whose clone blocks until the test lets it go, when it has a
/// gate: the clone waits at `entered` (so the test knows a reader holds
/// the read lock), then at `release`.
#[derive(Debug)]
struct Slow {
    gate: Option<Arc<Gate>>,
}

#[derive(Debug)]
struct Gate {
    entered: Barrier,
    release: Barrier,
}

impl Clone for Slow {
    fn clone(&self) -> Self {
        if let Some(gate) = &self.gate {
            gate.entered.wait();
            gate.release.wait();
        }
        Slow { gate: None }
    }
}

/// The calling thread's CPU time (user + system), or `None` where the
/// platform does not say. `schedstat` gives nanoseconds; `stat` clock
/// ticks (USER_HZ, 100 on Linux) as a fallback.
fn thread_cpu_time() -> Option<Duration> {
    if cfg!(miri) || !cfg!(target_os = "linux") {
        return None;
    }
    if let Ok(text) = std::fs::read_to_string("/proc/thread-self/schedstat") {
        let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
        return Some(Duration::from_nanos(nanos));
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3:
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

#[test]
fn a_writer_blocked_behind_a_slow_clone_uses_almost_no_cpu() {
    if thread_cpu_time().is_none() {
        eprintln!("skipped: no per-thread CPU time on this platform");
        return;
    }
    // One shard: the writer's key meets the reader's lock.
    let cache: Arc<Cache<u32, Slow>> = Arc::new(Cache::builder().shards(1).build());
    let gate = Arc::new(Gate {
        entered: Barrier::new(2),
        release: Barrier::new(2),
    });
    cache.insert(
        1,
        Slow {
            gate: Some(Arc::clone(&gate)),
        },
    );

    let reader = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || cache.get(&1).is_some())
    };
    // The reader is inside `Clone`, holding the read lock.
    gate.entered.wait();

    let writer = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            let cpu = thread_cpu_time().expect("checked above");
            let start = Instant::now();
            cache.insert(2, Slow { gate: None });
            let wall = start.elapsed();
            (wall, thread_cpu_time().expect("checked above") - cpu)
        })
    };
    let blocked_for = Duration::from_millis(300);
    thread::sleep(blocked_for);
    gate.release.wait();
    assert!(reader.join().unwrap());
    let (wall, cpu) = writer.join().unwrap();

    eprintln!("writer blocked {wall:?} of wall time, used {cpu:?} of CPU");
    assert!(
        wall >= blocked_for / 2,
        "the writer did not wait for the reader ({wall:?})"
    );
    assert!(
        cpu < wall / 4,
        "the writer used {cpu:?} of CPU while blocked for {wall:?}: it spins instead of sleeping"
    );
    assert!(cache.get(&2).is_some());
}
