//! What the pure step makes of a pool: its settings typed, section by
//! section, and its addresses as written, for the resolve step.

use std::net::SocketAddr;
use std::time::Duration;

use keyspace::{DistributionKind, HashFunction, HashTag};

use super::Located;
use crate::config::address::{HostPort, Listener, ServerLine};
use crate::config::tls::{ListenTls, UpstreamTls};
use crate::config::*;

/// One pool after the pure step: every setting typed, every address read
/// but not resolved.
pub(super) struct Checked {
    pub name: String,
    /// No problem was found in the pool.
    pub clean: bool,
    pub listeners: Listeners<Listener>,
    pub servers: Vec<Located<ServerLine>>,
    /// Each replica with the index of its server in `servers`, in the
    /// file's order (by server name).
    pub replicas: Vec<(usize, Located<HostPort>)>,
    pub sentinels: Vec<Located<HostPort>>,
    pub coordination: Option<Located<HostPort>>,
    /// `cluster_proxies`: this proxy's entry needs its resolved listener.
    pub face: Option<FacePlan>,
    pub settings: Settings,
}

/// A pool's listeners, by key: as written ([`Listener`]), then resolved
/// ([`ListenAddr`]).
pub(super) struct Listeners<L> {
    pub listen: Option<L>,
    pub readonly_listen: Option<L>,
    pub tls_listen: Option<L>,
    pub tls_readonly_listen: Option<L>,
}

impl<L> Listeners<L> {
    /// Each listener through `f`, with its key, in the file's key order.
    pub fn map<M>(self, mut f: impl FnMut(&'static str, L) -> Option<M>) -> Listeners<M> {
        let mut map = |key, listener: Option<L>| listener.and_then(|l| f(key, l));
        Listeners {
            listen: map("listen", self.listen),
            readonly_listen: map("readonly_listen", self.readonly_listen),
            tls_listen: map("tls_listen", self.tls_listen),
            tls_readonly_listen: map("tls_readonly_listen", self.tls_readonly_listen),
        }
    }
}

/// `cluster_proxies` and `cluster_announce`, read.
pub(super) struct FacePlan {
    /// Every proxy's address for this pool, sorted and deduplicated.
    pub proxies: Vec<SocketAddr>,
    /// This proxy's entry; None: its `listen` (or `tls_listen`) address.
    pub announce: Option<SocketAddr>,
}

/// Every setting of a pool that needs no address, by section.
pub(super) struct Settings {
    pub cluster: bool,
    pub placement: Placement,
    pub timeouts: Timeouts,
    pub connections: Connections,
    pub databases: Databases,
    pub redis_auth: Option<BackendAuth>,
    pub clients: Clients,
    pub failover: FailoverSettings,
    pub ejection: Ejection,
    pub discover_replicas: bool,
    pub resharding: Resharding,
    pub reads: Reads,
    pub tls: PoolTls,
    pub slowlog: SlowLog,
}

/// `distribution`, `hash`, `hash_tag`: where a key goes.
pub(super) struct Placement {
    pub distribution: DistributionKind,
    pub hash: HashFunction,
    pub hash_tag: HashTag,
}

/// `timeout`, `connect_timeout`, `reconnect_backoff_max`.
pub(super) struct Timeouts {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub reconnect_backoff_max: Duration,
}

/// The pool's sockets and what one client may hold.
pub(super) struct Connections {
    pub backlog: u32,
    pub preconnect: bool,
    pub tcpkeepalive: bool,
    pub server_connections: u32,
    pub client_connections: u32,
    pub client_output_limit: usize,
    pub max_request_bytes: usize,
}

/// `redis_db` and `databases`.
pub(super) struct Databases {
    pub redis_db: u32,
    pub databases: u32,
}

/// Who may use the pool: `password`, `users`, `auth_failures_per_second`.
pub(super) struct Clients {
    pub password: Option<Secret>,
    pub users: Vec<UserConfig>,
    pub auth_failures_per_second: u32,
}

/// `failover`, `sentinel_auth`/`sentinel_user`, `health_check`.
pub(super) struct FailoverSettings {
    pub mode: Failover,
    pub sentinel_auth: Option<BackendAuth>,
    pub health_check: HealthCheck,
}

/// What happens to a shard without a master: `shard_down` and
/// twemproxy's ejection keys.
pub(super) struct Ejection {
    pub auto_eject_hosts: bool,
    pub shard_down: ShardDown,
    pub server_retry_timeout: Duration,
    pub server_failure_limit: u32,
}

/// `coordination_auth`, the mover's pace, `keys_may_move`.
pub(super) struct Resharding {
    pub coordination_auth: Option<BackendAuth>,
    pub reshard: Reshard,
    pub keys_may_move: bool,
}

/// Where reads go: `read_policy`, `read_balance`, `max_replica_lag`,
/// `replica_fallback`, `read_your_writes`.
pub(super) struct Reads {
    pub read_policy: ReadPolicy,
    pub read_balance: ReadBalance,
    pub max_replica_lag: ReplicaLag,
    pub replica_fallback: ReplicaFallback,
    pub read_your_writes: Duration,
}

/// `tls:`, `backend_tls:`, `sentinel_tls:`.
pub(super) struct PoolTls {
    pub server: Option<ListenTls>,
    pub backend: Option<UpstreamTls>,
    pub sentinel: Option<UpstreamTls>,
}

/// `slowlog_log_slower_than` and `slowlog_max_len`.
pub(super) struct SlowLog {
    pub threshold: Option<Duration>,
    pub max_len: usize,
}
