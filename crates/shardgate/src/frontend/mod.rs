//! The client side: listening sockets, client sessions and the client
//! registry.
//!
//! # Layout
//! - [`listener`]: binding (`SO_REUSEPORT`, one socket per worker; unix
//!   sockets) and the accept loop with `client_connections` admission.
//! - [`session`]: one client connection's read-dispatch-write loop.
//! - [`clients`]: every client of a pool, for CLIENT LIST / KILL.

pub mod clients;
pub mod listener;
pub mod session;
