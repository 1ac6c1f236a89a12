//! shardgate's connections to Redis servers: pipelined connections shared
//! by a worker's clients, leased connections for one client's transaction
//! or blocking call, the per-node sets that hold them, the push links of
//! Pub/Sub and MONITOR, and the control plane's plain request/reply
//! connections (health probes, Sentinel, failover commands). Everything
//! here runs on a worker's (or the control thread's) single-threaded
//! runtime; decisions about what to do with it live in `shardgate-core`.
//!
//! # Layout
//! - `conn`: [`Conn`], one pipelined connection and its task.
//! - `slot`: [`ReplySlot`], where one reply is delivered.
//! - `node`: [`Node`], a worker's connections to one node; [`Lease`].
//! - `link`: [`Link`], a client's own connection for Pub/Sub or MONITOR.
//! - `handshake`: TLS, then AUTH / HELLO / SELECT on connect.
//! - `stream`: [`Stream`], a connection over TCP or TLS.
//! - `read_buffer`: the buffer replies are read into, let go after a big one.
//! - `slices`: `writev` slices over a queue of frames.
//! - `backoff`: how long a lost connection waits before it tries again.
//! - `stats`: [`NodeStats`], per-node counters.
//! - `episode`: [`Episode`], backend trouble logged once per episode.
//! - `wake`: how handles wake a connection task.
//! - `error`: [`BackendError`], worded for the client.
//! - `wire`: [`wire::WireConn`], plain request/reply for the control plane.
//! - `probe`: [`probe::Prober`], one node's health probes.
//! - `resolve`: [`resolve::Resolver`], host names to addresses, async and cached.

#![forbid(unsafe_code)]

mod backoff;
mod conn;
mod episode;
mod error;
pub mod handshake;
mod link;
mod node;
pub mod probe;
mod read_buffer;
pub mod resolve;
pub mod slices;
mod slot;
mod stats;
pub mod stream;
mod wake;
pub mod wire;

pub use conn::{Conn, ConnSettings, Status, STUCK_AFTER};
pub use episode::{Episode, EpisodeLog};
pub use error::{BackendError, BackendErrorKind};
pub use handshake::Handshake;
pub use link::{Family, Link, LinkEvent, LinkMode, LinkSettings, SessionWaker};
pub use node::{ConnKey, Lease, Node};
pub use slot::{slot, ReplyResult, ReplySlot, SlotSender};
pub use stats::NodeStats;
pub use stream::Stream;
