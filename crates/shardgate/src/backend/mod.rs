//! Backend connections: shared, pipelined connections to one server, owned
//! by one worker.
//!
//! # Layout
//! - [`conn`]: one connection task: a FIFO of pending replies, reconnect
//!   with backoff, a per-request deadline.
//! - [`error`]: [`BackendError`], which side failed and how a client hears it.
//! - [`handshake`]: AUTH and SELECT on a fresh connection.

mod conn;
mod error;
pub(crate) mod handshake;

pub use conn::{spawn, BackendConn, BackendSettings, ReplyReceiver, Status};
pub use error::BackendError;
