//! Metrics: cheap single-writer counters on the hot path, summed across
//! workers only when someone asks (Prometheus scrape, `/stats`, `INFO`).
//!
//! # Layout
//! - `cell`: [`Counter`], [`Gauge`], [`Histogram`].
//! - `pool`: [`PoolStats`], one worker's counters for one pool.
//! - `slowlog`: [`SlowLog`], the proxy's slow log.

mod cell;
mod pool;
mod slowlog;

pub use cell::{Counter, Gauge, Histogram, HistogramSnapshot, LATENCY_BOUNDS_US};
pub use pool::{CommandStats, PoolStats, UNKNOWN_COMMAND};
pub use slowlog::{SlowEntry, SlowLog};
