//! Recent topology events (failovers, health flips, ejections, Sentinel
//! switches, replicas joining or leaving), kept for `/events` and the
//! status page, and logged at INFO as they happen.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Events kept; older ones are dropped.
pub const CAPACITY: usize = 500;

/// One topology event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub pool: Arc<str>,
    pub shard: Option<Arc<str>>,
    /// `failover`, `health`, `role`, `sentinel`, `eject`, `replica`, `master`,
    /// `two-masters`.
    pub kind: &'static str,
    pub message: String,
}

/// The event log, shared by every controller and the admin server.
#[derive(Debug, Default)]
pub struct Events {
    inner: Mutex<VecDeque<Event>>,
}

impl Events {
    /// Records and logs an event.
    pub fn record(
        &self,
        pool: &Arc<str>,
        shard: Option<&Arc<str>>,
        kind: &'static str,
        message: String,
    ) {
        match shard {
            Some(shard) => tracing::info!(pool = %pool, shard = %shard, kind, "{message}"),
            None => tracing::info!(pool = %pool, kind, "{message}"),
        }
        let at_ms = unix_ms();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.len() == CAPACITY {
            inner.pop_front();
        }
        inner.push_back(Event {
            at_ms,
            pool: pool.clone(),
            shard: shard.cloned(),
            kind,
            message,
        });
    }

    /// The most recent events, newest last.
    pub fn recent(&self, limit: usize) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .iter()
            .skip(inner.len().saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// How many events of `kind` were recorded (for tests and metrics).
    pub fn count(&self, kind: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.iter().filter(|e| e.kind == kind).count()
    }
}

/// Milliseconds since the Unix epoch (event and chart times).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
