//! Resharding, the pure part (see `docs/resharding.md`): what a migration
//! is as the proxies share it ([`MigrationRecord`]), and the pool
//! configurations a proxy runs with while one is under way.

use std::collections::BTreeMap;

use keyspace::{DistributionKind, HashFunction, HashTag};
use serde::{Deserialize, Serialize};

use crate::config::{parse_node, parse_server, NodeConfig, PoolConfig, ServerConfig};
use crate::topology::{KeyPlacement, PlacementSpec};

/// A placement as the store holds it: the servers (and their replicas)
/// and how keys map onto them. Each proxy takes everything else from its
/// own configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRecord {
    /// `host:port:weight [name]` lines.
    pub servers: Vec<String>,
    /// Replicas by ring name (`host:port`).
    #[serde(default)]
    pub replicas: BTreeMap<String, Vec<String>>,
    pub hash: String,
    pub distribution: String,
    pub hash_tag: String,
}

/// One migration of a pool's keys, as every proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRecord {
    /// The pool's name.
    #[serde(default)]
    pub pool: String,
    /// One more per migration started (or aborted): a proxy routes with
    /// one generation, and acknowledges it.
    pub generation: u64,
    pub from: PlacementRecord,
    pub to: PlacementRecord,
    /// An abort: keys go back from `to` to `from`.
    #[serde(default)]
    pub back: bool,
    /// False at first (*prepare*): every proxy refuses requests on moving
    /// keys, since another may still route them to their source; true
    /// once every proxy acknowledged that (*moving*): requests pull their
    /// keys, and the mover moves the rest.
    #[serde(default)]
    pub moving: bool,
    /// Every key is where it belongs: the pool's placement is the
    /// destination's (`to`, or `from` after an abort).
    #[serde(default)]
    pub done: bool,
    /// The mover waits (requests still pull keys).
    #[serde(default)]
    pub paused: bool,
}

impl PlacementRecord {
    pub fn of(config: &PoolConfig) -> PlacementRecord {
        PlacementRecord {
            servers: config.servers.iter().map(ServerConfig::line).collect(),
            replicas: (config.servers.iter().zip(&config.replicas))
                .filter(|(_, r)| !r.is_empty())
                .map(|(s, r)| (s.ring_name(), r.iter().map(NodeConfig::label).collect()))
                .collect(),
            hash: config.hash.name().into(),
            distribution: config.distribution.name().into(),
            hash_tag: match config.hash_tag {
                HashTag::None => String::new(),
                HashTag::Pair(open, close) => String::from_utf8_lossy(&[open, close]).into_owned(),
                HashTag::Cluster => "{}".into(),
            },
        }
    }

    /// `base` with this placement's servers, replicas, hash, distribution
    /// and tag (addresses are resolved).
    pub fn apply(&self, base: &PoolConfig) -> Result<PoolConfig, PlacementError> {
        let mut config = base.clone();
        config.servers = (self.servers.iter())
            .map(|line| {
                parse_server(line).map_err(|e| PlacementError::Server {
                    line: line.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        config.replicas = (config.servers.iter())
            .map(|server| {
                let lines = self.replicas.get(&server.ring_name());
                lines
                    .into_iter()
                    .flatten()
                    .map(|line| {
                        parse_node(line, false).map_err(|e| PlacementError::Replica {
                            line: line.clone(),
                            reason: e.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        config.hash = HashFunction::from_name(&self.hash)
            .ok_or_else(|| PlacementError::Hash(self.hash.clone()))?;
        config.distribution = DistributionKind::from_name(&self.distribution)
            .ok_or_else(|| PlacementError::Distribution(self.distribution.clone()))?;
        config.hash_tag = HashTag::from_config(&self.hash_tag)
            .ok_or_else(|| PlacementError::HashTag(self.hash_tag.clone()))?;
        Ok(config)
    }
}

/// Why a placement record (read from the coordination store) cannot be
/// run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("server '{line}': {reason}")]
    Server { line: String, reason: String },
    #[error("replica '{line}': {reason}")]
    Replica { line: String, reason: String },
    #[error("unknown hash '{0}'")]
    Hash(String),
    #[error("unknown distribution '{0}'")]
    Distribution(String),
    #[error("bad hash_tag '{0}'")]
    HashTag(String),
    /// A server named alike in both placements at two addresses.
    #[error("server '{name}' is {before} before and {after} after: move it by a reload first, then reshard")]
    ServerMoved {
        name: String,
        before: String,
        after: String,
    },
}

/// What a proxy runs a pool with, given its file's configuration and the
/// pool's migration record (if any).
#[derive(Debug, Clone)]
pub struct Effective {
    /// Every server keys are on: both placements' while keys move.
    pub config: PoolConfig,
    /// Where keys are (a migration may be moving them).
    pub placement: KeyPlacement,
}

impl MigrationRecord {
    /// A migration of `pool`'s keys from `from` to `to`, in its first
    /// phase (its generation is set when it is stored).
    pub fn start(pool: &str, from: PlacementRecord, to: PlacementRecord) -> MigrationRecord {
        MigrationRecord {
            pool: pool.to_string(),
            generation: 0,
            from,
            to,
            back: false,
            moving: false,
            done: false,
            paused: false,
        }
    }

    /// The pool as a proxy runs it under this record; `base` is the pool
    /// from the proxy's file (settings other than the placement).
    pub fn effective(&self, base: &PoolConfig) -> Result<Effective, PlacementError> {
        let from = self.from.apply(base)?;
        let to = self.to.apply(base)?;
        if self.done {
            let config = if self.back { from } else { to };
            return Ok(Effective {
                config,
                placement: KeyPlacement {
                    moving: None,
                    refuse: false,
                    epoch: self.epoch(),
                },
            });
        }
        Ok(Effective {
            placement: KeyPlacement {
                moving: Some((PlacementSpec::of(&from), PlacementSpec::of(&to), self.back)),
                refuse: !self.moving,
                epoch: self.epoch(),
            },
            config: union(&from, &to)?,
        })
    }

    /// Changes with every phase (see `Topology::placement_epoch`).
    pub fn epoch(&self) -> u64 {
        let phase = match (self.done, self.moving) {
            (true, _) => 2,
            (false, true) => 1,
            (false, false) => 0,
        };
        self.generation * 4 + phase
    }

    /// What a proxy acknowledges once it routes with this record: its
    /// generation and phase (see [`MigrationRecord::moving`]).
    pub fn ack(&self) -> u64 {
        self.generation * 2 + u64::from(self.moving)
    }

    /// The placement keys end up in.
    pub fn destination(&self) -> &PlacementRecord {
        if self.back {
            &self.from
        } else {
            &self.to
        }
    }
}

/// `to` with `from`'s servers that `to` lacks added (a shard being
/// drained keeps serving its keys until they are gone). A server named
/// alike in both must be the same server.
pub fn union(from: &PoolConfig, to: &PoolConfig) -> Result<PoolConfig, PlacementError> {
    let mut config = to.clone();
    for (server, replicas) in from.servers.iter().zip(&from.replicas) {
        let name = server.ring_name();
        match to.servers.iter().find(|s| s.ring_name() == name) {
            Some(same) if same.addr != server.addr => {
                return Err(PlacementError::ServerMoved {
                    name: name.to_string(),
                    before: server.line(),
                    after: same.line(),
                })
            }
            Some(_) => {}
            None => {
                config.servers.push(server.clone());
                config.replicas.push(replicas.clone());
            }
        }
    }
    Ok(config)
}

/// Why a pool's keys cannot be moved between these placements.
pub fn refuse(from: &PoolConfig, to: &PoolConfig) -> Option<String> {
    let random = |c: &PoolConfig| c.distribution == DistributionKind::Random;
    if random(from) || random(to) {
        return Some(format!(
            "pool '{}': a random distribution places no key anywhere in particular: nothing to move",
            to.name
        ));
    }
    if to.servers.is_empty() {
        return Some(format!("pool '{}': no server to move the keys to", to.name));
    }
    if from.backend_tls.is_some() || to.backend_tls.is_some() {
        // The mover and the plan's scan connect in plaintext.
        return Some(format!(
            "pool '{}': resharding is not supported with `backend_tls` yet",
            to.name
        ));
    }
    union(from, to).err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_with_backend_tls_are_not_resharded() {
        let tls = "  backend_tls: {insecure_skip_verify_for_tests: true}\n";
        let (from, to) = (
            pool(&["127.0.0.1:7001:1 a"], tls),
            pool(&["127.0.0.1:7001:1 a", "127.0.0.1:7002:1 b"], tls),
        );
        let why = refuse(&from, &to).expect("refused");
        assert!(why.contains("not supported with `backend_tls`"), "{why}");
        let plain = pool(&["127.0.0.1:7001:1 a", "127.0.0.1:7002:1 b"], "");
        assert_eq!(refuse(&pool(&["127.0.0.1:7001:1 a"], ""), &plain), None);
    }

    fn pool(servers: &[&str], extra: &str) -> PoolConfig {
        let mut yaml = format!("p:\n  listen: 127.0.0.1:1\n{extra}  servers:\n");
        for s in servers {
            yaml.push_str(&format!("    - {s}\n"));
        }
        crate::config::parse(&yaml).expect("config").pools.remove(0)
    }

    #[test]
    fn a_record_round_trips_and_runs_both_placements_while_keys_move() {
        let from = pool(
            &["127.0.0.1:7001:1 a", "127.0.0.1:7002:1 b"],
            "  hash_tag: \"{}\"\n",
        );
        let to = pool(
            &["127.0.0.1:7001:1 a", "127.0.0.1:7003:1 c"],
            "  hash_tag: \"{}\"\n  distribution: modula\n",
        );
        let record = MigrationRecord {
            generation: 4,
            moving: true,
            ..MigrationRecord::start("p", PlacementRecord::of(&from), PlacementRecord::of(&to))
        };
        assert_eq!(
            record.to.servers,
            ["127.0.0.1:7001:1 a", "127.0.0.1:7003:1 c"]
        );
        assert_eq!(
            (record.to.hash_tag.as_str(), record.to.distribution.as_str()),
            ("{}", "modula")
        );
        let running = record.effective(&from).expect("effective");
        let names: Vec<String> = running
            .config
            .servers
            .iter()
            .map(|s| s.ring_name())
            .collect();
        assert_eq!(names, ["a", "c", "b"], "b keeps serving until drained");
        let (a, b, back) = running.placement.moving.expect("moving");
        assert_eq!(
            (a, b, back),
            (PlacementSpec::of(&from), PlacementSpec::of(&to), false)
        );
        let done = MigrationRecord {
            done: true,
            ..record.clone()
        };
        let after = done.effective(&from).expect("done");
        assert!(after.placement.moving.is_none());
        assert_eq!(PlacementSpec::of(&after.config), PlacementSpec::of(&to));
        let aborted = MigrationRecord {
            done: true,
            back: true,
            ..record
        };
        let after = aborted.effective(&from).expect("aborted");
        assert_eq!(PlacementSpec::of(&after.config), PlacementSpec::of(&from));
    }

    #[test]
    fn a_server_renamed_or_readdressed_and_random_pools_are_refused() {
        let from = pool(&["127.0.0.1:7001:1 a"], "");
        let moved = pool(&["127.0.0.1:7009:1 a", "127.0.0.1:7002:1 b"], "");
        assert!(refuse(&from, &moved)
            .expect("refused")
            .contains("move it by a reload first"));
        let random = pool(
            &["127.0.0.1:7001:1 a", "127.0.0.1:7002:1 b"],
            "  distribution: random\n",
        );
        assert!(refuse(&from, &random).expect("refused").contains("random"));
        let grown = pool(&["127.0.0.1:7001:1 a", "127.0.0.1:7002:1 b"], "");
        assert_eq!(refuse(&from, &grown), None);
    }
}
