//! What every worker shares about a pool: its configuration, the
//! published topology, its clients, users, slow log, scripts and counters.
//!
//! # Layout
//! - `state`: [`PoolState`], one pool's shared state.
//! - `clients`: [`Clients`], the registry behind CLIENT LIST / KILL, and
//!   [`ClientPause`].
//! - `cluster`: [`ClusterHints`], what sessions tell a cluster pool's controller.
//! - `tls`: [`tls::PoolTls`], the pool's live TLS stores, and the
//!   certificates a reload reads again.
//! - `client_memory`: the proxy-wide limit on what clients hold
//!   (`--maxmemory-clients`).

pub mod client_memory;
pub mod clients;
pub mod cluster;
mod state;
pub mod tls;

pub use clients::{ClientEntry, ClientPause, Clients};
pub use cluster::ClusterHints;
pub use state::{ControlStats, PoolState, MOVER_ERROR_KINDS};
