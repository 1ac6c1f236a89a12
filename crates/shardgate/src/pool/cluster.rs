//! What the data path tells a cluster pool's controller: the `MOVED`
//! replies it followed and the failures that call for a refresh of the
//! slot map. Workers write, the controller drains: a bounded queue and a
//! wake-up, never a wait on the data path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Mutex;

use crate::cluster::refresh::Reason;

/// `MOVED` replies kept until the controller drains them; more are
/// dropped (the refresh they also asked for corrects the map anyway).
const MAX_MOVED: usize = 1024;

/// Hints from the workers to a cluster pool's controller.
#[derive(Default)]
pub struct ClusterHints {
    moved: Mutex<Vec<(u16, SocketAddr)>>,
    /// The most urgent refresh reason asked for since the last drain
    /// (0: none; else `reason_code`).
    wanted: AtomicU8,
    wake: tokio::sync::Notify,
    /// The believed map's nodes that serve no slot yet (see
    /// `SlotMap::spares`): redirections to them are followed.
    spares: Mutex<Vec<SocketAddr>>,
    pub stats: RedirectStats,
}

/// What the data path met, for metrics and tests.
#[derive(Default, Debug)]
pub struct RedirectStats {
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    pub tryagain: AtomicU64,
    pub clusterdown: AtomicU64,
    /// Requests retried after a primary failed (connection refused, lost).
    pub retried: AtomicU64,
    /// Requests ended by the redirection limit.
    pub loops: AtomicU64,
    /// Slot map refreshes run, maps believed, changes not confirmed.
    pub refreshes: AtomicU64,
    pub maps_believed: AtomicU64,
    pub unconfirmed: AtomicU64,
}

const REASONS: [Reason; 6] = [
    Reason::Timer,
    Reason::Moved,
    Reason::ClusterDown,
    Reason::PrimaryFailed,
    Reason::Startup,
    Reason::Unconfirmed,
];

fn reason_code(reason: Reason) -> u8 {
    REASONS
        .iter()
        .position(|r| *r == reason)
        .map_or(1, |i| i as u8 + 1)
}

impl ClusterHints {
    /// The believed map's slotless nodes (the controller, at each map).
    pub fn set_spares(&self, spares: Vec<SocketAddr>) {
        *self.spares.lock().unwrap_or_else(|e| e.into_inner()) = spares;
    }

    /// Whether the believed map lists `addr` among its slotless nodes.
    pub fn is_spare(&self, addr: SocketAddr) -> bool {
        (self.spares.lock().unwrap_or_else(|e| e.into_inner())).contains(&addr)
    }

    /// A node answered `MOVED slot to`: the slot is patched and a refresh asked.
    pub fn moved(&self, slot: u16, to: SocketAddr) {
        self.stats.moved.fetch_add(1, Relaxed);
        {
            let mut moved = self.moved.lock().unwrap_or_else(|e| e.into_inner());
            if moved.len() < MAX_MOVED && !moved.contains(&(slot, to)) {
                moved.push((slot, to));
            }
        }
        self.want(Reason::Moved);
    }

    /// Asks the controller for a refresh.
    pub fn want(&self, reason: Reason) {
        self.wanted.fetch_max(reason_code(reason), Relaxed);
        self.wake.notify_one();
    }

    /// What was asked since the last drain.
    pub fn drain(&self) -> (Vec<(u16, SocketAddr)>, Option<Reason>) {
        let moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(|e| e.into_inner()));
        let code = self.wanted.swap(0, Relaxed);
        let reason = code
            .checked_sub(1)
            .and_then(|i| REASONS.get(usize::from(i)).copied());
        (moved, reason)
    }

    /// Resolves when something was asked (at once if it was meanwhile).
    pub async fn asked(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_what_was_asked_once_with_the_most_urgent_reason() {
        let hints = ClusterHints::default();
        assert_eq!(hints.drain(), (vec![], None));
        let to: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        hints.moved(5, to);
        hints.moved(5, to);
        hints.want(Reason::PrimaryFailed);
        hints.want(Reason::Timer);
        assert_eq!(hints.drain(), (vec![(5, to)], Some(Reason::PrimaryFailed)));
        assert_eq!(hints.drain(), (vec![], None));
        for slot in 0..5000 {
            hints.moved(slot, to);
        }
        assert_eq!(hints.drain().0.len(), MAX_MOVED, "bounded");
    }
}
