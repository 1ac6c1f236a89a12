//! Addresses as the file writes them: `host:port:weight [name]` for a
//! server, `host:port` for a replica, a Sentinel or the coordination
//! store, `host:port` or `/path [mode]` for a listener.
//!
//! Reading them is pure: the syntax and the port are checked, the host
//! stays a name ([`HostPort`], [`ServerLine`], [`Listener`]). A name is
//! looked up in [`resolve`] alone (a blocking DNS query, the only I/O of
//! this crate), which validation never calls: `validate` resolves every
//! address in a step of its own, after every key is checked.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::{ListenAddr, NodeConfig, ServerConfig, MAX_SERVER_WEIGHT};

/// Why an address line is not one, or its name does not resolve. The
/// words are what `shardgate -t` prints after the line.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// A `servers:` line with nothing on it.
    #[error("empty server line")]
    EmptyServerLine,
    /// A `servers:` line with more than an address and a name.
    #[error("expected host:port:weight [name]")]
    ServerWords,
    /// A `servers:` line naming a unix socket.
    #[error("unix-socket servers are not supported; use host:port:weight")]
    UnixServer,
    /// A server address that is not `host:port:weight`.
    #[error("expected host:port:weight")]
    ServerFields,
    /// A node address that is not `host:port` (or, where a weight may
    /// follow, `host:port:weight`).
    #[error("{}", if *weight_allowed { "expected host:port[:weight]" } else { "expected host:port" })]
    NodeFields { weight_allowed: bool },
    /// A weight that is not a number in 1..=[`MAX_SERVER_WEIGHT`].
    #[error("weight '{0}' must be 1..={MAX_SERVER_WEIGHT}")]
    Weight(String),
    /// A port that is not a number in 1..=65535.
    #[error("port '{0}' must be 1..65535")]
    Port(String),
    /// A listener with more words than `/unix/path [mode]` allows.
    #[error("'{0}': expected host:port or /unix/path [mode]")]
    ListenWords(String),
    /// A unix socket's mode that is not an octal file mode.
    #[error("'{0}' is not an octal file mode")]
    FileMode(String),
    /// A listener address without `:port`. (The words are the standard
    /// library's, as when this was found only by resolving the address.)
    #[error("cannot resolve '{0}': invalid socket address")]
    NoPort(String),
    /// A listener port that is not a number in 0..=65535 (0: any free
    /// port). (The standard library's words too.)
    #[error("cannot resolve '{0}': invalid port value")]
    ListenPort(String),
    /// The name lookup failed.
    #[error("cannot resolve '{address}': {source}")]
    Lookup { address: String, source: io::Error },
    /// The name resolved to nothing.
    #[error("'{0}' resolves to no address")]
    NoAddress(String),
}

/// `host:port` with its port checked and its host not looked up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl HostPort {
    /// A node's `host` and `port` fields: the port 1..=65535.
    fn new(host: &str, port: &str) -> Result<HostPort, AddressError> {
        let port = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| AddressError::Port(port.to_string()))?;
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, or with `weight_allowed`, also `host:port:weight` (the
    /// weight is ignored: Sentinel lines carry one in ifwe/twemproxy's
    /// format).
    pub fn node(line: &str, weight_allowed: bool) -> Result<HostPort, AddressError> {
        let mut fields: Vec<&str> = line.trim().rsplitn(3, ':').collect();
        fields.reverse();
        match (fields.as_slice(), weight_allowed) {
            ([host, port], _) => HostPort::new(host, port),
            ([host, port, weight], true) if weight.parse::<u32>().is_ok() => {
                HostPort::new(host, port)
            }
            _ => Err(AddressError::NodeFields { weight_allowed }),
        }
    }

    /// The first address the name resolves to (see [`resolve`]).
    pub fn resolve(&self) -> Result<SocketAddr, AddressError> {
        resolve(self.to_string())
    }

    /// The node at this address, resolved.
    pub fn into_node(self) -> Result<NodeConfig, AddressError> {
        let addr = self.resolve()?;
        Ok(NodeConfig {
            host: self.host,
            port: self.port,
            addr,
        })
    }
}

/// A `servers:` line read: `host:port:weight [name]`, not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub at: HostPort,
    pub weight: u32,
    pub name: Option<String>,
}

impl ServerLine {
    /// `host:port:weight [name]`, as twemproxy writes a server.
    pub fn parse(line: &str) -> Result<ServerLine, AddressError> {
        let mut words = line.split_whitespace();
        let address = words.next().ok_or(AddressError::EmptyServerLine)?;
        let name = words.next().map(str::to_string);
        if words.next().is_some() {
            return Err(AddressError::ServerWords);
        }
        if address.starts_with('/') {
            return Err(AddressError::UnixServer);
        }
        let mut fields = address.rsplitn(3, ':');
        let weight = fields.next().unwrap_or_default();
        let port = fields.next().ok_or(AddressError::ServerFields)?;
        let host = fields.next().ok_or(AddressError::ServerFields)?;
        // modula repeats a server `weight` times in its table: bound it.
        let weight = weight
            .parse()
            .ok()
            .filter(|w| (1..=MAX_SERVER_WEIGHT).contains(w))
            .ok_or_else(|| AddressError::Weight(weight.to_string()))?;
        Ok(ServerLine {
            at: HostPort::new(host, port)?,
            weight,
            name,
        })
    }

    /// The name this server has on the hash ring (twemproxy's rule).
    pub fn ring_name(&self) -> String {
        keyspace::ring_name(&self.at.host, self.at.port, self.name.as_deref())
    }

    /// The server, its address resolved.
    pub fn resolve(self) -> Result<ServerConfig, AddressError> {
        let addr = self.at.resolve()?;
        Ok(ServerConfig {
            host: self.at.host,
            port: self.at.port,
            addr,
            weight: self.weight,
            name: self.name,
        })
    }
}

/// A listener read: a unix socket (nothing to resolve), or `host:port`
/// as written, its syntax checked (resolved as written: a port may be
/// spelled `07000`, and a problem quotes it so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    Tcp(String),
    Unix { path: PathBuf, mode: Option<u32> },
}

impl Listener {
    /// `host:port`, or `/unix/path [mode]` (twemproxy's `/path 0666`).
    pub fn parse(listen: &str) -> Result<Listener, AddressError> {
        let mut parts = listen.split_whitespace();
        let address = parts.next().unwrap_or_default();
        if address.starts_with('/') {
            let mode = match parts.next() {
                None => None,
                Some(mode) => match u32::from_str_radix(mode, 8) {
                    Ok(mode) if mode <= 0o777 => Some(mode),
                    _ => return Err(AddressError::FileMode(mode.to_string())),
                },
            };
            return Ok(Listener::Unix {
                path: PathBuf::from(address),
                mode,
            });
        }
        if parts.next().is_some() {
            return Err(AddressError::ListenWords(listen.to_string()));
        }
        // What the standard library checks before it looks a name up
        // (port 0 is allowed: any free port).
        let (_, port) = address
            .rsplit_once(':')
            .ok_or_else(|| AddressError::NoPort(address.to_string()))?;
        if port.parse::<u16>().is_err() {
            return Err(AddressError::ListenPort(address.to_string()));
        }
        Ok(Listener::Tcp(address.to_string()))
    }

    /// The address to bind, resolved.
    pub fn resolve(self) -> Result<ListenAddr, AddressError> {
        match self {
            Listener::Tcp(address) => resolve(address).map(ListenAddr::Tcp),
            Listener::Unix { path, mode } => Ok(ListenAddr::Unix { path, mode }),
        }
    }
}

/// The first address `host:port` resolves to (the one shardgate dials): a
/// blocking DNS query unless the host is an IP address.
fn resolve(address: String) -> Result<SocketAddr, AddressError> {
    match address.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or(AddressError::NoAddress(address)),
        Err(source) => Err(AddressError::Lookup { address, source }),
    }
}

/// `host:port:weight [name]`, read and resolved.
pub fn parse_server(line: &str) -> Result<ServerConfig, AddressError> {
    ServerLine::parse(line)?.resolve()
}

/// `host:port` (with `weight_allowed`, also `host:port:weight`), read and
/// resolved.
pub fn parse_node(line: &str, weight_allowed: bool) -> Result<NodeConfig, AddressError> {
    HostPort::node(line, weight_allowed)?.into_node()
}
