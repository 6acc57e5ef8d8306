//! What a run measured, and its report: the tables, the target check and
//! the JSON. The plot is in [`crate::plot`].

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use crate::policies::{Policy, Replayed};
use crate::traces::Trace;

/// How far below the reference shardcache may be, in points of hit ratio.
pub const TOLERANCE_POINTS: f64 = 0.5;

/// The policies shardcache is held against in every cell: the best of them
/// there is the reference of target 1 and of the `peers` column.
pub const PEERS: [Policy; 3] = [Policy::Moka, Policy::QuickCache, Policy::Lru];

/// How far sharding may take shardcache below one shard of the same
/// capacity, in points.
pub const SHARDING_TOLERANCE_POINTS: f64 = 1.0;

/// Which replay: a trace (index), a capacity in entries, a policy and a
/// thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    pub trace: usize,
    pub capacity: usize,
    pub policy: Policy,
    pub threads: usize,
}

/// A hit ratio in percent over the seeds: mean, lowest and highest.
#[derive(Clone, Copy, Debug)]
pub struct Ratio {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// Everything a run measured.
pub struct Results {
    pub traces: Vec<Trace>,
    /// Capacities of each trace, in entries, ascending.
    pub capacities: Vec<Vec<usize>>,
    /// Policies in column order.
    pub policies: Vec<Policy>,
    /// `--threads N`, when given and above 1.
    pub threads: Option<usize>,
    /// The hasher seeds, one set per replay of each cache.
    pub seeds: Vec<[u64; 4]>,
    /// One replay per seed set for the caches, one for the exact policies.
    pub replays: HashMap<Cell, Vec<Replayed>>,
    /// Wall-clock seconds of loading and of replaying.
    pub load_seconds: f64,
    pub replay_seconds: f64,
}

impl Results {
    /// The hit ratio of `policy` on trace `trace` at `capacity` entries and
    /// `threads` threads.
    pub fn ratio(
        &self,
        trace: usize,
        capacity: usize,
        policy: Policy,
        threads: usize,
    ) -> Option<Ratio> {
        let cell = Cell {
            trace,
            capacity,
            policy,
            threads,
        };
        let replays = self.replays.get(&cell)?;
        let requests = self.traces[trace].keys.len() as f64;
        let ratios: Vec<f64> = replays
            .iter()
            .map(|r| 100.0 * r.hits as f64 / requests)
            .collect();
        Some(Ratio {
            mean: ratios.iter().sum::<f64>() / ratios.len() as f64,
            min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn mean(&self, trace: usize, capacity: usize, policy: Policy, threads: usize) -> Option<f64> {
        self.ratio(trace, capacity, policy, threads).map(|r| r.mean)
    }

    /// The best of [`PEERS`] in a cell at 1 thread (means over seeds), and
    /// which one it is.
    pub fn best_peer(&self, trace: usize, capacity: usize) -> Option<(f64, Policy)> {
        PEERS
            .into_iter()
            .filter_map(|p| Some((self.mean(trace, capacity, p, 1)?, p)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// The lines of the plot and the JSON: every policy at 1 thread, then
    /// the threaded ones at `--threads`.
    pub fn series(&self) -> Vec<(Policy, usize)> {
        let single = self.policies.iter().map(|&p| (p, 1));
        let threaded = self.threads.into_iter().flat_map(|n| {
            self.policies
                .iter()
                .filter(|p| p.is_threaded())
                .map(move |&p| (p, n))
        });
        single.chain(threaded).collect()
    }
}

/// `label` of a series in tables, the plot and the JSON.
pub fn series_label(policy: Policy, threads: usize) -> String {
    if threads == 1 {
        policy.name().to_owned()
    } else {
        format!("{} {threads}thr", policy.name())
    }
}

fn capacity_label(capacity: usize, distinct: usize) -> String {
    format!(
        "{capacity} ({:.1}%)",
        100.0 * capacity as f64 / distinct as f64
    )
}

/// Prints the main table: for each trace and capacity, every policy's hit
/// ratio (mean over seeds) and its gap to OPT.
pub fn print_table(results: &Results) {
    const WIDTH: usize = 16;
    for (t, trace) in results.traces.iter().enumerate() {
        println!(
            "\n{}: {} requests, {} distinct keys; {}",
            trace.name,
            trace.keys.len(),
            trace.distinct,
            trace.source
        );
        print!("  {:<18}", "capacity");
        for policy in &results.policies {
            print!("{:>WIDTH$}", policy.name());
        }
        println!("{:>WIDTH$}", "vs best peer");
        for &capacity in &results.capacities[t] {
            print!("  {:<18}", capacity_label(capacity, trace.distinct));
            let opt = results.mean(t, capacity, Policy::Opt, 1);
            for &policy in &results.policies {
                let cell = match (results.mean(t, capacity, policy, 1), opt) {
                    (Some(hit), Some(opt)) if policy != Policy::Opt => {
                        format!("{hit:.2} ({:+.2})", hit - opt)
                    }
                    (Some(hit), _) => format!("{hit:.2}"),
                    (None, _) => "-".to_owned(),
                };
                print!("{cell:>WIDTH$}");
            }
            let versus = match (
                results.mean(t, capacity, Policy::Shardcache, 1),
                results.best_peer(t, capacity),
            ) {
                (Some(mine), Some((best, peer))) => format!("{:+.2} {}", mine - best, peer.name()),
                _ => "-".to_owned(),
            };
            println!("  {versus:<WIDTH$}");
        }
    }
}

/// Prints, with `--threads N`, each threaded policy's hit ratio at 1 and
/// at N threads and the change.
pub fn print_threads_table(results: &Results) {
    let Some(n) = results.threads else { return };
    let threaded: Vec<Policy> = results
        .policies
        .iter()
        .copied()
        .filter(|p| p.is_threaded())
        .collect();
    println!(
        "\nHit % at 1 thread -> {n} threads (change), the same trace in {n} interleaved slices"
    );
    print!("  {:<16} {:<18}", "trace", "capacity");
    for policy in &threaded {
        print!("{:>26}", policy.name());
    }
    println!();
    for (t, trace) in results.traces.iter().enumerate() {
        for &capacity in &results.capacities[t] {
            print!(
                "  {:<16} {:<18}",
                trace.name,
                capacity_label(capacity, trace.distinct)
            );
            for &policy in &threaded {
                let cell = match (
                    results.mean(t, capacity, policy, 1),
                    results.mean(t, capacity, policy, n),
                ) {
                    (Some(one), Some(many)) => {
                        format!("{one:.2} -> {many:.2} ({:+.2})", many - one)
                    }
                    _ => "-".to_owned(),
                };
                print!("{cell:>26}");
            }
            println!();
        }
    }
}

/// Prints, with several seeds, the widest spread (highest minus lowest hit
/// ratio over the seeds) of each cache, and where.
pub fn print_seed_spread(results: &Results) {
    if results.seeds.len() < 2 {
        return;
    }
    println!(
        "\nSpread over the {} hasher seeds (max - min, points), widest cell:",
        results.seeds.len()
    );
    for (policy, threads) in results.series() {
        if !policy.is_cache() {
            continue;
        }
        let widest = results
            .traces
            .iter()
            .enumerate()
            .flat_map(|(t, trace)| {
                results.capacities[t].iter().filter_map(move |&c| {
                    let r = results.ratio(t, c, policy, threads)?;
                    Some((r.max - r.min, format!("{} @ {c}", trace.name)))
                })
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((spread, cell)) = widest {
            println!(
                "  {:<20} {spread:.2} ({cell})",
                series_label(policy, threads)
            );
        }
    }
}

/// One checked cell of a target.
#[derive(Debug)]
pub struct Check {
    /// Which target.
    pub target: &'static str,
    pub trace: String,
    pub capacity: usize,
    /// shardcache's hit ratio and the reference it must come within
    /// `tolerance` points of, with the reference's label.
    pub mine: f64,
    pub reference: f64,
    pub against: String,
    pub tolerance: f64,
}

impl Check {
    pub fn met(&self) -> bool {
        self.mine >= self.reference - self.tolerance
    }

    fn to_json(&self) -> Json {
        json!({
            "target": self.target,
            "trace": self.trace,
            "capacity": self.capacity,
            "shardcache": self.mine,
            "reference": self.reference,
            "against": self.against,
            "tolerance_points": self.tolerance,
            "met": self.met(),
        })
    }
}

/// Target 1, in every cell: shardcache >= the best of moka, quick_cache
/// and LRU - 0.5 points; and over all cells, shardcache's mean >= the mean
/// of each cell's best peer. Target 2: shardcache with its default shard count >= the same
/// capacity in one shard - 1 point. Target 3, with `--threads N`:
/// shardcache at N threads >= shardcache at 1 thread - 0.5 points. Means
/// over the seeds.
pub fn check_targets(results: &Results) -> Vec<Check> {
    let mut checks = Vec::new();
    // (shardcache, best peer) in each cell, for the mean.
    let mut against_peers: Vec<(f64, f64)> = Vec::new();
    for (t, trace) in results.traces.iter().enumerate() {
        for &capacity in &results.capacities[t] {
            let Some(mine) = results.mean(t, capacity, Policy::Shardcache, 1) else {
                continue;
            };
            if let Some((reference, peer)) = results.best_peer(t, capacity) {
                against_peers.push((mine, reference));
                checks.push(Check {
                    target: "shardcache >= max(moka, quick_cache, LRU) - 0.5",
                    trace: trace.name.clone(),
                    capacity,
                    mine,
                    reference,
                    against: peer.name().to_owned(),
                    tolerance: TOLERANCE_POINTS,
                });
            }
            if let Some(one) = results.mean(t, capacity, Policy::ShardcacheOneShard, 1) {
                checks.push(Check {
                    target: "shardcache >= shardcache in one shard - 1",
                    trace: trace.name.clone(),
                    capacity,
                    mine,
                    reference: one,
                    against: Policy::ShardcacheOneShard.name().to_owned(),
                    tolerance: SHARDING_TOLERANCE_POINTS,
                });
            }
            if let Some(n) = results.threads {
                if let Some(many) = results.mean(t, capacity, Policy::Shardcache, n) {
                    checks.push(Check {
                        target: "shardcache at --threads >= shardcache at 1 thread - 0.5",
                        trace: trace.name.clone(),
                        capacity,
                        mine: many,
                        reference: mine,
                        against: "shardcache 1thr".to_owned(),
                        tolerance: TOLERANCE_POINTS,
                    });
                }
            }
        }
    }
    if !against_peers.is_empty() {
        let n = against_peers.len() as f64;
        checks.push(Check {
            target: "mean over cells: shardcache >= mean of each cell's best peer",
            trace: format!("all {} cells", against_peers.len()),
            capacity: 0,
            mine: against_peers.iter().map(|c| c.0).sum::<f64>() / n,
            reference: against_peers.iter().map(|c| c.1).sum::<f64>() / n,
            against: "best peer per cell".to_owned(),
            tolerance: 0.0,
        });
    }
    checks
}

/// Prints every missed cell, then the summary line.
pub fn print_targets(checks: &[Check]) {
    println!(
        "\nTargets (hit-ratio points, means over seeds; a cell is met within the tolerance its target names):"
    );
    let mut targets: Vec<&str> = Vec::new();
    for check in checks {
        if !targets.contains(&check.target) {
            targets.push(check.target);
        }
    }
    for target in targets {
        let cells: Vec<&Check> = checks.iter().filter(|c| c.target == target).collect();
        let met = cells.iter().filter(|c| c.met()).count();
        println!("  {target}: {met} of {} cells met", cells.len());
        if cells.len() == 1 && cells[0].capacity == 0 {
            let c = cells[0];
            println!(
                "    {}: shardcache {:.2}, {} {:.2} ({:+.2})",
                c.trace,
                c.mine,
                c.against,
                c.reference,
                c.mine - c.reference
            );
        }
        for check in cells.iter().filter(|c| !c.met()) {
            println!(
                "    MISSED {} @ {}: shardcache {:.2} < {} {:.2} - {} (short by {:.2} points)",
                check.trace,
                check.capacity,
                check.mine,
                check.against,
                check.reference,
                check.tolerance,
                check.reference - check.tolerance - check.mine
            );
        }
    }
    let met = checks.iter().filter(|c| c.met()).count();
    println!("targets: {met} of {} cells met", checks.len());
}

/// Everything, for `hitratio.json`.
pub fn to_json(results: &Results, checks: &[Check], command: &str) -> Json {
    let traces: Vec<Json> = results
        .traces
        .iter()
        .zip(&results.capacities)
        .map(|(trace, capacities)| {
            json!({
                "name": trace.name,
                "source": trace.source,
                "requests": trace.keys.len(),
                "distinct_keys": trace.distinct,
                "capacities": capacities,
            })
        })
        .collect();
    let mut cells = Vec::new();
    for (t, trace) in results.traces.iter().enumerate() {
        for &capacity in &results.capacities[t] {
            let opt = results.mean(t, capacity, Policy::Opt, 1);
            for (policy, threads) in results.series() {
                let cell = Cell {
                    trace: t,
                    capacity,
                    policy,
                    threads,
                };
                let (Some(replays), Some(ratio)) = (
                    results.replays.get(&cell),
                    results.ratio(t, capacity, policy, threads),
                ) else {
                    continue;
                };
                cells.push(json!({
                    "trace": trace.name,
                    "capacity": capacity,
                    "policy": policy.name(),
                    "threads": threads,
                    "hit_percent": ratio.mean,
                    "hit_percent_min": ratio.min,
                    "hit_percent_max": ratio.max,
                    "gap_to_opt_points": opt.map(|o| ratio.mean - o),
                    "hits_per_seed": replays.iter().map(|r| r.hits).collect::<Vec<_>>(),
                    "shards": replays[0].shards,
                    "final_len_per_seed": replays.iter().map(|r| r.final_len).collect::<Vec<_>>(),
                }));
            }
        }
    }
    let policies: Vec<Json> = results
        .policies
        .iter()
        .map(|p| json!({ "name": p.name(), "what": p.describe() }))
        .collect();
    let seeds: Vec<Vec<String>> = results
        .seeds
        .iter()
        .map(|s| s.iter().map(|x| format!("{x:#018x}")).collect())
        .collect();
    let met = checks.iter().filter(|c| c.met()).count();
    json!({
        "command": command,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "threads": results.threads,
        "hasher": "ahash::RandomState::with_seeds(a, b, c, d)",
        "seeds": seeds,
        "policies": policies,
        "traces": traces,
        "cells": cells,
        "targets": {
            "cells": checks.len(),
            "met": met,
            "checks": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        },
        "load_seconds": results.load_seconds,
        "replay_seconds": results.replay_seconds,
    })
}
