//! The load: client kinds that each check every reply they get.
//!
//! Every value a client writes is a token `client:key:seq` on a key only
//! that client writes, so a reply can be judged on its own: the client's
//! own latest token is right; its own older token after an acknowledged
//! write is a lost write (a [`Suspect`](crate::journal::Suspect) the
//! checker explains by failovers, or not); anything else (another key's or
//! client's token, a reply of the wrong type, a token from the future) is
//! a reply delivered to the wrong request: a violation that nothing
//! explains. Counters (INCR) record every acknowledged value for the
//! checker's loss accounting. Error replies are allowed: faults cause
//! them; what counts is that clients are served again once a fault ends.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use test_support::resp::{encode, Reply};
use test_support::RespClient;

use crate::clock::{now, Ms};
use crate::journal::{Ack, Check, ClientStats, Epoch, Journal, Kind};

/// A reply later than this is a request the proxy left hanging.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// The sum of each pair of transfer accounts.
pub const TOTAL: i64 = 1000;

pub const SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1]) \
     local n = redis.call('INCR', KEYS[2]) \
     return {n, redis.call('GET', KEYS[1])}";

/// What every client shares.
pub struct Ctx {
    pub journal: Arc<Journal>,
    pub epoch: Arc<Epoch>,
    pub stop: Arc<AtomicBool>,
    /// The proxies' ports.
    pub ports: Vec<u16>,
    /// Hash tags (`{t7}`) by the shard their keys land on.
    pub tags: Vec<Vec<String>>,
    /// Pause between two operations of one client.
    pub pace: Duration,
    /// Payloads whose PUBLISH has not been acknowledged (yet, or ever):
    /// such a message may arrive late, after newer ones.
    pub unconfirmed: Mutex<HashSet<String>>,
}

impl Ctx {
    fn tag(&self, shard: usize, n: usize) -> &str {
        let tags = &self.tags[shard];
        &tags[n % tags.len()]
    }

    fn misdelivered(&self, stats: &ClientStats, what: String) {
        self.journal
            .violation(Check::Misdelivery, format!("{}: {what}", stats.name));
    }

    fn lock_unconfirmed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> bool {
        !self.stop.load(Relaxed)
    }

    fn pause(&self) {
        std::thread::sleep(self.pace);
    }
}

/// The keys of the transfer accounts: one pair per shard, shared by the
/// WATCH clients of both proxies.
pub fn account(ctx: &Ctx, pair: usize) -> (String, String, usize) {
    let shard = pair % ctx.tags.len();
    let tag = ctx.tag(shard, 0);
    (format!("{tag}acct:x"), format!("{tag}acct:y"), shard)
}

/// A connection to one proxy, opened on demand and dropped when broken.
struct Link {
    port: u16,
    conn: Option<RespClient>,
}

impl Link {
    fn new(port: u16) -> Link {
        Link { port, conn: None }
    }

    fn conn(&mut self) -> Option<&mut RespClient> {
        if self.conn.is_none() {
            match RespClient::connect(self.port) {
                Ok(conn) => {
                    conn.set_read_timeout(Some(READ_TIMEOUT));
                    self.conn = Some(conn);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    return None;
                }
            }
        }
        self.conn.as_mut()
    }

    fn close(&mut self) {
        self.conn = None;
    }

    /// Sends `requests` as one pipeline and reads one reply each; None if
    /// the connection broke (closed then). A reply that takes longer than
    /// [`READ_TIMEOUT`] is a hang.
    fn exchange(
        &mut self,
        ctx: &Ctx,
        stats: &ClientStats,
        requests: &[Vec<String>],
    ) -> Option<Vec<Reply>> {
        let bytes: Vec<u8> = requests
            .iter()
            .flat_map(|r| encode(&r.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect();
        self.send(&bytes)?;
        self.read(ctx, stats, requests.len(), &requests[0][0])
    }

    fn send(&mut self, bytes: &[u8]) -> Option<()> {
        let conn = self.conn()?;
        if conn.send_raw(bytes).is_err() {
            self.close();
            return None;
        }
        Some(())
    }

    fn read(&mut self, ctx: &Ctx, stats: &ClientStats, n: usize, what: &str) -> Option<Vec<Reply>> {
        let conn = self.conn.as_mut()?;
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            match conn.read_reply() {
                Ok(reply) => {
                    if matches!(&reply, Reply::Error(e) if e.starts_with("READONLY")) {
                        stats.readonly.fetch_add(1, Relaxed);
                        ctx.journal.note(format!(
                            "{}: a write answered READONLY (it reached a replica) through proxy port {}",
                            stats.name, self.port
                        ));
                    }
                    replies.push(reply)
                }
                Err(e) => {
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                        ctx.journal.violation(
                            Check::Hang,
                            format!(
                                "{}: no reply to {what} within {READ_TIMEOUT:?} (proxy port {})",
                                stats.name, self.port
                            ),
                        );
                    }
                    self.close();
                    return None;
                }
            }
        }
        Some(replies)
    }
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn token(client: &str, key: usize, seq: u64) -> String {
    format!("{client}:{key}:{seq}")
}

/// How a value read back compares with what this client wrote.
#[derive(Debug, PartialEq)]
enum Seen {
    Fresh,
    Older(u64),
    Foreign,
}

fn own_value(value: &[u8], client: &str, key: usize, seq: u64) -> Seen {
    let text = String::from_utf8_lossy(value);
    let mut parts = text.splitn(3, ':');
    let (Some(c), Some(k), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Seen::Foreign;
    };
    let (Ok(k), Ok(s)) = (k.parse::<usize>(), s.parse::<u64>()) else {
        return Seen::Foreign;
    };
    if c != client || k != key || s > seq {
        Seen::Foreign
    } else if s == seq {
        Seen::Fresh
    } else {
        Seen::Older(s)
    }
}

fn is_ok(reply: &Reply) -> bool {
    *reply == Reply::Simple("OK".into())
}

/// What a client knows about its own writes to one key.
#[derive(Clone, Default)]
struct KeyHistory {
    last_acked: Option<(u64, Ms)>,
    /// Writes answered with an error or not at all: they may have run, and
    /// may still run late (a request held in the network past the proxy's
    /// timeout reaches the server after newer ones), so reading one back
    /// later is no loss.
    in_doubt: BTreeSet<u64>,
}

impl KeyHistory {
    fn record(&mut self, seq: u64, written: Option<Ms>) {
        match written {
            Some(at) => self.last_acked = Some((seq, at)),
            None => {
                self.in_doubt.insert(seq);
            }
        }
    }
}

/// A value read back from one of this client's keys, judged against the
/// write in the same batch (`seq`, acknowledged or not) and the client's
/// earlier writes.
#[allow(clippy::too_many_arguments)]
fn judge_read(
    ctx: &Ctx,
    stats: &ClientStats,
    reply: &Reply,
    key: usize,
    shard: usize,
    seq: u64,
    written: Option<Ms>,
    history: &KeyHistory,
) -> bool {
    let last_acked = history.last_acked;
    match reply {
        Reply::Bulk(value) => match own_value(value, &stats.name, key, seq) {
            Seen::Fresh => true,
            Seen::Older(old) => {
                if history.in_doubt.contains(&old) {
                    // A write that timed out, run late: no loss.
                } else if let Some(at) = written {
                    ctx.journal.suspect(
                        shard,
                        at,
                        format!("{}: key {key} read seq {old} right after its acknowledged write of seq {seq}", stats.name),
                    );
                } else if let Some((acked, at)) = last_acked.filter(|(acked, _)| old < *acked) {
                    ctx.journal.suspect(
                        shard,
                        at,
                        format!(
                            "{}: key {key} read seq {old} after seq {acked} was acknowledged",
                            stats.name
                        ),
                    );
                }
                true
            }
            Seen::Foreign => {
                ctx.misdelivered(
                    stats,
                    format!(
                        "key {key} (seq {seq}) read {:?}",
                        String::from_utf8_lossy(value)
                    ),
                );
                true
            }
        },
        Reply::Nil => {
            if let Some((acked, at)) = written.map(|at| (seq, at)).or(last_acked) {
                ctx.journal.suspect(
                    shard,
                    at,
                    format!(
                        "{}: key {key} missing after seq {acked} was acknowledged",
                        stats.name
                    ),
                );
            }
            true
        }
        Reply::Error(_) => false,
        other => {
            ctx.misdelivered(stats, format!("a read of key {key} got {other:?}"));
            true
        }
    }
}

/// An INCR's reply: acknowledged values go to the journal.
fn judge_incr(
    ctx: &Ctx,
    stats: &ClientStats,
    reply: &Reply,
    key: &str,
    shard: usize,
    sent: Ms,
) -> bool {
    match reply {
        Reply::Integer(value) => {
            ctx.journal.ack(
                key,
                shard,
                Ack {
                    value: *value,
                    sent,
                    acked: now(),
                    durable: false,
                },
            );
            true
        }
        Reply::Error(_) => false,
        other => {
            ctx.misdelivered(stats, format!("INCR {key} got {other:?}"));
            true
        }
    }
}

fn finish(ctx: &Ctx, stats: &ClientStats, served: bool) {
    if served {
        stats.success(&ctx.epoch);
    } else {
        stats.error();
    }
}

/// Starts one client thread of `kind` on proxy `proxy`.
pub fn spawn(
    ctx: Arc<Ctx>,
    kind: Kind,
    proxy: usize,
) -> (Arc<ClientStats>, std::thread::JoinHandle<()>) {
    let prefix = match kind {
        Kind::Pipeline => "pl",
        Kind::Multi => "mu",
        Kind::Watch => "wa",
        Kind::Blocking => "bl",
        Kind::Subscriber => "su",
        Kind::Publisher => "pb",
        Kind::Script => "sc",
        Kind::MultiKey => "mk",
        Kind::Durable => "du",
    };
    let stats = Arc::new(ClientStats::new(format!("{prefix}{proxy}"), kind, proxy));
    let thread = {
        let stats = stats.clone();
        std::thread::spawn(move || {
            let port = ctx.ports[proxy];
            match kind {
                Kind::Pipeline => pipeline(&ctx, &stats, port),
                Kind::Multi => multi(&ctx, &stats, port),
                Kind::Watch => transfers(&ctx, &stats, port),
                Kind::Blocking => blocking(&ctx, &stats, port),
                Kind::Subscriber => subscriber(&ctx, &stats, port, 1 - proxy),
                Kind::Publisher => publisher(&ctx, &stats, port),
                Kind::Script => script(&ctx, &stats, port),
                Kind::MultiKey => multi_key(&ctx, &stats, port),
                Kind::Durable => durable(&ctx, &stats, port),
            }
        })
    };
    (stats, thread)
}

/// Pipelines SET k token, GET k on a key per shard, then an INCR.
fn pipeline(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let keys: Vec<String> = (0..shards)
        .map(|s| format!("{}pl:{name}:{s}", ctx.tag(s, 1)))
        .collect();
    let counters: Vec<String> = (0..shards)
        .map(|s| format!("{}plc:{name}:{s}", ctx.tag(s, 1)))
        .collect();
    let mut history: Vec<KeyHistory> = vec![KeyHistory::default(); shards];
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let counter = (seq as usize) % shards;
        let mut requests = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            requests.push(cmd(&["SET", key, &token(name, i, seq)]));
            requests.push(cmd(&["GET", key]));
        }
        requests.push(cmd(&["INCR", &counters[counter]]));
        let sent = now();
        let Some(replies) = link.exchange(ctx, stats, &requests) else {
            history.iter_mut().for_each(|h| h.record(seq, None));
            stats.error();
            continue;
        };
        let at = now();
        let mut served = true;
        for i in 0..shards {
            let set = &replies[2 * i];
            let written = match set {
                r if is_ok(r) => Some(at),
                Reply::Error(_) => {
                    served = false;
                    None
                }
                other => {
                    ctx.misdelivered(stats, format!("SET got {other:?}"));
                    None
                }
            };
            served &= judge_read(
                ctx,
                stats,
                &replies[2 * i + 1],
                i,
                i,
                seq,
                written,
                &history[i],
            );
            history[i].record(seq, written);
        }
        served &= judge_incr(
            ctx,
            stats,
            &replies[2 * shards],
            &counters[counter],
            counter,
            sent,
        );
        stats.checked(requests.len() as u64);
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// MULTI; INCR; SET token; GET; EXEC: EXEC must hold exactly those replies.
fn multi(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let shard = (seq as usize) % shards;
        let tag = ctx.tag(shard, 2);
        let counter = format!("{tag}mu:{name}:c");
        let key = format!("{tag}mu:{name}:v");
        let tok = token(name, shard, seq);
        let requests = [
            cmd(&["MULTI"]),
            cmd(&["INCR", &counter]),
            cmd(&["SET", &key, &tok]),
            cmd(&["GET", &key]),
            cmd(&["EXEC"]),
        ];
        let sent = now();
        let Some(replies) = link.exchange(ctx, stats, &requests) else {
            stats.error();
            continue;
        };
        stats.checked(5);
        if !(is_ok(&replies[0]) || replies[0].is_error()) {
            ctx.misdelivered(stats, format!("MULTI got {:?}", replies[0]));
        }
        for reply in &replies[1..4] {
            if !(*reply == Reply::Simple("QUEUED".into()) || reply.is_error()) {
                ctx.misdelivered(stats, format!("a queued command got {reply:?}"));
            }
        }
        let served = match &replies[4] {
            Reply::Array(results) => {
                let expected_shape = results.len() == 3
                    && matches!(results[0], Reply::Integer(_))
                    && is_ok(&results[1])
                    && results[2] == Reply::Bulk(tok.clone().into_bytes());
                if expected_shape {
                    judge_incr(ctx, stats, &results[0], &counter, shard, sent)
                } else {
                    ctx.misdelivered(stats, format!("EXEC of seq {seq} got {results:?}"));
                    true
                }
            }
            Reply::Error(_) | Reply::Nil => false,
            other => {
                ctx.misdelivered(stats, format!("EXEC got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

fn int_value(reply: &Reply) -> Option<i64> {
    reply.bulk_str()?.parse().ok()
}

/// WATCH x y; GET both; MULTI; move an amount; EXEC, retried when another
/// client's transfer aborts it. The pair's sum must never change.
fn transfers(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let mut link = Link::new(port);
    let mut rng = fastrand::Rng::with_seed(u64::from(port));
    // A broken sum is reported once per pair and value, not per transfer.
    let mut reported: BTreeMap<usize, i64> = BTreeMap::new();
    while ctx.running() {
        let pair = rng.usize(..ctx.tags.len());
        let (x, y, shard) = account(ctx, pair);
        let Some(read) = link.exchange(
            ctx,
            stats,
            &[
                cmd(&["WATCH", &x, &y]),
                cmd(&["GET", &x]),
                cmd(&["GET", &y]),
            ],
        ) else {
            stats.error();
            continue;
        };
        stats.checked(3);
        if read.iter().any(Reply::is_error) {
            // End the WATCH before the next try.
            if link.exchange(ctx, stats, &[cmd(&["UNWATCH"])]).is_none() {
                link.close();
            }
            stats.error();
            continue;
        }
        if read[1] == Reply::Nil && read[2] == Reply::Nil {
            ctx.journal.suspect(
                shard,
                now(),
                format!("{}: transfer pair {x}, {y} vanished", stats.name),
            );
            let _ = link.exchange(ctx, stats, &[cmd(&["UNWATCH"])]);
            stats.error();
            continue;
        }
        // A missing key counts as 0: the sum check then fails, as it must.
        let value = |reply: &Reply| {
            if *reply == Reply::Nil {
                Some(0)
            } else {
                int_value(reply)
            }
        };
        let (Some(a), Some(b)) = (value(&read[1]), value(&read[2])) else {
            ctx.misdelivered(stats, format!("WATCH/GET/GET of {x}, {y} got {read:?}"));
            link.close();
            stats.error();
            continue;
        };
        if !is_ok(&read[0]) {
            ctx.misdelivered(stats, format!("WATCH got {:?}", read[0]));
        }
        if a + b != TOTAL && reported.insert(pair, a + b) != Some(a + b) {
            ctx.journal.violation(
                Check::Sum,
                format!(
                    "{}: {x} + {y} = {a} + {b} = {}, not {TOTAL}",
                    stats.name,
                    a + b
                ),
            );
        }
        let amount = rng.i64(1..=10);
        let (a, b) = if a >= amount {
            (a - amount, b + amount)
        } else {
            (a + amount, b - amount)
        };
        let Some(replies) = link.exchange(
            ctx,
            stats,
            &[
                cmd(&["MULTI"]),
                cmd(&["SET", &x, &a.to_string()]),
                cmd(&["SET", &y, &b.to_string()]),
                cmd(&["EXEC"]),
            ],
        ) else {
            stats.error();
            continue;
        };
        stats.checked(4);
        let served = match &replies[3] {
            Reply::Array(results) if results.len() == 2 && results.iter().all(is_ok) => true,
            // Another client's transfer touched the pair: WATCH did its job.
            Reply::Nil => {
                stats.retries.fetch_add(1, Relaxed);
                true
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("transfer EXEC got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// BLPOP on one connection, RPUSH of a token on another: the pop must
/// return this client's tokens in push order.
fn blocking(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shard = stats.proxy % ctx.tags.len();
    let queue = format!("{}q:{name}", ctx.tag(shard, 3));
    let mut popper = Link::new(port);
    let mut pusher = Link::new(port);
    let mut pushed: BTreeMap<u64, Ms> = BTreeMap::new();
    let mut popped: BTreeMap<u64, Ms> = BTreeMap::new();
    // Pushes answered with an error or not at all: they may run late.
    let mut doubtful: BTreeSet<u64> = BTreeSet::new();
    let mut last_popped = 0u64;
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        if popper.send(&encode(&["BLPOP", &queue, "2"])).is_none() {
            stats.error();
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
        let push = pusher.exchange(ctx, stats, &[cmd(&["RPUSH", &queue, &token(name, 0, seq)])]);
        let mut served = match push.as_deref() {
            Some([Reply::Integer(_)]) => {
                pushed.insert(seq, now());
                true
            }
            Some([Reply::Error(_)]) | None => {
                doubtful.insert(seq);
                false
            }
            Some(other) => {
                ctx.misdelivered(stats, format!("RPUSH got {other:?}"));
                true
            }
        };
        let Some(pop) = popper.read(ctx, stats, 1, "BLPOP") else {
            // The BLPOP may have taken an element whose reply was lost.
            pushed.clear();
            stats.error();
            continue;
        };
        stats.checked(2);
        match &pop[0] {
            Reply::Array(parts)
                if parts.len() == 2 && parts[0].bulk_str().as_deref() == Some(queue.as_str()) =>
            {
                let value = match &parts[1] {
                    Reply::Bulk(value) => value.clone(),
                    _ => Vec::new(),
                };
                match own_value(&value, name, 0, seq) {
                    Seen::Foreign => {
                        ctx.misdelivered(stats, format!("BLPOP {queue} got {parts:?}"))
                    }
                    Seen::Fresh | Seen::Older(_) => {
                        let got = match own_value(&value, name, 0, seq) {
                            Seen::Older(s) => s,
                            _ => seq,
                        };
                        if got <= last_popped {
                            if let Some(&at) = popped.get(&got) {
                                ctx.journal.suspect(
                                    shard,
                                    at,
                                    format!("{name}: queue element {got} delivered again (after {last_popped})"),
                                );
                            } else if !doubtful.contains(&got) {
                                ctx.journal.suspect(
                                    shard,
                                    now(),
                                    format!("{name}: acknowledged push {got} popped after {last_popped}"),
                                );
                            }
                        } else {
                            let skipped: Vec<(u64, Ms)> =
                                pushed.range(..got).map(|(s, at)| (*s, *at)).collect();
                            for (s, at) in skipped {
                                ctx.journal.suspect(
                                    shard,
                                    at,
                                    format!(
                                        "{name}: acknowledged push {s} never popped (popped {got})"
                                    ),
                                );
                                pushed.remove(&s);
                            }
                            pushed.remove(&got);
                            popped.insert(got, now());
                            while popped.len() > 1000 {
                                popped.pop_first();
                            }
                            last_popped = got;
                        }
                    }
                }
            }
            // Nothing within 2 s: the push went elsewhere or failed.
            Reply::Nil => served = false,
            // The BLPOP may have taken an element whose reply was lost.
            Reply::Error(_) => {
                pushed.clear();
                served = false;
            }
            other => ctx.misdelivered(stats, format!("BLPOP got {other:?}")),
        }
        finish(ctx, stats, served);
        ctx.pause();
    }
}

fn channels(publisher: &str, tag: &str) -> (String, String) {
    (format!("{tag}ch:{publisher}"), format!("pat:{publisher}:*"))
}

/// Publishes sequence numbers alternately on an exact channel and on
/// channels a pattern subscriber matches (spread over shards).
fn publisher(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let (exact, _) = channels(&stats.name, ctx.tag(0, 4));
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let channel = if seq % 2 == 1 {
            exact.clone()
        } else {
            format!("pat:{}:{}", stats.name, seq % 8)
        };
        let payload = format!("{}:{seq}", stats.name);
        ctx.lock_unconfirmed().insert(payload.clone());
        let Some(replies) = link.exchange(ctx, stats, &[cmd(&["PUBLISH", &channel, &payload])])
        else {
            stats.error();
            continue;
        };
        stats.checked(1);
        let served = match &replies[0] {
            Reply::Integer(_) => {
                ctx.lock_unconfirmed().remove(&payload);
                true
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("PUBLISH got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// Subscribes to the other proxy's publisher (a channel and a pattern);
/// every message must be that publisher's, on a subscribed channel, and
/// newer than the last on its channel (gaps are allowed: Pub/Sub is at
/// most once; a duplicate or a reordering is not, except for a message
/// whose PUBLISH was never acknowledged, which may have run late). Order
/// is judged per channel: channels on different shards reach the proxy
/// over different connections, and no order holds between them.
fn subscriber(ctx: &Ctx, stats: &ClientStats, port: u16, publisher_proxy: usize) {
    let publisher = format!("pb{publisher_proxy}");
    let (exact, pattern) = channels(&publisher, ctx.tag(0, 4));
    let prefix = format!("pat:{publisher}:");
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    while ctx.running() {
        let Ok(mut conn) = RespClient::connect(port) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut bytes = encode(&["SUBSCRIBE", &exact]);
        bytes.extend(encode(&["PSUBSCRIBE", &pattern]));
        if conn.send_raw(&bytes).is_err() {
            continue;
        }
        while ctx.running() {
            let reply = match conn.read_reply() {
                Ok(reply) => reply,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => {
                    stats.error();
                    break;
                }
            };
            stats.checked(1);
            let Reply::Array(parts) = &reply else {
                ctx.misdelivered(stats, format!("subscriber got {reply:?}"));
                continue;
            };
            let texts: Vec<String> = parts
                .iter()
                .map(|p| p.bulk_str().unwrap_or_default())
                .collect();
            let message = match texts.first().map(String::as_str) {
                Some("subscribe") if texts.get(1) == Some(&exact) => continue,
                Some("psubscribe") if texts.get(1) == Some(&pattern) => continue,
                Some("message") if texts.len() == 3 && texts[1] == exact => {
                    Some((&texts[1], &texts[2], 2))
                }
                Some("pmessage")
                    if texts.len() == 4 && texts[1] == pattern && texts[2].starts_with(&prefix) =>
                {
                    Some((&texts[2], &texts[3], 8))
                }
                _ => None,
            };
            let seq = message.and_then(|(_, payload, _)| {
                payload
                    .strip_prefix(&format!("{publisher}:"))?
                    .parse::<u64>()
                    .ok()
            });
            let (Some((channel, payload, step)), Some(seq)) = (message, seq) else {
                ctx.misdelivered(stats, format!("subscriber got {texts:?}"));
                continue;
            };
            let previous = last.get(channel).copied().unwrap_or(0);
            if seq > previous {
                if previous > 0 && seq > previous + step {
                    stats.retries.fetch_add(1, Relaxed);
                }
                last.insert(channel.clone(), seq);
                stats.success(&ctx.epoch);
            } else if ctx.lock_unconfirmed().contains(payload) {
                // A PUBLISH that timed out, run late.
                stats.success(&ctx.epoch);
            } else {
                ctx.misdelivered(
                    stats,
                    format!("{channel}: acknowledged message {seq} after {previous}"),
                );
            }
        }
    }
}

/// EVALSHA (EVAL on NOSCRIPT, and every tenth call) of a script that sets
/// a token, increments a counter and returns both.
fn script(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut sha: Option<String> = None;
    let mut seq = 0u64;
    while ctx.running() {
        if sha.is_none() {
            match link
                .exchange(ctx, stats, &[cmd(&["SCRIPT", "LOAD", SCRIPT])])
                .as_deref()
            {
                Some([Reply::Bulk(s)]) => sha = Some(String::from_utf8_lossy(s).into_owned()),
                _ => {
                    stats.error();
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        seq += 1;
        let shard = (seq as usize) % shards;
        let tag = ctx.tag(shard, 5);
        let key = format!("{tag}sc:{name}:v");
        let counter = format!("{tag}sc:{name}:c");
        let tok = token(name, shard, seq);
        let sent = now();
        let eval = |body: &str, verb: &str| cmd(&[verb, body, "2", &key, &counter, &tok]);
        let request = if seq.is_multiple_of(10) {
            eval(SCRIPT, "EVAL")
        } else {
            eval(sha.as_deref().unwrap_or_default(), "EVALSHA")
        };
        let Some(mut replies) = link.exchange(ctx, stats, &[request]) else {
            stats.error();
            continue;
        };
        if matches!(&replies[0], Reply::Error(e) if e.starts_with("NOSCRIPT")) {
            stats.retries.fetch_add(1, Relaxed);
            let Some(again) = link.exchange(ctx, stats, &[eval(SCRIPT, "EVAL")]) else {
                stats.error();
                continue;
            };
            replies = again;
        }
        stats.checked(1);
        let served = match &replies[0] {
            Reply::Array(parts)
                if parts.len() == 2
                    && matches!(parts[0], Reply::Integer(_))
                    && parts[1] == Reply::Bulk(tok.clone().into_bytes()) =>
            {
                judge_incr(ctx, stats, &parts[0], &counter, shard, sent)
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("script of seq {seq} got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// MSET over a key on each shard, then MGET of the same keys.
fn multi_key(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let keys: Vec<String> = (0..shards)
        .map(|s| format!("{}mk:{name}", ctx.tag(s, 6)))
        .collect();
    let mut history = KeyHistory::default();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let mut mset = vec!["MSET".to_string()];
        for (i, key) in keys.iter().enumerate() {
            mset.push(key.clone());
            mset.push(token(name, i, seq));
        }
        let mut mget = vec!["MGET".to_string()];
        mget.extend(keys.iter().cloned());
        let Some(replies) = link.exchange(ctx, stats, &[mset, mget]) else {
            history.record(seq, None);
            stats.error();
            continue;
        };
        let at = now();
        stats.checked(2);
        let written = match &replies[0] {
            r if is_ok(r) => Some(at),
            Reply::Error(_) => None,
            other => {
                ctx.misdelivered(stats, format!("MSET got {other:?}"));
                None
            }
        };
        let mut served = written.is_some();
        match &replies[1] {
            Reply::Array(values) if values.len() == shards => {
                for (i, value) in values.iter().enumerate() {
                    served &= judge_read(ctx, stats, value, i, i, seq, written, &history);
                }
            }
            Reply::Error(_) => served = false,
            other => ctx.misdelivered(stats, format!("MGET got {other:?}")),
        }
        history.record(seq, written);
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// INCR, then WAIT 1 300: a counter value WAIT confirmed is durable.
fn durable(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let shard = (seq as usize) % shards;
        let key = format!("{}du:{name}", ctx.tag(shard, 7));
        let sent = now();
        let Some(incr) = link.exchange(ctx, stats, &[cmd(&["INCR", &key])]) else {
            stats.error();
            continue;
        };
        let Reply::Integer(value) = incr[0] else {
            if !incr[0].is_error() {
                ctx.misdelivered(stats, format!("INCR {key} got {:?}", incr[0]));
            }
            stats.error();
            continue;
        };
        let incr_acked = now();
        let wait = link.exchange(ctx, stats, &[cmd(&["WAIT", "1", "300"])]);
        stats.checked(2);
        let replicas = match wait.as_deref() {
            Some([Reply::Integer(n)]) => Some(*n),
            Some([Reply::Error(_)]) | None => None,
            Some(other) => {
                ctx.misdelivered(stats, format!("WAIT got {other:?}"));
                None
            }
        };
        let durable = replicas.is_some_and(|n| n >= 1);
        let acked = if durable { now() } else { incr_acked };
        ctx.journal.ack(
            &key,
            shard,
            Ack {
                value,
                sent,
                acked,
                durable,
            },
        );
        finish(ctx, stats, replicas.is_some());
        ctx.pause();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_judged_by_client_key_and_sequence() {
        assert_eq!(own_value(b"pl0:1:7", "pl0", 1, 7), Seen::Fresh);
        assert_eq!(own_value(b"pl0:1:5", "pl0", 1, 7), Seen::Older(5));
        assert_eq!(own_value(b"pl0:1:8", "pl0", 1, 7), Seen::Foreign);
        assert_eq!(own_value(b"pl1:1:7", "pl0", 1, 7), Seen::Foreign);
        assert_eq!(own_value(b"pl0:2:7", "pl0", 1, 7), Seen::Foreign);
        assert_eq!(own_value(b"OK", "pl0", 1, 7), Seen::Foreign);
    }
}
