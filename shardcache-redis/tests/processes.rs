//! Coherence across processes: this test binary starts a server, then runs
//! itself again as one child process per instance (`NEARCACHE_CHILD`
//! set); each child runs one instance of the fleet and writes its log to a
//! file; the parent checks all logs together. Its own `main` (no libtest
//! harness), so a child runs exactly one instance and nothing else.

mod support;

use std::process::Command;

use support::fleet::{check, run_instance, run_time, seed, Log, Plan};
use support::server::RedisServer;

const INSTANCES: usize = 3;

fn main() {
    let mut plan = Plan::new(INSTANCES, run_time(3.0));
    if let Ok(child) = std::env::var("NEARCACHE_CHILD") {
        let mut parts = child.split(' ');
        let (url, index, out) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap(),
        );
        // The parent's end, shared by every child.
        plan.end_at = parts.next().unwrap().parse().unwrap();
        let log = run_instance(url, index, plan);
        std::fs::write(out, log.to_text()).unwrap();
        return;
    }
    let server = RedisServer::start();
    seed(&server.url(), plan.keys);
    // The run starts once the server is up and seeded.
    plan = Plan::new(INSTANCES, plan.run);
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("nearcache-processes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let children: Vec<_> = (0..INSTANCES)
        .map(|i| {
            let out = dir.join(format!("instance-{i}.log"));
            let child = Command::new(&exe)
                .env(
                    "NEARCACHE_CHILD",
                    format!("{} {i} {} {}", server.url(), out.display(), plan.end_at),
                )
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let logs: Vec<Log> = children
        .into_iter()
        .map(|(mut child, out)| {
            assert!(child.wait().unwrap().success(), "a child failed");
            Log::from_text(&std::fs::read_to_string(out).unwrap())
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let report = check(&logs, plan.keys);
    println!("processes: {INSTANCES} instances");
    report.assert_coherent();
    assert!(report.invalidations > 0);
    assert_eq!(report.errors, 0);
    println!("test coherence_across_processes ... ok");
}
