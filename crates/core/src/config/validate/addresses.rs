//! The last step: the checks that need resolved addresses.
//!
//! Within a pool ([`pool`]): each server and replica address once, and
//! the cluster face's own entry among `cluster_proxies`; then the typed
//! [`PoolConfig`]. Across the pools without a problem ([`across`]): no two
//! listeners on one socket, and no backend shared by two pools when
//! either manages failover.

use std::net::{IpAddr, SocketAddr};

use super::checked::{FacePlan, Listeners};
use super::pool::Checker;
use super::resolve::Resolved;
use super::Located;
use crate::config::*;

/// A pool without a problem, and its backends (for [`across`]).
pub(super) struct Valid {
    pub pool: PoolConfig,
    backends: Vec<Backend>,
}

/// Checks what needs one pool's resolved addresses, and returns the pool
/// typed if no step found a problem in it.
pub(super) fn pool(mut pool: Resolved, problems: &mut Vec<String>) -> Option<Valid> {
    let mut checker = Checker::new(&pool.name, problems);
    let backends = distinct_backends(&mut checker, &pool.servers, &pool.replicas);
    let face =
        (pool.face.take()).and_then(|plan| cluster_face(&mut checker, plan, &pool.listeners));
    let clean = pool.clean && checker.is_clean();
    clean.then(|| Valid {
        pool: assemble(pool, face),
        backends,
    })
}

/// Checks the valid pools against each other: no two listeners on one
/// socket, no backend shared when either pool manages failover.
pub(super) fn across(pools: &[Valid], problems: &mut Vec<String>) {
    distinct_listeners(pools, problems);
    managed_backends(pools, problems);
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
    fn server(server: &Located<ServerConfig>) -> Backend {
        let s = &server.value;
        Backend {
            key: server.key.clone(),
            place: match &s.name {
                Some(name) => format!("{} ({name})", server.key),
                None => server.key.clone(),
            },
            label: format!("{}:{}", s.host, s.port),
            addr: s.addr,
        }
    }

    fn replica(replica: &Located<NodeConfig>) -> Backend {
        Backend {
            key: replica.key.clone(),
            place: replica.key.clone(),
            label: replica.value.label(),
            addr: replica.value.addr,
        }
    }

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

/// A pool's servers and replicas, each address once: the shard logic would
/// treat one node given twice as two (and in managed failover,
/// reconfigure it as a replica of itself or wipe another shard).
fn distinct_backends(
    checker: &mut Checker,
    servers: &[Located<ServerConfig>],
    replicas: &[(usize, Located<NodeConfig>)],
) -> Vec<Backend> {
    let mut backends: Vec<Backend> = Vec::new();
    let given = (servers.iter().map(Backend::server)).chain(
        replicas
            .iter()
            .map(|(_, replica)| Backend::replica(replica)),
    );
    for backend in given {
        if let Some(first) = backends.iter().find(|b| b.is(&backend)) {
            let message = format!(
                "{} is also {}; an address may appear only once among a pool's servers \
                 and replicas",
                backend.label,
                first.describe(&backend)
            );
            checker.problem(&backend.key, message);
        }
        backends.push(backend);
    }
    backends
}

/// The cluster face: this proxy's entry is `cluster_announce`, or else
/// the address it listens on (`listen`, else `tls_listen`), which must be
/// one clients can dial and must be listed.
fn cluster_face(
    checker: &mut Checker,
    plan: FacePlan,
    listeners: &Listeners<ListenAddr>,
) -> Option<ClusterFace> {
    let listener = listeners.listen.as_ref().or(listeners.tls_listen.as_ref());
    let me = match (plan.announce, listener) {
        (Some(announce), _) => announce,
        (None, Some(ListenAddr::Tcp(addr))) if !addr.ip().is_unspecified() => *addr,
        (None, _) => {
            checker.problem(
                "cluster_announce",
                "missing: the pool does not listen on an address clients can connect to \
                 (a unix socket or 0.0.0.0); name this proxy's entry in `cluster_proxies`",
            );
            return None;
        }
    };
    if !plan.proxies.contains(&me) {
        checker.problem(
            "cluster_proxies",
            format!("does not list this proxy ({me}; set `cluster_announce` if it is known by another address)"),
        );
    }
    Some(ClusterFace {
        proxies: plan.proxies,
        me,
    })
}

/// The typed pool, from its checked settings and resolved addresses.
fn assemble(pool: Resolved, cluster_face: Option<ClusterFace>) -> PoolConfig {
    let Resolved {
        name,
        clean: _,
        listeners,
        servers,
        replicas: listed,
        sentinels,
        coordination,
        face: _,
        settings,
    } = pool;
    let mut replicas = vec![Vec::new(); servers.len()];
    for (server, replica) in listed {
        if let Some(list) = replicas.get_mut(server) {
            list.push(replica.value);
        }
    }
    let s = settings;
    PoolConfig {
        name,
        listen: listeners.listen,
        hash: s.placement.hash,
        hash_tag: s.placement.hash_tag,
        distribution: s.placement.distribution,
        cluster: s.cluster,
        timeout: s.timeouts.timeout,
        backlog: s.connections.backlog,
        preconnect: s.connections.preconnect,
        redis_auth: s.redis_auth,
        redis_db: s.databases.redis_db,
        databases: s.databases.databases,
        password: s.clients.password,
        users: s.clients.users,
        auth_failures_per_second: s.clients.auth_failures_per_second,
        replicas,
        sentinels,
        sentinel_auth: s.failover.sentinel_auth,
        failover: s.failover.mode,
        health_check: s.failover.health_check,
        discover_replicas: s.discover_replicas,
        keys_may_move: s.resharding.keys_may_move,
        coordination,
        coordination_auth: s.resharding.coordination_auth,
        reshard: s.resharding.reshard,
        shard_down: s.ejection.shard_down,
        read_policy: s.reads.read_policy,
        read_balance: s.reads.read_balance,
        max_replica_lag: s.reads.max_replica_lag,
        replica_fallback: s.reads.replica_fallback,
        read_your_writes: s.reads.read_your_writes,
        readonly_listen: listeners.readonly_listen,
        tls_listen: listeners.tls_listen,
        tls_readonly_listen: listeners.tls_readonly_listen,
        tls: s.tls.server,
        backend_tls: s.tls.backend,
        sentinel_tls: s.tls.sentinel,
        cluster_face,
        slowlog_threshold: s.slowlog.threshold,
        slowlog_max_len: s.slowlog.max_len,
        server_connections: s.connections.server_connections,
        client_connections: s.connections.client_connections,
        auto_eject_hosts: s.ejection.auto_eject_hosts,
        server_retry_timeout: s.ejection.server_retry_timeout,
        server_failure_limit: s.ejection.server_failure_limit,
        tcpkeepalive: s.connections.tcpkeepalive,
        servers: servers.into_iter().map(|server| server.value).collect(),
        connect_timeout: s.timeouts.connect_timeout,
        reconnect_backoff_max: s.timeouts.reconnect_backoff_max,
        client_output_limit: s.connections.client_output_limit,
        max_request_bytes: s.connections.max_request_bytes,
    }
}

/// Every `listen`, `readonly_listen`, `tls_listen` and
/// `tls_readonly_listen` must be its own: with
/// `SO_REUSEPORT`, two pools bound to one port would silently split its
/// clients between them.
fn distinct_listeners(pools: &[Valid], problems: &mut Vec<String>) {
    let listeners: Vec<(&str, &str, &ListenAddr)> = (pools.iter().map(|valid| &valid.pool))
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

/// A backend in two pools is managed twice when either pool fails over by
/// itself: two controllers would promote and reconfigure the same node.
fn managed_backends(pools: &[Valid], problems: &mut Vec<String>) {
    for (i, a) in pools.iter().enumerate() {
        for b in pools.iter().skip(i + 1) {
            let (pool_a, pool_b) = (&a.pool, &b.pool);
            let managed = [pool_a, pool_b]
                .into_iter()
                .filter(|p| p.failover == Failover::Managed)
                .map(|p| format!("'{}'", p.name))
                .collect::<Vec<_>>();
            if managed.is_empty() {
                continue;
            }
            for a in &a.backends {
                for b in b.backends.iter().filter(|b| a.is(b)) {
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
