//! Binary upgrade without closing idle clients (see `docs/reload.md`).
//!
//! The old process starts the new binary and hands it its listening
//! sockets; once the new process serves, the old one stops accepting and
//! hands over each client connection between two requests, with its
//! session's state; a Pub/Sub client is subscribed again in the new
//! process before the old one stops writing to it. Clients inside a
//! transaction or a blocking call are handed over once it ends; those
//! still busy when the grace period ends are closed.
//!
//! # Layout
//! - `channel`: the unix socket between the two processes and its messages.
//! - `handoff`: [`SessionState`], what a session carries across.
//! - `old`: the old process's side ([`start_successor`], [`Handoff`]).
//! - `new`: the new process's side ([`Inheritance`], [`Adoption`]).

mod channel;
mod handoff;
mod new;
mod old;

pub use channel::ENV;
pub use handoff::SessionState;
pub use new::{Adoption, Inheritance, Subscribed};
pub use old::{start_successor, Handoff, Inherited, UpgradeError};

/// Tells systemd (`Type=notify`) something about this process, when it
/// runs under systemd: `READY=1`, or `MAINPID=<pid>` after an upgrade.
pub fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy();
    match path.strip_prefix('@') {
        // An abstract socket (systemd's usual choice).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
                let _ = socket.send_to_addr(state.as_bytes(), &addr);
            }
        }
        None => {
            let _ = socket.send_to(state.as_bytes(), &*path);
        }
    }
}
