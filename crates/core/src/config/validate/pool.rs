//! The pure step: one pool's keys checked and typed, one function per
//! section of the file. No name is looked up here: addresses are read as
//! written ([`Listener`], [`ServerLine`], [`HostPort`]) and resolved by
//! the next step ([`super::resolve`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use keyspace::{DistributionKind, HashFunction, HashTag};

use super::checked::{
    Checked, Clients, Connections, Databases, Ejection, FacePlan, FailoverSettings, Listeners,
    Placement, PoolTls, Reads, Resharding, Settings, SlowLog, Timeouts,
};
use super::Located;
use crate::config::address::{HostPort, Listener, ServerLine};
use crate::config::raw::{RawHealthCheck, RawPool, RawSecret, RawUser};
use crate::config::tls;
use crate::config::*;

/// Records the problems of one pool (`pool 'name': key: message`) and
/// checks its keys, recording a problem instead of stopping at the first.
pub(super) struct Checker<'a> {
    pool: &'a str,
    problems: &'a mut Vec<String>,
    /// Problems recorded through this checker.
    found: usize,
}

impl<'a> Checker<'a> {
    pub fn new(pool: &'a str, problems: &'a mut Vec<String>) -> Checker<'a> {
        Checker {
            pool,
            problems,
            found: 0,
        }
    }

    pub fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.found += 1;
        self.problems
            .push(format!("pool '{}': {key}: {message}", self.pool));
    }

    /// Whether no problem was recorded through this checker.
    pub fn is_clean(&self) -> bool {
        self.found == 0
    }

    /// Whether a problem was recorded under a key starting with `prefix`.
    fn has_problem(&self, prefix: &str) -> bool {
        let start = format!("pool '{}': {prefix}", self.pool);
        self.problems.iter().any(|p| p.starts_with(&start))
    }

    /// The pure step for one pool: its sections in turn.
    pub fn pool(&mut self, mut raw: RawPool) -> Checked {
        self.protocol(&raw);
        let cluster = self.cluster(&raw);
        let listeners = self.listeners(&raw);
        let tls = self.tls(&mut raw);
        let face = self.cluster_face(&raw);
        let placement = self.placement(&raw, cluster);
        let timeouts = self.timeouts(&raw);
        let connections = self.connections(&raw);
        let servers = self.servers(raw.servers.as_deref());
        let replicas = self.replicas(raw.replicas.take().unwrap_or_default(), &servers);
        let redis_auth = self.credentials(
            "redis_auth",
            "redis_user",
            raw.redis_auth.take(),
            raw.redis_user.take(),
        );
        let databases = self.databases(&raw);
        let clients = self.clients(&mut raw);
        let sentinels = self.sentinels(raw.sentinels.as_deref());
        let failover = self.failover(&mut raw, &sentinels, &tls);
        let ejection = self.ejection(&raw);
        let coordination = self.coordination(raw.coordination.as_deref());
        let resharding = self.resharding(&mut raw, coordination.is_some(), &tls);
        let reads = self.reads(&raw);
        let slowlog = self.slowlog(&raw);
        Checked {
            name: self.pool.to_string(),
            clean: self.is_clean(),
            listeners,
            servers,
            replicas,
            sentinels,
            coordination,
            face,
            settings: Settings {
                cluster,
                placement,
                timeouts,
                connections,
                databases,
                redis_auth,
                clients,
                failover,
                ejection,
                discover_replicas: raw.discover_replicas.unwrap_or(true),
                resharding,
                reads,
                tls,
                slowlog,
            },
        }
    }

    /// `redis`: shardgate speaks Redis only.
    fn protocol(&mut self, raw: &RawPool) {
        if raw.redis == Some(false) {
            self.problem(
                "redis",
                "memcached pools are not supported: shardgate speaks Redis only (set `redis: true`)",
            );
        }
    }

    /// `cluster`, and the settings a cluster pool cannot honour.
    fn cluster(&mut self, raw: &RawPool) -> bool {
        let cluster = raw.cluster.unwrap_or(false);
        if cluster {
            self.cluster_conflicts(raw);
        }
        cluster
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

    /// `listen`, `readonly_listen`, `tls_listen`, `tls_readonly_listen`,
    /// read. A pool needs `listen` unless it listens with TLS alone; a TLS
    /// listener is TCP.
    fn listeners(&mut self, raw: &RawPool) -> Listeners<Listener> {
        let listen = match &raw.listen {
            Some(listen) => self.listener("listen", listen),
            None if raw.tls_listen.is_some() => None,
            None => {
                self.problem("listen", "missing (e.g. `listen: 127.0.0.1:22121`)");
                None
            }
        };
        let readonly_listen = raw
            .readonly_listen
            .as_deref()
            .and_then(|l| self.listener("readonly_listen", l));
        Listeners {
            listen,
            readonly_listen,
            tls_listen: self.tls_listener("tls_listen", raw.tls_listen.as_deref()),
            tls_readonly_listen: self
                .tls_listener("tls_readonly_listen", raw.tls_readonly_listen.as_deref()),
        }
    }

    fn listener(&mut self, key: &str, listen: &str) -> Option<Listener> {
        Listener::parse(listen)
            .map_err(|e| self.problem(key, e))
            .ok()
    }

    fn tls_listener(&mut self, key: &str, listen: Option<&str>) -> Option<Listener> {
        let listener = self.listener(key, listen?)?;
        if let Listener::Unix { .. } = listener {
            self.problem(
                key,
                "must be host:port (a unix socket is local: serve it with `listen`)",
            );
            return None;
        }
        Some(listener)
    }

    /// `tls:` (the TLS listeners' certificate, which they need and which
    /// needs them), `backend_tls:` and `sentinel_tls:`.
    fn tls(&mut self, raw: &mut RawPool) -> PoolTls {
        let server = match raw.tls.take() {
            Some(block) => self.tls_block("tls", tls::listen_tls(block)),
            None => None,
        };
        let listens = raw.tls_listen.is_some() || raw.tls_readonly_listen.is_some();
        if listens && server.is_none() && !self.has_problem("tls.") {
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
            Some(block) => self.tls_block("backend_tls", tls::upstream_tls(block)),
            None => None,
        };
        let sentinel = match raw.sentinel_tls.take() {
            Some(block) => self.tls_block("sentinel_tls", tls::upstream_tls(block)),
            None => None,
        };
        PoolTls {
            server,
            backend,
            sentinel,
        }
    }

    fn tls_block<T>(&mut self, key: &str, checked: Result<T, Vec<tls::Problem>>) -> Option<T> {
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

    /// `cluster_proxies` and `cluster_announce`: the proxies clients are
    /// told about, as addresses they can dial. Whether this proxy is among
    /// them is checked once its listener is resolved.
    fn cluster_face(&mut self, raw: &RawPool) -> Option<FacePlan> {
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
        let announce = match &raw.cluster_announce {
            None => None,
            Some(announce) => match announce.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.problem(
                        "cluster_announce",
                        format!("'{announce}' is not an ip:port"),
                    );
                    return None;
                }
            },
        };
        Some(FacePlan { proxies, announce })
    }

    /// `distribution`, `hash`, `hash_tag`.
    fn placement(&mut self, raw: &RawPool, cluster: bool) -> Placement {
        let distribution = self.distribution(raw, cluster);
        Placement {
            distribution,
            hash: self.hash(raw, distribution),
            hash_tag: self.hash_tag(raw, cluster, distribution),
        }
    }

    fn distribution(&mut self, raw: &RawPool, cluster: bool) -> DistributionKind {
        match raw.distribution.as_deref() {
            None if cluster => DistributionKind::Slots,
            None => DEFAULT_DISTRIBUTION,
            Some(d) => DistributionKind::from_name(d).unwrap_or_else(|| {
                self.problem(
                    "distribution",
                    format!("unknown '{d}' (expected ketama, modula, random, maglev or slots)"),
                );
                DEFAULT_DISTRIBUTION
            }),
        }
    }

    fn hash(&mut self, raw: &RawPool, distribution: DistributionKind) -> HashFunction {
        match raw.hash.as_deref() {
            None if distribution == DistributionKind::Maglev => DEFAULT_MAGLEV_HASH,
            None => DEFAULT_HASH,
            Some(h) => HashFunction::from_name(h).unwrap_or_else(|| {
                self.problem(
                    "hash",
                    format!(
                        "unknown '{h}' (expected one_at_a_time, md5, crc16, crc32, crc32a, fnv1_64, \
                         fnv1a_64, fnv1_32, fnv1a_32, hsieh, murmur, jenkins or murmur2_64)"
                    ),
                );
                DEFAULT_HASH
            }),
        }
    }

    fn hash_tag(
        &mut self,
        raw: &RawPool,
        cluster: bool,
        distribution: DistributionKind,
    ) -> HashTag {
        match raw.hash_tag.as_deref() {
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
        }
    }

    /// `timeout`, `connect_timeout`, `reconnect_backoff_max`.
    fn timeouts(&mut self, raw: &RawPool) -> Timeouts {
        Timeouts {
            timeout: self.millis("timeout", raw.timeout, DEFAULT_TIMEOUT),
            connect_timeout: self.millis(
                "connect_timeout",
                raw.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            ),
            reconnect_backoff_max: self.millis(
                "reconnect_backoff_max",
                raw.reconnect_backoff_max,
                DEFAULT_RECONNECT_BACKOFF_MAX,
            ),
        }
    }

    /// `backlog`, `preconnect`, `tcpkeepalive`, `server_connections`,
    /// `client_connections`, `client_output_limit`, `max_request_bytes`.
    fn connections(&mut self, raw: &RawPool) -> Connections {
        Connections {
            backlog: self.number(
                "backlog",
                raw.backlog,
                DEFAULT_BACKLOG,
                1,
                MAX_BACKLOG.into(),
            ),
            preconnect: raw.preconnect.unwrap_or(false),
            tcpkeepalive: raw.tcpkeepalive.unwrap_or(false),
            server_connections: self.number(
                "server_connections",
                raw.server_connections,
                DEFAULT_SERVER_CONNECTIONS,
                1,
                MAX_SERVER_CONNECTIONS.into(),
            ),
            client_connections: self.number(
                "client_connections",
                raw.client_connections,
                DEFAULT_CLIENT_CONNECTIONS,
                0,
                u32::MAX.into(),
            ),
            client_output_limit: self.number(
                "client_output_limit",
                raw.client_output_limit,
                DEFAULT_CLIENT_OUTPUT_LIMIT,
                MIN_CLIENT_BYTES as i64,
                i64::MAX,
            ),
            max_request_bytes: self.number(
                "max_request_bytes",
                raw.max_request_bytes,
                DEFAULT_MAX_REQUEST_BYTES,
                MIN_CLIENT_BYTES as i64,
                DEFAULT_MAX_REQUEST_BYTES as i64,
            ),
        }
    }

    /// `servers:` lines, read. Ring names must be unique.
    fn servers(&mut self, servers: Option<&[String]>) -> Vec<Located<ServerLine>> {
        let Some(servers) = servers.filter(|s| !s.is_empty()) else {
            self.problem(
                "servers",
                "missing or empty (e.g. `servers: [\"127.0.0.1:6379:1\"]`)",
            );
            return Vec::new();
        };
        let mut read: Vec<Located<ServerLine>> = Vec::new();
        for (i, line) in servers.iter().enumerate() {
            let key = format!("servers[{i}]");
            match ServerLine::parse(line) {
                Ok(server) => {
                    let name = server.ring_name();
                    if read.iter().any(|s| s.value.ring_name() == name) {
                        self.problem(&key, format!("'{line}': duplicate server name '{name}'"));
                    }
                    read.push(Located {
                        key,
                        line: line.clone(),
                        value: server,
                    });
                }
                Err(e) => self.problem(&key, format!("'{line}': {e}")),
            }
        }
        read
    }

    /// `replicas:` maps server names to `host:port` lists, read.
    fn replicas(
        &mut self,
        raw: BTreeMap<String, Vec<String>>,
        servers: &[Located<ServerLine>],
    ) -> Vec<(usize, Located<HostPort>)> {
        let mut replicas = Vec::new();
        for (name, lines) in raw {
            let Some(index) = servers.iter().position(|s| s.value.ring_name() == name) else {
                let names: Vec<String> = servers.iter().map(|s| s.value.ring_name()).collect();
                self.problem(
                    &format!("replicas.{name}"),
                    format!(
                        "no server is named '{name}' (servers: {})",
                        names.join(", ")
                    ),
                );
                continue;
            };
            for (i, line) in lines.into_iter().enumerate() {
                let key = format!("replicas.{name}[{i}]");
                if let Some(replica) = self.node(key, line, false) {
                    replicas.push((index, replica));
                }
            }
        }
        replicas
    }

    /// `sentinels:` lines (`host:port:weight`, ifwe/twemproxy's format), read.
    fn sentinels(&mut self, lines: Option<&[String]>) -> Vec<Located<HostPort>> {
        (lines.unwrap_or_default().iter().enumerate())
            .filter_map(|(i, line)| self.node(format!("sentinels[{i}]"), line.clone(), true))
            .collect()
    }

    /// `coordination`: the Redis the pool's proxies reshard through, read.
    fn coordination(&mut self, line: Option<&str>) -> Option<Located<HostPort>> {
        self.node("coordination".into(), line?.to_string(), false)
    }

    /// A node's `host:port` line, read, or its problem recorded.
    fn node(
        &mut self,
        key: String,
        line: String,
        weight_allowed: bool,
    ) -> Option<Located<HostPort>> {
        match HostPort::node(&line, weight_allowed) {
            Ok(at) => Some(Located {
                key,
                line,
                value: at,
            }),
            Err(e) => {
                self.problem(&key, format!("'{line}': {e}"));
                None
            }
        }
    }

    /// Credentials shardgate presents to a backend: the password under
    /// `key`, and a user under `user_key`, which needs the password.
    fn credentials(
        &mut self,
        key: &str,
        user_key: &str,
        password: Option<RawSecret>,
        user: Option<String>,
    ) -> Option<BackendAuth> {
        let needs_password = user.is_some();
        let auth = self
            .secret(key, password)
            .map(|password| BackendAuth { user, password });
        if needs_password && auth.is_none() {
            self.problem(user_key, format!("needs `{key}` (the user's password)"));
        }
        auth
    }

    /// `redis_db` (where clients start) and `databases` (how many they may
    /// SELECT).
    fn databases(&mut self, raw: &RawPool) -> Databases {
        let redis_db = self.number(
            "redis_db",
            raw.redis_db,
            DEFAULT_REDIS_DB,
            0,
            MAX_DATABASES.into(),
        );
        let databases = self.number(
            "databases",
            raw.databases,
            DEFAULT_DATABASES,
            1,
            MAX_DATABASES.into(),
        );
        if redis_db >= databases {
            self.problem(
                "redis_db",
                format!("{redis_db} is not below `databases` ({databases})"),
            );
        }
        Databases {
            redis_db,
            databases,
        }
    }

    /// Who may use the pool: `password`, `users`,
    /// `auth_failures_per_second`.
    fn clients(&mut self, raw: &mut RawPool) -> Clients {
        let users = raw.users.take().unwrap_or_default();
        let default_user = users.iter().position(|user| user.name == "default");
        if let (Some(i), Some(_)) = (default_user, &raw.password) {
            // Both would be the default user's password: which one wins?
            self.problem(
                &format!("users[{i}]"),
                "user 'default' and `password` both set the default user's password \
                 (keep one)",
            );
        }
        Clients {
            password: self.secret("password", raw.password.take()),
            users: self.users(users),
            auth_failures_per_second: self.number(
                "auth_failures_per_second",
                raw.auth_failures_per_second,
                DEFAULT_AUTH_FAILURES_PER_SECOND,
                0,
                u32::MAX.into(),
            ),
        }
    }

    fn users(&mut self, raw: Vec<RawUser>) -> Vec<UserConfig> {
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
            let commands = user
                .commands
                .unwrap_or_else(|| DEFAULT_USER_COMMANDS.into());
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

    /// `failover` (Sentinel's mode needs Sentinels, which only it uses),
    /// the Sentinels' credentials and TLS, `health_check`.
    fn failover(
        &mut self,
        raw: &mut RawPool,
        sentinels: &[Located<HostPort>],
        tls: &PoolTls,
    ) -> FailoverSettings {
        let sentinel_auth = self.credentials(
            "sentinel_auth",
            "sentinel_user",
            raw.sentinel_auth.take(),
            raw.sentinel_user.take(),
        );
        let mode = self.choice(
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
        if mode == Failover::Sentinel && sentinels.is_empty() {
            self.problem(
                "failover",
                "sentinel mode needs `sentinels:` (host:port:weight lines)",
            );
        }
        if mode != Failover::Sentinel && !sentinels.is_empty() {
            self.problem(
                "sentinels",
                format!(
                    "listed, but `failover: {}` does not use them",
                    raw.failover.as_deref().unwrap_or("none")
                ),
            );
        }
        if tls.sentinel.is_some() && sentinels.is_empty() {
            self.problem("sentinel_tls", "is set but the pool has no `sentinels`");
        }
        FailoverSettings {
            mode,
            sentinel_auth,
            health_check: self.health_check(raw.health_check.take().unwrap_or_default()),
        }
    }

    /// `health_check`: PING + INFO replication to every node.
    fn health_check(&mut self, raw: RawHealthCheck) -> HealthCheck {
        HealthCheck {
            interval: self.millis(
                "health_check.interval",
                raw.interval,
                DEFAULT_HEALTH_INTERVAL,
            ),
            timeout: self.millis("health_check.timeout", raw.timeout, DEFAULT_HEALTH_TIMEOUT),
            rise: self.number(
                "health_check.rise",
                raw.rise,
                DEFAULT_HEALTH_RISE,
                1,
                MAX_HEALTH_COUNT.into(),
            ),
            fall: self.number(
                "health_check.fall",
                raw.fall,
                DEFAULT_HEALTH_FALL,
                1,
                MAX_HEALTH_COUNT.into(),
            ),
        }
    }

    /// `shard_down` (by default what `auto_eject_hosts` says), and
    /// twemproxy's ejection keys.
    fn ejection(&mut self, raw: &RawPool) -> Ejection {
        let auto_eject_hosts = raw.auto_eject_hosts.unwrap_or(false);
        Ejection {
            auto_eject_hosts,
            shard_down: self.choice(
                "shard_down",
                raw.shard_down.as_deref(),
                &[("eject", ShardDown::Eject), ("fail", ShardDown::Fail)],
                if auto_eject_hosts {
                    ShardDown::Eject
                } else {
                    ShardDown::Fail
                },
            ),
            server_retry_timeout: self.millis(
                "server_retry_timeout",
                raw.server_retry_timeout,
                DEFAULT_SERVER_RETRY_TIMEOUT,
            ),
            server_failure_limit: self.number(
                "server_failure_limit",
                raw.server_failure_limit,
                DEFAULT_SERVER_FAILURE_LIMIT,
                1,
                MAX_SERVER_FAILURE_LIMIT.into(),
            ),
        }
    }

    /// `coordination_auth`, the mover's pace and `keys_may_move`. The mover
    /// and the coordination store connect in plaintext, so resharding does
    /// not go with `backend_tls` yet.
    fn resharding(&mut self, raw: &mut RawPool, coordinated: bool, tls: &PoolTls) -> Resharding {
        let coordination_auth = self
            .secret("coordination_auth", raw.coordination_auth.take())
            .map(|password| BackendAuth {
                user: None,
                password,
            });
        let reshard = Reshard {
            keys_per_second: self.number(
                "reshard_keys_per_second",
                raw.reshard_keys_per_second,
                DEFAULT_RESHARD_KEYS_PER_SECOND,
                0,
                u32::MAX.into(),
            ),
            bytes_per_second: self.number(
                "reshard_bytes_per_second",
                raw.reshard_bytes_per_second,
                DEFAULT_RESHARD_BYTES_PER_SECOND,
                0,
                i64::MAX,
            ),
            big_key_bytes: self.number(
                "reshard_big_key_bytes",
                raw.reshard_big_key_bytes,
                DEFAULT_RESHARD_BIG_KEY_BYTES,
                1,
                i64::MAX,
            ),
        };
        if coordinated && tls.backend.is_some() {
            self.problem(
                "coordination",
                "resharding is not supported with `backend_tls` yet (the mover and the \
                 coordination store connect in plaintext)",
            );
        }
        Resharding {
            coordination_auth,
            reshard,
            keys_may_move: raw.keys_may_move.unwrap_or(false),
        }
    }

    /// Where reads go.
    fn reads(&mut self, raw: &RawPool) -> Reads {
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
        let lag = raw.max_replica_lag.as_ref();
        let max_replica_lag = ReplicaLag {
            seconds: lag.and_then(|l| l.seconds).and_then(|s| {
                self.bounded(
                    "max_replica_lag.seconds",
                    s,
                    0,
                    MAX_REPLICA_LAG_SECONDS.into(),
                )
            }),
            bytes: lag
                .and_then(|l| l.bytes)
                .and_then(|b| self.bounded("max_replica_lag.bytes", b, 0, i64::MAX)),
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
            Some(0) => Duration::ZERO,
            ms => self.millis("read_your_writes", ms, DEFAULT_READ_YOUR_WRITES),
        };
        Reads {
            read_policy,
            read_balance,
            max_replica_lag,
            replica_fallback,
            read_your_writes,
        }
    }

    /// `slowlog_log_slower_than` (µs; negative: off, as Redis's) and
    /// `slowlog_max_len`.
    fn slowlog(&mut self, raw: &RawPool) -> SlowLog {
        let threshold = match raw.slowlog_log_slower_than {
            None => Some(DEFAULT_SLOWLOG_THRESHOLD),
            Some(us) if us < 0 => None,
            Some(us) => Some(Duration::from_micros(us.unsigned_abs())),
        };
        SlowLog {
            threshold,
            max_len: self.number(
                "slowlog_max_len",
                raw.slowlog_max_len,
                DEFAULT_SLOWLOG_MAX_LEN,
                0,
                MAX_SLOWLOG_MAX_LEN as i64,
            ),
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

    /// Milliseconds, more than zero; `default` when absent (or, after a
    /// problem, to go on checking).
    fn millis(&mut self, key: &str, value: Option<i64>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            Some(ms) => {
                self.problem(
                    key,
                    format!("{ms} must be a positive number of milliseconds"),
                );
                default
            }
        }
    }

    /// A whole number in `min..=max`; `default` when absent (or, after a
    /// problem, to go on checking).
    fn number<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: T,
        min: i64,
        max: i64,
    ) -> T {
        value
            .and_then(|n| self.bounded(key, n, min, max))
            .unwrap_or(default)
    }

    /// `n` if it is in `min..=max` (bounds `T` holds), else a problem.
    fn bounded<T: TryFrom<i64>>(&mut self, key: &str, n: i64, min: i64, max: i64) -> Option<T> {
        match T::try_from(n) {
            Ok(value) if (min..=max).contains(&n) => Some(value),
            _ => {
                self.problem(key, format!("{n} is out of range {min}..={max}"));
                None
            }
        }
    }
}
