//! Loader cycles: the wait-for graph of the running loaders, and the check a
//! caller makes before it waits for a flight.
//!
//! A loader may use the cache, so key A's loader may wait for key B's
//! flight while B's loader waits for A's: neither would ever end. The graph
//! that finds this has one node per flight ([`Node`], implemented by the
//! flight itself) and at most one edge out of each: the flight its loader
//! waits for now ([`Edge`]).
//!
//! - **Who is waiting.** While a loader runs (a blocking loader's call, or
//!   each poll of an async loader's future), its flight is pushed on a
//!   per-thread stack of [`Running`] loaders. A caller that is about to wait
//!   for a flight looks at that stack: empty, it is no loader's work and
//!   cannot close a cycle, and it pays one thread-local read. Else the
//!   innermost loader is the one that waits, and each outer loader waits
//!   for the one inside it (its call, or its poll, is running it), so the
//!   caller writes those edges before it waits: a loader pays for its place
//!   in the graph only when something under it waits.
//! - **The check.** After writing its edge, the caller walks the edges from
//!   the flight it is about to wait for. Coming back to its own loader means
//!   the wait would close a cycle: it panics instead of waiting, naming the
//!   loaders on the cycle (their types). The panic unwinds through its
//!   loader, whose flight is abandoned, so the other loaders on the cycle
//!   go on. A walk that ends (a loader that waits for nothing, or a flight
//!   that has ended) or that loops without passing the caller (a cycle it is
//!   not on; Brent's algorithm notices) finds nothing, and the caller waits.
//! - **Races.** Two callers that close a cycle at the same time each write
//!   their edge, under their flight's mutex, before they read the others'
//!   under theirs, so at least one of them sees the whole cycle (both may:
//!   then both panic).
//! - **Clearing.** The caller clears its edge when it stops waiting
//!   ([`Waiting`]'s drop). The outer loaders' edges stay until overwritten or
//!   until the flight they point to ends; an edge to an ended flight leads
//!   nowhere. Edges are weak references and live in the flight's loading
//!   state, so an ended flight holds none.
//!
//! Not detected, by construction: a loader that waits for several loads at
//! once (`join!`, `select!`) is tracked through the one it polled last; a
//! cycle through another is missed. A cycle that passes through something
//! other than a flight (a channel, a lock, a blocking call inside a task
//! that the loader's own runtime would have to run) is not a loader cycle
//! and is not seen. One shape may be reported that is not a deadlock: a
//! loader that polls a loading future and then hands it to another task
//! while it waits for something else entirely.

use crate::sync::{thread_local, Arc, Weak};
use std::cell::RefCell;
use std::fmt::{self, Write as _};

/// A flight, as a node of the wait-for graph; implemented by `Flight<V>`
/// for every `V`, so that cycles across caches and value types are seen.
pub(crate) trait Node: Send + Sync + fmt::Debug {
    /// What this flight's loader waits for now, if the flight still loads.
    fn waits(&self) -> Option<Edge>;

    /// Records that this flight's loader waits for `edge`'s flight, if this
    /// flight still loads.
    fn wait_for(&self, edge: Edge);

    /// Clears the edge if it still points to the flight at `to`.
    fn stop_waiting_for(&self, to: usize);
}

/// An edge out of a flight: the flight its loader waits for, and that
/// loader's name, for the panic message.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    to: Weak<dyn Node>,
    loader: &'static str,
}

impl Edge {
    /// Whether this edge points to the flight at `to`.
    pub(crate) fn points_to(&self, to: usize) -> bool {
        self.to.as_ptr().cast::<()>().addr() == to
    }
}

/// A flight's identity: its address, without the vtable (the same flight
/// may be seen through different vtables in different codegen units).
fn address(node: &dyn Node) -> usize {
    (node as *const dyn Node).cast::<()>().addr()
}

/// One running loader on this thread's stack.
struct Frame {
    flight: Arc<dyn Node>,
    loader: &'static str,
}

#[cfg(not(shardcache_loom))]
thread_local! {
    /// The loaders running on this thread, innermost last.
    static RUNNING: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

// loom's `thread_local!` takes no `const` block.
#[cfg(shardcache_loom)]
thread_local! {
    static RUNNING: RefCell<Vec<Frame>> = RefCell::new(Vec::new());
}

/// A loader running on this thread: pushed on the stack for as long as it
/// lives (a blocking loader's call, one poll of an async loader), popped on
/// drop, even when the loader panics.
pub(crate) struct Running {
    pushed: bool,
}

impl Running {
    /// Pushes `flight`'s loader, named `loader`.
    pub(crate) fn enter(flight: Arc<dyn Node>, loader: &'static str) -> Self {
        // Unavailable only in a thread-local's destructor: the loader then
        // runs outside the graph, and a cycle through it is not seen.
        let pushed = RUNNING
            .try_with(|running| running.borrow_mut().push(Frame { flight, loader }))
            .is_ok();
        Self { pushed }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pushed {
            let frame = RUNNING.try_with(|running| running.borrow_mut().pop());
            // The flight is released with no borrow of the stack held.
            drop(frame);
        }
    }
}

/// A caller's wait for a flight, inside a running loader: the loader's
/// edge to the flight, cleared on drop.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The waiting loader's flight and the address of the flight it waits
    /// for; `None` when no loader is running on the thread.
    edge: Option<(Arc<dyn Node>, usize)>,
}

impl Waiting {
    /// Nothing recorded: the caller is no loader's work.
    pub(crate) const NONE: Self = Self { edge: None };

    /// Records that the innermost loader running on this thread waits for
    /// `flight` (and each outer loader for the one inside it), then panics
    /// if that wait would close a cycle. `flight` is only called (an `Arc`
    /// clone) when a loader is running; with none, this is one
    /// thread-local read.
    pub(crate) fn begin(flight: impl FnOnce() -> Arc<dyn Node>) -> Self {
        let Ok(Some(recorded)) = RUNNING.try_with(|running| record(&running.borrow(), flight))
        else {
            return Self::NONE;
        };
        let Recorded { me, name, target } = recorded;
        let waiting = Self {
            edge: Some((me, address(&*target))),
        };
        if let Some(cycle) = walk(target, waiting.waiter(), name) {
            // `waiting` clears the edge as the panic unwinds.
            panic!("{}", message(&cycle));
        }
        waiting
    }

    /// The address of the waiting loader's flight (0 if none).
    fn waiter(&self) -> usize {
        self.edge.as_ref().map_or(0, |(me, _)| address(&**me))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some((me, to)) = self.edge.take() {
            me.stop_waiting_for(to);
        }
    }
}

/// The edges [`record`] wrote: the waiting loader's flight and name, and
/// the flight it waits for.
struct Recorded {
    me: Arc<dyn Node>,
    name: &'static str,
    target: Arc<dyn Node>,
}

/// Writes the edges of a wait for `flight` from the loaders on `running`,
/// or returns `None` if no loader is running.
fn record(running: &[Frame], flight: impl FnOnce() -> Arc<dyn Node>) -> Option<Recorded> {
    let (innermost, _) = running.split_last()?;
    for pair in running.windows(2) {
        pair[0].flight.wait_for(Edge {
            to: Arc::downgrade(&pair[1].flight),
            loader: pair[0].loader,
        });
    }
    let target = flight();
    innermost.flight.wait_for(Edge {
        to: Arc::downgrade(&target),
        loader: innermost.loader,
    });
    Some(Recorded {
        me: Arc::clone(&innermost.flight),
        name: innermost.loader,
        target,
    })
}

/// Follows the edges from `node`: if they lead back to `me`, the names of
/// the loaders on the way, the waiting one (`name`) first; else `None`.
fn walk(mut node: Arc<dyn Node>, me: usize, name: &'static str) -> Option<Vec<&'static str>> {
    let mut names = vec![name];
    // Brent's cycle finding: a loop that does not pass `me` ends the walk.
    let (mut mark, mut power, mut steps) = (address(&*node), 1_usize, 0_usize);
    loop {
        if address(&*node) == me {
            return Some(names);
        }
        let edge = node.waits()?;
        names.push(edge.loader);
        node = edge.to.upgrade()?;
        if address(&*node) == mark {
            return None;
        }
        steps += 1;
        if steps == power {
            (mark, power, steps) = (address(&*node), power * 2, 0);
        }
    }
}

/// The panic message for a cycle of loaders, the waiting one first.
fn message(cycle: &[&str]) -> String {
    let mut text = String::from("shardcache: loader cycle: ");
    match cycle {
        [] | [_] => {
            let name = cycle.first().copied().unwrap_or("?");
            let _ = write!(
                text,
                "the loader `{name}` waits for its own key, which it is loading; \
                 it would wait for itself forever (a loader may use the cache, \
                 but not load the key it is loading)"
            );
        }
        [first, rest @ ..] => {
            let _ = write!(text, "the loader `{first}` waits for a key");
            for name in rest {
                let _ = write!(text, " whose loader `{name}` waits for a key");
            }
            let _ = write!(
                text,
                " whose loader is the first; they would wait for each other forever"
            );
        }
    }
    text
}
