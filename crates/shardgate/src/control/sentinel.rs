//! Following Redis Sentinel: one watcher per listed Sentinel, each with a
//! query connection (each master's address, config epoch and replicas,
//! asked at start, every few seconds and after reconnects) and a
//! subscription to its events (`+switch-master` first of all). What each
//! Sentinel says goes to the pool's controller as it is; which Sentinel to
//! believe is the controller's decision (`shardgate_core::control`), and
//! a new master is verified with ROLE before writes move. Watchers are
//! independent: the pool keeps working while some Sentinels are down, and
//! with none it keeps the addresses it has.

use std::sync::Arc;
use std::time::Duration;

use resp::Value;
use shardgate_core::control::Input;
use shardgate_core::error::NodeError;
use tokio::sync::{mpsc, Notify};

use crate::backend::resolve::Resolver;
use crate::backend::wire::{text, WireConn};
use crate::backend::Handshake;
use crate::config::{NodeConfig, PoolConfig};
use crate::topology::{Events, NodeAddr};

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
    /// This watcher's Sentinel's place in the pool's list.
    index: usize,
    /// Host names Sentinel reports, resolved (shared by the watcher's loops).
    resolver: tokio::sync::Mutex<Resolver>,
}

/// Starts a watcher per Sentinel of the pool; returns their tasks.
pub fn spawn_watchers(
    config: &PoolConfig,
    names: Vec<Arc<str>>,
    tx: mpsc::UnboundedSender<Input>,
    events: Arc<Events>,
    tls: crate::backend::handshake::Connector,
) -> Vec<tokio::task::AbortHandle> {
    let mut tasks = Vec::new();
    let recent = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    for (index, sentinel) in config.sentinels.iter().enumerate() {
        let watcher = Arc::new(Watcher {
            sentinel: sentinel.clone(),
            pool: config.name.as_str().into(),
            names: names.clone(),
            handshake: Handshake {
                auth: config.sentinel_auth.clone(),
                db: 0,
                resp3: false,
                client_name: None,
                ask_id: false,
                readonly: false,
                tls: tls.clone(),
            },
            timeout: config.connect_timeout,
            tx: tx.clone(),
            events: events.clone(),
            resync: Notify::new(),
            recent: recent.clone(),
            index,
            resolver: tokio::sync::Mutex::new(Resolver::default()),
        });
        tasks.push(tokio::task::spawn_local(watcher.clone().query_loop()).abort_handle());
        tasks.push(tokio::task::spawn_local(watcher.subscribe_loop()).abort_handle());
    }
    tasks
}

impl Watcher {
    fn label(&self) -> String {
        format!("Sentinel {}", self.sentinel.label())
    }

    fn report(&self, input: Input) -> bool {
        self.tx.send(input).is_ok()
    }

    /// `ip:port` as Sentinel reports it, resolved.
    async fn node_addr(&self, ip: &str, port: &str) -> Option<NodeAddr> {
        let port: u16 = port.parse().ok()?;
        let addr = self.resolver.lock().await.lookup(ip, port).await?;
        Some(NodeAddr::new(addr, format!("{ip}:{port}")))
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

    async fn query_all(&self) -> Result<(), NodeError> {
        let mut conn = WireConn::connect(self.sentinel.addr, &self.handshake, self.timeout).await?;
        for (shard, name) in self.names.iter().enumerate() {
            let replies = conn
                .query(
                    &[
                        &[b"SENTINEL", b"MASTER", name.as_bytes()],
                        &[b"SENTINEL", b"REPLICAS", name.as_bytes()],
                    ],
                    self.timeout,
                )
                .await?;
            let [master, replicas] = replies.as_slice() else {
                return Err(NodeError::Unexpected("short reply".into()));
            };
            let claim = match master_claim(master) {
                Some((ip, port, epoch)) => self.node_addr(&ip, &port).await.map(|a| (a, epoch)),
                None => None,
            };
            match claim {
                Some((addr, epoch)) => {
                    let via = format!("{} (query)", self.label());
                    self.report(Input::SentinelMaster {
                        sentinel: self.index,
                        shard,
                        addr,
                        epoch: Some(epoch),
                        via,
                    });
                }
                None => self.record(
                    Some(name),
                    format!("{} does not know a master named '{name}'", self.label()),
                ),
            }
            for (ip, port) in replica_addresses(replicas) {
                if let Some(addr) = self.node_addr(&ip, &port).await {
                    self.report(Input::SentinelReplica { shard, addr });
                }
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
                            self.on_message(&value).await;
                        }
                    }
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
    }

    async fn subscribe(&self) -> Result<WireConn, NodeError> {
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

    async fn on_message(&self, value: &Value) {
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
                if let Some(addr) = self.node_addr(ip, port).await {
                    let via = format!("{} (+switch-master)", self.label());
                    self.report(Input::SentinelMaster {
                        sentinel: self.index,
                        shard,
                        addr,
                        epoch: None,
                        via,
                    });
                }
            }
            ("+slave", ["slave", _, ip, port, "@", master, ..]) => {
                let Some(shard) = self.shard_of(master.as_bytes()) else {
                    return;
                };
                if let Some(addr) = self.node_addr(ip, port).await {
                    self.report(Input::SentinelReplica { shard, addr });
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

/// One field of a flat field/value array (SENTINEL MASTER, REPLICAS).
fn field(fields: &[Value], name: &str) -> Option<String> {
    fields
        .chunks(2)
        .find(|pair| pair.first().and_then(Value::as_bytes) == Some(name.as_bytes()))
        .and_then(|pair| pair.get(1))
        .and_then(text)
}

/// The master's ip, port and config epoch, from SENTINEL MASTER.
fn master_claim(value: &Value) -> Option<(String, String, u64)> {
    let fields = value.as_array()?;
    let epoch = field(fields, "config-epoch").and_then(|e| e.parse().ok());
    Some((
        field(fields, "ip")?,
        field(fields, "port")?,
        epoch.unwrap_or(0),
    ))
}

/// The replicas SENTINEL REPLICAS lists, but those Sentinel itself sees
/// down or disconnected: Sentinel never forgets a replica, and the proxy
/// would otherwise take a long-gone one in again and again.
fn replica_addresses(value: &Value) -> Vec<(String, String)> {
    let Some(replicas) = value.as_array() else {
        return Vec::new();
    };
    replicas
        .iter()
        .filter_map(|replica| {
            let fields = replica.as_array()?;
            let flags = field(fields, "flags").unwrap_or_default();
            let gone = flags
                .split(',')
                .any(|flag| matches!(flag, "s_down" | "o_down" | "disconnected"));
            if gone {
                return None;
            }
            Some((field(fields, "ip")?, field(fields, "port")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Value {
        Value::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| {
                    [
                        Value::Bulk(k.as_bytes().to_vec().into()),
                        Value::Bulk(v.as_bytes().to_vec().into()),
                    ]
                })
                .collect(),
        )
    }

    #[test]
    fn reads_the_masters_epoch_and_skips_replicas_sentinel_sees_down() {
        let master = flat(&[
            ("name", "s1"),
            ("ip", "127.0.0.1"),
            ("port", "7001"),
            ("config-epoch", "4"),
        ]);
        let claim = master_claim(&master).expect("a claim");
        assert_eq!(claim, ("127.0.0.1".to_string(), "7001".to_string(), 4));
        let replicas = Value::Array(vec![
            flat(&[("ip", "127.0.0.1"), ("port", "7002"), ("flags", "slave")]),
            flat(&[
                ("ip", "127.0.0.1"),
                ("port", "7003"),
                ("flags", "s_down,slave,disconnected"),
            ]),
        ]);
        let found = replica_addresses(&replicas);
        assert_eq!(found, vec![("127.0.0.1".to_string(), "7002".to_string())]);
    }
}
