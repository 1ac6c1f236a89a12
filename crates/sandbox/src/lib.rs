//! Real local Redis topologies: `redis-server` and `redis-sentinel`
//! processes on free loopback ports, each in its own temp dir, killed on
//! drop. Used by the tests, `shardgate demo` and the benchmark's helpers.
//!
//! Nothing here fakes a server. A program that is not installed is
//! reported with the command that installs it.
//!
//! # Layout
//! - [`ports`]: free loopback ports.
//! - [`process`]: [`process::Child`], a process guard that kills on drop,
//!   and the readiness poll every guard uses.
//! - [`redis`]: [`RedisServer`] and [`Sentinel`] guards, with a builder.
//! - [`cluster`]: [`RedisCluster`], a real Redis Cluster of such servers.
//! - [`resp`]: a tiny blocking RESP client, independent of the proxy's codec.
//! - [`eventually`]: `assert_eventually!` for things that converge.

pub mod cluster;
pub mod eventually;
pub mod ports;
pub mod process;
pub mod redis;
pub mod resp;

pub use cluster::RedisCluster;
pub use redis::{RedisServer, Sentinel, Tls};
pub use resp::RespClient;

/// The path of `program`, searched on PATH and in /usr/sbin and /sbin.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Finds `program` or fails with the install command.
///
/// # Panics
/// When the program is missing: tests must not skip silently.
pub fn require_program(program: &str, debian_package: &str) -> std::path::PathBuf {
    find_program(program).unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed; this needs the real program. \
             Install it with: sudo apt-get install -y {debian_package} (or run `make test`, which does)"
        )
    })
}
