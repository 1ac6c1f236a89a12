//! The client side: listening sockets and client sessions.
//!
//! # Layout
//! - [`listener`]: binding (`SO_REUSEPORT`, one socket per worker; unix
//!   sockets) and the accept loop with `client_connections` admission.
//! - [`session`]: one client connection's read-dispatch-write loop.

pub mod listener;
pub mod session;
