//! One refresh of a cluster pool's slot map: ask one node for the map
//! and, when it differs from the believed one, a second node to confirm
//! it. Runs in a task of its own; the controller judges the outcome.

use std::net::SocketAddr;
use std::time::Duration;

use resp::Value;

use crate::backend::wire::WireConn;
use crate::backend::Handshake;
use crate::cluster::refresh::needs_witness;
use crate::cluster::{NodePort, SlotMap};
use crate::error::NodeError;

/// Nodes tried for one answer before the refresh gives up (a dead node
/// costs a connect timeout; the next refresh starts over).
const MAX_TRIES: usize = 4;

/// What one refresh learned.
pub struct Outcome {
    /// The map and the node that gave it.
    pub found: Option<(SocketAddr, SlotMap)>,
    /// A second node's map, when the found one needed a witness and one answered.
    pub witness: Option<SlotMap>,
    /// Nodes known other than the one that gave `found` (see
    /// `refresh::needs_witness`).
    pub others: usize,
    /// Why nodes did not answer, for the log.
    pub failures: Vec<String>,
}

/// How a refresh connects.
#[derive(Clone)]
pub struct Asking {
    pub handshake: Handshake,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

/// Asks `candidates` in order until one gives a map, then (if it changed
/// from `current`) another node of that map for a witness.
pub async fn refresh(
    asking: Asking,
    candidates: Vec<SocketAddr>,
    current: Option<SlotMap>,
) -> Outcome {
    let mut failures = Vec::new();
    let mut found = None;
    for addr in candidates.iter().take(MAX_TRIES) {
        match asking.slot_map(*addr).await {
            Ok(map) if map.served_slots() > 0 => {
                found = Some((*addr, map));
                break;
            }
            Ok(_) => failures.push(format!("{addr}: serves no slots (not a cluster yet?)")),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    let Some((asked, map)) = found else {
        return Outcome {
            found: None,
            witness: None,
            others: 0,
            failures,
        };
    };
    let mut witness = None;
    // Another primary first: a replica follows its primary's view. Then
    // the believed map's nodes and the seeds (both among `candidates`).
    let mut others: Vec<SocketAddr> = map.nodes().map(|n| n.addr.addr).collect();
    others.extend(candidates.iter().copied());
    let mut seen = std::collections::HashSet::from([asked]);
    others.retain(|a| seen.insert(*a));
    let known = others.len();
    if needs_witness(current.as_ref(), &map, known) {
        for addr in others.into_iter().take(MAX_TRIES) {
            match asking.slot_map(addr).await {
                Ok(other) => {
                    witness = Some(other);
                    break;
                }
                Err(e) => failures.push(format!("{addr} (as a witness): {e}")),
            }
        }
    }
    Outcome {
        found: Some((asked, map)),
        witness,
        others: known,
        failures,
    }
}

impl Asking {
    /// `CLUSTER SHARDS`, or `CLUSTER SLOTS` from a server before 7.0.
    async fn slot_map(&self, addr: SocketAddr) -> Result<SlotMap, NodeError> {
        let mut conn = WireConn::connect(addr, &self.handshake, self.connect_timeout).await?;
        let reply = conn.call(&[b"CLUSTER", b"SHARDS"], self.timeout).await?;
        let (reply, shards) = match reply {
            Value::Error(e) if is_unknown(&e) => (
                conn.call(&[b"CLUSTER", b"SLOTS"], self.timeout).await?,
                false,
            ),
            reply => (reply, true),
        };
        if let Value::Error(e) = &reply {
            return Err(NodeError::Replied(String::from_utf8_lossy(e).into_owned()));
        }
        let map = if shards {
            // Over TLS, the nodes' TLS ports (`CLUSTER SLOTS` gives the
            // port of the kind it was asked over).
            let dial = match self.handshake.tls.current() {
                Some(_) => NodePort::Tls,
                None => NodePort::Plain,
            };
            SlotMap::from_shards(&reply, addr, dial)
        } else {
            SlotMap::from_slots(&reply, addr)
        };
        map.map_err(|e| NodeError::Unexpected(e.to_string()))
    }
}

/// An unknown subcommand (`CLUSTER SHARDS` before 7.0).
fn is_unknown(error: &[u8]) -> bool {
    let text = String::from_utf8_lossy(error).to_ascii_lowercase();
    text.contains("unknown subcommand") || text.contains("unknown command")
}
