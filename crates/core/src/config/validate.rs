//! Raw YAML -> typed [`Config`], collecting every problem.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use keyspace::{DistributionKind, HashFunction, HashTag};

use super::raw::{self, RawPool, RawSecret};
use super::*;

/// Parses and validates config text. On failure returns every problem,
/// each naming the pool and key.
pub fn parse(text: &str) -> Result<Config, Vec<String>> {
    let document: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {} column {}: ", l.line(), l.column()))
            .unwrap_or_default();
        vec![format!("{at}not valid YAML: {e}")]
    })?;
    let mapping = match document {
        yaml_serde::Value::Mapping(mapping) => mapping,
        yaml_serde::Value::Null => return Err(vec!["no pools are defined".to_string()]),
        _ => {
            return Err(vec![
                "the top level must be a map of pool names to pools".into()
            ])
        }
    };
    let written = raw::written_secrets(text);
    let mut problems = Vec::new();
    let mut pools = Vec::new();
    let mut backends = Vec::new();
    for (key, value) in mapping {
        let Some(name) = key.as_str().map(str::to_string) else {
            problems.push(format!("pool name {key:?} is not a string"));
            continue;
        };
        match yaml_serde::from_value::<RawPool>(value) {
            Ok(mut raw) => {
                if let Some(written) = written.get(&name) {
                    raw.use_written(written);
                }
                let mut checker = Checker {
                    pool: &name,
                    problems: &mut problems,
                    backends: Vec::new(),
                };
                if let Some(pool) = checker.pool(&name, raw) {
                    backends.push(checker.backends);
                    pools.push(pool);
                }
            }
            Err(e) => problems.push(format!("pool '{name}': {e}")),
        }
    }
    if pools.is_empty() && problems.is_empty() {
        problems.push("no pools are defined".into());
    }
    check_distinct_listeners(&pools, &mut problems);
    check_managed_backends(&pools, &backends, &mut problems);
    if problems.is_empty() {
        Ok(Config { pools })
    } else {
        Err(problems)
    }
}

/// Every `listen`, `readonly_listen`, `tls_listen` and
/// `tls_readonly_listen` must be its own: with
/// `SO_REUSEPORT`, two pools bound to one port would silently split its
/// clients between them.
fn check_distinct_listeners(pools: &[PoolConfig], problems: &mut Vec<String>) {
    let listeners: Vec<(&str, &str, &ListenAddr)> = pools
        .iter()
        .flat_map(|pool| {
            pool.listeners()
                .into_iter()
                .map(|(key, addr)| (pool.name.as_str(), key, addr))
        })
        .collect();
    for (i, &(pool_a, key_a, a)) in listeners.iter().enumerate() {
        for &(pool_b, key_b, b) in listeners.iter().skip(i + 1) {
            if !binds_overlap(a, b) {
                continue;
            }
            problems.push(match (a, b) {
                _ if pool_a == pool_b => {
                    format!("pool '{pool_b}': {key_b}: {b} is also the pool's {key_a} address")
                }
                (ListenAddr::Tcp(x), ListenAddr::Tcp(y)) if x != y => format!(
                    "pools '{pool_a}' ({key_a} {x}) and '{pool_b}' ({key_b} {y}) both bind port {}",
                    y.port()
                ),
                _ if key_a == "listen" && key_b == "listen" => {
                    format!("pools '{pool_a}' and '{pool_b}' both listen on {a}")
                }
                _ => format!(
                    "pools '{pool_a}' ({key_a}) and '{pool_b}' ({key_b}) both listen on {a}"
                ),
            });
        }
    }
}

/// Whether two listeners take the same socket: the same unix path, or one
/// TCP port where an address is the other's or a wildcard covering it
/// (`0.0.0.0` every IPv4 address; `[::]`, dual-stack, every address).
fn binds_overlap(a: &ListenAddr, b: &ListenAddr) -> bool {
    match (a, b) {
        (ListenAddr::Unix { path: a, .. }, ListenAddr::Unix { path: b, .. }) => a == b,
        (ListenAddr::Tcp(a), ListenAddr::Tcp(b)) => {
            let covers = |wide: IpAddr, other: IpAddr| match wide {
                IpAddr::V4(ip) => ip.is_unspecified() && other.is_ipv4(),
                IpAddr::V6(ip) => ip.is_unspecified(),
            };
            a.port() == b.port()
                && (a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip()))
        }
        _ => false,
    }
}

/// A backend address and where the file gives it.
struct Backend {
    /// `servers[1]` or `replicas.s1[0]`.
    key: String,
    /// The key, and a server's name: `servers[1] (s2)`.
    place: String,
    /// `host:port` as written.
    label: String,
    addr: SocketAddr,
}

impl Backend {
    /// The same node: one resolved address, or (should a name resolve to
    /// several addresses) the same `host:port` as written.
    fn is(&self, other: &Backend) -> bool {
        self.addr == other.addr || self.label.eq_ignore_ascii_case(&other.label)
    }

    /// Where `self` is given, and how, when spelled unlike `other`.
    fn describe(&self, other: &Backend) -> String {
        if self.label.eq_ignore_ascii_case(&other.label) {
            self.place.clone()
        } else {
            format!("{} as {}", self.place, self.label)
        }
    }
}

/// A backend in two pools is managed twice when either pool fails over by
/// itself: two controllers would promote and reconfigure the same node.
fn check_managed_backends(
    pools: &[PoolConfig],
    backends: &[Vec<Backend>],
    problems: &mut Vec<String>,
) {
    for (i, (pool_a, backends_a)) in pools.iter().zip(backends).enumerate() {
        for (pool_b, backends_b) in pools.iter().zip(backends).skip(i + 1) {
            let managed = [pool_a, pool_b]
                .into_iter()
                .filter(|p| p.failover == Failover::Managed)
                .map(|p| format!("'{}'", p.name))
                .collect::<Vec<_>>();
            if managed.is_empty() {
                continue;
            }
            for a in backends_a {
                for b in backends_b.iter().filter(|b| a.is(b)) {
                    problems.push(format!(
                        "pools '{}' ({}) and '{}' ({}) both use backend {}; \
                         with `failover: managed` in {} a backend belongs to one pool only",
                        pool_a.name,
                        a.place,
                        pool_b.name,
                        b.describe(a),
                        a.label,
                        managed.join(" and ")
                    ));
                }
            }
        }
    }
}

/// A pool's TLS settings, validated.
struct PoolTls {
    listen: Option<ListenAddr>,
    readonly_listen: Option<ListenAddr>,
    server: Option<ListenTls>,
    backend: Option<UpstreamTls>,
    sentinel: Option<UpstreamTls>,
}

/// Validates one pool, recording problems instead of stopping at the first.
struct Checker<'a> {
    pool: &'a str,
    problems: &'a mut Vec<String>,
    /// Every server and replica read so far.
    backends: Vec<Backend>,
}

impl Checker<'_> {
    fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.problems
            .push(format!("pool '{}': {key}: {message}", self.pool));
    }

    fn pool(&mut self, name: &str, mut raw: RawPool) -> Option<PoolConfig> {
        let before = self.problems.len();
        if raw.redis == Some(false) {
            self.problem(
                "redis",
                "memcached pools are not supported: shardgate speaks Redis only (set `redis: true`)",
            );
        }
        let listen = match &raw.listen {
            Some(listen) => self.listen("listen", listen),
            None if raw.tls_listen.is_some() => None,
            None => {
                self.problem("listen", "missing (e.g. `listen: 127.0.0.1:22121`)");
                None
            }
        };
        let cluster = raw.cluster.unwrap_or(false);
        if cluster {
            self.cluster_conflicts(&raw);
        }
        let tls = self.tls(&mut raw);
        let cluster_face = self.cluster_face(&raw, listen.as_ref().or(tls.listen.as_ref()));
        let distribution = match raw.distribution.as_deref() {
            None if cluster => DistributionKind::Slots,
            None => DistributionKind::Ketama,
            Some(d) => DistributionKind::from_name(d).unwrap_or_else(|| {
                self.problem(
                    "distribution",
                    format!("unknown '{d}' (expected ketama, modula, random, maglev or slots)"),
                );
                DistributionKind::Ketama
            }),
        };
        let hash = match raw.hash.as_deref() {
            // Envoy hashes keys with MurmurHash2-64 for maglev; matching it
            // makes a maglev pool place keys exactly as Envoy does.
            None if distribution == DistributionKind::Maglev => HashFunction::Murmur2_64,
            None => HashFunction::Fnv1a_64,
            Some(h) => HashFunction::from_name(h).unwrap_or_else(|| {
                self.problem(
                    "hash",
                    format!(
                        "unknown '{h}' (expected one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, \
                         fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins or murmur2_64)"
                    ),
                );
                HashFunction::Fnv1a_64
            }),
        };
        let hash_tag = match raw.hash_tag.as_deref() {
            // A wrong tag was reported by `cluster_conflicts`.
            Some(_) if cluster => HashTag::Cluster,
            Some(tag) => match tag.as_bytes() {
                [open, close] => HashTag::Pair(*open, *close),
                _ => {
                    self.problem(
                        "hash_tag",
                        format!("'{tag}' must be exactly two characters"),
                    );
                    HashTag::None
                }
            },
            // twemproxy's distributions keep twemproxy's default (no tag) so
            // keys land where twemproxy put them; shardgate-native ones use
            // Redis Cluster's `{...}` rule.
            None => match distribution {
                _ if cluster => HashTag::Cluster,
                DistributionKind::Maglev | DistributionKind::Slots => HashTag::Cluster,
                _ => HashTag::None,
            },
        };
        let timeout = self.millis("timeout", raw.timeout, DEFAULT_TIMEOUT);
        let connect_timeout = self.millis(
            "connect_timeout",
            raw.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT,
        );
        let reconnect_backoff_max = self.millis(
            "reconnect_backoff_max",
            raw.reconnect_backoff_max,
            DEFAULT_RECONNECT_BACKOFF_MAX,
        );
        let server_retry_timeout = self.millis(
            "server_retry_timeout",
            raw.server_retry_timeout,
            Duration::from_secs(30),
        );
        let backlog = self.number("backlog", raw.backlog, 512, 1, i32::MAX as i64) as u32;
        let redis_db = self.number("redis_db", raw.redis_db, 0, 0, i32::MAX as i64) as u32;
        let server_connections =
            self.number("server_connections", raw.server_connections, 1, 1, 1024) as u32;
        let client_connections = self.number(
            "client_connections",
            raw.client_connections,
            0,
            0,
            u32::MAX as i64,
        ) as u32;
        let server_failure_limit = self.number(
            "server_failure_limit",
            raw.server_failure_limit,
            2,
            1,
            1_000_000,
        ) as u32;
        let client_output_limit = self.number(
            "client_output_limit",
            raw.client_output_limit,
            DEFAULT_CLIENT_OUTPUT_LIMIT as i64,
            1024,
            i64::MAX,
        ) as usize;
        let max_request_bytes = self.number(
            "max_request_bytes",
            raw.max_request_bytes,
            DEFAULT_MAX_REQUEST_BYTES as i64,
            1024,
            DEFAULT_MAX_REQUEST_BYTES as i64,
        ) as usize;
        let servers = self.servers(raw.servers.as_deref());
        let redis_auth = self
            .secret("redis_auth", raw.redis_auth)
            .map(|password| BackendAuth {
                user: raw.redis_user.clone(),
                password,
            });
        if raw.redis_user.is_some() && redis_auth.is_none() {
            self.problem("redis_user", "needs `redis_auth` (the user's password)");
        }
        let databases = self.number("databases", raw.databases, 16, 1, i32::MAX as i64) as u32;
        let default_user = raw
            .users
            .iter()
            .flatten()
            .position(|user| user.name == "default");
        if let (Some(i), Some(_)) = (default_user, &raw.password) {
            // Both would be the default user's password: which one wins?
            self.problem(
                &format!("users[{i}]"),
                "user 'default' and `password` both set the default user's password \
                 (keep one)",
            );
        }
        let password = self.secret("password", raw.password);
        let users = self.users(raw.users.unwrap_or_default());
        let auth_failures_per_second = self.number(
            "auth_failures_per_second",
            raw.auth_failures_per_second,
            100,
            0,
            u32::MAX as i64,
        ) as u32;
        let replicas = self.replicas(raw.replicas.unwrap_or_default(), &servers);
        let sentinels: Vec<NodeConfig> = raw
            .sentinels
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, line)| match parse_node(line, true) {
                Ok(node) => Some(node),
                Err(e) => {
                    self.problem(&format!("sentinels[{i}]"), format!("'{line}': {e}"));
                    None
                }
            })
            .collect();
        let sentinel_auth = self
            .secret("sentinel_auth", raw.sentinel_auth)
            .map(|password| BackendAuth {
                user: raw.sentinel_user.clone(),
                password,
            });
        if raw.sentinel_user.is_some() && sentinel_auth.is_none() {
            self.problem(
                "sentinel_user",
                "needs `sentinel_auth` (the user's password)",
            );
        }
        let coordination = raw.coordination.as_deref().and_then(|line| {
            parse_node(line, false)
                .map_err(|e| self.problem("coordination", format!("'{line}': {e}")))
                .ok()
        });
        let coordination_auth =
            self.secret("coordination_auth", raw.coordination_auth)
                .map(|password| BackendAuth {
                    user: None,
                    password,
                });
        let reshard = Reshard {
            keys_per_second: self.number(
                "reshard_keys_per_second",
                raw.reshard_keys_per_second,
                i64::from(DEFAULT_RESHARD_KEYS_PER_SECOND),
                0,
                u32::MAX as i64,
            ) as u32,
            bytes_per_second: self.number(
                "reshard_bytes_per_second",
                raw.reshard_bytes_per_second,
                DEFAULT_RESHARD_BYTES_PER_SECOND as i64,
                0,
                i64::MAX,
            ) as u64,
            big_key_bytes: self.number(
                "reshard_big_key_bytes",
                raw.reshard_big_key_bytes,
                DEFAULT_RESHARD_BIG_KEY_BYTES as i64,
                1,
                i64::MAX,
            ) as u64,
        };
        let failover = self.choice(
            "failover",
            raw.failover.as_deref(),
            &[
                ("none", Failover::None),
                ("sentinel", Failover::Sentinel),
                ("managed", Failover::Managed),
            ],
            if sentinels.is_empty() {
                Failover::None
            } else {
                Failover::Sentinel
            },
        );
        if failover == Failover::Sentinel && sentinels.is_empty() {
            self.problem(
                "failover",
                "sentinel mode needs `sentinels:` (host:port:weight lines)",
            );
        }
        if failover != Failover::Sentinel && !sentinels.is_empty() {
            self.problem(
                "sentinels",
                format!(
                    "listed, but `failover: {}` does not use them",
                    raw.failover.as_deref().unwrap_or("none")
                ),
            );
        }
        let raw_health = raw.health_check.unwrap_or_default();
        let health_check = HealthCheck {
            interval: self.millis(
                "health_check.interval",
                raw_health.interval,
                Duration::from_millis(500),
            ),
            timeout: self.millis(
                "health_check.timeout",
                raw_health.timeout,
                Duration::from_millis(300),
            ),
            rise: self.number("health_check.rise", raw_health.rise, 2, 1, 1000) as u32,
            fall: self.number("health_check.fall", raw_health.fall, 3, 1, 1000) as u32,
        };
        let auto_eject_hosts = raw.auto_eject_hosts.unwrap_or(false);
        let shard_down = self.choice(
            "shard_down",
            raw.shard_down.as_deref(),
            &[("eject", ShardDown::Eject), ("fail", ShardDown::Fail)],
            if auto_eject_hosts {
                ShardDown::Eject
            } else {
                ShardDown::Fail
            },
        );
        let read_policy = self.choice(
            "read_policy",
            raw.read_policy.as_deref(),
            &[
                ("master", ReadPolicy::Master),
                ("prefer-replica", ReadPolicy::PreferReplica),
                ("replica", ReadPolicy::Replica),
                ("any", ReadPolicy::Any),
            ],
            ReadPolicy::Master,
        );
        let read_balance = self.choice(
            "read_balance",
            raw.read_balance.as_deref(),
            &[
                ("round-robin", ReadBalance::RoundRobin),
                ("least-outstanding", ReadBalance::LeastOutstanding),
                ("lowest-latency", ReadBalance::LowestLatency),
            ],
            ReadBalance::RoundRobin,
        );
        let raw_lag = raw.max_replica_lag.unwrap_or_default();
        let max_replica_lag = ReplicaLag {
            seconds: raw_lag
                .seconds
                .map(|s| self.number("max_replica_lag.seconds", Some(s), 0, 0, 86_400) as u64),
            bytes: raw_lag
                .bytes
                .map(|b| self.number("max_replica_lag.bytes", Some(b), 0, 0, i64::MAX) as u64),
        };
        let replica_fallback = self.choice(
            "replica_fallback",
            raw.replica_fallback.as_deref(),
            &[
                ("master", ReplicaFallback::Master),
                ("error", ReplicaFallback::Error),
            ],
            ReplicaFallback::Master,
        );
        let read_your_writes = match raw.read_your_writes {
            None | Some(0) => Duration::ZERO,
            ms => self.millis("read_your_writes", ms, Duration::ZERO),
        };
        let readonly_listen = raw
            .readonly_listen
            .as_deref()
            .and_then(|l| self.listen("readonly_listen", l));
        // Redis's slowlog-log-slower-than: microseconds, negative disables.
        let slowlog_threshold = match raw.slowlog_log_slower_than {
            None => Some(Duration::from_millis(10)),
            Some(us) if us < 0 => None,
            Some(us) => Some(Duration::from_micros(us as u64)),
        };
        let slowlog_max_len =
            self.number("slowlog_max_len", raw.slowlog_max_len, 128, 0, 1_000_000) as usize;
        if redis_db >= databases {
            self.problem(
                "redis_db",
                format!("{redis_db} is not below `databases` ({databases})"),
            );
        }
        if coordination.is_some() && tls.backend.is_some() {
            self.problem(
                "coordination",
                "resharding is not supported with `backend_tls` yet (the mover and the \
                 coordination store connect in plaintext)",
            );
        }
        if tls.sentinel.is_some() && sentinels.is_empty() {
            self.problem("sentinel_tls", "is set but the pool has no `sentinels`");
        }
        if self.problems.len() != before {
            return None;
        }
        Some(PoolConfig {
            name: name.to_string(),
            listen,
            hash,
            hash_tag,
            distribution,
            cluster,
            timeout,
            backlog,
            preconnect: raw.preconnect.unwrap_or(false),
            redis_auth,
            redis_db,
            databases,
            password,
            users,
            auth_failures_per_second,
            replicas,
            sentinels,
            sentinel_auth,
            failover,
            health_check,
            discover_replicas: raw.discover_replicas.unwrap_or(true),
            keys_may_move: raw.keys_may_move.unwrap_or(false),
            coordination,
            coordination_auth,
            reshard,
            shard_down,
            read_policy,
            read_balance,
            max_replica_lag,
            replica_fallback,
            read_your_writes,
            readonly_listen,
            tls_listen: tls.listen,
            tls_readonly_listen: tls.readonly_listen,
            tls: tls.server,
            backend_tls: tls.backend,
            sentinel_tls: tls.sentinel,
            cluster_face,
            slowlog_threshold,
            slowlog_max_len,
            server_connections,
            client_connections,
            auto_eject_hosts,
            server_retry_timeout,
            server_failure_limit,
            tcpkeepalive: raw.tcpkeepalive.unwrap_or(false),
            servers,
            connect_timeout,
            reconnect_backoff_max,
            client_output_limit,
            max_request_bytes,
        })
    }

    /// Settings a `cluster: true` pool cannot honour: the cluster places
    /// keys (CRC16 slots, `{}` tags, database 0), lists its replicas and
    /// decides failovers (docs/cluster.md).
    fn cluster_conflicts(&mut self, raw: &RawPool) {
        if raw.distribution.as_deref().is_some_and(|d| d != "slots") {
            self.problem(
                "distribution",
                "a cluster pool places keys by the cluster's slots; remove it (or write `slots`)",
            );
        }
        if raw.hash.is_some() {
            self.problem(
                "hash",
                "a cluster pool hashes keys with CRC16, as Redis Cluster does; remove it",
            );
        }
        if raw.hash_tag.as_deref().is_some_and(|t| t != "{}") {
            self.problem(
                "hash_tag",
                "a cluster pool uses Redis Cluster's `{}` tags; remove it",
            );
        }
        if raw.redis_db.is_some_and(|db| db != 0) {
            self.problem("redis_db", "Redis Cluster has database 0 only");
        }
        let set: [(&str, bool); 7] = [
            ("replicas", raw.replicas.is_some()),
            ("sentinels", raw.sentinels.is_some()),
            (
                "failover",
                raw.failover.as_deref().is_some_and(|f| f != "none"),
            ),
            ("auto_eject_hosts", raw.auto_eject_hosts == Some(true)),
            ("keys_may_move", raw.keys_may_move == Some(true)),
            ("coordination", raw.coordination.is_some()),
            (
                "shard_down",
                raw.shard_down.as_deref().is_some_and(|d| d != "fail"),
            ),
        ];
        for (key, _) in set.iter().filter(|(_, set)| *set) {
            self.problem(
                key,
                "not supported on a cluster pool: the cluster decides its replicas, failovers and slot moves (docs/cluster.md)",
            );
        }
        if raw.max_replica_lag.is_some() {
            self.problem(
                "max_replica_lag",
                "not supported on a cluster pool yet: the proxy does not probe cluster nodes, so it does not know their lag; replicas the cluster reports online serve reads (docs/cluster.md)",
            );
        }
    }

    /// One of `options` by name; `default` when absent; a problem listing
    /// the options when the name is unknown.
    fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: Option<&str>,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(value) = value else {
            return default;
        };
        match options.iter().find(|(name, _)| *name == value) {
            Some((_, choice)) => *choice,
            None => {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                self.problem(
                    key,
                    format!("unknown '{value}' (expected {})", names.join(", ")),
                );
                default
            }
        }
    }

    /// A password; present but empty is a problem, not "no password".
    fn secret(&mut self, key: &str, value: Option<RawSecret>) -> Option<Secret> {
        match value {
            Some(RawSecret(password)) if password.is_empty() => {
                self.problem(key, "is empty (remove the key for no password)");
                None
            }
            value => value.map(|RawSecret(password)| Secret::new(password)),
        }
    }

    fn millis(&mut self, key: &str, value: Option<i64>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(ms) if ms > 0 => Duration::from_millis(ms as u64),
            Some(ms) => {
                self.problem(
                    key,
                    format!("{ms} must be a positive number of milliseconds"),
                );
                default
            }
        }
    }

    fn number(&mut self, key: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> i64 {
        match value {
            None => default,
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.problem(key, format!("{n} is out of range {min}..={max}"));
                default
            }
        }
    }

    /// `replicas:` maps server names to `host:port` lists.
    fn replicas(
        &mut self,
        raw: std::collections::BTreeMap<String, Vec<String>>,
        servers: &[ServerConfig],
    ) -> Vec<Vec<NodeConfig>> {
        let mut replicas = vec![Vec::new(); servers.len()];
        for (name, lines) in raw {
            let Some(index) = servers.iter().position(|s| s.ring_name() == name) else {
                let names: Vec<String> = servers.iter().map(ServerConfig::ring_name).collect();
                self.problem(
                    &format!("replicas.{name}"),
                    format!(
                        "no server is named '{name}' (servers: {})",
                        names.join(", ")
                    ),
                );
                continue;
            };
            for (i, line) in lines.iter().enumerate() {
                match parse_node(line, false) {
                    Ok(node) => {
                        let key = format!("replicas.{name}[{i}]");
                        self.backend(key.clone(), key, node.label(), node.addr);
                        if let Some(list) = replicas.get_mut(index) {
                            list.push(node)
                        }
                    }
                    Err(e) => {
                        self.problem(&format!("replicas.{name}[{i}]"), format!("'{line}': {e}"))
                    }
                }
            }
        }
        replicas
    }

    /// Records a server or replica; one already given is a problem: the
    /// shard logic would treat one node as two (and in managed failover,
    /// reconfigure it as a replica of itself or wipe another shard).
    fn backend(&mut self, key: String, place: String, label: String, addr: SocketAddr) {
        let backend = Backend {
            key,
            place,
            label,
            addr,
        };
        if let Some(first) = self.backends.iter().find(|b| b.is(&backend)) {
            let message = format!(
                "{} is also {}; an address may appear only once among a pool's servers \
                 and replicas",
                backend.label,
                first.describe(&backend)
            );
            self.problem(&backend.key, message);
        }
        self.backends.push(backend);
    }

    fn users(&mut self, raw: Vec<super::raw::RawUser>) -> Vec<UserConfig> {
        let mut users: Vec<UserConfig> = Vec::new();
        for (i, user) in raw.into_iter().enumerate() {
            let key = format!("users[{i}]");
            if user.name.is_empty() || user.name.contains(char::is_whitespace) {
                self.problem(
                    &key,
                    format!("name '{}' must be a non-empty word", user.name),
                );
                continue;
            }
            if users.iter().any(|u| u.name == user.name) {
                self.problem(&key, format!("user '{}' is defined twice", user.name));
                continue;
            }
            if user.password.0.is_empty() {
                self.problem(&key, format!("user '{}' needs a password", user.name));
                continue;
            }
            let commands = user.commands.unwrap_or_else(|| "+@all".into());
            if let Err(e) = crate::auth::CommandRules::parse(&commands) {
                self.problem(&format!("{key}.commands"), e);
                continue;
            }
            users.push(UserConfig {
                name: user.name,
                password: Secret::new(user.password.0),
                commands,
                keys: user.keys,
            });
        }
        users
    }

    /// The pool's TLS keys: listeners, their `tls:` block, `backend_tls`
    /// and `sentinel_tls`.
    fn tls(&mut self, raw: &mut RawPool) -> PoolTls {
        let tls_listener = |checker: &mut Self, key: &str, value: Option<&str>| {
            let addr = checker.listen(key, value?)?;
            if matches!(addr, ListenAddr::Unix { .. }) {
                checker.problem(
                    key,
                    "must be host:port (a unix socket is local: serve it with `listen`)",
                );
                return None;
            }
            Some(addr)
        };
        let listen = tls_listener(self, "tls_listen", raw.tls_listen.as_deref());
        let readonly_listen = tls_listener(
            self,
            "tls_readonly_listen",
            raw.tls_readonly_listen.as_deref(),
        );
        let server = match raw.tls.take() {
            Some(block) => self.tls_block("tls", super::tls::listen_tls(block)),
            None => None,
        };
        let listens = raw.tls_listen.is_some() || raw.tls_readonly_listen.is_some();
        if listens && raw.tls.is_none() && server.is_none() && !self.has_problem("tls.") {
            self.problem(
                "tls",
                "missing: `tls_listen` needs a `tls:` block (cert, key) for its certificate",
            );
        }
        if server.is_some() && !listens {
            self.problem(
                "tls",
                "is set but the pool has no `tls_listen` or `tls_readonly_listen`",
            );
        }
        let backend = match raw.backend_tls.take() {
            Some(block) => self.tls_block("backend_tls", super::tls::upstream_tls(block)),
            None => None,
        };
        let sentinel = match raw.sentinel_tls.take() {
            Some(block) => self.tls_block("sentinel_tls", super::tls::upstream_tls(block)),
            None => None,
        };
        PoolTls {
            listen,
            readonly_listen,
            server,
            backend,
            sentinel,
        }
    }

    fn tls_block<T>(
        &mut self,
        key: &str,
        checked: Result<T, Vec<super::tls::Problem>>,
    ) -> Option<T> {
        match checked {
            Ok(value) => Some(value),
            Err(problems) => {
                for (field, message) in problems {
                    self.problem(&format!("{key}.{field}"), message);
                }
                None
            }
        }
    }

    /// Whether a problem was recorded under a key starting with `prefix`.
    fn has_problem(&self, prefix: &str) -> bool {
        let start = format!("pool '{}': {prefix}", self.pool);
        self.problems.iter().any(|p| p.starts_with(&start))
    }

    /// `cluster_proxies` and `cluster_announce`: the proxies clients are
    /// told about, as addresses they can dial, this one among them.
    fn cluster_face(&mut self, raw: &RawPool, listen: Option<&ListenAddr>) -> Option<ClusterFace> {
        let Some(listed) = &raw.cluster_proxies else {
            if raw.cluster_announce.is_some() {
                self.problem(
                    "cluster_announce",
                    "is set but the pool has no `cluster_proxies`",
                );
            }
            return None;
        };
        let mut proxies = Vec::with_capacity(listed.len());
        for entry in listed {
            match entry.parse::<SocketAddr>() {
                Ok(addr) if !addr.ip().is_unspecified() && addr.port() != 0 => proxies.push(addr),
                _ => self.problem(
                    "cluster_proxies",
                    format!(
                        "'{entry}' is not an ip:port clients can connect to \
                         (cluster clients are given addresses, not names)"
                    ),
                ),
            }
        }
        if listed.is_empty() {
            self.problem(
                "cluster_proxies",
                "is empty: list every proxy's address for this pool",
            );
        }
        proxies.sort();
        proxies.dedup();
        let me = match (&raw.cluster_announce, listen) {
            (Some(announce), _) => match announce.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.problem(
                        "cluster_announce",
                        format!("'{announce}' is not an ip:port"),
                    );
                    return None;
                }
            },
            (None, Some(ListenAddr::Tcp(addr))) if !addr.ip().is_unspecified() => *addr,
            (None, _) => {
                self.problem(
                    "cluster_announce",
                    "missing: the pool does not listen on an address clients can connect to \
                     (a unix socket or 0.0.0.0); name this proxy's entry in `cluster_proxies`",
                );
                return None;
            }
        };
        if !proxies.contains(&me) {
            self.problem(
                "cluster_proxies",
                format!("does not list this proxy ({me}; set `cluster_announce` if it is known by another address)"),
            );
        }
        Some(ClusterFace { proxies, me })
    }

    fn listen(&mut self, key: &str, listen: &str) -> Option<ListenAddr> {
        let mut parts = listen.split_whitespace();
        let address = parts.next().unwrap_or_default();
        if address.starts_with('/') {
            let mode = match parts.next() {
                None => None,
                Some(mode) => match u32::from_str_radix(mode, 8) {
                    Ok(mode) if mode <= 0o777 => Some(mode),
                    _ => {
                        self.problem(key, format!("'{mode}' is not an octal file mode"));
                        return None;
                    }
                },
            };
            return Some(ListenAddr::Unix {
                path: PathBuf::from(address),
                mode,
            });
        }
        if parts.next().is_some() {
            self.problem(
                key,
                format!("'{listen}': expected host:port or /unix/path [mode]"),
            );
            return None;
        }
        match resolve(address) {
            Ok(addr) => Some(ListenAddr::Tcp(addr)),
            Err(e) => {
                self.problem(key, e);
                None
            }
        }
    }

    fn servers(&mut self, servers: Option<&[String]>) -> Vec<ServerConfig> {
        let Some(servers) = servers.filter(|s| !s.is_empty()) else {
            self.problem(
                "servers",
                "missing or empty (e.g. `servers: [\"127.0.0.1:6379:1\"]`)",
            );
            return Vec::new();
        };
        let mut parsed: Vec<ServerConfig> = Vec::new();
        for (i, line) in servers.iter().enumerate() {
            match parse_server(line) {
                Ok(server) => {
                    if parsed.iter().any(|s| s.ring_name() == server.ring_name()) {
                        self.problem(
                            &format!("servers[{i}]"),
                            format!("'{line}': duplicate server name '{}'", server.ring_name()),
                        );
                    }
                    let key = format!("servers[{i}]");
                    let place = match &server.name {
                        Some(name) => format!("{key} ({name})"),
                        None => key.clone(),
                    };
                    let label = format!("{}:{}", server.host, server.port);
                    self.backend(key, place, label, server.addr);
                    parsed.push(server);
                }
                Err(e) => self.problem(&format!("servers[{i}]"), format!("'{line}': {e}")),
            }
        }
        parsed
    }
}

/// `host:port:weight [name]`, as twemproxy writes a server.
pub fn parse_server(line: &str) -> Result<ServerConfig, String> {
    let mut words = line.split_whitespace();
    let address = words.next().ok_or("empty server line")?;
    let name = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err("expected host:port:weight [name]".into());
    }
    if address.starts_with('/') {
        return Err("unix-socket servers are not supported; use host:port:weight".into());
    }
    let mut fields = address.rsplitn(3, ':');
    let weight = fields.next().unwrap_or_default();
    let port = fields.next().ok_or("expected host:port:weight")?;
    let host = fields.next().ok_or("expected host:port:weight")?;
    // modula repeats a server `weight` times in its table: bound it.
    let weight: u32 = weight
        .parse()
        .ok()
        .filter(|w| (1..=MAX_SERVER_WEIGHT).contains(w))
        .ok_or_else(|| format!("weight '{weight}' must be 1..={MAX_SERVER_WEIGHT}"))?;
    let (port, addr) = host_port(host, port)?;
    Ok(ServerConfig {
        host: host.to_string(),
        port,
        addr,
        weight,
        name,
    })
}

/// A node's port (1..65535) and its resolved address.
fn host_port(host: &str, port: &str) -> Result<(u16, SocketAddr), String> {
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port '{port}' must be 1..65535"))?;
    Ok((port, resolve(&format!("{host}:{port}"))?))
}

/// `host:port`, or with `with_weight`, also `host:port:weight` (the
/// weight is ignored: Sentinel lines carry one in ifwe/twemproxy's format).
pub fn parse_node(line: &str, with_weight: bool) -> Result<NodeConfig, String> {
    let line = line.trim();
    let mut fields: Vec<&str> = line.rsplitn(3, ':').collect();
    fields.reverse();
    let (host, port) = match (fields.as_slice(), with_weight) {
        ([host, port], _) => (*host, *port),
        ([host, port, weight], true) if weight.parse::<u32>().is_ok() => (*host, *port),
        _ => {
            return Err(if with_weight {
                "expected host:port[:weight]"
            } else {
                "expected host:port"
            }
            .into())
        }
    };
    let (port, addr) = host_port(host, port)?;
    Ok(NodeConfig {
        host: host.to_string(),
        port,
        addr,
    })
}

fn resolve(address: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{address}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{address}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUTCRACKER_YML: &str = r#"
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:6379:1

gamma:
  listen: 127.0.0.1:22123
  hash: fnv1a_64
  distribution: ketama
  timeout: 400
  backlog: 1024
  preconnect: true
  redis: true
  auto_eject_hosts: true
  server_retry_timeout: 2000
  server_failure_limit: 3
  server_connections: 2
  hash_tag: "{}"
  servers:
   - 127.0.0.1:6380:1 server1
   - 127.0.0.1:6381:2 server2

sock:
  listen: /tmp/shardgate-test.sock 0666
  redis: true
  servers:
   - localhost:6379:1
"#;

    #[test]
    fn accepts_twemproxys_own_example() {
        let config = parse(NUTCRACKER_YML).expect("valid");
        assert_eq!(config.pools.len(), 3);
        let gamma = config
            .pools
            .iter()
            .find(|p| p.name == "gamma")
            .expect("gamma");
        assert_eq!(gamma.timeout, Duration::from_millis(400));
        assert_eq!(gamma.server_connections, 2);
        assert_eq!(gamma.hash_tag, HashTag::Pair(b'{', b'}'));
        assert_eq!(gamma.servers[1].weight, 2);
        assert_eq!(gamma.servers[1].name.as_deref(), Some("server2"));
        assert_eq!(gamma.servers[1].ring_name(), "server2");
        let alpha = config
            .pools
            .iter()
            .find(|p| p.name == "alpha")
            .expect("alpha");
        assert_eq!(alpha.servers[0].ring_name(), "127.0.0.1:6379");
        assert_eq!(alpha.hash_tag, HashTag::None);
        assert_eq!(alpha.timeout, DEFAULT_TIMEOUT);
        let sock = config
            .pools
            .iter()
            .find(|p| p.name == "sock")
            .expect("sock");
        assert_eq!(
            sock.listen,
            Some(ListenAddr::Unix {
                path: "/tmp/shardgate-test.sock".into(),
                mode: Some(0o666)
            })
        );
    }

    #[test]
    fn reports_every_problem_with_its_location() {
        let problems = parse(
            r#"
a:
  listen: 127.0.0.1:notaport
  hash: sha256
  distribution: consistent
  timeout: -5
  hash_tag: "{"
  servers:
   - 127.0.0.1:6379
   - 127.0.0.1:6379:0
b:
  listen: 127.0.0.1:1
  servers: []
c:
  listen: 127.0.0.1:2
  surprise: 1
  servers: ["127.0.0.1:1:1"]
"#,
        )
        .expect_err("invalid");
        let all = problems.join("\n");
        for expected in [
            "pool 'a': listen:",
            "pool 'a': hash: unknown 'sha256'",
            "pool 'a': distribution: unknown 'consistent'",
            "pool 'a': timeout: -5",
            "pool 'a': hash_tag:",
            "pool 'a': servers[0]: '127.0.0.1:6379': expected host:port:weight",
            "pool 'a': servers[1]: '127.0.0.1:6379:0': weight '0'",
            "pool 'b': servers: missing or empty",
            "pool 'c': unknown field `surprise`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 9, "{all}");
    }

    #[test]
    fn rejects_memcached_pools_and_shared_listeners() {
        let problems = parse(
            "a:\n  listen: 127.0.0.1:5\n  redis: false\n  servers: [\"127.0.0.1:1:1\"]\n\
             b:\n  listen: 127.0.0.1:6\n  servers: [\"127.0.0.1:1:1\"]\n\
             c:\n  listen: 127.0.0.1:6\n  servers: [\"127.0.0.1:1:1\"]\n",
        )
        .expect_err("invalid");
        let all = problems.join("\n");
        assert!(all.contains("memcached pools are not supported"), "{all}");
        assert!(
            all.contains("pools 'b' and 'c' both listen on 127.0.0.1:6"),
            "{all}"
        );
    }

    #[test]
    fn rejects_empty_and_non_map_documents() {
        assert_eq!(parse("").expect_err("empty"), vec!["no pools are defined"]);
        assert!(parse("- 1\n- 2\n").is_err());
        assert!(parse("a: [unclosed").expect_err("yaml")[0].contains("not valid YAML"));
    }

    fn problems_of(text: &str) -> String {
        parse(text).expect_err("invalid").join("\n")
    }

    #[test]
    fn cluster_proxies_are_dialable_addresses_and_name_this_proxy() {
        let servers = "  servers: [\"127.0.0.1:7001:1\"]\n";
        let config = parse(&format!(
            "ok:\n  listen: 127.0.0.1:7502\n  \
             cluster_proxies: [127.0.0.1:7503, 127.0.0.1:7502, 127.0.0.1:7503]\n{servers}"
        ))
        .expect("valid");
        let face = config.pools[0].cluster_face.clone().expect("a face");
        assert_eq!(face.me, "127.0.0.1:7502".parse().unwrap());
        assert_eq!(face.proxies.len(), 2, "sorted and deduplicated");
        let all = problems_of(&format!(
            "a:\n  listen: 127.0.0.1:7500\n  cluster_proxies: [proxy1:7500]\n{servers}\
             b:\n  listen: 127.0.0.1:7501\n  cluster_proxies: [127.0.0.1:7600]\n{servers}\
             c:\n  listen: /tmp/c.sock\n  cluster_proxies: [127.0.0.1:7601]\n{servers}\
             d:\n  listen: 127.0.0.1:7504\n  cluster_announce: 127.0.0.1:7504\n{servers}"
        ));
        for expected in [
            "pool 'a': cluster_proxies: 'proxy1:7500' is not an ip:port",
            "pool 'b': cluster_proxies: does not list this proxy (127.0.0.1:7501",
            "pool 'c': cluster_announce: missing",
            "pool 'd': cluster_announce: is set but the pool has no `cluster_proxies`",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn tls_listeners_need_a_tls_block_and_a_tls_block_needs_a_listener() {
        let servers = "  servers: [\"127.0.0.1:7001:1\"]\n";
        let all = problems_of(&format!(
            "a:\n  tls_listen: 127.0.0.1:7400\n{servers}\
             b:\n  listen: 127.0.0.1:7401\n  tls: {{cert: c, key: k}}\n{servers}\
             c:\n  tls_listen: /tmp/x.sock\n  tls: {{cert: c, key: k}}\n{servers}\
             d:\n  listen: 127.0.0.1:7402\n  tls_listen: 127.0.0.1:7402\n  tls: {{cert: c}}\n{servers}\
             e:\n  hash: md5\n{servers}"
        ));
        for expected in [
            "pool 'a': tls: missing: `tls_listen` needs a `tls:` block",
            "pool 'b': tls: is set but the pool has no `tls_listen` or `tls_readonly_listen`",
            "pool 'c': tls_listen: must be host:port",
            "pool 'd': tls.key: missing",
            "pool 'e': listen: missing",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        // Listeners of one pool may not share a socket either.
        let all = problems_of(&format!(
            "d:\n  listen: 127.0.0.1:7402\n  tls_listen: 127.0.0.1:7402\n  \
             tls: {{cert: c, key: k}}\n{servers}"
        ));
        assert!(
            all.contains("pool 'd': tls_listen: 127.0.0.1:7402 is also the pool's listen address"),
            "{all}"
        );
    }

    #[test]
    fn tls_only_pools_and_upstream_tls_are_valid_and_checked_against_the_pool() {
        let config = parse(
            "a:\n  tls_listen: 127.0.0.1:7410\n  tls_readonly_listen: 127.0.0.1:7411\n  \
             tls: {cert: /c.pem, key: /k.pem, client_ca: /ca.pem, min_version: 1.3}\n  \
             backend_tls: {ca: /redis-ca.pem, server_name: redis.internal}\n  \
             servers: [\"127.0.0.1:7001:1\"]\n",
        )
        .expect("valid");
        let pool = &config.pools[0];
        assert_eq!(pool.listen, None);
        assert_eq!(pool.main_listener(), pool.tls_listen.as_ref());
        assert_eq!(pool.listeners().len(), 2);
        let tls = pool.tls.as_ref().expect("tls");
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert_eq!(tls.min_version, TlsVersion::V1_3);
        let backend = pool.backend_tls.as_ref().expect("backend_tls");
        assert_eq!(backend.server_name.as_deref(), Some("redis.internal"));
        let all = problems_of(
            "a:\n  listen: 127.0.0.1:7412\n  sentinel_tls: {ca: /c}\n  \
             coordination: 127.0.0.1:7002\n  backend_tls: {insecure_skip_verify_for_tests: true}\n  \
             servers: [\"127.0.0.1:7001:1\"]\n",
        );
        for expected in [
            "pool 'a': sentinel_tls: is set but the pool has no `sentinels`",
            "pool 'a': coordination: resharding is not supported with `backend_tls` yet",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn rejects_an_address_given_twice_among_a_pools_servers_and_replicas() {
        let all = problems_of(
            "p:\n  listen: 127.0.0.1:7100\n  failover: managed\n  servers:\n   \
             - 127.0.0.1:7101:1 s1\n   - 127.0.0.1:7102:1 s2\n   - 127.1:7105:1 s3\n   \
             - 127.0.0.1:7105:1 s4\n  replicas:\n    \
             s1: [127.0.0.1:7103, 127.0.0.1:7102]\n    s2: [127.0.0.1:7104, 127.0.0.1:7104]\n",
        );
        for expected in [
            "pool 'p': replicas.s1[1]: 127.0.0.1:7102 is also servers[1] (s2)",
            "pool 'p': replicas.s2[1]: 127.0.0.1:7104 is also replicas.s2[0]",
            "pool 'p': servers[3]: 127.0.0.1:7105 is also servers[2] (s3) as 127.1:7105;",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(all.lines().count(), 3, "{all}");
    }

    #[test]
    fn rejects_a_backend_shared_by_pools_when_either_manages_failover() {
        let pools = "a:\n  listen: 127.0.0.1:7200\n  failover: FAILOVER\n  \
                     servers: [\"127.0.0.1:7201:1 a1\"]\n  replicas: {a1: [127.0.0.1:7202]}\n\
                     b:\n  listen: 127.0.0.1:7210\n  servers: [\"127.0.0.1:7202:1\"]\n";
        let all = problems_of(&pools.replace("FAILOVER", "managed"));
        assert!(
            all.contains(
                "pools 'a' (replicas.a1[0]) and 'b' (servers[0]) both use backend 127.0.0.1:7202"
            ),
            "{all}"
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        // Without a managing proxy, pools may share a backend (twemproxy allows it).
        parse(&pools.replace("FAILOVER", "none")).expect("valid");
    }

    #[test]
    fn rejects_listeners_that_collide_across_and_within_pools() {
        let all = problems_of(
            "a:\n  listen: 127.0.0.1:7300\n  readonly_listen: 127.0.0.1:7301\n  \
             servers: [\"127.0.0.1:1:1\"]\n\
             b:\n  listen: 127.0.0.1:7301\n  readonly_listen: 127.0.0.1:7301\n  \
             servers: [\"127.0.0.1:1:1\"]\n\
             c:\n  listen: 0.0.0.0:7300\n  servers: [\"127.0.0.1:1:1\"]\n\
             d:\n  listen: 127.0.0.1:7302\n  readonly_listen: 127.0.0.2:7301\n  \
             servers: [\"127.0.0.1:1:1\"]\n\
             e:\n  listen: /tmp/shardgate-7303.sock 0600\n  servers: [\"127.0.0.1:1:1\"]\n\
             f:\n  listen: 127.0.0.1:7304\n  readonly_listen: /tmp/shardgate-7303.sock\n  \
             servers: [\"127.0.0.1:1:1\"]\n",
        );
        for expected in [
            "pools 'a' (readonly_listen) and 'b' (listen) both listen on 127.0.0.1:7301",
            "pools 'a' (readonly_listen) and 'b' (readonly_listen) both listen on 127.0.0.1:7301",
            "pool 'b': readonly_listen: 127.0.0.1:7301 is also the pool's listen address",
            "pools 'a' (listen 127.0.0.1:7300) and 'c' (listen 0.0.0.0:7300) both bind port 7300",
            "pools 'e' (listen) and 'f' (readonly_listen) both listen on /tmp/shardgate-7303.sock",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        // 127.0.0.1 and 127.0.0.2 are distinct addresses on one port.
        assert_eq!(all.lines().count(), 5, "{all}");
    }

    #[test]
    fn caps_server_weight() {
        let pool = |weight: &str| {
            format!("p:\n  listen: 127.0.0.1:7400\n  servers: [\"127.0.0.1:1:{weight}\"]\n")
        };
        let config = parse(&pool("10000")).expect("valid");
        assert_eq!(config.pools[0].servers[0].weight, 10_000);
        for weight in ["10001", "4294967295"] {
            let all = problems_of(&pool(weight));
            assert!(
                all.contains(&format!(
                    "servers[0]: '127.0.0.1:1:{weight}': weight '{weight}' must be 1..=10000"
                )),
                "{all}"
            );
        }
    }

    #[test]
    fn takes_numeric_and_boolean_secrets_as_written() {
        let config = parse(
            "p:\n  listen: 127.0.0.1:7500\n  password: 12345678\n  redis_auth: 0x1F\n  \
             sentinel_auth: 1.50\n  sentinels: [\"127.0.0.1:26379:1\"]\n  \
             servers: [\"127.0.0.1:1:1 m\"]\n  users:\n    \
             - {name: app, password: true}\n    - {name: ops, password: +0012}\n",
        )
        .expect("valid");
        let pool = &config.pools[0];
        let secret = |s: Option<&Secret>| s.map(|s| s.expose().to_string());
        assert_eq!(secret(pool.password.as_ref()).as_deref(), Some("12345678"));
        assert_eq!(
            secret(pool.redis_auth.as_ref().map(|a| &a.password)).as_deref(),
            Some("0x1F")
        );
        assert_eq!(
            secret(pool.sentinel_auth.as_ref().map(|a| &a.password)).as_deref(),
            Some("1.50")
        );
        assert_eq!(pool.users[0].password.expose(), "true");
        assert_eq!(pool.users[1].password.expose(), "+0012");
    }

    #[test]
    fn never_shows_a_secret_in_an_error() {
        let all = problems_of(
            "p:\n  listen: 127.0.0.1:7600\n  password: [s3cret-1]\n  redis_auth: {s3cret-2: 1}\n  \
             servers: [\"127.0.0.1:1:1\"]\n  users: [{name: app, password: [s3cret-3]}]\n",
        );
        assert!(all.contains("pool 'p': "), "{all}");
        assert!(!all.contains("s3cret"), "{all}");
    }

    #[test]
    fn rejects_conflicting_or_empty_credentials() {
        let all = problems_of(
            "a:\n  listen: 127.0.0.1:7700\n  sentinel_user: watcher\n  \
             sentinels: [\"127.0.0.1:26379:1\"]\n  servers: [\"127.0.0.1:1:1 m\"]\n\
             b:\n  listen: 127.0.0.1:7701\n  sentinel_auth: \"\"\n  \
             sentinels: [\"127.0.0.1:26379:1\"]\n  servers: [\"127.0.0.1:1:1 m\"]\n\
             c:\n  listen: 127.0.0.1:7702\n  password: one\n  servers: [\"127.0.0.1:1:1\"]\n  \
             users: [{name: app, password: two}, {name: default, password: three}]\n\
             d:\n  listen: 127.0.0.1:7703\n  password:\n  redis_auth: ~\n  \
             servers: [\"127.0.0.1:1:1\"]\n",
        );
        for expected in [
            "pool 'a': sentinel_user: needs `sentinel_auth` (the user's password)",
            "pool 'b': sentinel_auth: is empty (remove the key for no password)",
            "pool 'c': users[1]: user 'default' and `password` both set the default user's password",
            "pool 'd': password: is empty (remove the key for no password)",
            "pool 'd': redis_auth: is empty (remove the key for no password)",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
        assert_eq!(all.lines().count(), 5, "{all}");
    }

    #[test]
    fn a_cluster_pool_takes_slots_and_tags_from_the_cluster_and_refuses_what_it_decides() {
        let config = parse(
            "c:\n  listen: 127.0.0.1:7300\n  cluster: true\n  servers: [\"127.0.0.1:7000:1\"]\n",
        )
        .expect("valid");
        let pool = &config.pools[0];
        assert!(pool.cluster);
        assert_eq!(pool.distribution, DistributionKind::Slots);
        assert_eq!(pool.hash_tag, HashTag::Cluster);
        let problems = parse(
            "c:\n  listen: 127.0.0.1:7300\n  cluster: true\n  distribution: ketama\n  \
             hash: md5\n  redis_db: 2\n  max_replica_lag: {seconds: 2}\n  failover: managed\n  \
             servers: [\"127.0.0.1:7000:1\"]\n",
        )
        .expect_err("conflicts");
        let all = problems.join("\n");
        for key in [
            "distribution",
            "hash",
            "redis_db",
            "max_replica_lag",
            "failover",
        ] {
            assert!(
                all.contains(&format!("pool 'c': {key}:")),
                "missing {key} in:\n{all}"
            );
        }
    }
}
