//! Servers as the distributions see them, and twemproxy's ring-name rule.

/// A server as the distribution sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The name hashed onto the ring (ketama, maglev); see [`ring_name`].
    pub name: String,
    /// Relative weight (ketama, modula, maglev). twemproxy requires >= 1; 0 counts as 1.
    pub weight: u32,
    /// Whether the node takes keys. Dead nodes are left out and the distribution is
    /// built over the live ones, as twemproxy does with `auto_eject_hosts`.
    pub live: bool,
}

impl Node {
    /// A live node.
    pub fn new(name: impl Into<String>, weight: u32) -> Node {
        Node {
            name: name.into(),
            weight,
            live: true,
        }
    }

    /// The weight the distributions use: at least 1.
    pub(crate) fn effective_weight(&self) -> u32 {
        self.weight.max(1)
    }
}

/// The port whose servers twemproxy names by host alone (memcached's default).
const MEMCACHED_PORT: u16 = 11211;

/// twemproxy's ring name: the optional name after `host:port:weight`; else
/// `"host:port"`; if the port is 11211, just `"host"`. The weight never appears.
pub fn ring_name(host: &str, port: u16, name: Option<&str>) -> String {
    match name {
        Some(name) => name.to_owned(),
        None if port == MEMCACHED_PORT => host.to_owned(),
        None => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::ring_name;

    #[test]
    fn ring_names() {
        assert_eq!(ring_name("127.0.0.1", 6379, None), "127.0.0.1:6379");
        assert_eq!(ring_name("127.0.0.1", 11211, None), "127.0.0.1");
        assert_eq!(ring_name("127.0.0.1", 11211, Some("cache1")), "cache1");
        assert_eq!(ring_name("10.0.0.1", 6379, Some("redis-a")), "redis-a");
    }
}
