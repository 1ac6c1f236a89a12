//! The control plane: the one owner of each pool's replication groups.
//! It probes every node, listens to Redis Sentinel, fails over by itself
//! (managed mode), ejects shards, and publishes a new topology whenever
//! what routing needs to know changed.
//!
//! # Layout
//! - `controller`: [`Controller`], one pool's control loop.
//! - `sentinel`: watchers that follow Redis Sentinel.
//!
//! What to do is decided by `shardgate_core::control` (pure); this module
//! carries it out.

mod controller;
mod sentinel;

pub use controller::Controller;
