//! What one worker counts about one pool: per command, requests, errors
//! and latency; and the pool-wide events that matter to operators
//! (replica reads, cross-shard fan-outs, leased connections, clients).

use super::{Counter, Histogram};
use crate::command::CommandId;

/// One command's counters.
#[derive(Debug, Default)]
pub struct CommandStats {
    pub requests: Counter,
    /// Replies that were errors (from Redis or from the proxy).
    pub errors: Counter,
    /// From the batch's arrival to the reply's.
    pub latency: Histogram,
}

/// One worker's counters for one pool.
#[derive(Debug)]
pub struct PoolStats {
    /// Indexed by command id; the last entry counts commands the table
    /// does not know.
    commands: Box<[CommandStats]>,
    /// Reads served by a replica.
    pub replica_reads: Counter,
    /// Requests split across shards or sent to every shard.
    pub fanouts: Counter,
    /// Connections leased to one client (transactions, blocking calls, WAIT).
    pub leases: Counter,
    pub clients_accepted: Counter,
    /// Clients disconnected for a protocol error.
    pub protocol_errors: Counter,
    /// Clients disconnected for leaving replies unread past the limit.
    pub slow_clients: Counter,
    /// Requests on moving keys, sent to their source first (resharding).
    pub moving_key_requests: Counter,
    /// TLS clients whose handshake completed.
    pub tls_handshakes: Counter,
    /// TLS clients refused at the handshake (bad or missing certificate,
    /// not TLS, timed out).
    pub tls_handshake_failures: Counter,
}

impl Default for PoolStats {
    fn default() -> Self {
        PoolStats {
            commands: (0..=CommandId::COUNT)
                .map(|_| CommandStats::default())
                .collect(),
            replica_reads: Counter::default(),
            fanouts: Counter::default(),
            leases: Counter::default(),
            clients_accepted: Counter::default(),
            protocol_errors: Counter::default(),
            slow_clients: Counter::default(),
            moving_key_requests: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_handshake_failures: Counter::default(),
        }
    }
}

/// The index [`PoolStats::command`] uses for commands outside the table.
pub const UNKNOWN_COMMAND: u16 = CommandId::COUNT as u16;

impl PoolStats {
    /// The counters of command `index` (a [`CommandId`]'s, or [`UNKNOWN_COMMAND`]).
    #[inline]
    pub fn command(&self, index: u16) -> Option<&CommandStats> {
        self.commands.get(usize::from(index))
    }

    /// Every command's counters with its name (`None`: unknown commands).
    pub fn commands(&self) -> impl Iterator<Item = (Option<&'static str>, &CommandStats)> {
        self.commands.iter().enumerate().map(|(i, stats)| {
            let name = CommandId(i as u16).spec().map(|s| s.name());
            (name, stats)
        })
    }
}
