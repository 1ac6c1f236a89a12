//! Host names to addresses, asynchronously and cached: names come from the
//! configuration, INFO (a replica's master, a master's replicas) and
//! Sentinel, and a slow DNS server must stall neither the data path nor
//! the controller's decisions. An answer is kept for [`TTL`]; a failed
//! lookup too (a name that does not resolve is not asked again at once).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long an answer is trusted.
pub const TTL: Duration = Duration::from_secs(30);
/// Names kept at most (they are few; bounded anyway).
const MAX_NAMES: usize = 1024;

/// A cache of resolved names (one per prober or watcher: no lock).
#[derive(Debug, Default)]
pub struct Resolver {
    names: HashMap<(String, u16), (Option<SocketAddr>, Instant)>,
}

impl Resolver {
    /// `host:port` as an address: an IP literal at once, a name from the
    /// cache or the system's resolver (`getaddrinfo`, off the thread).
    pub async fn lookup(&mut self, host: &str, port: u16) -> Option<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        if let Some((addr, at)) = self.names.get(&key) {
            if at.elapsed() < TTL {
                return *addr;
            }
        }
        let addr = tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next());
        if self.names.len() >= MAX_NAMES {
            self.names.clear();
        }
        self.names.insert(key, (addr, Instant::now()));
        addr
    }

    /// What [`Resolver::lookup`] last found for `host:port` (IP literals
    /// always), without asking.
    pub fn cached(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        self.names
            .get(&(host.to_string(), port))
            .and_then(|(addr, _)| *addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_and_names_resolve_and_are_kept() {
        let mut resolver = Resolver::default();
        let literal = resolver.lookup("127.0.0.1", 5).await;
        assert_eq!(literal, Some(SocketAddr::from(([127, 0, 0, 1], 5))));
        let first = resolver
            .lookup("localhost", 6)
            .await
            .expect("localhost resolves");
        assert_eq!(first.port(), 6);
        assert_eq!(resolver.cached("localhost", 6), Some(first));
        assert_eq!(resolver.lookup("no-such-host.invalid", 6).await, None);
        assert_eq!(resolver.cached("never-asked", 6), None);
    }
}
