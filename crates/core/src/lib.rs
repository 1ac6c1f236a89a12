//! shardgate's pure layer: everything the proxy decides without touching
//! a socket. No tokio, no I/O but name lookups (the host names of a
//! config's addresses, resolved in a step of their own after the config
//! is validated; a resharding placement's when it is applied): each piece
//! is tested exhaustively on its own, and the crate boundary keeps the
//! dependency direction (nothing here can reach the backend connections
//! or the proxy).
//!
//! # Layout
//! - [`config`]: `nutcracker.yml` (and extensions) -> validated [`config::Config`].
//! - [`command`]: the Redis 7 command table: flags and key positions.
//! - [`route`]: (request, command, topology) -> where it goes.
//! - [`fanout`]: split, broadcast and SCAN plans and their reply merges.
//! - [`frames`]: reading replies without decoding more than needed.
//! - [`topology`]: topology snapshots, replication groups, events, status.
//! - [`cluster`]: Redis Cluster pools: the slot map, its refreshes, redirections.
//! - [`control`]: the pool controller's decisions: (state, input) -> actions.
//! - [`change`]: what a reload changes, and whether it may (keys must not move).
//! - [`reshard`]: a migration of keys as the proxies share it; the configs it implies.
//! - [`error`]: the typed error model (`CommandError`, `NodeError`) and which side each failure is on.
//! - [`auth`]: client users, passwords and permissions.
//! - [`secrets`]: [`secrets::Secret`], which arguments and settings are secrets, redaction.
//! - [`metrics`]: single-writer counters, histograms, the slow log.
//! - [`scripts`]: scripts seen, to answer NOSCRIPT after failovers.
//! - [`glob`]: Redis's glob matching.
//! - [`log_limit`]: rate limits for log lines a peer could repeat.

#![forbid(unsafe_code)]

pub mod auth;
pub mod change;
pub mod cluster;
pub mod command;
pub mod config;
pub mod control;
pub mod error;
pub mod fanout;
pub mod frames;
pub mod glob;
pub mod log_limit;
pub mod metrics;
pub mod reshard;
pub mod route;
pub mod scripts;
pub mod secrets;
pub mod topology;
