//! What one health probe of a node learned (the probing itself is I/O and
//! lives in the backend crate).

use std::time::Duration;

use super::info::Replication;

/// What one successful probe learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub latency: Duration,
    pub replication: Replication,
    /// Answered on a connection made for this probe: the node may have
    /// restarted since the last answer (a restart breaks the kept one).
    pub new_connection: bool,
    /// The node answered `BUSY` (a script or function runs past Redis's
    /// busy-reply-threshold): it is alive, so it counts as an answer, and
    /// `replication` is what the last full probe learned.
    pub busy: Option<String>,
}
