//! The records of a run: what the faults did, what Sentinel decided, and
//! what clients were told. Clients and watchers append; the checker
//! ([`crate::check`]) reads a snapshot at the end and nothing else.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::clock::{now, Ms};

/// The kinds of clients in the load (one or more of each per proxy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pipeline,
    Multi,
    Watch,
    Blocking,
    Subscriber,
    Publisher,
    Script,
    MultiKey,
    Durable,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Pipeline,
        Kind::Multi,
        Kind::Watch,
        Kind::Blocking,
        Kind::Subscriber,
        Kind::Publisher,
        Kind::Script,
        Kind::MultiKey,
        Kind::Durable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline SET/GET/INCR",
            Kind::Multi => "MULTI/EXEC",
            Kind::Watch => "WATCH transfers",
            Kind::Blocking => "BLPOP + RPUSH",
            Kind::Subscriber => "Pub/Sub subscriber",
            Kind::Publisher => "Pub/Sub publisher",
            Kind::Script => "EVALSHA/EVAL",
            Kind::MultiKey => "MSET/MGET 3 shards",
            Kind::Durable => "INCR + WAIT 1",
        }
    }
}

/// The fault kinds (see [`crate::faults`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    KillMaster,
    KillReplica,
    StopMaster,
    StopReplica,
    KillSentinel,
    RestartProxy,
    LinkDelay,
    LinkStall,
    LinkReset,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::KillMaster,
        FaultKind::KillReplica,
        FaultKind::StopMaster,
        FaultKind::StopReplica,
        FaultKind::KillSentinel,
        FaultKind::RestartProxy,
        FaultKind::LinkDelay,
        FaultKind::LinkStall,
        FaultKind::LinkReset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillMaster => "kill -9 master",
            FaultKind::KillReplica => "kill -9 replica",
            FaultKind::StopMaster => "SIGSTOP master",
            FaultKind::StopReplica => "SIGSTOP replica",
            FaultKind::KillSentinel => "kill -9 Sentinel",
            FaultKind::RestartProxy => "restart proxy",
            FaultKind::LinkDelay => "link delay",
            FaultKind::LinkStall => "link stall",
            FaultKind::LinkReset => "link reset",
        }
    }
}

/// One fault, from its first effect to the moment it was undone.
#[derive(Clone, Debug)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// The shard whose node was hit, if a node was.
    pub shard: Option<usize>,
    /// The node's address as everyone knows it (its relay port).
    pub node: Option<u16>,
    pub start: Ms,
    pub end: Ms,
    pub detail: String,
}

/// A master change Sentinel announced (`+switch-master`).
#[derive(Clone, Debug)]
pub struct Failover {
    pub shard: usize,
    pub at: Ms,
    pub from: u16,
    pub to: u16,
}

/// One acknowledged INCR: the counter's value the client was told.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ack {
    pub value: i64,
    pub sent: Ms,
    /// When the client had its answer (for a durable write: WAIT's reply).
    pub acked: Ms,
    /// `WAIT 1` said a replica had it.
    pub durable: bool,
}

/// Every acknowledged value of one counter key, in the order received. A
/// counter is written by one client only.
#[derive(Clone, Debug, Default)]
pub struct CounterLog {
    pub shard: usize,
    pub acks: Vec<Ack>,
}

/// A client saw an acknowledged write missing (an older value of its own
/// key, a queue element skipped or delivered twice): a loss, explained or
/// not by the failover windows of its shard.
#[derive(Clone, Debug)]
pub struct Suspect {
    pub shard: usize,
    /// When the write that went missing was sent, and answered.
    pub sent: Ms,
    pub acked: Ms,
    pub seen: Ms,
    pub what: String,
}

/// What a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// A proxy exited by itself, exited non-zero on SIGTERM, or logged a panic.
    Crash,
    /// A reply that was not the answer to the client's own request, in order.
    Misdelivery,
    /// Transfers between two keys changed their sum.
    Sum,
    /// A request left unanswered past the clients' read timeout.
    Hang,
    /// A client not served again within the bound after a fault.
    Recovery,
    /// The topology did not heal within its deadline after a fault.
    Heal,
    /// An acknowledged write lost outside every failover window.
    Loss,
    /// A write that `WAIT 1` confirmed, lost with no failover before WAIT returned.
    DurableLoss,
    /// A proxy's resident memory grew past the bound after warm-up.
    Rss,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub at: Ms,
    pub check: Check,
    pub detail: String,
}

/// A client's time to its first success after a fault ended.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub fault: usize,
    pub client: String,
    pub kind: Kind,
    /// None: not served within the deadline.
    pub after: Option<Ms>,
}

/// Resident memory samples of one proxy process (one incarnation).
#[derive(Clone, Debug, Default)]
pub struct RssSeries {
    pub proxy: usize,
    pub incarnation: usize,
    /// (time, KiB)
    pub samples: Vec<(Ms, u64)>,
}

/// Everything recorded, as the checker gets it.
#[derive(Clone, Debug, Default)]
pub struct Records {
    pub faults: Vec<FaultRecord>,
    pub failovers: Vec<Failover>,
    pub counters: HashMap<String, CounterLog>,
    pub suspects: Vec<Suspect>,
    pub violations: Vec<Violation>,
    pub recoveries: Vec<Recovery>,
    pub rss: Vec<RssSeries>,
    pub notes: Vec<String>,
    /// (when, ms) a 50 ms sleep of the harness woke more than 200 ms late.
    pub stalls: Vec<(Ms, Ms)>,
}

/// The shared, appendable journal.
#[derive(Default)]
pub struct Journal {
    records: Mutex<Records>,
}

impl Journal {
    fn with<T>(&self, f: impl FnOnce(&mut Records) -> T) -> T {
        f(&mut self.records.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn snapshot(&self) -> Records {
        self.with(|r| r.clone())
    }

    pub fn fault(&self, record: FaultRecord) -> usize {
        self.with(|r| {
            r.faults.push(record);
            r.faults.len() - 1
        })
    }

    /// Records a `+switch-master` (each Sentinel announces it: once is
    /// kept). True when it was new.
    pub fn failover(&self, shard: usize, from: u16, to: u16) -> bool {
        let at = now();
        self.with(|r| {
            let seen = r
                .failovers
                .iter()
                .rev()
                .find(|f| f.shard == shard)
                .is_some_and(|f| f.to == to && f.from == from && at.saturating_sub(f.at) < 60_000);
            if !seen {
                r.failovers.push(Failover {
                    shard,
                    at,
                    from,
                    to,
                });
            }
            !seen
        })
    }

    pub fn failovers(&self) -> Vec<Failover> {
        self.with(|r| r.failovers.clone())
    }

    pub fn ack(&self, key: &str, shard: usize, ack: Ack) {
        self.with(|r| {
            let log = r.counters.entry(key.to_string()).or_default();
            log.shard = shard;
            log.acks.push(ack);
        });
    }

    /// `span`: when the write that went missing was sent, and answered.
    pub fn suspect(&self, shard: usize, span: (Ms, Ms), what: String) {
        let seen = now();
        let (sent, acked) = span;
        self.with(|r| {
            r.suspects.push(Suspect {
                shard,
                sent,
                acked,
                seen,
                what,
            })
        });
    }

    pub fn violation(&self, check: Check, detail: String) {
        let at = now();
        eprintln!("[{}] VIOLATION {check}: {detail}", crate::clock::secs(at));
        self.with(|r| r.violations.push(Violation { at, check, detail }));
    }

    pub fn recovery(&self, recovery: Recovery) {
        self.with(|r| r.recoveries.push(recovery));
    }

    pub fn rss(&self, proxy: usize, incarnation: usize, kib: u64) {
        let at = now();
        self.with(|r| {
            match r
                .rss
                .iter_mut()
                .find(|s| s.proxy == proxy && s.incarnation == incarnation)
            {
                Some(series) => series.samples.push((at, kib)),
                None => r.rss.push(RssSeries {
                    proxy,
                    incarnation,
                    samples: vec![(at, kib)],
                }),
            }
        });
    }

    pub fn stall(&self, late: Ms) {
        let at = now();
        self.with(|r| r.stalls.push((at, late)));
    }

    pub fn note(&self, note: String) {
        let line = format!("[{}] {note}", crate::clock::secs(now()));
        eprintln!("{line}");
        self.with(|r| r.notes.push(line));
    }
}

/// Counters of one client, shared with the scheduler.
pub struct ClientStats {
    pub name: String,
    pub kind: Kind,
    pub proxy: usize,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    /// Replies compared with what they must be.
    pub checked: AtomicU64,
    /// Kind-specific: WATCH aborts, NOSCRIPT fallbacks, Pub/Sub gaps.
    pub retries: AtomicU64,
    /// Writes answered `-READONLY`: they reached a node in the replica role.
    pub readonly: AtomicU64,
    served_epoch: AtomicU64,
    served_at: AtomicU64,
}

impl ClientStats {
    pub fn new(name: String, kind: Kind, proxy: usize) -> ClientStats {
        ClientStats {
            name,
            kind,
            proxy,
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            readonly: AtomicU64::new(0),
            served_epoch: AtomicU64::new(0),
            served_at: AtomicU64::new(0),
        }
    }

    /// A successful operation: counts it, and marks the client served in
    /// the current epoch (the first success after a fault ended).
    pub fn success(&self, epoch: &Epoch) {
        self.ok.fetch_add(1, Relaxed);
        let current = epoch.number.load(Relaxed);
        if self.served_epoch.load(Relaxed) < current {
            self.served_at.store(now(), Relaxed);
            self.served_epoch.store(current, Relaxed);
        }
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    pub fn checked(&self, n: u64) {
        self.checked.fetch_add(n, Relaxed);
    }

    /// When this client first succeeded in `epoch`, if it has.
    pub fn served_in(&self, epoch: u64) -> Option<Ms> {
        (self.served_epoch.load(Relaxed) >= epoch).then(|| self.served_at.load(Relaxed))
    }
}

/// Epochs start when a fault ends; clients record their first success in
/// each.
#[derive(Default)]
pub struct Epoch {
    pub number: AtomicU64,
}

impl Epoch {
    /// Starts a new epoch and returns its number.
    pub fn next(&self) -> u64 {
        self.number.fetch_add(1, Relaxed) + 1
    }
}
