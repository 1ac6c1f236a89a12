//! Metrics: cheap single-writer counters on the hot path, summed across
//! workers only when someone asks (Prometheus scrape, `/stats`, `INFO`).
//!
//! # Layout
//! - `cell`: [`Counter`], [`Gauge`], [`Histogram`].

mod cell;

pub use cell::{Counter, Gauge, Histogram, HistogramSnapshot, LATENCY_BOUNDS_US};
