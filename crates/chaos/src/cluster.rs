//! The topology under test, all real processes: three shards, each a
//! `redis-server` master and replica; three `redis-sentinel`s; two
//! `shardgate` proxies in Sentinel mode.
//!
//! Every server sits behind its own [`Relay`], and everyone knows it by the
//! relay's address: the proxies' `servers:`, the Sentinels' `monitor`
//! lines, replication links (`replicaof` and `replica-announce-port`), so
//! what Sentinel and the masters' `INFO` report is the relay too. A link
//! fault is therefore a network fault at that server's address: the
//! proxies, the Sentinels and the replication stream all see it. Only the
//! chaos tool itself talks to the servers' own ports, to check roles.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{RedisServer, Relay, RespClient, Sentinel, Shardgate};

use crate::journal::{Check, Journal};

pub const SHARDS: usize = 3;
pub const PROXIES: usize = 2;
/// Sentinel's `down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1500;
/// The proxies' request `timeout` (ms).
pub const PROXY_TIMEOUT_MS: u64 = 1000;

pub fn shard_name(shard: usize) -> String {
    format!("shard{}", shard + 1)
}

/// A server and the relay everyone reaches it through.
pub struct Node {
    pub server: RedisServer,
    pub relay: Relay,
    pub shard: usize,
}

impl Node {
    /// The address everyone knows it by (the relay's port).
    pub fn port(&self) -> u16 {
        self.relay.port()
    }

    /// A short name for reports: `shard2/6379`.
    pub fn label(&self) -> String {
        format!("{}/{}", shard_name(self.shard), self.port())
    }
}

/// One proxy's slot: the running process, or none while it restarts.
pub struct ProxySlot {
    pub port: u16,
    pub proxy: Option<Shardgate>,
    pub incarnation: usize,
    /// Set while the fault scheduler restarts it (an exit then is expected).
    pub restarting: bool,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub sentinels: Vec<Sentinel>,
    pub proxies: Arc<ProxySet>,
}

/// The proxies, shared with the monitor (which restarts one that exits by
/// itself) and the fault scheduler (which restarts one on purpose).
pub struct ProxySet {
    slots: Mutex<Vec<ProxySlot>>,
    binary: PathBuf,
    yaml: Vec<String>,
    out: PathBuf,
}

/// One command on a fresh direct connection, bounded by `timeout`.
pub fn query(port: u16, args: &[&str], timeout: Duration) -> Option<Reply> {
    let mut client = RespClient::connect(port).ok()?;
    client.set_read_timeout(Some(timeout));
    client.cmd(args).ok()
}

/// A field of `INFO replication` on a server's own port.
pub fn replication_field(real_port: u16, field: &str) -> Option<String> {
    let info = query(
        real_port,
        &["INFO", "replication"],
        Duration::from_millis(500),
    )?
    .bulk_str()?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

impl Cluster {
    pub fn start(binary: &Path, out: &Path) -> Cluster {
        let mut nodes = Vec::new();
        for shard in 0..SHARDS {
            let master = start_node(shard, None);
            let replica = start_node(shard, Some(master.port()));
            nodes.push(master);
            nodes.push(replica);
        }
        let names: Vec<String> = (0..SHARDS).map(shard_name).collect();
        let monitored: Vec<(&str, u16)> = names
            .iter()
            .map(String::as_str)
            .zip(nodes.iter().step_by(2).map(Node::port))
            .collect();
        let extra: String = names
            .iter()
            .map(|n| format!("sentinel failover-timeout {n} 5000\n"))
            .collect();
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start_with(&monitored, 2, DOWN_AFTER_MS, &extra))
            .collect();
        let ports: Vec<u16> = (0..PROXIES).map(|_| free_port()).collect();
        let yaml: Vec<String> = ports
            .iter()
            .map(|&port| proxy_yaml(port, &nodes, &sentinels))
            .collect();
        let slots: Vec<ProxySlot> = ports
            .iter()
            .zip(&yaml)
            .map(|(&port, yaml)| ProxySlot {
                port,
                proxy: Some(spawn_proxy(binary, yaml, port)),
                incarnation: 0,
                restarting: false,
            })
            .collect();
        Cluster {
            nodes,
            sentinels,
            proxies: Arc::new(ProxySet {
                slots: Mutex::new(slots),
                binary: binary.to_path_buf(),
                yaml,
                out: out.to_path_buf(),
            }),
        }
    }

    /// The nodes of `shard`.
    pub fn shard_nodes(&self, shard: usize) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.shard == shard)
    }

    /// The node of `shard` that says it is master (by its own port).
    pub fn master_of(&self, shard: usize) -> Option<usize> {
        self.shard_nodes(shard)
            .find(|(_, n)| replication_field(n.server.port(), "role").as_deref() == Some("master"))
            .map(|(i, _)| i)
    }

    /// The master every reachable Sentinel names for `shard`, if they agree.
    pub fn sentinel_master(&self, shard: usize) -> Option<u16> {
        let mut named = None;
        for sentinel in &self.sentinels {
            let reply = query(
                sentinel.port(),
                &["SENTINEL", "get-master-addr-by-name", &shard_name(shard)],
                Duration::from_millis(500),
            );
            let port = match reply {
                Some(Reply::Array(parts)) => parts.get(1)?.bulk_str()?.parse::<u16>().ok()?,
                _ => continue,
            };
            if named.is_some_and(|p| p != port) {
                return None;
            }
            named = Some(port);
        }
        named
    }

    /// Ok when the topology is whole again: every Sentinel up and agreeing
    /// on each shard's master, that node saying master with its replica
    /// linked to it, both proxies ready and writing to that master.
    /// Otherwise what is still missing.
    pub fn healed(&self) -> Result<(), String> {
        for sentinel in &self.sentinels {
            if query(sentinel.port(), &["PING"], Duration::from_millis(500)).is_none() {
                return Err(format!("Sentinel {} does not answer", sentinel.port()));
            }
        }
        let mut masters = Vec::new();
        for shard in 0..SHARDS {
            let master = self
                .sentinel_master(shard)
                .ok_or_else(|| format!("Sentinels disagree on {}", shard_name(shard)))?;
            for (_, node) in self.shard_nodes(shard) {
                let real = node.server.port();
                let role = replication_field(real, "role");
                if node.port() == master {
                    if role.as_deref() != Some("master") {
                        return Err(format!(
                            "{} is named master but says {role:?}",
                            node.label()
                        ));
                    }
                    if replication_field(real, "connected_slaves").as_deref() != Some("1") {
                        return Err(format!("{} has no connected replica", node.label()));
                    }
                } else {
                    let linked = role.as_deref() == Some("slave")
                        && replication_field(real, "master_port") == Some(master.to_string())
                        && replication_field(real, "master_link_status").as_deref() == Some("up")
                        && replication_field(real, "master_sync_in_progress").as_deref()
                            == Some("0");
                    if !linked {
                        return Err(format!(
                            "{} is not a synced replica of {master}",
                            node.label()
                        ));
                    }
                }
            }
            masters.push(master);
        }
        let proxies = self.proxies.lock();
        for (i, slot) in proxies.iter().enumerate() {
            let proxy = slot
                .proxy
                .as_ref()
                .ok_or_else(|| format!("proxy {i} is not running"))?;
            match proxy.admin_get("/ready") {
                Ok((200, _)) => {}
                other => return Err(format!("proxy {i} not ready: {other:?}")),
            }
            let (_, metrics) = proxy
                .admin_get("/metrics")
                .map_err(|e| format!("proxy {i} metrics: {e}"))?;
            for (shard, master) in masters.iter().enumerate() {
                let line = format!(
                    "shard=\"{}\",node=\"127.0.0.1:{master}\"}} 1",
                    shard_name(shard)
                );
                let follows = metrics
                    .lines()
                    .any(|l| l.starts_with("shardgate_node_is_master{") && l.ends_with(&line));
                if !follows {
                    return Err(format!(
                        "proxy {i} does not write to {}'s master {master}",
                        shard_name(shard)
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ProxySet {
    pub fn ports(&self) -> Vec<u16> {
        self.lock().iter().map(|s| s.port).collect()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ProxySlot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, index: usize, port: u16) -> Shardgate {
        spawn_proxy(&self.binary, &self.yaml[index], port)
    }

    /// SIGTERM, checks a clean exit and the log, starts it again on the same
    /// port. Returns what happened, for the fault record.
    pub fn restart_proxy(&self, index: usize, journal: &Journal) -> String {
        let (old, port, incarnation) = {
            let mut slots = self.lock();
            let slot = &mut slots[index];
            slot.restarting = true;
            (slot.proxy.take(), slot.port, slot.incarnation)
        };
        let mut detail = String::new();
        if let Some(old) = old {
            detail = self.stop_proxy(index, incarnation, old, journal);
        }
        let new = self.spawn(index, port);
        let mut slots = self.lock();
        let slot = &mut slots[index];
        slot.proxy = Some(new);
        slot.incarnation += 1;
        slot.restarting = false;
        detail
    }

    /// Stops a proxy with SIGTERM, requires exit status 0 within 10 s and no
    /// panic in its log, and keeps the log in the output directory.
    pub fn stop_proxy(
        &self,
        index: usize,
        incarnation: usize,
        mut proxy: Shardgate,
        journal: &Journal,
    ) -> String {
        proxy.signal("TERM");
        let status = proxy.child().wait_exit(Duration::from_secs(10));
        let log = proxy.log();
        self.keep_log(index, incarnation, &log);
        let detail = match status {
            Some(status) if status.success() => "exit 0 on SIGTERM".to_string(),
            Some(status) => {
                journal.violation(
                    Check::Crash,
                    format!("proxy {index} exited {status} on SIGTERM"),
                );
                format!("exit {status} on SIGTERM")
            }
            None => {
                journal.violation(
                    Check::Crash,
                    format!("proxy {index} still running 10 s after SIGTERM"),
                );
                "no exit within 10 s of SIGTERM".to_string()
            }
        };
        check_log(index, &log, journal);
        detail
    }

    pub fn keep_log(&self, index: usize, incarnation: usize, log: &str) {
        let path = self.out.join(format!("proxy{index}-{incarnation}.log"));
        let _ = std::fs::write(path, log);
    }

    /// Stops every proxy as [`Cluster::stop_proxy`] does.
    pub fn stop_proxies(&self, journal: &Journal) {
        let taken: Vec<(usize, usize, Option<Shardgate>)> = {
            let mut slots = self.lock();
            slots
                .iter_mut()
                .enumerate()
                .map(|(i, s)| {
                    s.restarting = true;
                    (i, s.incarnation, s.proxy.take())
                })
                .collect()
        };
        for (index, incarnation, proxy) in taken {
            if let Some(proxy) = proxy {
                self.stop_proxy(index, incarnation, proxy, journal);
            }
        }
    }

    /// Kills every proxy still running (SIGKILL, via the guards' drop).
    /// For unwinding: the monitor thread holds the set too, so dropping the
    /// cluster alone would leave them running.
    pub fn kill_all(&self) {
        let taken: Vec<Option<Shardgate>> =
            self.lock().iter_mut().map(|s| s.proxy.take()).collect();
        drop(taken);
    }

    /// Replaces a proxy that exited by itself (after the monitor recorded it).
    pub fn respawn_crashed(&self, index: usize) {
        let port = self.lock()[index].port;
        let new = self.spawn(index, port);
        let mut slots = self.lock();
        slots[index].proxy = Some(new);
        slots[index].incarnation += 1;
    }
}

/// A proxy log must not show a panic.
pub fn check_log(index: usize, log: &str, journal: &Journal) {
    if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
        journal.violation(Check::Crash, format!("proxy {index} panicked: {line}"));
    }
}

fn spawn_proxy(binary: &Path, yaml: &str, port: u16) -> Shardgate {
    Shardgate::builder(binary, yaml)
        .arg("--workers")
        .arg("2")
        .wait_port(port)
        .start()
}

fn start_node(shard: usize, master: Option<u16>) -> Node {
    let real = free_port();
    let relay = Relay::start_on(free_port(), real);
    let mut builder = RedisServer::builder()
        .port(real)
        .arg("replica-announce-ip", "127.0.0.1")
        .arg("replica-announce-port", &relay.port().to_string())
        .arg("repl-diskless-sync-delay", "0");
    if let Some(master) = master {
        builder = builder.replica_of_port(master);
    }
    let server = builder.start();
    Node {
        server,
        relay,
        shard,
    }
}

fn proxy_yaml(port: u16, nodes: &[Node], sentinels: &[Sentinel]) -> String {
    let mut yaml = format!(
        "chaos:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  hash_tag: \"{{}}\"\n  timeout: {PROXY_TIMEOUT_MS}\n  sentinels:\n"
    );
    for sentinel in sentinels {
        yaml.push_str(&format!("    - 127.0.0.1:{}:1\n", sentinel.port()));
    }
    yaml.push_str("  servers:\n");
    for node in nodes.iter().step_by(2) {
        yaml.push_str(&format!(
            "    - 127.0.0.1:{}:1 {}\n",
            node.port(),
            shard_name(node.shard)
        ));
    }
    yaml
}
