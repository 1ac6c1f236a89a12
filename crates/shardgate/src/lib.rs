//! shardgate: a Redis proxy that shards keys like twemproxy, speaks Redis
//! exactly, and keeps every shard available.
//!
//! Data path: a client's bytes are parsed into requests (argument ranges
//! over the client's own bytes), each request is routed by a pure function
//! of (request, command, topology snapshot), forwarded on a shared,
//! pipelined backend connection, and its reply, scanned for its end but
//! never rebuilt, is written back in order. See `docs/architecture.md`.
//!
//! # Layout
//! - [`admin`]: the admin HTTP server: metrics, stats, topology, status page.
//! - [`auth`]: client users, passwords and permissions. Pure.
//! - [`config`]: `nutcracker.yml` (and extensions) -> validated [`config::Config`].
//! - [`command`]: the Redis 7 command table: flags and key positions.
//! - [`topology`]: immutable topology snapshots and the shared per-pool state.
//! - [`route`]: (request, command, topology) -> where it goes. Pure.
//! - [`fanout`]: split, broadcast and SCAN plans and their reply merges. Pure.
//! - [`backend`]: pipelined backend connections, per-node sets, leases.
//! - [`frontend`]: listeners, client sessions, the client registry.
//! - [`worker`]: one thread + current-thread runtime per core.
//! - [`metrics`]: single-writer counters and histograms.
//! - [`proxy_info`]: version, uptime, workers, pools of the process.
//! - [`scripts`]: scripts seen, to answer NOSCRIPT after failovers.
//! - [`secrets`]: which arguments and settings are secrets, and redaction.
//! - [`lifecycle`]: start, graceful shutdown.
//! - [`io`]: vectored writes of queued buffers.
//! - [`log_limit`]: rate limits for log lines a peer could repeat.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod backend;
pub mod command;
pub mod config;
pub mod fanout;
pub mod frontend;
pub mod io;
pub mod lifecycle;
pub mod log_limit;
pub mod metrics;
pub mod proxy_info;
pub mod route;
pub mod scripts;
pub mod secrets;
pub mod topology;
pub mod worker;

pub use lifecycle::{Options, Proxy, StartError};
