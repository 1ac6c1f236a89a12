//! The control plane: the one owner of each pool's replication groups.
//! It probes every node, listens to Redis Sentinel, fails over by itself
//! (managed mode), ejects shards, and publishes a new topology whenever
//! what routing needs to know changed.
//!
//! # Layout
//! - `controller`: [`Controller`], one pool's control loop.
//! - `sentinel`: watchers that follow Redis Sentinel.

mod controller;
mod sentinel;

use std::net::SocketAddr;
use std::time::Instant;

use crate::topology::probe::Probe;
pub use controller::Controller;
use sentinel::SentinelReport;

/// What reaches the controller.
#[derive(Debug)]
pub enum Input {
    Probed {
        addr: SocketAddr,
        /// When the probe was sent (a probe older than a role change is stale).
        started: Instant,
        result: Result<Probe, String>,
    },
    Sentinel(SentinelReport),
}
