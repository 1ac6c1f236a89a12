//! Fifteen minutes of one-second samples of every pool and node, kept in
//! memory by the admin server (on the control thread) for the status
//! page's charts: requests/s, errors/s and p99 latency per pool, ops/s
//! and lag per node, with failovers, ejections, migrations and reloads
//! marked. Sampling reads the same counters `/metrics` does; nothing on
//! the data path changes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::metrics::{HistogramSnapshot, LATENCY_BOUNDS_US};
use crate::pool::PoolState;
use crate::proxy_info::ProxyInfo;
use crate::topology::Events;
use crate::topology::{unix_ms, EVENTS_KEPT};

/// Samples kept: one a second for fifteen minutes.
pub const KEEP: usize = 900;

/// Event kinds marked on the charts.
const MARKED: &[&str] = &[
    "failover",
    "master",
    "sentinel",
    "two-masters",
    "eject",
    "reshard",
];

#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

struct Sample {
    at_ms: u64,
    /// The configuration's epoch (a change is a reload).
    epoch: u64,
    pools: Vec<PoolSample>,
}

struct PoolSample {
    name: Arc<str>,
    requests: u64,
    errors: u64,
    latency: HistogramSnapshot,
    /// By node label: requests sent to it, and its replication lag.
    nodes: BTreeMap<Arc<str>, (u64, Option<u64>)>,
}

impl History {
    /// Takes a sample of every pool now.
    pub fn record(&mut self, proxy: &ProxyInfo) {
        let pools = proxy.pools().iter().map(sample).collect();
        self.samples.push_back(Sample {
            // Milliseconds, not seconds times 1000: samples a timer takes about
            // a second apart would otherwise be 0 or 2 s apart at times, and
            // their rates 1000x or 0.5x what they were.
            at_ms: unix_ms(),
            epoch: proxy.config().epoch,
            pools,
        });
        while self.samples.len() > KEEP {
            self.samples.pop_front();
        }
    }

    /// Per-second rates between consecutive samples, as the page draws
    /// them, with the moments worth marking.
    pub fn series(&self, events: &Events) -> Value {
        let mut pools: BTreeMap<Arc<str>, PoolSeries> = BTreeMap::new();
        let mut reloads = Vec::new();
        for (before, after) in self.samples.iter().zip(self.samples.iter().skip(1)) {
            if after.epoch != before.epoch {
                reloads.push(after.at_ms);
            }
            let seconds = (after.at_ms.saturating_sub(before.at_ms) as f64 / 1000.0).max(0.001);
            for pool in &after.pools {
                let Some(old) = before.pools.iter().find(|p| p.name == pool.name) else {
                    continue;
                };
                let series = pools.entry(pool.name.clone()).or_default();
                series.t.push(after.at_ms);
                series.rps.push(rate(pool.requests, old.requests, seconds));
                series.eps.push(rate(pool.errors, old.errors, seconds));
                series.p99_ms.push(p99_ms(&pool.latency, &old.latency));
                for (label, (requests, lag)) in &pool.nodes {
                    let node = series.nodes.entry(label.clone()).or_default();
                    let old_requests = old.nodes.get(label).map_or(*requests, |n| n.0);
                    node.t.push(after.at_ms);
                    node.ops.push(rate(*requests, old_requests, seconds));
                    node.lag.push(*lag);
                }
            }
        }
        let since = self.samples.front().map_or(0, |s| s.at_ms);
        let marks: Vec<Value> = (events.recent(EVENTS_KEPT).into_iter())
            .filter(|e| e.at_ms >= since && MARKED.contains(&e.kind))
            .map(|e| json!({"at_ms": e.at_ms, "pool": &*e.pool, "kind": e.kind, "message": e.message}))
            .chain(reloads.into_iter().map(|at| json!({"at_ms": at, "pool": null, "kind": "reload", "message": "configuration reloaded"})))
            .collect();
        json!({
            "now_ms": unix_ms(),
            "span_ms": (KEEP as u64) * 1000,
            "pools": pools.into_iter().map(|(name, s)| s.json(&name)).collect::<Vec<_>>(),
            "marks": marks,
        })
    }
}

#[derive(Default)]
struct PoolSeries {
    t: Vec<u64>,
    rps: Vec<f64>,
    eps: Vec<f64>,
    p99_ms: Vec<Option<f64>>,
    nodes: BTreeMap<Arc<str>, NodeSeries>,
}

#[derive(Default)]
struct NodeSeries {
    t: Vec<u64>,
    ops: Vec<f64>,
    lag: Vec<Option<u64>>,
}

impl PoolSeries {
    fn json(self, name: &str) -> Value {
        let nodes: Vec<Value> = (self.nodes.into_iter())
            .map(|(addr, n)| json!({"addr": &*addr, "t": n.t, "ops": n.ops, "lag": n.lag}))
            .collect();
        json!({"pool": name, "t": self.t, "rps": self.rps, "eps": self.eps, "p99_ms": self.p99_ms, "nodes": nodes})
    }
}

fn rate(now: u64, before: u64, seconds: f64) -> f64 {
    (now.saturating_sub(before) as f64 / seconds * 10.0).round() / 10.0
}

/// The 99th percentile of the requests between two snapshots: the upper
/// bound of the bucket it falls in, in milliseconds (None: no request).
fn p99_ms(now: &HistogramSnapshot, before: &HistogramSnapshot) -> Option<f64> {
    let counts: Vec<u64> = (now.counts.iter().zip(&before.counts))
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = total - total / 100;
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= wanted {
            let bound = LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX / 2);
            return Some(bound as f64 / 1000.0);
        }
    }
    None
}

fn sample(pool: &Arc<PoolState>) -> PoolSample {
    let (mut requests, mut errors) = (0u64, 0u64);
    let mut latency = HistogramSnapshot::default();
    for worker in pool.worker_stats() {
        for (_, command) in worker.commands() {
            requests += command.requests.get();
            errors += command.errors.get();
            latency.merge(&command.latency.snapshot());
        }
    }
    let mut by_socket: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    for (addr, stats) in pool.node_stats() {
        *by_socket.entry(addr).or_default() += stats.requests.get();
    }
    let mut nodes = BTreeMap::new();
    for shard in &pool.status().shards {
        for node in &shard.nodes {
            let sent = by_socket.get(&node.socket).copied().unwrap_or(0);
            nodes.insert(node.addr.clone(), (sent, node.lag_seconds));
        }
    }
    PoolSample {
        name: pool.name.clone(),
        requests,
        errors,
        latency,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_99th_percentile_is_the_bound_of_its_bucket() {
        let mut before = HistogramSnapshot::default();
        let mut now = HistogramSnapshot::default();
        before.counts[0] = 10;
        now.counts[0] = 10 + 980; // <= 32 us
        now.counts[5] = 20; // <= 1,024 us
        assert_eq!(p99_ms(&now, &before), Some(1.024));
        now.counts[5] = 5;
        assert_eq!(p99_ms(&now, &before), Some(0.032));
        assert_eq!(p99_ms(&before, &before), None);
    }
}
