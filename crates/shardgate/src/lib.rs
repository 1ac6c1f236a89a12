//! shardgate: a Redis proxy that shards keys like twemproxy, speaks Redis
//! exactly, and keeps every shard available.
//!
//! Data path: a client's bytes are parsed into requests (argument ranges
//! over the client's own bytes), each request is routed by a pure function
//! of (request, topology snapshot), forwarded on a shared, pipelined
//! backend connection, and its reply, scanned for its end but never
//! rebuilt, is written back in order. See `docs/architecture.md`.
//!
//! # Layout
//! - [`config`]: `nutcracker.yml` (and extensions) -> validated [`config::Config`].
//! - [`command`]: the Redis 7 command table: flags and key positions.
//! - [`topology`]: immutable pool snapshots and the shared per-pool state.
//! - [`route`]: (request, topology) -> where it goes. Pure.
//! - [`dispatch`]: a routed request -> a pending reply.
//! - [`backend`]: shared pipelined backend connections with reconnect.
//! - [`frontend`]: listeners and client sessions.
//! - [`worker`]: one thread + current-thread runtime per core.
//! - [`lifecycle`]: start, graceful shutdown.
//! - [`io`]: vectored writes of queued buffers.

#![forbid(unsafe_code)]

pub mod backend;
pub mod command;
pub mod config;
pub mod dispatch;
pub mod frontend;
pub mod io;
pub mod lifecycle;
pub mod route;
pub mod topology;
pub mod worker;

pub use lifecycle::{Options, Proxy, StartError};
