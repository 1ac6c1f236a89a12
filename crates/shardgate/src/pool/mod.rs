//! What every worker shares about a pool: its configuration, the
//! published topology, its clients, users, slow log, scripts and counters.
//!
//! # Layout
//! - `state`: [`PoolState`], one pool's shared state.
//! - `clients`: [`Clients`], the registry behind CLIENT LIST / KILL, and
//!   [`ClientPause`].

pub mod clients;
mod state;

pub use clients::{ClientEntry, ClientPause, Clients};
pub use state::{ControlStats, PoolState};
