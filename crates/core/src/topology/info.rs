//! `INFO replication`, parsed: what a node says about its role, its
//! master link and its replicas. Addresses a node reports as IP literals
//! are resolved here; host names are left for the prober's resolver (no
//! DNS in this crate).

use std::net::{IpAddr, SocketAddr};

/// A node's role as it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Master {
        /// Replicas the master sees (`slaveN:ip=..,port=..,state=..,offset=..,lag=..`).
        replicas: Vec<ReplicaInfo>,
    },
    Replica {
        master_host: String,
        master_port: u16,
        /// `master_host:master_port` resolved (None: a name not resolved yet).
        master_addr: Option<SocketAddr>,
        /// `master_link_status:up`.
        link_up: bool,
        /// Seconds since the last interaction with the master.
        last_io_seconds: Option<u64>,
        /// How much of the master's stream it has processed.
        offset: u64,
    },
}

/// One replica as its master lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub ip: String,
    pub port: u16,
    /// `ip:port` resolved (None: a name not resolved yet).
    pub addr: Option<SocketAddr>,
    pub online: bool,
    pub offset: u64,
    pub lag: u64,
}

/// What `INFO replication` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub role: Role,
    /// `master_repl_offset`: for a master, its stream position.
    pub master_repl_offset: u64,
}

impl Replication {
    pub fn is_master(&self) -> bool {
        matches!(self.role, Role::Master { .. })
    }
}

/// Parses the text of `INFO replication`; None when it has no `role:` line.
pub fn parse_replication(text: &str) -> Option<Replication> {
    let mut role = None;
    let mut master_host = String::new();
    let mut master_port = 0;
    let mut link_up = false;
    let mut last_io = None;
    let mut slave_offset = 0;
    let mut master_repl_offset = 0;
    let mut replicas = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        match key {
            "role" => role = Some(value.to_string()),
            "master_host" => master_host = value.to_string(),
            "master_port" => master_port = value.parse().unwrap_or(0),
            "master_link_status" => link_up = value == "up",
            "master_last_io_seconds_ago" => {
                last_io = value.parse().ok().filter(|_| !value.starts_with('-'))
            }
            "slave_repl_offset" => slave_offset = value.parse().unwrap_or(0),
            "master_repl_offset" => master_repl_offset = value.parse().unwrap_or(0),
            k if k.starts_with("slave")
                && k[5..].chars().all(|c| c.is_ascii_digit())
                && k.len() > 5 =>
            {
                if let Some(replica) = parse_replica(value) {
                    replicas.push(replica);
                }
            }
            _ => {}
        }
    }
    let role = match role?.as_str() {
        "master" => Role::Master { replicas },
        "slave" | "replica" => Role::Replica {
            master_addr: literal(&master_host, master_port),
            master_host,
            master_port,
            link_up,
            last_io_seconds: last_io,
            offset: slave_offset,
        },
        _ => return None,
    };
    Some(Replication {
        role,
        master_repl_offset,
    })
}

fn parse_replica(value: &str) -> Option<ReplicaInfo> {
    let mut replica = ReplicaInfo {
        ip: String::new(),
        port: 0,
        addr: None,
        online: false,
        offset: 0,
        lag: 0,
    };
    for field in value.split(',') {
        match field.split_once('=')? {
            ("ip", ip) => replica.ip = ip.to_string(),
            ("port", port) => replica.port = port.parse().ok()?,
            ("state", state) => replica.online = state == "online",
            ("offset", offset) => replica.offset = offset.parse().unwrap_or(0),
            ("lag", lag) => replica.lag = lag.parse().unwrap_or(0),
            _ => {}
        }
    }
    replica.addr = literal(&replica.ip, replica.port);
    (!replica.ip.is_empty() && replica.port != 0).then_some(replica)
}

/// `host:port` as an address when `host` is an IP literal.
pub fn literal(host: &str, port: u16) -> Option<SocketAddr> {
    host.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

impl Replication {
    /// Every host name it reports that is not an IP literal, with its
    /// port: for a resolver to fill in ([`Replication::resolve_with`]).
    pub fn names(&self) -> Vec<(String, u16)> {
        match &self.role {
            Role::Master { replicas } => replicas
                .iter()
                .filter(|r| r.addr.is_none())
                .map(|r| (r.ip.clone(), r.port))
                .collect(),
            Role::Replica {
                master_host,
                master_port,
                master_addr: None,
                ..
            } => vec![(master_host.clone(), *master_port)],
            Role::Replica { .. } => Vec::new(),
        }
    }

    /// Fills in the addresses of host names with `resolve`.
    pub fn resolve_with(&mut self, resolve: impl Fn(&str, u16) -> Option<SocketAddr>) {
        match &mut self.role {
            Role::Master { replicas } => {
                for replica in replicas.iter_mut().filter(|r| r.addr.is_none()) {
                    replica.addr = resolve(&replica.ip, replica.port);
                }
            }
            Role::Replica {
                master_host,
                master_port,
                master_addr,
                ..
            } => {
                if master_addr.is_none() {
                    *master_addr = resolve(master_host, *master_port);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_master_and_its_replicas() {
        let text = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0\r\n\
            slave1:ip=127.0.0.1,port=6381,state=wait_bgsave,offset=0,lag=3\r\n\
            master_failover_state:no-failover\r\nmaster_repl_offset:1234\r\n";
        let r = parse_replication(text).expect("parsed");
        assert_eq!(r.master_repl_offset, 1234);
        let Role::Master { replicas } = r.role else {
            panic!("master")
        };
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[0].port, 6380);
        assert!(replicas[0].online && !replicas[1].online);
        assert_eq!(replicas[1].lag, 3);
    }

    #[test]
    fn parses_a_replica() {
        let text = "role:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\n\
            master_last_io_seconds_ago:-1\r\nslave_repl_offset:99\r\nmaster_repl_offset:99\r\n";
        let r = parse_replication(text).expect("parsed");
        assert_eq!(
            r.role,
            Role::Replica {
                master_host: "127.0.0.1".into(),
                master_port: 6379,
                master_addr: literal("127.0.0.1", 6379),
                link_up: false,
                last_io_seconds: None,
                offset: 99
            }
        );
        assert!(parse_replication("nothing here").is_none());
    }

    #[test]
    fn names_are_left_for_a_resolver() {
        let text =
            "role:master\r\nslave0:ip=replica.example,port=6380,state=online,offset=1,lag=0\r\n\
            slave1:ip=10.0.0.2,port=6381,state=online,offset=1,lag=0\r\n";
        let mut r = parse_replication(text).expect("parsed");
        assert_eq!(r.names(), vec![("replica.example".to_string(), 6380)]);
        let resolved = literal("10.0.0.9", 6380);
        r.resolve_with(|host, port| {
            (host == "replica.example")
                .then_some(resolved)
                .flatten()
                .map(|a| std::net::SocketAddr::new(a.ip(), port))
        });
        let Role::Master { replicas } = &r.role else {
            panic!("master")
        };
        assert_eq!(replicas[0].addr, literal("10.0.0.9", 6380));
        assert_eq!(replicas[1].addr, literal("10.0.0.2", 6381));
        assert!(r.names().is_empty());
    }
}
