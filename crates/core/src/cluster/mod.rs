//! Redis Cluster pools (`cluster: true`, `docs/cluster.md`): the slot map
//! and the snapshot it becomes, when it is refreshed and believed, and
//! what a node's redirection asks. Pure: the control plane queries the
//! nodes, the client session follows the redirections.
//!
//! # Layout
//! - `map`: [`SlotMap`], parsed from `CLUSTER SHARDS` / `CLUSTER SLOTS`.
//! - `refresh`: [`refresh::Schedule`] (one at a time, one a second, a
//!   jittered timer) and [`refresh::judge`] (a change needs two nodes).
//! - `redirect`: [`Redirect`], read from an error reply.
//! - `status`: a map as the admin API shows it (`SlotMap::status`).
//! - `face`: [`FaceView`], the proxies presented as a cluster to
//!   cluster-aware clients (`cluster_proxies`; any pool).

pub mod face;
mod map;
pub mod redirect;
pub mod refresh;
mod status;

pub use face::FaceView;
pub use map::{ClusterNode, ClusterShard, NodeHealth, NodePort, SlotMap};
pub use redirect::{redirect, Redirect};

/// Redirections one request may follow before it is answered with an
/// error: more means the nodes disagree in a loop.
pub const MAX_REDIRECTS: u32 = 5;
