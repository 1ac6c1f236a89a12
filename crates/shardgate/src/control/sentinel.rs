//! Following Redis Sentinel: one watcher per listed Sentinel, each with a
//! query connection (each master's address and replicas, asked at start,
//! every few seconds and after reconnects) and a subscription to its
//! events (`+switch-master` first of all). Reports go to the pool's
//! controller, which verifies a new master with ROLE before moving writes.
//! Watchers are independent: the pool keeps working while some Sentinels
//! are down, and with none it keeps the addresses it has.
//!
//! Sentinels can disagree (one partitioned away, or monitoring with a
//! stale configuration). Queries carry each master's `config-epoch`, which
//! a failover raises: a report older than the newest the pool has heard, or
//! naming another master at the same epoch, is set aside (and logged once)
//! rather than moving writes back and forth, unless a majority of the
//! pool's Sentinels now name that master and the newest word is not
//! itself fresh (a master monitored afresh starts again at epoch 0; right
//! after a failover, Sentinels that have not heard of it yet are a
//! majority for a moment). `+switch-master` is always followed: Sentinel
//! publishes it only after a failover its majority authorised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use resp::Value;
use tokio::sync::{mpsc, Notify};

use super::Input;
use crate::backend::wire::{text, WireConn};
use crate::backend::Handshake;
use crate::config::{NodeConfig, PoolConfig};
use crate::topology::group::resolve;
use crate::topology::{Events, NodeAddr};

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
    /// This watcher's Sentinel's place in the pool's list.
    index: usize,
    /// Per shard, what the pool's Sentinels say about its master.
    claims: Arc<std::sync::Mutex<Vec<Claims>>>,
}

/// A master a Sentinel named, and the configuration epoch it named it in.
#[derive(Debug, Clone, Copy)]
struct Claim {
    epoch: u64,
    addr: std::net::SocketAddr,
}

/// One shard's master as the pool's Sentinels name it.
#[derive(Debug, Clone)]
struct Claims {
    /// The newest word: the master followed.
    newest: Option<Claim>,
    /// When `newest` last moved to another master.
    moved_at: Option<Instant>,
    /// Per Sentinel, the master it named last.
    heard: Vec<Option<std::net::SocketAddr>>,
}

impl Claims {
    /// Nothing heard yet from any of `sentinels` Sentinels.
    fn new(sentinels: usize) -> Claims {
        Claims {
            newest: None,
            moved_at: None,
            heard: vec![None; sentinels],
        }
    }
}

/// How long after the newest word moved a majority naming another master
/// is not enough: Sentinels learn a failover from each other within a few
/// seconds, and each is queried every [`RESYNC`].
const MAJORITY_GRACE: Duration = Duration::from_secs(30);

/// Starts a watcher per Sentinel of the pool.
pub fn spawn_watchers(
    config: &PoolConfig,
    names: Vec<Arc<str>>,
    tx: mpsc::UnboundedSender<Input>,
    events: Arc<Events>,
) {
    let recent = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let claims = Claims::new(config.sentinels.len());
    let claims = Arc::new(std::sync::Mutex::new(vec![claims; names.len()]));
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
            },
            timeout: config.connect_timeout,
            tx: tx.clone(),
            events: events.clone(),
            resync: Notify::new(),
            recent: recent.clone(),
            index,
            claims: claims.clone(),
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
                        &[b"SENTINEL", b"MASTER", name.as_bytes()],
                        &[b"SENTINEL", b"REPLICAS", name.as_bytes()],
                    ],
                    self.timeout,
                )
                .await?;
            let [master, replicas] = replies.as_slice() else {
                return Err("short reply".into());
            };
            match master_claim(master) {
                Some((addr, epoch)) => {
                    if self.newest_claim(shard, epoch, &addr) {
                        let via = format!("{} (query)", self.label());
                        self.report(SentinelReport::Master { shard, addr, via });
                    }
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
                    self.switched(shard, &addr);
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
    /// Whether a queried master (named in `epoch`) is the newest word on
    /// the shard (see [`judge`]); if not, it is logged once.
    fn newest_claim(&self, shard: usize, epoch: u64, addr: &NodeAddr) -> bool {
        let judged = {
            let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
            let Some(claims) = claims.get_mut(shard) else {
                return false;
            };
            judge(claims, self.index, epoch, addr.addr, Instant::now())
        };
        let Err(newest) = judged else {
            return true;
        };
        let message = format!(
            "{} names {} (config epoch {epoch}) as master, but {} (epoch {}) is newer or came first, and most Sentinels do not agree; not followed",
            self.label(),
            addr.label,
            newest.addr,
            newest.epoch
        );
        if self.first_report(&message) {
            self.record(self.names.get(shard), message);
        }
        false
    }

    /// `+switch-master`: the shard's master is now `addr`, whatever the
    /// epochs heard so far (queries then bring the new epoch).
    fn switched(&self, shard: usize, addr: &NodeAddr) {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(claims) = claims.get_mut(shard) {
            if let Some(heard) = claims.heard.get_mut(self.index) {
                *heard = Some(addr.addr);
            }
            let epoch = claims.newest.map_or(0, |claim| claim.epoch);
            if claims.newest.is_some_and(|claim| claim.addr != addr.addr) {
                claims.moved_at = Some(Instant::now());
            }
            claims.newest = Some(Claim {
                epoch,
                addr: addr.addr,
            });
        }
    }

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

/// Sentinel `sentinel` names `addr` master in `epoch`: taken as the newest
/// word if it is the first, the same master as the newest, a newer epoch,
/// or what a majority of the pool's Sentinels now say when the newest word
/// has stood for [`MAJORITY_GRACE`] (a master monitored afresh starts again
/// at epoch 0; the newest epoch is kept, so a lone stale Sentinel cannot
/// take it back). Err with the claim it loses to.
fn judge(
    claims: &mut Claims,
    sentinel: usize,
    epoch: u64,
    addr: std::net::SocketAddr,
    now: Instant,
) -> Result<(), Claim> {
    if let Some(heard) = claims.heard.get_mut(sentinel) {
        *heard = Some(addr);
    }
    let agreeing = claims.heard.iter().filter(|h| **h == Some(addr)).count();
    let settled = claims
        .moved_at
        .is_none_or(|at| now.saturating_duration_since(at) >= MAJORITY_GRACE);
    let overrides = agreeing * 2 > claims.heard.len() && settled;
    match &mut claims.newest {
        Some(claim) if claim.addr == addr => {
            claim.epoch = claim.epoch.max(epoch);
            Ok(())
        }
        Some(claim) if epoch <= claim.epoch && !overrides => Err(*claim),
        newest => {
            if newest.is_some() {
                claims.moved_at = Some(now);
            }
            let epoch = newest.map_or(epoch, |claim| claim.epoch.max(epoch));
            *newest = Some(Claim { epoch, addr });
            Ok(())
        }
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

/// The master's address and config epoch, from SENTINEL MASTER.
fn master_claim(value: &Value) -> Option<(NodeAddr, u64)> {
    let fields = value.as_array()?;
    let addr = node_addr(&field(fields, "ip")?, &field(fields, "port")?)?;
    let epoch = field(fields, "config-epoch").and_then(|e| e.parse().ok());
    Some((addr, epoch.unwrap_or(0)))
}

/// The replicas SENTINEL REPLICAS lists, but those Sentinel itself sees
/// down or disconnected: Sentinel never forgets a replica, and the proxy
/// would otherwise take a long-gone one in again and again.
fn replica_addresses(value: &Value) -> Vec<NodeAddr> {
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
            node_addr(&field(fields, "ip")?, &field(fields, "port")?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Three Sentinels that all name `port` master in `epoch`.
    fn all_three_name(port: u16, epoch: u64) -> Claims {
        Claims {
            newest: Some(Claim {
                epoch,
                addr: addr(port),
            }),
            moved_at: None,
            heard: vec![Some(addr(port)); 3],
        }
    }

    #[test]
    fn a_stale_or_disagreeing_sentinel_is_not_followed() {
        // Three Sentinels: 0, 1, 2.
        let mut c = Claims::new(3);
        let now = Instant::now();
        assert!(
            judge(&mut c, 0, 0, addr(1), now).is_ok(),
            "the first word is taken"
        );
        // Another master at the same epoch: the first one stays.
        assert_eq!(judge(&mut c, 1, 0, addr(2), now).unwrap_err().addr, addr(1));
        // A failover raised the epoch: followed.
        assert!(judge(&mut c, 0, 3, addr(2), now).is_ok());
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((3, addr(2))));
        // A Sentinel still on the old configuration: not followed, again
        // and again.
        assert_eq!(judge(&mut c, 2, 0, addr(1), now).unwrap_err().epoch, 3);
        assert!(judge(&mut c, 2, 0, addr(1), now).is_err());
        // The same master again, from any epoch: fine.
        assert!(judge(&mut c, 1, 2, addr(2), now).is_ok());
    }

    #[test]
    fn a_master_most_sentinels_name_is_followed_whatever_its_epoch() {
        // The master was monitored afresh (SENTINEL REMOVE + MONITOR): its
        // epoch starts again at 0, and no +switch-master is published.
        let mut c = all_three_name(1, 5);
        let now = Instant::now();
        assert!(
            judge(&mut c, 0, 0, addr(7), now).is_err(),
            "one of three is not enough"
        );
        assert!(
            judge(&mut c, 1, 0, addr(7), now).is_ok(),
            "two of three are"
        );
        // The epoch heard stays, so a lone stale Sentinel cannot flip it back.
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((5, addr(7))));
        assert!(judge(&mut c, 2, 5, addr(1), now).is_err());
    }

    #[test]
    fn right_after_a_failover_sentinels_not_yet_told_are_no_majority() {
        // X at epoch 5 everywhere; Sentinel 0 leads a failover to Y (epoch
        // 6); Sentinels 1 and 2 still name X for a moment.
        let mut c = all_three_name(1, 5);
        let now = Instant::now();
        assert!(judge(&mut c, 0, 6, addr(2), now).is_ok());
        assert!(judge(&mut c, 1, 5, addr(1), now).is_err());
        let later = now + Duration::from_secs(3);
        assert!(judge(&mut c, 2, 5, addr(1), later).is_err());
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((6, addr(2))));
        // Long after, a majority naming another master is followed again.
        let much_later = now + MAJORITY_GRACE + Duration::from_secs(1);
        assert!(judge(&mut c, 1, 0, addr(3), much_later).is_err());
        assert!(judge(&mut c, 2, 0, addr(3), much_later).is_ok());
    }

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
        let (node, epoch) = master_claim(&master).expect("a claim");
        assert_eq!((node.addr, epoch), (addr(7001), 4));
        let replicas = Value::Array(vec![
            flat(&[("ip", "127.0.0.1"), ("port", "7002"), ("flags", "slave")]),
            flat(&[
                ("ip", "127.0.0.1"),
                ("port", "7003"),
                ("flags", "s_down,slave,disconnected"),
            ]),
        ]);
        let found: Vec<_> = replica_addresses(&replicas)
            .into_iter()
            .map(|n| n.addr)
            .collect();
        assert_eq!(found, vec![addr(7002)]);
    }
}
