//! Raw YAML -> typed [`Config`], collecting every problem.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use keyspace::{DistributionKind, HashFunction, HashTag};

use super::raw::RawPool;
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
    let mut problems = Vec::new();
    let mut pools = Vec::new();
    for (key, value) in mapping {
        let Some(name) = key.as_str().map(str::to_string) else {
            problems.push(format!("pool name {key:?} is not a string"));
            continue;
        };
        match yaml_serde::from_value::<RawPool>(value) {
            Ok(raw) => {
                let mut checker = Checker {
                    pool: &name,
                    problems: &mut problems,
                };
                if let Some(pool) = checker.pool(&name, raw) {
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
    if problems.is_empty() {
        Ok(Config { pools })
    } else {
        Err(problems)
    }
}

fn check_distinct_listeners(pools: &[PoolConfig], problems: &mut Vec<String>) {
    for (i, a) in pools.iter().enumerate() {
        for b in pools.iter().skip(i + 1) {
            if a.listen == b.listen {
                problems.push(format!(
                    "pools '{}' and '{}' both listen on {}",
                    a.name, b.name, a.listen
                ));
            }
        }
    }
}

/// Validates one pool, recording problems instead of stopping at the first.
struct Checker<'a> {
    pool: &'a str,
    problems: &'a mut Vec<String>,
}

impl Checker<'_> {
    fn problem(&mut self, key: &str, message: impl std::fmt::Display) {
        self.problems
            .push(format!("pool '{}': {key}: {message}", self.pool));
    }

    fn pool(&mut self, name: &str, raw: RawPool) -> Option<PoolConfig> {
        let before = self.problems.len();
        if raw.redis == Some(false) {
            self.problem(
                "redis",
                "memcached pools are not supported: shardgate speaks Redis only (set `redis: true`)",
            );
        }
        let listen = match &raw.listen {
            Some(listen) => self.listen(listen),
            None => {
                self.problem("listen", "missing (e.g. `listen: 127.0.0.1:22121`)");
                None
            }
        };
        let distribution = match raw.distribution.as_deref() {
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
        let redis_auth = match raw.redis_auth {
            Some(auth) if auth.is_empty() => {
                self.problem("redis_auth", "is empty (remove the key for no password)");
                None
            }
            auth => auth.map(|password| BackendAuth {
                user: raw.redis_user.clone(),
                password: Secret::new(password),
            }),
        };
        if raw.redis_user.is_some() && redis_auth.is_none() {
            self.problem("redis_user", "needs `redis_auth` (the user's password)");
        }
        let databases = self.number("databases", raw.databases, 16, 1, i32::MAX as i64) as u32;
        let password = match raw.password {
            Some(p) if p.is_empty() => {
                self.problem("password", "is empty (remove the key for no password)");
                None
            }
            p => p.map(Secret::new),
        };
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
        let sentinel_auth = raw.sentinel_auth.map(|password| BackendAuth {
            user: raw.sentinel_user.clone(),
            password: Secret::new(password),
        });
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
        let readonly_listen = raw.readonly_listen.as_deref().and_then(|l| self.listen(l));
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
        let listen = listen?;
        if self.problems.len() != before {
            return None;
        }
        Some(PoolConfig {
            name: name.to_string(),
            listen,
            hash,
            hash_tag,
            distribution,
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
            shard_down,
            read_policy,
            read_balance,
            max_replica_lag,
            replica_fallback,
            read_your_writes,
            readonly_listen,
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
                    Ok(node) => replicas[index].push(node),
                    Err(e) => {
                        self.problem(&format!("replicas.{name}[{i}]"), format!("'{line}': {e}"))
                    }
                }
            }
        }
        replicas
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
            if user.password.is_empty() {
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
                password: Secret::new(user.password),
                commands,
                keys: user.keys,
            });
        }
        users
    }

    fn listen(&mut self, listen: &str) -> Option<ListenAddr> {
        let mut parts = listen.split_whitespace();
        let address = parts.next().unwrap_or_default();
        if address.starts_with('/') {
            let mode = match parts.next() {
                None => None,
                Some(mode) => match u32::from_str_radix(mode, 8) {
                    Ok(mode) if mode <= 0o777 => Some(mode),
                    _ => {
                        self.problem("listen", format!("'{mode}' is not an octal file mode"));
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
                "listen",
                format!("'{listen}': expected host:port or /unix/path [mode]"),
            );
            return None;
        }
        match resolve(address) {
            Ok(addr) => Some(ListenAddr::Tcp(addr)),
            Err(e) => {
                self.problem("listen", e);
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
                    parsed.push(server);
                }
                Err(e) => self.problem(&format!("servers[{i}]"), format!("'{line}': {e}")),
            }
        }
        parsed
    }
}

/// `host:port:weight [name]`, as twemproxy writes a server.
fn parse_server(line: &str) -> Result<ServerConfig, String> {
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
    let weight: u32 = weight
        .parse()
        .ok()
        .filter(|w| *w > 0)
        .ok_or_else(|| format!("weight '{weight}' must be a positive integer"))?;
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
fn parse_node(line: &str, with_weight: bool) -> Result<NodeConfig, String> {
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
            ListenAddr::Unix {
                path: "/tmp/shardgate-test.sock".into(),
                mode: Some(0o666)
            }
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
}
