//! The config file as written: serde structs that mirror twemproxy's
//! `nutcracker.yml` pool keys, plus shardgate's extensions. Nothing here is
//! validated; [`super::validate`] turns it into typed values.

use serde::Deserialize;

/// One pool as written in the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    // twemproxy's keys.
    pub listen: Option<String>,
    pub hash: Option<String>,
    pub hash_tag: Option<String>,
    pub distribution: Option<String>,
    pub timeout: Option<i64>,
    pub backlog: Option<i64>,
    pub preconnect: Option<bool>,
    pub redis: Option<bool>,
    pub redis_auth: Option<String>,
    pub redis_db: Option<i64>,
    pub server_connections: Option<i64>,
    pub client_connections: Option<i64>,
    pub auto_eject_hosts: Option<bool>,
    pub server_retry_timeout: Option<i64>,
    pub server_failure_limit: Option<i64>,
    pub tcpkeepalive: Option<bool>,
    pub servers: Option<Vec<String>>,
    // shardgate's extensions (docs/configuration.md).
    pub connect_timeout: Option<i64>,
    pub reconnect_backoff_max: Option<i64>,
    pub client_output_limit: Option<i64>,
    pub max_request_bytes: Option<i64>,
    pub redis_user: Option<String>,
    pub databases: Option<i64>,
    pub password: Option<String>,
    pub users: Option<Vec<RawUser>>,
    pub auth_failures_per_second: Option<i64>,
    // High availability.
    pub replicas: Option<std::collections::BTreeMap<String, Vec<String>>>,
    pub sentinels: Option<Vec<String>>,
    pub sentinel_auth: Option<String>,
    pub sentinel_user: Option<String>,
    pub failover: Option<String>,
    pub health_check: Option<RawHealthCheck>,
    pub discover_replicas: Option<bool>,
    pub shard_down: Option<String>,
    // Read/write splitting.
    pub read_policy: Option<String>,
    pub read_balance: Option<String>,
    pub max_replica_lag: Option<RawReplicaLag>,
    pub replica_fallback: Option<String>,
    pub read_your_writes: Option<i64>,
    pub readonly_listen: Option<String>,
    // Observability.
    pub slowlog_log_slower_than: Option<i64>,
    pub slowlog_max_len: Option<i64>,
}

/// One client user as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    pub password: String,
    pub commands: Option<String>,
    pub keys: Option<Vec<String>>,
}

/// `health_check:` as written (milliseconds and counts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

/// `max_replica_lag:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplicaLag {
    pub seconds: Option<i64>,
    pub bytes: Option<i64>,
}
