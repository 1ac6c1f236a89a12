//! Real processes for shardgate's tests: `redis-server`, `redis-sentinel`,
//! `nutcracker` and the `shardgate` binary itself, each on a free loopback
//! port in its own temp dir, killed on drop.
//!
//! Nothing here fakes a server. A test that needs a program that is not
//! installed fails with the command that installs it; it never skips.
//!
//! # Layout
//! - [`ports`]: free loopback ports.
//! - [`process`]: [`process::Child`], a process guard that kills on drop,
//!   and the readiness poll every guard uses.
//! - [`redis`]: [`RedisServer`] and [`Sentinel`] guards, with a builder.
//! - [`nutcracker`]: [`Nutcracker`], Debian's twemproxy.
//! - [`proxy`]: [`Shardgate`], the proxy under test, from a YAML config.
//! - [`resp`]: a tiny blocking RESP client for tests that need raw bytes.
//! - [`browser`]: headless Chromium over WebDriver.
//! - [`http`]: a minimal HTTP GET for the admin API.
//! - [`eventually`]: `assert_eventually!` for things that converge.

pub mod browser;
pub mod eventually;
pub mod http;
pub mod nutcracker;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod resp;

pub use nutcracker::Nutcracker;
pub use proxy::Shardgate;
pub use redis::{RedisServer, Sentinel};
pub use resp::RespClient;

/// Finds `program` on PATH or fails with the install command.
///
/// # Panics
/// When the program is missing: tests must not skip silently.
pub fn require_program(program: &str, debian_package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed; this test needs the real program. \
         Install it with: sudo apt-get install -y {debian_package} (or run `make test`, which does)"
    );
}
