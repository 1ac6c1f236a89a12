//! The topology model: immutable snapshots of a pool's shards and key
//! placement, and the replication groups the controller decides about.
//! Pure: the probing and publishing live in the backend and proxy crates.
//!
//! # Layout
//! - `snapshot`: [`Topology`], [`Shard`], [`NodeAddr`].
//! - `group`: a replication group's nodes, health, roles, fitness.
//! - `probe`: [`probe::Probe`], what one health probe learned.
//! - `info`: `INFO replication`, parsed.
//! - `events`: [`Events`], the recent topology events.
//! - `status`: [`PoolStatus`], what the admin API shows.

mod events;
pub mod group;
pub mod info;
pub mod probe;
mod snapshot;
mod status;

pub use events::{unix_ms, Event, Events, CAPACITY as EVENTS_KEPT};
pub use group::{Health, Origin};
pub use snapshot::{KeyPlacement, NodeAddr, PlacementSpec, Shard, Topology};
pub use status::{NodeStatus, PoolStatus, ShardStatus};
