//! What the whole process knows about itself: version, start time,
//! workers, its pools. Shared by INFO, the admin API and the status page.

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::pool::PoolState;

pub struct ProxyInfo {
    pub started: Instant,
    /// Seconds since the Unix epoch at start.
    pub started_unix: u64,
    pub workers: usize,
    /// This process's id among proxies (see managed failover).
    pub instance: Arc<str>,
    pools: OnceLock<Vec<Weak<PoolState>>>,
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
            pools: OnceLock::new(),
        }
    }

    pub fn version() -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the pools once they exist.
    pub fn set_pools(&self, pools: &[Arc<PoolState>]) {
        let _ = self.pools.set(pools.iter().map(Arc::downgrade).collect());
    }

    pub fn pools(&self) -> Vec<Arc<PoolState>> {
        self.pools
            .get()
            .map(|pools| pools.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }
}
