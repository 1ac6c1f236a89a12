//! Free loopback ports.
//!
//! The OS picks a free port (bind to port 0); a process-wide set makes sure
//! two guards of the same test binary never get the same one.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback TCP port that was free a moment ago and that no other caller
/// in this process has been given.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// As [`free_port`], at most `highest` (a Redis Cluster node's bus listens
/// on its port + 10000, so a node's port must be at most 55535).
pub fn free_port_up_to(highest: u16) -> u16 {
    loop {
        let port = free_port();
        if port <= highest {
            return port;
        }
    }
}
