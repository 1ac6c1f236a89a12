//! Backend connections: pipelined connections shared by a worker's
//! clients, leased connections for one client's transaction or blocking
//! call, and the per-node sets that hold them.
//!
//! # Layout
//! - `conn`: [`Conn`], one pipelined connection and its task.
//! - `slot`: [`ReplySlot`], where one reply is delivered.
//! - `node`: [`Node`], a worker's connections to one node; [`Lease`].
//! - `link`: [`Link`], a client's own connection for Pub/Sub or MONITOR.
//! - `handshake`: AUTH / HELLO / SELECT on connect.
//! - `stats`: [`NodeStats`], per-node counters.
//! - `episode`: [`Episode`], backend trouble logged once per episode.
//! - `wake`: how handles wake a connection task.
//! - `error`: [`BackendError`], worded for the client.

mod conn;
mod episode;
mod error;
pub mod handshake;
mod link;
mod node;
mod slot;
mod stats;
mod wake;

pub use conn::{Conn, ConnSettings, Status, STUCK_AFTER};
pub use episode::{Episode, EpisodeLog};
pub use error::{BackendError, BackendErrorKind};
pub use handshake::Handshake;
pub use link::{Family, Link, LinkEvent, LinkMode, LinkSettings, SessionWaker};
pub use node::{ConnKey, Lease, Node};
pub use slot::{slot, ReplyResult, ReplySlot, SlotSender};
pub use stats::NodeStats;
