//! shardgate: a Redis proxy that shards keys like twemproxy, speaks Redis
//! exactly, and keeps every shard available.
//!
//! Data path: a client's bytes are parsed into requests (argument ranges
//! over the client's own bytes), each request is routed by a pure function
//! of (request, command, topology snapshot), forwarded on a shared,
//! pipelined backend connection, and its reply, scanned for its end but
//! never rebuilt, is written back in order. See `docs/architecture.md`.
//!
//! This crate is the top layer: it runs things. What is decided lives in
//! `shardgate-core` (no I/O), connections to servers in
//! `shardgate-backend`; both are re-exported here ([`config`],
//! [`command`], [`cluster`], [`route`], [`fanout`], [`topology`], [`auth`],
//! [`secrets`], [`metrics`], [`scripts`], [`log_limit`]; [`backend`]).
//!
//! # Layout
//! Modules in dependency order (each uses only those above it):
//! - [`shutdown`]: the process-wide shutdown signal.
//! - [`thread`]: OS threads running a current-thread runtime.
//! - [`upgrade`]: binary upgrade: sockets and sessions passed to a new process.
//! - [`io`]: vectored writes of queued buffers.
//! - [`pool`]: what every worker shares about a pool; the client registry.
//! - [`proxy_info`]: version, uptime, workers, pools of the process.
//! - [`view`]: a worker's view of a pool: topology snapshot + connections.
//! - [`control`]: the control plane: health checks, Sentinel, failover.
//! - [`frontend`]: listeners and client sessions.
//! - [`worker`]: one thread + current-thread runtime per core, told what
//!   to serve by commands.
//! - [`runtime`]: the running shape (pools, listeners) and the steps that
//!   change it.
//! - [`reload`]: the reload thread: file -> plan -> applied, or nothing.
//! - [`reshard`]: online resharding: each pool's coordinator and the mover.
//! - [`admin`]: the admin HTTP server: metrics, stats, topology, status
//!   page, reload.
//! - [`lifecycle`]: start, graceful shutdown.

#![forbid(unsafe_code)]

pub use shardgate_backend as backend;
pub use shardgate_core::{
    auth, cluster, command, config, error, fanout, frames, log_limit, metrics, route, scripts,
    secrets, topology,
};

pub mod admin;
pub mod control;
pub mod frontend;
pub mod io;
pub mod lifecycle;
pub mod pool;
pub mod proxy_info;
pub mod reload;
pub mod reshard;
pub mod runtime;
pub mod shutdown;
pub mod thread;
pub mod upgrade;
pub mod view;
pub mod worker;

pub use lifecycle::{Options, Proxy, StartError};
pub use reload::ReloadOutcome;
