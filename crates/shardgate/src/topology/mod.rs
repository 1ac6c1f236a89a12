//! Topology: which shards a pool has, which node is each shard's master,
//! which replicas may serve reads, and how keys map to shards; and the
//! control plane that keeps it true.
//!
//! A [`Topology`] is an immutable snapshot, built off the hot path by the
//! pool's [`Controller`] and published by swapping one `Arc` in
//! [`PoolState`]; workers compare versions between batches and rebuild
//! their views when it changed, so readers never see half an update.
//!
//! # Layout
//! - `snapshot`: [`Topology`], [`Shard`], [`NodeAddr`].
//! - `state`: [`PoolState`], what every worker shares about a pool.
//! - `controller`: [`Controller`], the one owner of a pool's groups.
//! - `group`: a replication group's nodes, health, roles, fitness. Pure.
//! - `probe`: one health probe (PING + INFO replication).
//! - `info`: `INFO replication`, parsed.
//! - `sentinel`: watchers that follow Redis Sentinel.
//! - `events`: [`Events`], the recent topology events.
//! - `status`: [`PoolStatus`], what the admin API shows.
//! - `wire`: plain request/reply connections for the control plane.

mod controller;
mod events;
mod group;
mod info;
mod probe;
mod sentinel;
mod snapshot;
mod state;
mod status;
mod wire;

pub use controller::Controller;
pub use events::{Event, Events};
pub use group::{Health, Origin};
pub use snapshot::{NodeAddr, Shard, Topology};
pub use state::{ControlStats, PoolState};
pub use status::{NodeStatus, PoolStatus, ShardStatus};
