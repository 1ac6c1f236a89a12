//! A real Redis Cluster: `redis-server --cluster-enabled yes` nodes on free
//! loopback ports, each in its own temp dir, joined by `redis-cli
//! --cluster create`, killed on drop.

use std::process::Command;
use std::time::Duration;

use crate::redis::{RedisServer, Tls};
use crate::require_program;
use crate::resp::Reply;

/// Generous: a deadline, not a sleep. Replicas take ~5 s to link after
/// `--cluster create` on an idle machine; a busy one takes longer.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// `cluster_state` from a node's `CLUSTER INFO` (None if unreachable).
pub fn cluster_state(node: &RedisServer) -> Option<String> {
    let mut client = crate::RespClient::connect(node.port()).ok()?;
    let info = client.cmd(&["CLUSTER", "INFO"]).ok()?.bulk_str()?;
    info.lines()
        .find_map(|line| line.strip_prefix("cluster_state:"))
        .map(|v| v.trim().to_string())
}

/// A running cluster. Node `i` is [`RedisCluster::node`]`(i)`; which are
/// primaries is whatever `redis-cli --cluster create` decided (and
/// failovers change): ask [`RedisCluster::primaries`].
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    node_timeout_ms: u64,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, with
    /// `cluster-node-timeout` `node_timeout_ms`; returns once every node
    /// reports `cluster_state:ok` and every replica's link is up.
    ///
    /// # Panics
    /// When a program is missing or the cluster does not form in time.
    pub fn start(primaries: usize, replicas: usize, node_timeout_ms: u64) -> RedisCluster {
        Self::start_with(primaries, replicas, node_timeout_ms, None)
    }

    /// The same, every node also with a TLS port (`tls`, whose `only` is
    /// ignored: the plaintext ports stay for the harness's own checks)
    /// and `tls-cluster yes`: the cluster bus and replication run over
    /// TLS, and the nodes publish their TLS ports to TLS clients.
    pub fn start_tls(
        primaries: usize,
        replicas: usize,
        node_timeout_ms: u64,
        tls: Tls,
    ) -> RedisCluster {
        Self::start_with(primaries, replicas, node_timeout_ms, Some(tls))
    }

    fn start_with(
        primaries: usize,
        replicas: usize,
        node_timeout_ms: u64,
        tls: Option<Tls>,
    ) -> RedisCluster {
        let cli = require_program("redis-cli", "redis-tools");
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                let mut builder = RedisServer::builder()
                    .port(crate::ports::free_port_up_to(55535))
                    .arg("cluster-enabled", "yes")
                    .arg("cluster-config-file", "nodes.conf")
                    .arg("cluster-node-timeout", &node_timeout_ms.to_string());
                if let Some(tls) = &tls {
                    builder = builder
                        .tls(Tls {
                            only: false,
                            ..tls.clone()
                        })
                        .arg("tls-cluster", "yes");
                }
                builder.start()
            })
            .collect();
        let mut create = Command::new(cli);
        match &tls {
            // The nodes meet on their TLS ports (the bus port follows them).
            Some(tls) => {
                create.args(tls.cli_args());
                create.arg("--cluster").arg("create");
                create.args(
                    nodes
                        .iter()
                        .map(|n| format!("127.0.0.1:{}", n.tls_port().unwrap_or_default())),
                );
            }
            None => {
                create.arg("--cluster").arg("create");
                create.args(nodes.iter().map(RedisServer::addr));
            }
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let output = create.output().expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            node_timeout_ms,
        };
        cluster.wait_healthy(READY_DEADLINE);
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok` and every
    /// replica among them is linked to its primary.
    ///
    /// # Panics
    /// When that does not happen within `deadline`.
    pub fn wait_healthy(&self, deadline: Duration) {
        crate::assert_eventually!(
            within = deadline,
            self.nodes.iter().filter(|n| n.pid() != 0).all(|n| {
                cluster_state(n).as_deref() == Some("ok")
                    && (n.role().as_deref() != Some("slave") || n.linked())
            }),
            "the cluster on ports {:?} did not become healthy",
            self.ports()
        );
    }

    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms)
    }

    /// `host:tls-port:1` lines for a proxy's `servers:` (TLS seeds, of a
    /// cluster from [`RedisCluster::start_tls`]).
    pub fn tls_seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| Some(format!("127.0.0.1:{}:1", n.tls_port()?)))
            .collect()
    }

    /// `host:port:1` lines for a proxy's `servers:` (the seeds).
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("{}:1", n.addr()))
            .collect()
    }

    /// Indexes of the live nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].pid() != 0)
            .filter(|&i| self.nodes[i].role().as_deref() == Some("master"))
            .collect()
    }

    /// A node's id (`CLUSTER MYID`).
    pub fn id(&self, i: usize) -> String {
        self.nodes[i]
            .cmd(&["CLUSTER", "MYID"])
            .bulk_str()
            .expect("CLUSTER MYID")
    }

    /// The slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let live = self
            .nodes
            .iter()
            .find(|n| n.pid() != 0)
            .expect("a live node");
        match live.cmd(&["CLUSTER", "KEYSLOT", key]) {
            Reply::Integer(slot) => u16::try_from(slot).expect("slot"),
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// For each slot, the port of the node serving it, as node `asked`
    /// sees it (`CLUSTER NODES`; 0 for a slot no node serves).
    pub fn slot_ports(&self, asked: usize) -> Vec<u16> {
        let text = self.nodes[asked]
            .cmd(&["CLUSTER", "NODES"])
            .bulk_str()
            .expect("CLUSTER NODES");
        let mut owners = vec![0u16; 16384];
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 8 || !fields[2].contains("master") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .expect("a port in CLUSTER NODES");
            for range in &fields[8..] {
                if range.starts_with('[') {
                    continue; // a slot being migrated or imported
                }
                let (start, end) = match range.split_once('-') {
                    Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                    None => (range.parse::<usize>(), range.parse::<usize>()),
                };
                if let (Ok(start), Ok(end)) = (start, end) {
                    if let Some(range) = owners.get_mut(start..=end.min(16383)) {
                        range.fill(port);
                    }
                }
            }
        }
        owners
    }

    /// The index of the node with `port`.
    pub fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a node with that port")
    }

    /// Runs `redis-cli --cluster <args...>` against node 0 and returns
    /// its output.
    ///
    /// # Panics
    /// When it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        let cli = require_program("redis-cli", "redis-tools");
        let output = Command::new(cli)
            .arg("--cluster")
            .args(args)
            .output()
            .expect("run redis-cli --cluster");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "redis-cli --cluster {args:?}: {text}"
        );
        text
    }
}
