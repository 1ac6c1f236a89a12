//! The client side: listening sockets and client sessions.
//!
//! # Layout
//! - [`listener`]: binding (`SO_REUSEPORT`, one socket per worker; unix
//!   sockets) and the accept loop with `client_connections` admission.
//! - [`session`]: one client connection's read-dispatch-write loop.

pub mod listener;
pub mod session;

/// Which of a pool's addresses a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ReadWrite,
    /// `readonly_listen`: reads only, writes answered READONLY.
    ReadOnly,
}

impl Endpoint {
    /// Its number between processes (a binary upgrade).
    pub fn index(self) -> u8 {
        match self {
            Endpoint::ReadWrite => 0,
            Endpoint::ReadOnly => 1,
        }
    }
}
