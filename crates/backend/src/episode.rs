//! Backend trouble, logged once per episode rather than once per request:
//! the first failure of any connection to a node (refused, timed out,
//! lost, an invalid reply) at WARN with the node and the reason; the end
//! of it, the first reply after it, at INFO with how long it lasted. An
//! episode is process-wide: two workers meeting the same outage log it
//! once, and the first of them to get a reply again ends it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One node's trouble across every worker.
#[derive(Debug)]
pub struct Episode {
    /// `pool 'p' server host:port`.
    name: Arc<str>,
    /// An episode is under way.
    active: AtomicBool,
    /// Counts finished episodes: a worker whose trouble began in an
    /// earlier one starts a new one when it fails again.
    epoch: AtomicU64,
    /// Requests that failed during the current episode.
    failed: AtomicU64,
    since: Mutex<Option<Instant>>,
}

impl Episode {
    pub fn new(name: Arc<str>) -> Episode {
        Episode {
            name,
            active: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            since: Mutex::new(None),
        }
    }

    fn since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One worker's side of a node's [`Episode`], shared by its connections
/// to that node.
#[derive(Debug)]
pub struct EpisodeLog {
    shared: Arc<Episode>,
    /// The episode this worker's trouble belongs to (None: no trouble).
    in_trouble: Cell<Option<u64>>,
}

impl EpisodeLog {
    pub fn new(shared: Arc<Episode>) -> EpisodeLog {
        EpisodeLog {
            shared,
            in_trouble: Cell::new(None),
        }
    }

    /// A connection to the node failed; `failed` requests got an error.
    pub fn trouble(&self, reason: &str, failed: usize) {
        let shared = &self.shared;
        shared.failed.fetch_add(failed as u64, Relaxed);
        let epoch = shared.epoch.load(Relaxed);
        if self.in_trouble.get() == Some(epoch) {
            return;
        }
        self.in_trouble.set(Some(epoch));
        if !shared.active.swap(true, Relaxed) {
            *shared.since() = Some(Instant::now());
            tracing::warn!(
                server = %shared.name,
                "backend trouble: {reason} ({failed} requests failed); logged once until it answers again"
            );
        }
    }

    /// A reply arrived from the node.
    #[inline]
    pub fn answered(&self) {
        if self.in_trouble.get().is_some() {
            self.recovered();
        }
    }

    #[cold]
    fn recovered(&self) {
        let Some(epoch) = self.in_trouble.take() else {
            return;
        };
        let shared = &self.shared;
        // Only the episode this worker's trouble belongs to ends here.
        if shared.epoch.load(Relaxed) != epoch || !shared.active.swap(false, Relaxed) {
            return;
        }
        shared.epoch.fetch_add(1, Relaxed);
        let lasted = shared
            .since()
            .take()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        let failed = shared.failed.swap(0, Relaxed);
        tracing::info!(
            server = %shared.name,
            "backend answering again after {lasted:.1} s of trouble ({failed} requests failed meanwhile)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_spans_workers_and_ends_at_the_first_answer() {
        let shared = Arc::new(Episode::new("pool 'p' server a:1".into()));
        let one = EpisodeLog::new(shared.clone());
        let two = EpisodeLog::new(shared.clone());
        one.trouble("refused", 3);
        one.trouble("refused", 2);
        two.trouble("refused", 1);
        assert!(shared.active.load(Relaxed));
        assert_eq!(shared.failed.load(Relaxed), 6);
        // Worker two hears from the node: the episode is over, though
        // worker one has sent nothing since.
        two.answered();
        assert!(!shared.active.load(Relaxed));
        assert_eq!(shared.failed.load(Relaxed), 0);
        // Worker one's old trouble does not end a later episode...
        two.trouble("timeout", 1);
        one.answered();
        assert!(shared.active.load(Relaxed));
        // ...and its new trouble is part of the current one.
        one.trouble("timeout", 1);
        two.answered();
        assert!(!shared.active.load(Relaxed));
    }
}
