//! Configuration: twemproxy's `nutcracker.yml` accepted as it is, plus
//! shardgate's extensions.
//!
//! [`parse`] reads a file in steps, each a function of its own:
//! 1. the YAML text into [`raw`] pools that mirror the file (unknown keys
//!    are errors);
//! 2. for each pool, [`validate`] checks every key and types its value,
//!    purely: addresses are read ([`address`]), their names not looked up;
//! 3. then resolves the pool's addresses (DNS: the only I/O here);
//! 4. then checks what needs resolved addresses: an address given twice
//!    among its servers and replicas, the cluster face's own entry;
//! 5. last, the pools against each other: listeners on one socket, a
//!    backend shared when either pool manages failover.
//!
//! Every problem in the file is reported at once, each with the pool and
//! key it concerns; nothing falls back to a default silently. Defaults and
//! bounds are named in [`defaults`].

mod address;
mod defaults;
mod raw;
pub mod tls;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyspace::{DistributionKind, HashFunction, HashTag};

pub use address::{parse_node, parse_server, AddressError};
pub use defaults::*;
pub use tls::{CertUser, ClientAuth, ListenTls, TlsVersion, UpstreamTls};
pub use validate::parse;

/// A validated configuration: one or more independent pools.
#[derive(Debug, Clone)]
pub struct Config {
    pub pools: Vec<PoolConfig>,
}

/// Where a pool accepts clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// A unix socket path and its permissions (twemproxy's `/path 0666`).
    Unix {
        path: PathBuf,
        mode: Option<u32>,
    },
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix { path, .. } => write!(f, "{}", path.display()),
        }
    }
}

pub use crate::secrets::Secret;

/// Credentials shardgate presents to a backend: a password (`AUTH pass`)
/// or, for Redis 6 ACLs, a user and password (`AUTH user pass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAuth {
    pub user: Option<String>,
    pub password: Secret,
}

/// Who decides which node of a shard is its master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    /// The configured server is the master; health checks only observe.
    None,
    /// Redis Sentinel decides; the proxy follows it.
    Sentinel,
    /// The proxy promotes a replica itself when the master fails.
    Managed,
}

impl Failover {
    /// The name the configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            Failover::None => "none",
            Failover::Sentinel => "sentinel",
            Failover::Managed => "managed",
        }
    }
}

/// Health checks of every node: PING + INFO replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before a down node is up again.
    pub rise: u32,
    /// Consecutive failures before an up node is down.
    pub fall: u32,
}

/// What happens to the keys of a shard that has no usable master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardDown {
    /// twemproxy's `auto_eject_hosts`: the shard leaves the ring and its
    /// keys hash to the others until it is back.
    Eject,
    /// Its keys get errors; the other shards are unaffected; nothing moves.
    Fail,
}

/// Where reads (commands flagged readonly) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPolicy {
    Master,
    PreferReplica,
    Replica,
    Any,
}

impl ReadPolicy {
    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            ReadPolicy::Master => "master",
            ReadPolicy::PreferReplica => "prefer-replica",
            ReadPolicy::Replica => "replica",
            ReadPolicy::Any => "any",
        }
    }
}

/// How a read picks among the nodes its policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBalance {
    RoundRobin,
    LeastOutstanding,
    LowestLatency,
}

/// With `read_policy: replica` and no fit replica: fall back to the
/// master, or answer an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaFallback {
    Master,
    Error,
}

/// How far behind its master a replica may be and still serve reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplicaLag {
    /// Seconds since the replica last heard from its master.
    pub seconds: Option<u64>,
    /// Bytes of replication stream it has not processed yet.
    pub bytes: Option<u64>,
}

/// A node given by address (a replica, a Sentinel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
}

impl NodeConfig {
    /// `host:port`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The pool presented to cluster-aware clients as a Redis Cluster whose
/// nodes are the proxies themselves (`docs/cluster.md`): CLUSTER SLOTS
/// divides the slots among the live ones, and any proxy takes any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFace {
    /// Every proxy's address for this pool, sorted: each proxy that lists
    /// the same ones divides the slots the same way.
    pub proxies: Vec<SocketAddr>,
    /// This proxy's own entry among them.
    pub me: SocketAddr,
}

/// A client user of the proxy (not of the backends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    pub name: String,
    pub password: Secret,
    /// ACL-style command rules (`+@all -@dangerous`), already checked.
    pub commands: String,
    /// Key patterns the user may touch; None: every key.
    pub keys: Option<Vec<String>>,
}

/// One pool: a listen address, a set of servers and how keys map to them.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    /// Where plaintext clients connect (twemproxy's `listen`); None only
    /// when the pool listens with TLS alone (`tls_listen`).
    pub listen: Option<ListenAddr>,
    pub hash: HashFunction,
    pub hash_tag: HashTag,
    pub distribution: DistributionKind,
    /// The servers are seeds of a Redis Cluster whose slot map places the
    /// keys (`docs/cluster.md`).
    pub cluster: bool,
    /// Bound on every request to a backend. twemproxy waits forever when
    /// `timeout` is absent; shardgate defaults to [`DEFAULT_TIMEOUT`] so a
    /// hung server never hangs its clients.
    pub timeout: Duration,
    pub backlog: u32,
    pub preconnect: bool,
    pub redis_auth: Option<BackendAuth>,
    pub redis_db: u32,
    /// Databases a client may SELECT (Redis's `databases`, default 16).
    pub databases: u32,
    /// The password clients AUTH with (Redis's `requirepass`), if any.
    pub password: Option<Secret>,
    /// Named client users.
    pub users: Vec<UserConfig>,
    /// Failed AUTHs per second, pool-wide, past which failures are slowed.
    pub auth_failures_per_second: u32,
    /// Declared replicas of each server (same order as `servers`).
    pub replicas: Vec<Vec<NodeConfig>>,
    pub sentinels: Vec<NodeConfig>,
    pub sentinel_auth: Option<BackendAuth>,
    pub failover: Failover,
    pub health_check: HealthCheck,
    /// Replicas a master lists in INFO replication join its shard.
    pub discover_replicas: bool,
    /// The pool's data is disposable (a cache): a reload may change its
    /// servers, weights, hash or distribution, moving keys, instead of
    /// being refused.
    pub keys_may_move: bool,
    /// The Redis every proxy of the pool coordinates resharding through
    /// (None: this proxy alone).
    pub coordination: Option<NodeConfig>,
    pub coordination_auth: Option<BackendAuth>,
    /// How keys move when the pool is resharded.
    pub reshard: Reshard,
    pub shard_down: ShardDown,
    pub read_policy: ReadPolicy,
    pub read_balance: ReadBalance,
    pub max_replica_lag: ReplicaLag,
    pub replica_fallback: ReplicaFallback,
    /// After a client's write, its reads go to the master for this long
    /// (zero: off).
    pub read_your_writes: Duration,
    /// A second address that serves reads only.
    pub readonly_listen: Option<ListenAddr>,
    /// Where TLS clients connect (read-write), with `tls`.
    pub tls_listen: Option<ListenAddr>,
    /// Where TLS clients connect for reads only, with `tls`.
    pub tls_readonly_listen: Option<ListenAddr>,
    /// The TLS listeners' certificate and client authentication.
    pub tls: Option<ListenTls>,
    /// TLS to the pool's Redis servers (None: plaintext).
    pub backend_tls: Option<UpstreamTls>,
    /// TLS to the pool's Sentinels (None: plaintext).
    pub sentinel_tls: Option<UpstreamTls>,
    /// Cluster-aware clients see the proxies as a Redis Cluster
    /// (`cluster_proxies`; None: the proxy is one plain Redis to them).
    pub cluster_face: Option<ClusterFace>,
    /// Requests slower than this through the proxy go to its slow log
    /// (None: no slow log).
    pub slowlog_threshold: Option<Duration>,
    pub slowlog_max_len: usize,
    /// Shared, pipelined connections per server per worker.
    pub server_connections: u32,
    /// Maximum clients of this pool across all workers (0 = no limit).
    pub client_connections: u32,
    pub auto_eject_hosts: bool,
    pub server_retry_timeout: Duration,
    pub server_failure_limit: u32,
    pub tcpkeepalive: bool,
    pub servers: Vec<ServerConfig>,
    pub connect_timeout: Duration,
    /// Longest wait between reconnects to a failed server.
    pub reconnect_backoff_max: Duration,
    /// Reply bytes a client may leave unread before it is disconnected.
    pub client_output_limit: usize,
    /// Largest request (bulk argument) a client may send.
    pub max_request_bytes: usize,
}

impl PoolConfig {
    /// Every address the pool listens on, with its key in the file.
    pub fn listeners(&self) -> Vec<(&'static str, &ListenAddr)> {
        [
            ("listen", self.listen.as_ref()),
            ("readonly_listen", self.readonly_listen.as_ref()),
            ("tls_listen", self.tls_listen.as_ref()),
            ("tls_readonly_listen", self.tls_readonly_listen.as_ref()),
        ]
        .into_iter()
        .filter_map(|(key, addr)| Some((key, addr?)))
        .collect()
    }

    /// The address a log line or the admin API names the pool by: its
    /// plaintext `listen`, else its `tls_listen`.
    pub fn main_listener(&self) -> Option<&ListenAddr> {
        self.listen.as_ref().or(self.tls_listen.as_ref())
    }
}

/// How fast the resharding mover goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reshard {
    /// Keys moved per second (0: no limit).
    pub keys_per_second: u32,
    /// Bytes moved per second (0: no limit).
    pub bytes_per_second: u64,
    /// Keys at least this large (`MEMORY USAGE`) move last, one at a time.
    pub big_key_bytes: u64,
}

/// One backend server line: `host:port:weight [name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub addr: SocketAddr,
    pub weight: u32,
    pub name: Option<String>,
}

impl ServerConfig {
    /// The name this server has on the hash ring (twemproxy's rule).
    pub fn ring_name(&self) -> String {
        keyspace::ring_name(&self.host, self.port, self.name.as_deref())
    }

    /// The `servers:` line: `host:port:weight [name]`.
    pub fn line(&self) -> String {
        match &self.name {
            Some(name) => format!("{}:{}:{} {name}", self.host, self.port, self.weight),
            None => format!("{}:{}:{}", self.host, self.port, self.weight),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem{}:",
            self.file,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The keys whose values are secrets, wherever they appear (a pool's
/// `password`, `redis_auth`, `sentinel_auth`; a user's `password`).
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "redis_auth",
    "sentinel_auth",
    "coordination_auth",
];

/// What a secret is shown as.
pub const REDACTED: &str = "(redacted)";

/// The file as parsed YAML with every secret replaced by [`REDACTED`],
/// for display (`GET /config`). None when the text is not YAML.
pub fn redacted(text: &str) -> Option<yaml_serde::Value> {
    fn walk(value: &mut yaml_serde::Value) {
        match value {
            yaml_serde::Value::Mapping(mapping) => {
                for (key, value) in mapping.iter_mut() {
                    if key.as_str().is_some_and(|k| SECRET_KEYS.contains(&k)) {
                        *value = yaml_serde::Value::String(REDACTED.into());
                    } else {
                        walk(value);
                    }
                }
            }
            yaml_serde::Value::Sequence(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut document: yaml_serde::Value = yaml_serde::from_str(text).ok()?;
    walk(&mut document);
    Some(document)
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_text(path).map(|(config, _)| config)
}

/// Reads and validates a config file; also returns its text (what a
/// reload compares and `GET /config` shows).
pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        problems: vec![format!("cannot read: {e}")],
    })?;
    match parse(&text) {
        Ok(config) => Ok((config, text)),
        Err(problems) => Err(ConfigError { file, problems }),
    }
}
