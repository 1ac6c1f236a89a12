//! What the whole process knows about itself: version, start time,
//! workers, its pools and the configuration they run with. Shared by INFO,
//! the admin API and the status page.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::pool::tls::AdminTls;
use crate::pool::PoolState;
use crate::upgrade::Handoff;

pub struct ProxyInfo {
    pub started: Instant,
    /// Seconds since the Unix epoch at start.
    pub started_unix: u64,
    pub workers: usize,
    /// This process's id among proxies (see managed failover).
    pub instance: Arc<str>,
    /// The pools now (a reload adds and removes pools).
    pools: ArcSwap<Vec<Arc<PoolState>>>,
    /// The configuration file the pools run with, and the last reload.
    config: ArcSwap<ConfigRecord>,
    /// Reloads by outcome (see [`ReloadResult`]).
    reloads: [AtomicU64; ReloadResult::ALL.len()],
    /// During a binary upgrade: how sessions hand themselves over.
    handoff: Mutex<Option<Arc<Handoff>>>,
    /// True once a new process serves in this one's place: the admin
    /// server stops (the new process answers on its socket).
    retired: watch::Sender<bool>,
    /// Startup is over: every pool of the configuration serves.
    serving: std::sync::atomic::AtomicBool,
    /// The admin server's TLS, if it has any (set once at start).
    admin_tls: std::sync::OnceLock<Arc<AdminTls>>,
}

/// The active configuration: what `GET /config` and `INFO proxy` show.
#[derive(Debug, Clone, Default)]
pub struct ConfigRecord {
    /// 0 at start, then one more per applied reload.
    pub epoch: u64,
    /// SHA-256 of the file's bytes, in hex.
    pub hash: String,
    /// The file, parsed, with every secret replaced (JSON).
    pub redacted: serde_json::Value,
    /// When it was applied (Unix seconds).
    pub applied_unix: u64,
    /// The last reload attempt, if any.
    pub last_attempt: Option<ReloadAttempt>,
}

/// A reload attempt and its outcome.
#[derive(Debug, Clone)]
pub struct ReloadAttempt {
    pub at_unix: u64,
    pub result: ReloadResult,
    /// What changed (applied) or every problem (otherwise), a line each.
    pub lines: Vec<String>,
}

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// Applied (possibly with nothing to change).
    Applied,
    /// The file could not be read or is not valid: nothing changed.
    Invalid,
    /// A change the proxy refuses (keys would move): nothing changed.
    Refused,
    /// Valid, but it could not be applied (a listener would not bind):
    /// nothing changed.
    Failed,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 4] = [
        ReloadResult::Applied,
        ReloadResult::Invalid,
        ReloadResult::Refused,
        ReloadResult::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Invalid => "invalid",
            ReloadResult::Refused => "refused",
            ReloadResult::Failed => "failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ProxyInfo {
    pub fn new(workers: usize) -> ProxyInfo {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        ProxyInfo {
            started: Instant::now(),
            started_unix: now.as_secs(),
            workers,
            instance: format!("{:012x}-{:08x}", now.as_millis(), std::process::id()).into(),
            pools: ArcSwap::from_pointee(Vec::new()),
            config: ArcSwap::from_pointee(ConfigRecord::default()),
            reloads: Default::default(),
            handoff: Mutex::new(None),
            retired: watch::channel(false).0,
            serving: std::sync::atomic::AtomicBool::new(false),
            admin_tls: std::sync::OnceLock::new(),
        }
    }

    /// Startup is over (`/ready` may say ready).
    pub fn set_serving(&self) {
        self.serving.store(true, Relaxed);
    }

    pub fn serving(&self) -> bool {
        self.serving.load(Relaxed)
    }

    /// The admin server speaks TLS with this (set once, at start).
    pub fn set_admin_tls(&self, tls: AdminTls) {
        let _ = self.admin_tls.set(Arc::new(tls));
    }

    pub fn admin_tls(&self) -> Option<&Arc<AdminTls>> {
        self.admin_tls.get()
    }

    /// The upgrade sessions hand themselves over to, if one is under way.
    pub fn handoff(&self) -> Option<Arc<Handoff>> {
        self.handoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A new process serves in this one's place: sessions may hand
    /// themselves over through `handoff`.
    pub fn retire(&self, handoff: Arc<Handoff>) {
        *self.handoff.lock().unwrap_or_else(|e| e.into_inner()) = Some(handoff);
        self.retired.send_replace(true);
    }

    /// Watches for [`ProxyInfo::retire`].
    pub fn retired(&self) -> watch::Receiver<bool> {
        self.retired.subscribe()
    }

    pub fn version() -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pools now.
    pub fn pools(&self) -> Arc<Vec<Arc<PoolState>>> {
        self.pools.load_full()
    }

    pub fn set_pools(&self, pools: Vec<Arc<PoolState>>) {
        self.pools.store(Arc::new(pools));
    }

    /// The active configuration and the last reload attempt.
    pub fn config(&self) -> Arc<ConfigRecord> {
        self.config.load_full()
    }

    pub fn set_config(&self, record: ConfigRecord) {
        self.config.store(Arc::new(record));
    }

    /// Records a reload attempt (its outcome is counted).
    pub fn record_attempt(&self, attempt: ReloadAttempt) {
        if let Some(count) = self.reloads.get(attempt.result.index()) {
            count.fetch_add(1, Relaxed);
        }
        let mut record = (*self.config()).clone();
        record.last_attempt = Some(attempt);
        self.set_config(record);
    }

    /// Reloads that ended with `result`.
    pub fn reloads(&self, result: ReloadResult) -> u64 {
        self.reloads
            .get(result.index())
            .map_or(0, |count| count.load(Relaxed))
    }
}
