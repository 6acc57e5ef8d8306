//! Several instances on one server, random reads and writes of a small key
//! set, and the checker of `support/fleet.rs`: no instance ever returns a
//! value older than a write whose invalidation it has applied. Faults
//! (the server killed and restarted, the tracking connections killed, the
//! server paused past the timeout) happen halfway through a run; the
//! instances must recover on their own with no stale read.
//!
//! Each run lasts `SHARDCACHE_REDIS_SECS` seconds (default 3).

mod support;

use std::time::Duration;

use support::fleet::{run_threads, run_time, Plan};
use support::server::RedisServer;

#[test]
fn four_instances_in_threads_read_nothing_stale() {
    let server = RedisServer::start();
    let report = run_threads(&server.url(), Plan::new(4, run_time(3.0)), || {});
    report.assert_coherent();
    assert!(report.invalidations > 0, "no invalidation was applied");
    assert_eq!(report.errors, 0);
}

#[test]
fn killed_tracking_connections_are_flushed_and_replaced() {
    let server = RedisServer::start();
    let report = run_threads(&server.url(), Plan::new(3, run_time(3.0)), || {
        let mut conn = server.connection();
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query(&mut conn)
            .unwrap();
        assert!(killed >= 3, "killed {killed} connections");
    });
    report.assert_coherent();
    assert!(report.flushes >= 3, "{}", report.summary());
}

#[test]
fn a_killed_and_restarted_server_is_survived() {
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    let mut plan = Plan::new(3, run_time(3.0));
    plan.timeout = Duration::from_millis(500);
    let report = run_threads(&url, plan, || {
        server.kill();
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
    });
    report.assert_coherent();
    assert!(report.flushes >= 3, "{}", report.summary());
    assert!(report.errors > 0, "the outage went unnoticed");
}

#[test]
fn a_server_paused_past_the_timeout_is_survived() {
    let server = RedisServer::start();
    let mut plan = Plan::new(3, run_time(3.0));
    plan.timeout = Duration::from_millis(200);
    let report = run_threads(&server.url(), plan, || {
        server.pause();
        std::thread::sleep(Duration::from_millis(800));
        server.resume();
    });
    report.assert_coherent();
    assert!(report.flushes >= 3, "{}", report.summary());
    assert!(report.errors > 0, "the pause went unnoticed");
}
