//! Topology: which shards a pool has, which node is each shard's master,
//! which replicas may serve reads, and how keys map to shards.
//!
//! A [`Topology`] is an immutable snapshot, built off the hot path by the
//! pool's controller and published by swapping one `Arc` in
//! [`PoolState`]; workers compare versions between batches and rebuild
//! their views when it changed, so readers never see half an update.
//!
//! # Layout
//! - `snapshot`: [`Topology`], [`Shard`], [`NodeAddr`].
//! - `state`: [`PoolState`], what every worker shares about a pool.

mod snapshot;
mod state;

pub use snapshot::{NodeAddr, Shard, Topology};
pub use state::PoolState;
