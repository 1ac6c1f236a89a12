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
//!
//! # Layout
//! - this module: the shared context, connections, and the rules that
//!   judge a read back, an INCR, a batch.
//! - `writes`: pipelined SET/GET/INCR, MSET/MGET over every shard, INCR +
//!   WAIT.
//! - `transactions`: MULTI/EXEC, WATCH transfers, EVALSHA/EVAL.
//! - `queue`: BLPOP + RPUSH.
//! - `pubsub`: the publisher and the subscriber.

use std::collections::{BTreeSet, HashSet};

mod pubsub;
mod queue;
mod transactions;
mod writes;
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
    /// The last acknowledged write: its seq, when sent and answered.
    last_acked: Option<(u64, (Ms, Ms))>,
    /// Writes answered with an error or not at all: they may have run, and
    /// may still run late (a request held in the network past the proxy's
    /// timeout reaches the server after newer ones), so reading one back
    /// later is no loss.
    in_doubt: BTreeSet<u64>,
}

impl KeyHistory {
    fn record(&mut self, seq: u64, written: Option<(Ms, Ms)>) {
        match written {
            Some(span) => self.last_acked = Some((seq, span)),
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
    written: Option<(Ms, Ms)>,
    history: &KeyHistory,
) -> bool {
    let last_acked = history.last_acked;
    match reply {
        Reply::Bulk(value) => match own_value(value, &stats.name, key, seq) {
            Seen::Fresh => true,
            Seen::Older(old) => {
                if history.in_doubt.contains(&old) {
                    // A write that timed out, run late: no loss.
                } else if let Some(span) = written {
                    ctx.journal.suspect(
                        shard,
                        span,
                        format!("{}: key {key} read seq {old} right after its acknowledged write of seq {seq}", stats.name),
                    );
                } else if let Some((acked, span)) = last_acked.filter(|(acked, _)| old < *acked) {
                    ctx.journal.suspect(
                        shard,
                        span,
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
            if let Some((acked, span)) = written.map(|span| (seq, span)).or(last_acked) {
                ctx.journal.suspect(
                    shard,
                    span,
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
                Kind::Pipeline => writes::pipeline(&ctx, &stats, port),
                Kind::Multi => transactions::multi(&ctx, &stats, port),
                Kind::Watch => transactions::transfers(&ctx, &stats, port),
                Kind::Blocking => queue::blocking(&ctx, &stats, port),
                Kind::Subscriber => pubsub::subscriber(&ctx, &stats, port, 1 - proxy),
                Kind::Publisher => pubsub::publisher(&ctx, &stats, port),
                Kind::Script => transactions::script(&ctx, &stats, port),
                Kind::MultiKey => writes::multi_key(&ctx, &stats, port),
                Kind::Durable => writes::durable(&ctx, &stats, port),
            }
        })
    };
    (stats, thread)
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
