//! `cargo run --example sessions`: a session store whose idle sessions
//! expire and are swept out by the janitor, each one reported to a removal
//! listener. Runs for about a second.
//!
//! Sessions live in a `Cache<SessionId, Arc<Session>>` built with
//!
//! * `time_to_idle(300 ms)`: the idle timeout (minutes in a real server,
//!   shortened so the example is quick): a session neither read nor
//!   written for that long expires;
//! * `cleanup_interval(100 ms)`: a background janitor thread sweeps every
//!   shard once per interval, so an expired session is removed at most
//!   about one interval after its deadline even if nothing looks it up;
//! * `removal_listener`: told of every session that leaves, and why.
//!
//! Five users sign in at 0 ms. Every 100 ms until 1 s a request arrives for
//! alice, and until 400 ms for bob; carol, dave and erin make none. A
//! request reads its session with `get`, which restarts its idle time (to
//! within a 32nd of it: the read path stores a new deadline at most once
//! per step, so a session read by every core is not written on every
//! read). So carol, dave and erin expire at 300 ms, bob at about 700 ms
//! (300 ms after his last request), and alice stays.
//!
//! No one reads an idle session again, so no lookup removes it: the janitor
//! does, and the listener prints each one with its time, its cause
//! (`RemovalCause::Expired`) and the thread it ran on: a sweep tells the
//! listener on the janitor's thread, `shardcache-janitor`. A read changes
//! nothing the listener hears: no session is ever `Replaced` (before
//! `time_to_idle`, this example re-inserted each session on every request,
//! and the listener heard each of those).
//!
//! At the end the example checks what the output shows: the four idle
//! sessions, and only they, were reported `Expired`, each by the janitor,
//! none `Replaced`, and alice is the one session left. If the machine is so loaded that the
//! janitor is late, it waits for it (touching alice meanwhile) for up to
//! two more seconds before failing.

use std::collections::BTreeSet;
use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use shardcache::{Cache, RemovalCause};

type SessionId = u64;

/// What a session holds; a real one would hold more.
#[derive(Debug)]
struct Session {
    user: &'static str,
}

/// The idle timeout.
const IDLE: Duration = Duration::from_millis(300);
/// How often the janitor sweeps.
const SWEEP: Duration = Duration::from_millis(100);
/// Time between two requests of an active user.
const TICK: Duration = Duration::from_millis(100);
/// How long requests arrive.
const RUN: Duration = Duration::from_secs(1);
/// bob's requests stop here.
const BOB_LEAVES: Duration = Duration::from_millis(400);
/// How much longer to wait for a janitor that is late.
const GRACE: Duration = Duration::from_secs(2);

const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Milliseconds since `start`, for the log lines.
fn ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

/// Reads session `id`, restarting its idle time: what a server does on
/// each request of a signed-in user.
fn touch(sessions: &Cache<SessionId, Arc<Session>>, id: SessionId) -> bool {
    sessions.get(&id).is_some()
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    // Users whose session the janitor reported expired.
    let swept: Arc<Mutex<BTreeSet<&'static str>>> = Arc::default();
    let replaced = Arc::new(AtomicU64::new(0));

    let (log, replaced_count) = (Arc::clone(&swept), Arc::clone(&replaced));
    let sessions: Cache<SessionId, Arc<Session>> = Cache::builder()
        .time_to_idle(IDLE)
        .cleanup_interval(SWEEP)
        .removal_listener(move |id, session: Arc<Session>, cause| match cause {
            RemovalCause::Expired => {
                let thread = thread::current();
                let on = thread.name().unwrap_or("unnamed");
                println!(
                    "{:>5} ms  session {id} ({}) {cause:?}, told on thread {on}",
                    ms(start),
                    session.user
                );
                if on == "shardcache-janitor" {
                    log.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(session.user);
                }
            }
            RemovalCause::Replaced => {
                replaced_count.fetch_add(1, Ordering::Relaxed);
            }
            other => println!("{:>5} ms  session {id}: {other:?}", ms(start)),
        })
        .build();

    for (id, user) in (1..).zip(USERS) {
        sessions.insert(id, Arc::new(Session { user }));
    }
    println!(
        "{:>5} ms  {} sessions: {} (idle timeout {IDLE:?}, janitor every {SWEEP:?})",
        ms(start),
        sessions.len(),
        USERS.join(", ")
    );
    println!("          requests every {TICK:?}: alice until {RUN:?}, bob until {BOB_LEAVES:?}");

    let (alice, bob) = (1, 2);
    let idle: BTreeSet<&str> = USERS[1..].iter().copied().collect();
    let all_idle_swept = || *swept.lock().unwrap_or_else(PoisonError::into_inner) == idle;
    for tick in 1.. {
        // Requests are due at 100 ms, 200 ms, ...
        let due = TICK * tick;
        thread::sleep((start + due).saturating_duration_since(Instant::now()));
        if due >= RUN && all_idle_swept() {
            break;
        }
        if due >= RUN + GRACE {
            return Err("the janitor did not sweep the idle sessions in time".into());
        }
        if !touch(&sessions, alice) {
            return Err("alice's session expired although she was active".into());
        }
        if due <= BOB_LEAVES {
            touch(&sessions, bob);
        }
    }

    println!(
        "{:>5} ms  still signed in: {} session ({}); sessions reported as Replaced: {}",
        ms(start),
        sessions.len(),
        sessions.get(&alice).map_or("none", |s| s.user),
        replaced.load(Ordering::Relaxed)
    );
    if sessions.len() != 1 {
        return Err(format!("expected alice's session alone, found {}", sessions.len()).into());
    }
    if replaced.load(Ordering::Relaxed) != 0 {
        return Err("a read replaced a session: reads must not write".into());
    }
    // Stops and joins the janitor; dropping the cache would too.
    sessions.close();
    Ok(())
}
