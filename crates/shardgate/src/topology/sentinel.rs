//! Following Redis Sentinel: one watcher per listed Sentinel, each with a
//! query connection (each master's address and replicas, asked at start,
//! every few seconds and after reconnects) and a subscription to its
//! events (`+switch-master` first of all). Reports go to the pool's
//! controller, which verifies a new master with ROLE before moving writes.
//! Watchers are independent: the pool keeps working while some Sentinels
//! are down, and with none it keeps the addresses it has.

use std::sync::Arc;
use std::time::Duration;

use resp::Value;
use tokio::sync::{mpsc, Notify};

use super::controller::Input;
use super::events::Events;
use super::group::resolve;
use super::wire::{text, WireConn};
use super::NodeAddr;
use crate::backend::Handshake;
use crate::config::{NodeConfig, PoolConfig};

/// What a Sentinel said about a shard.
#[derive(Debug)]
pub enum SentinelReport {
    /// The shard's master is `addr` (from a query or `+switch-master`).
    Master {
        shard: usize,
        addr: NodeAddr,
        /// Which Sentinel said it, and how.
        via: String,
    },
    /// `addr` replicates in the shard.
    Replica { shard: usize, addr: NodeAddr },
}

/// The Sentinel channels the proxy listens to.
const CHANNELS: &[&[u8]] = &[
    b"+switch-master",
    b"+sdown",
    b"-sdown",
    b"+odown",
    b"-odown",
    b"+slave",
    b"+convert-to-slave",
    b"+failover-end",
];

/// How often the full view is asked again.
const RESYNC: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(500);

struct Watcher {
    sentinel: NodeConfig,
    pool: Arc<str>,
    names: Vec<Arc<str>>,
    handshake: Handshake,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Input>,
    events: Arc<Events>,
    resync: Notify,
    /// Events recently recorded by any of the pool's watchers: every
    /// Sentinel reports the same event, the log keeps it once.
    recent: Arc<std::sync::Mutex<std::collections::VecDeque<(String, std::time::Instant)>>>,
}

/// Starts a watcher per Sentinel of the pool.
pub fn spawn_watchers(
    config: &PoolConfig,
    names: Vec<Arc<str>>,
    tx: mpsc::UnboundedSender<Input>,
    events: Arc<Events>,
) {
    let recent = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    for sentinel in &config.sentinels {
        let watcher = Arc::new(Watcher {
            sentinel: sentinel.clone(),
            pool: config.name.as_str().into(),
            names: names.clone(),
            handshake: Handshake {
                auth: config.sentinel_auth.clone(),
                db: 0,
                resp3: false,
                client_name: None,
            },
            timeout: config.connect_timeout,
            tx: tx.clone(),
            events: events.clone(),
            resync: Notify::new(),
            recent: recent.clone(),
        });
        tokio::task::spawn_local(watcher.clone().query_loop());
        tokio::task::spawn_local(watcher.subscribe_loop());
    }
}

impl Watcher {
    fn label(&self) -> String {
        format!("Sentinel {}", self.sentinel.label())
    }

    fn report(&self, report: SentinelReport) -> bool {
        self.tx.send(Input::Sentinel(report)).is_ok()
    }

    fn record(&self, shard: Option<&Arc<str>>, message: String) {
        self.events.record(&self.pool, shard, "sentinel", message);
    }

    fn shard_of(&self, name: &[u8]) -> Option<usize> {
        self.names.iter().position(|n| n.as_bytes() == name)
    }

    /// Asks for every master and its replicas now, then every few seconds
    /// or when the subscription reconnects.
    async fn query_loop(self: Arc<Self>) {
        let mut reachable = None;
        loop {
            let result = self.query_all().await;
            match (&result, reachable) {
                (Err(e), Some(true) | None) => {
                    let message = format!(
                        "{} unreachable ({e}); using the addresses known so far",
                        self.label()
                    );
                    self.record(None, message);
                    reachable = Some(false);
                }
                (Ok(()), Some(false)) => {
                    self.record(None, format!("{} reachable again", self.label()));
                    reachable = Some(true);
                }
                (Ok(()), None) => reachable = Some(true),
                _ => {}
            }
            if self.tx.is_closed() {
                return;
            }
            let wait = if result.is_ok() { RESYNC } else { RETRY };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.resync.notified() => {}
            }
        }
    }

    async fn query_all(&self) -> Result<(), String> {
        let mut conn = WireConn::connect(self.sentinel.addr, &self.handshake, self.timeout).await?;
        for (shard, name) in self.names.iter().enumerate() {
            let replies = conn
                .query(
                    &[
                        &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", name.as_bytes()],
                        &[b"SENTINEL", b"REPLICAS", name.as_bytes()],
                    ],
                    self.timeout,
                )
                .await?;
            let [master, replicas] = replies.as_slice() else {
                return Err("short reply".into());
            };
            match address(master) {
                Some(addr) => {
                    let via = format!("{} (query)", self.label());
                    self.report(SentinelReport::Master { shard, addr, via });
                }
                None => self.record(
                    Some(name),
                    format!("{} does not know a master named '{name}'", self.label()),
                ),
            }
            for addr in replica_addresses(replicas) {
                self.report(SentinelReport::Replica { shard, addr });
            }
        }
        Ok(())
    }

    async fn subscribe_loop(self: Arc<Self>) {
        let mut connected_before = false;
        loop {
            if self.tx.is_closed() {
                return;
            }
            match self.subscribe().await {
                Ok(mut conn) => {
                    if connected_before {
                        // Events may have been missed: ask for the full view.
                        self.resync.notify_one();
                    }
                    connected_before = true;
                    while let Ok(frame) = conn.next_frame().await {
                        if let Ok(value) = resp::decode(&frame, &resp::Limits::default()) {
                            self.on_message(&value);
                        }
                    }
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }

    async fn subscribe(&self) -> Result<WireConn, String> {
        let mut conn = WireConn::connect(self.sentinel.addr, &self.handshake, self.timeout).await?;
        let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        args.extend_from_slice(CHANNELS);
        // One confirmation per channel; the first comes back as the reply.
        conn.call(&args, self.timeout).await?;
        for _ in 1..CHANNELS.len() {
            conn.next_frame().await?;
        }
        Ok(conn)
    }

    fn on_message(&self, value: &Value) {
        let Some(items) = value.as_array() else {
            return;
        };
        let (Some(b"message"), Some(channel), Some(payload)) = (
            items.first().and_then(Value::as_bytes),
            items.get(1).and_then(Value::as_bytes),
            items.get(2).and_then(text),
        ) else {
            return;
        };
        let words: Vec<&str> = payload.split_whitespace().collect();
        let channel = String::from_utf8_lossy(channel);
        match (channel.as_ref(), words.as_slice()) {
            ("+switch-master", [name, _, _, ip, port]) => {
                let Some(shard) = self.shard_of(name.as_bytes()) else {
                    return;
                };
                if let Some(addr) = node_addr(ip, port) {
                    let via = format!("{} (+switch-master)", self.label());
                    self.report(SentinelReport::Master { shard, addr, via });
                }
            }
            ("+slave", ["slave", _, ip, port, "@", master, ..]) => {
                let Some(shard) = self.shard_of(master.as_bytes()) else {
                    return;
                };
                if let Some(addr) = node_addr(ip, port) {
                    self.report(SentinelReport::Replica { shard, addr });
                }
            }
            ("+failover-end", _) => self.resync.notify_one(),
            _ => {}
        }
        // Replicas' ups and downs are shown by the proxy's own health
        // events; the rest is worth a line, once for all Sentinels.
        let about_replica = words.first() == Some(&"slave");
        if about_replica && matches!(channel.as_ref(), "+sdown" | "-sdown") {
            return;
        }
        if !self.first_report(&format!("{channel} {payload}")) {
            return;
        }
        let shard_name = words
            .iter()
            .position(|w| *w == "@")
            .and_then(|i| words.get(i + 1))
            .or(words.get(1))
            .and_then(|name| self.shard_of(name.as_bytes()))
            .and_then(|i| self.names.get(i));
        if shard_name.is_some() {
            self.record(shard_name, format!("Sentinel: {channel} {payload}"));
        }
    }
}

impl Watcher {
    /// True unless another watcher recorded the same event in the last
    /// few seconds.
    fn first_report(&self, event: &str) -> bool {
        const WINDOW: Duration = Duration::from_secs(5);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|(_, at)| at.elapsed() < WINDOW);
        if recent.iter().any(|(seen, _)| seen == event) {
            return false;
        }
        recent.push_back((event.to_string(), std::time::Instant::now()));
        true
    }
}

fn node_addr(ip: &str, port: &str) -> Option<NodeAddr> {
    let port: u16 = port.parse().ok()?;
    let addr = resolve(ip, port)?;
    Some(NodeAddr::new(addr, format!("{ip}:{port}")))
}

/// `[ip, port]` from GET-MASTER-ADDR-BY-NAME.
fn address(value: &Value) -> Option<NodeAddr> {
    let items = value.as_array()?;
    let ip = text(items.first()?)?;
    let port = text(items.get(1)?)?;
    node_addr(&ip, &port)
}

/// The replicas SENTINEL REPLICAS lists (flat field/value arrays).
fn replica_addresses(value: &Value) -> Vec<NodeAddr> {
    let Some(replicas) = value.as_array() else {
        return Vec::new();
    };
    replicas
        .iter()
        .filter_map(|replica| {
            let fields = replica.as_array()?;
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|pair| pair.first().and_then(Value::as_bytes) == Some(name.as_bytes()))
                    .and_then(|pair| pair.get(1))
                    .and_then(text)
            };
            node_addr(&field("ip")?, &field("port")?)
        })
        .collect()
}
