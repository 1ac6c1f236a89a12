//! What one worker knows about one node from its own traffic. Read by the
//! worker for balancing (requests in flight, a latency moving average) and
//! by the admin thread for metrics; written only by the worker.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use shardgate_core::metrics::{Counter, Gauge, Histogram};

/// Weight of the newest sample in the latency moving average.
const EWMA_ALPHA: f64 = 0.1;

#[derive(Debug, Default)]
pub struct NodeStats {
    pub outstanding: Gauge,
    /// Microseconds as f64 bits; 0 until the first reply.
    latency_ewma_us: AtomicU64,
    pub latency: Histogram,
    pub requests: Counter,
    /// Requests that got no reply: refused while down, lost, timed out.
    pub errors: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// Connection attempts that failed, and connections lost.
    pub connection_failures: Counter,
    /// Connections currently up.
    pub connections: Gauge,
    /// Spare shared connections opened because others were stuck.
    pub spares: Counter,
}

impl NodeStats {
    /// The latency moving average in microseconds (0: no sample yet).
    pub fn latency_us(&self) -> f64 {
        f64::from_bits(self.latency_ewma_us.load(Relaxed))
    }

    pub(super) fn record_latency(&self, latency: Duration) {
        self.latency.record(latency);
        let sample = latency.as_secs_f64() * 1e6;
        let old = self.latency_us();
        let new = if old == 0.0 {
            sample
        } else {
            old + EWMA_ALPHA * (sample - old)
        };
        self.latency_ewma_us.store(new.to_bits(), Relaxed);
    }
}
