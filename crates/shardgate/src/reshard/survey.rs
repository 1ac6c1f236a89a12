//! What a migration would move, measured before anything changes
//! (`shardgate reshard plan`): each source's keys are SCANned (all of
//! them, or a sample scaled up to the source's key count), each key's
//! owner under the new placement computed as the proxies will compute it,
//! and the movers' sizes read with `MEMORY USAGE`. The destinations'
//! memory settings say whether they can take what comes: a destination
//! that may evict (or refuse writes) is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use shardgate_core::reshard::{MigrationRecord, PlacementError};

use super::mover::{self, Conns, QueryError};
use crate::backend::wire::text;
use crate::pool::PoolState;
use crate::topology::{NodeAddr, Shard, Topology};

/// Big keys listed by name (the rest are counted).
const BIG_KEYS_LISTED: usize = 20;
/// A destination whose memory would pass this share of `maxmemory` under
/// an evicting policy is refused.
const EVICTION_MARGIN: f64 = 0.9;

/// What a migration would move, per source and destination.
#[derive(Debug, Default, Serialize)]
pub struct Survey {
    pub pool: String,
    pub from: Vec<String>,
    pub to: Vec<String>,
    /// Keys read with SCAN, and keys the sources hold (`INFO keyspace`).
    pub keys_scanned: u64,
    pub keys_total: u64,
    /// Every key was scanned (otherwise the figures are scaled up).
    pub exact: bool,
    pub flows: Vec<Flow>,
    /// The largest keys at least `reshard_big_key_bytes` large.
    pub big_keys: Vec<BigKey>,
    pub big_keys_total: u64,
    pub destinations: Vec<Destination>,
    /// Seconds at the configured pace (None: no pace limit).
    pub estimate_seconds: Option<f64>,
    /// Why this migration should not start.
    pub refused: Vec<String>,
}

/// Keys and bytes moving from one shard to another.
#[derive(Debug, Clone, Serialize)]
pub struct Flow {
    pub from: String,
    pub to: String,
    pub keys: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BigKey {
    pub key: String,
    pub db: u32,
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

/// A destination's memory as it is, and with what would come.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    pub shard: String,
    pub used_memory: u64,
    /// 0: no limit.
    pub maxmemory: u64,
    pub policy: String,
    pub incoming_bytes: u64,
}

impl Destination {
    /// Why this destination cannot take what comes, if it cannot.
    fn refusal(&self) -> Option<String> {
        if self.maxmemory == 0 {
            return None;
        }
        let after = self.used_memory + self.incoming_bytes;
        let limit = self.maxmemory as f64;
        if self.policy == "noeviction" {
            return (after > self.maxmemory).then(|| {
                format!(
                    "destination '{}' would need {} of its maxmemory {}: writes would fail with OOM",
                    self.shard,
                    human(after),
                    human(self.maxmemory)
                )
            });
        }
        (after as f64 > limit * EVICTION_MARGIN).then(|| {
            format!(
                "destination '{}' may evict keys ({}): it would hold {} of its maxmemory {}",
                self.shard,
                self.policy,
                human(after),
                human(self.maxmemory)
            )
        })
    }
}

/// Why a survey could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Surveys `record`'s migration of `state`'s pool, scanning at most
/// `max_keys` keys per source database.
pub async fn survey(
    state: &Arc<PoolState>,
    record: &MigrationRecord,
    max_keys: u64,
) -> Result<Survey, SurveyError> {
    let current = state.topology();
    let effective = record.effective(&current.config)?;
    // Each server of both placements, at its live master where the pool
    // knows one (after a failover, not the configured address).
    let shards: Vec<Shard> = (effective.config.servers.iter())
        .map(|server| {
            let name = server.ring_name();
            (current.shards.iter())
                .find(|s| *s.name == *name)
                .cloned()
                .unwrap_or_else(|| Shard {
                    name: name.as_str().into(),
                    weight: server.weight,
                    master: Some(NodeAddr::new(
                        server.addr,
                        format!("{}:{}", server.host, server.port),
                    )),
                    replicas: Vec::new(),
                    standby: Vec::new(),
                    down: None,
                    ejected: false,
                })
        })
        .collect();
    let config = Arc::new(effective.config);
    let topology = Topology::placed(&config, 0, shards, &effective.placement);
    let names: Vec<String> = topology.shards.iter().map(|s| s.name.to_string()).collect();
    let name = |i: usize| names.get(i).cloned().unwrap_or_default();

    let mut survey = Survey {
        pool: record.pool.clone(),
        from: record.from.servers.clone(),
        to: record.to.servers.clone(),
        exact: true,
        ..Survey::default()
    };
    let mut conns = Conns::default();
    let mut flows: BTreeMap<(usize, usize), (u64, u64)> = BTreeMap::new();
    let big = config.reshard.big_key_bytes;
    for shard in 0..topology.shards.len() {
        for (db, held) in mover::keyspace(&mut conns, &topology, shard).await? {
            let mut source: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
            let (mut cursor, mut scanned) = ("0".to_string(), 0u64);
            loop {
                let (next, keys) = mover::scan(&mut conns, &topology, shard, db, &cursor).await?;
                scanned += keys.len() as u64;
                let leaving: Vec<(bytes::Bytes, usize)> = (keys.into_iter())
                    .filter_map(|key| match topology.moving(&key) {
                        Some((from, to)) if from == shard => Some((key, to)),
                        _ => None,
                    })
                    .collect();
                let addr = mover::master(&topology, shard)?;
                for chunk in leaving.chunks(mover::BATCH) {
                    let keys: Vec<bytes::Bytes> = chunk.iter().map(|(k, _)| k.clone()).collect();
                    let sizes = mover::sizes(&mut conns, &config, addr, db, &keys).await?;
                    for ((key, to), size) in chunk.iter().zip(sizes) {
                        let flow = source.entry(*to).or_default();
                        flow.0 += 1;
                        flow.1 += size;
                        if size >= big {
                            survey.big_keys_total += 1;
                            survey.big_keys.push(BigKey {
                                key: String::from_utf8_lossy(key).into_owned(),
                                db,
                                from: name(shard),
                                to: name(*to),
                                bytes: size,
                            });
                        }
                    }
                }
                if next == "0" || scanned >= max_keys {
                    cursor = next;
                    break;
                }
                cursor = next;
            }
            // A sample: scale up to what the database holds.
            let scale = if cursor == "0" || scanned == 0 {
                1.0
            } else {
                survey.exact = false;
                held as f64 / scanned as f64
            };
            survey.keys_scanned += scanned;
            survey.keys_total += held.max(scanned);
            for (to, (keys, size)) in source {
                let flow = flows.entry((shard, to)).or_default();
                flow.0 += (keys as f64 * scale).round() as u64;
                flow.1 += (size as f64 * scale).round() as u64;
            }
        }
    }
    survey.big_keys.sort_by_key(|k| std::cmp::Reverse(k.bytes));
    survey.big_keys.truncate(BIG_KEYS_LISTED);
    survey.flows = (flows.iter())
        .map(|(&(from, to), &(keys, bytes))| Flow {
            from: name(from),
            to: name(to),
            keys,
            bytes,
        })
        .collect();

    let mut incoming: BTreeMap<usize, u64> = BTreeMap::new();
    for (&(_, to), &(_, bytes)) in &flows {
        *incoming.entry(to).or_default() += bytes;
    }
    for (to, incoming_bytes) in incoming {
        let destination = memory(&mut conns, &topology, to, name(to), incoming_bytes).await?;
        survey.refused.extend(destination.refusal());
        survey.destinations.push(destination);
    }

    let (keys, size) = (survey.flows.iter()).fold((0, 0), |(k, b), f| (k + f.keys, b + f.bytes));
    let pace = |done: u64, rate: u64| (rate > 0).then(|| done as f64 / rate as f64);
    let keys_pace = pace(keys, u64::from(config.reshard.keys_per_second));
    let bytes_pace = pace(size, config.reshard.bytes_per_second);
    survey.estimate_seconds = match (keys_pace, bytes_pace) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(survey)
}

/// A destination's `INFO memory`.
async fn memory(
    conns: &mut Conns,
    topology: &Topology,
    shard: usize,
    name: String,
    incoming_bytes: u64,
) -> Result<Destination, QueryError> {
    let addr = mover::master(topology, shard)?;
    let config = &topology.config;
    let replies = conns
        .query(
            addr,
            &mover::handshake(config),
            &[&[b"INFO", b"memory"]],
            config.timeout,
        )
        .await?;
    let info = replies.first().and_then(text).unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Destination {
        shard: name,
        used_memory: field("used_memory").parse().unwrap_or(0),
        maxmemory: field("maxmemory").parse().unwrap_or(0),
        policy: field("maxmemory_policy"),
        incoming_bytes,
    })
}

impl Survey {
    /// The survey as an operator reads it.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "pool '{}': [{}] -> [{}]",
            self.pool,
            self.from.join(", "),
            self.to.join(", ")
        )];
        lines.push(if self.exact {
            format!("  every key scanned: {}", self.keys_scanned)
        } else {
            format!(
                "  {} of {} keys scanned; the figures below are scaled up from that sample",
                self.keys_scanned, self.keys_total
            )
        });
        let (keys, size) = (self.flows.iter()).fold((0, 0), |(k, b), f| (k + f.keys, b + f.bytes));
        if self.flows.is_empty() {
            lines.push("  no key moves".into());
        }
        for flow in &self.flows {
            lines.push(format!(
                "  {} -> {}: {} keys, {}",
                flow.from,
                flow.to,
                flow.keys,
                human(flow.bytes)
            ));
        }
        let share = if self.keys_total > 0 {
            keys as f64 * 100.0 / self.keys_total as f64
        } else {
            0.0
        };
        lines.push(format!(
            "  in all: {keys} keys ({share:.1}% of the pool's), {}",
            human(size)
        ));
        if self.big_keys_total > 0 {
            lines.push(format!(
                "  {} big keys move alone, in the slow lane:",
                self.big_keys_total
            ));
            for key in &self.big_keys {
                lines.push(format!(
                    "    {} (db {}, {} -> {}): {}",
                    key.key,
                    key.db,
                    key.from,
                    key.to,
                    human(key.bytes)
                ));
            }
        }
        for d in &self.destinations {
            let limit = if d.maxmemory == 0 {
                "no maxmemory".to_string()
            } else {
                format!("maxmemory {} ({})", human(d.maxmemory), d.policy)
            };
            lines.push(format!(
                "  destination {}: uses {}, receives {}, {limit}",
                d.shard,
                human(d.used_memory),
                human(d.incoming_bytes)
            ));
        }
        lines.push(match self.estimate_seconds {
            Some(seconds) => format!("  about {seconds:.0} s at the configured pace"),
            None => "  no pace limit: as fast as MIGRATE goes".into(),
        });
        for why in &self.refused {
            lines.push(format!("  refused: {why}"));
        }
        lines
    }
}

/// Bytes as an operator reads them.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(used: u64, max: u64, policy: &str, incoming: u64) -> Destination {
        Destination {
            shard: "d".into(),
            used_memory: used,
            maxmemory: max,
            policy: policy.into(),
            incoming_bytes: incoming,
        }
    }

    #[test]
    fn a_destination_that_may_evict_or_fill_up_is_refused() {
        assert_eq!(destination(10, 0, "allkeys-lru", 1 << 40).refusal(), None);
        assert_eq!(destination(10, 100, "noeviction", 90).refusal(), None);
        assert!(destination(10, 100, "noeviction", 91)
            .refusal()
            .unwrap()
            .contains("OOM"));
        assert_eq!(destination(10, 100, "allkeys-lru", 80).refusal(), None);
        assert!(destination(10, 100, "allkeys-lru", 81)
            .refusal()
            .unwrap()
            .contains("may evict"));
    }

    #[test]
    fn sizes_read_as_an_operator_expects() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(50 << 20), "50.0 MiB");
    }
}
