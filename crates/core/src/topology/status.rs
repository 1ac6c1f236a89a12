//! What the admin API and the status page show about a pool: every shard,
//! every node with its role, health, lag and fitness. Written by the
//! controller after each change, read by the admin server.

use std::sync::Arc;

use serde::Serialize;

use super::group::{Health, Lag, NodeHealth, Origin};
use super::info::Role;

#[derive(Debug, Clone, Serialize, Default)]
pub struct PoolStatus {
    pub pool: Arc<str>,
    /// `none`, `sentinel` or `managed`.
    pub failover: String,
    /// The topology version last published.
    pub version: u64,
    pub shards: Vec<ShardStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub name: Arc<str>,
    /// The node writes go to; None while the shard has no usable master.
    pub master: Option<Arc<str>>,
    /// Why there is no usable master.
    pub down: Option<String>,
    pub ejected: bool,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub addr: Arc<str>,
    /// The address the proxy connects to (the label may be a host name).
    pub socket: std::net::SocketAddr,
    /// The proxy routes this shard's writes here.
    pub is_master: bool,
    /// The role the node reports: `master`, `replica`, or `unknown`.
    pub role: &'static str,
    pub health: Health,
    /// Alive but answering `BUSY` (a long script or function runs).
    pub busy: bool,
    pub origin: Origin,
    /// For a replica: `master_link_status:up`.
    pub link_up: Option<bool>,
    /// For a replica: its lag in seconds, as the master reports it.
    pub lag_seconds: Option<u64>,
    /// For a replica: bytes behind the master, as the master reports it.
    pub behind_bytes: Option<u64>,
    pub offset: u64,
    /// The last health probe's round trip.
    pub probe_latency_us: Option<u64>,
    /// For a replica: serves reads.
    pub serves_reads: bool,
    /// For a replica that does not serve reads: why.
    pub excluded: Option<String>,
    pub last_error: Option<String>,
}

impl NodeStatus {
    pub fn new(
        node: &NodeHealth,
        is_master: bool,
        excluded: Option<String>,
        lag: Option<Lag>,
    ) -> NodeStatus {
        let (role, link_up) = match node.role() {
            Some(Role::Master { .. }) => ("master", None),
            Some(Role::Replica { link_up, .. }) => ("replica", Some(*link_up)),
            None => ("unknown", None),
        };
        let lag = lag.filter(|_| role == "replica");
        NodeStatus {
            addr: node.addr.label.clone(),
            socket: node.addr.addr,
            is_master,
            role,
            health: node.health,
            busy: node.is_busy(),
            origin: node.origin,
            link_up,
            lag_seconds: lag.map(|l| l.seconds),
            behind_bytes: lag.map(|l| l.bytes),
            offset: node.offset(),
            probe_latency_us: node
                .last
                .as_ref()
                .map(|p| u64::try_from(p.latency.as_micros()).unwrap_or(u64::MAX)),
            serves_reads: !is_master && excluded.is_none(),
            excluded: if is_master { None } else { excluded },
            last_error: node.last_error.as_ref().map(ToString::to_string),
        }
    }
}
