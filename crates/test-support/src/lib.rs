//! Test helpers for shardgate: the real processes of [`sandbox`]
//! (redis-server, redis-sentinel), plus Debian's `nutcracker`, the
//! `shardgate` binary under test, headless Chromium, Prometheus, a
//! fault-injecting TCP relay, and small clients.
//!
//! Nothing here fakes a server. A test that needs a program that is not
//! installed fails with the command that installs it; it never skips.
//!
//! # Layout
//! - re-exported from [`sandbox`]: `ports`, `process`, `redis`
//!   ([`RedisServer`], [`Sentinel`]), `cluster` ([`RedisCluster`]), `resp` ([`RespClient`]),
//!   `eventually` (`assert_eventually!`).
//! - [`nutcracker`]: [`Nutcracker`], Debian's twemproxy.
//! - [`proxy`]: [`Shardgate`], the proxy under test, from a YAML config.
//! - [`browser`]: headless Chromium over WebDriver.
//! - [`prometheus`]: [`Prometheus`], Debian's Prometheus server, scraping
//!   the proxy's admin port, with its HTTP query API.
//! - [`http`]: a minimal HTTP client for the admin API and WebDriver.
//! - [`load`]: [`load::Load`], checked pipelined traffic through a proxy.
//! - [`relay`]: [`Relay`], a fault-injecting TCP relay in front of a real
//!   server (latency, a stalled direction, connections reset).
//! - [`pki`]: [`pki::Pki`], test CAs and certificates made by the openssl CLI.
//! - [`tls`]: [`tls::TlsClient`], a blocking RESP client over TLS; redis-cli
//!   and `openssl s_client` against a TLS port.

pub mod browser;
pub mod http;
pub mod load;
pub mod nutcracker;
pub mod pki;
pub mod prometheus;
pub mod proxy;
pub mod relay;
pub mod tls;

pub use sandbox::{
    assert_eventually, cluster, eventually, ports, process, redis, require_program, resp,
};
pub use sandbox::{RedisCluster, RedisServer, RespClient, Sentinel, Tls};

pub use nutcracker::Nutcracker;
pub use prometheus::Prometheus;
pub use proxy::Shardgate;
pub use relay::Relay;
