//! The background mover: scans each shard, and migrates the keys whose
//! owner changes to their destination, at the pool's rate, resuming from
//! checkpoints. It reads the pool's topology at every batch, so it
//! follows a failover of either side.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::Value;
use tokio::sync::mpsc;

use super::store::Progress;
use crate::backend::wire::{text, WireConn};
use crate::backend::Handshake;
use crate::config::PoolConfig;
use crate::error::NodeError;
use crate::pool::PoolState;
use crate::topology::Topology;
use MoverErrorKind::{Migrate, NoMaster, Replicas, Server, Stopped};

/// Keys per SCAN step and per MIGRATE.
const SCAN_COUNT: &str = "1000";
pub(super) const BATCH: usize = 100;
/// A big key's MIGRATE may take this long.
const BIG_KEY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the mover tells its coordinator.
#[derive(Debug)]
pub enum MoverEvent {
    /// `source` (`"{shard}/{db}"`) scanned up to `cursor` (`"{master}
    /// {cursor}"`, the cursor `done` once it is scanned through);
    /// `keys` and `bytes` moved since the last checkpoint.
    Checkpoint {
        source: String,
        cursor: String,
        keys: u64,
        bytes: u64,
        /// Keys the SCAN step returned (moving or not).
        scanned: u64,
    },
    /// Keys this mover has to scan, in the sources it has not scanned
    /// through (`INFO keyspace` at its start): with `scanned`, the time
    /// left.
    ToScan(u64),
    /// A big key is about to move: every proxy must know the servers
    /// will be silent for a while (true), or it moved (false).
    BigKeyMoving(bool),
    /// A key at least `reshard_big_key_bytes` large, moved alone.
    BigKey {
        key: String,
        bytes: u64,
        took: Duration,
    },
    /// Every key moved.
    Finished,
    /// Stopped; the coordinator retries later.
    Failed(MoverError),
}

/// Why a mover stopped: its kind (a metric label) and what happened.
#[derive(Debug)]
pub struct MoverError {
    pub kind: MoverErrorKind,
    pub message: String,
}

/// What kind of trouble stopped a mover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoverErrorKind {
    /// A server could not be reached, or answered SCAN, INFO or MEMORY
    /// USAGE oddly.
    Server,
    /// `MIGRATE` answered an error (IOERR: the destination could not be
    /// reached or timed out; BUSYKEY, OOM, ...).
    Migrate,
    /// `WAIT` found fewer replicas with a batch's deletions than the
    /// source has.
    Replicas,
    /// A shard had no master (a failover under way).
    NoMaster,
    /// Asked to stop (an abort, a pause, a new generation).
    Stopped,
}

impl MoverErrorKind {
    pub const ALL: [MoverErrorKind; crate::pool::MOVER_ERROR_KINDS] = [
        MoverErrorKind::Server,
        MoverErrorKind::Migrate,
        MoverErrorKind::Replicas,
        MoverErrorKind::NoMaster,
        MoverErrorKind::Stopped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            MoverErrorKind::Server => "server",
            MoverErrorKind::Migrate => "migrate",
            MoverErrorKind::Replicas => "replicas",
            MoverErrorKind::NoMaster => "no_master",
            MoverErrorKind::Stopped => "stopped",
        }
    }
}

impl MoverError {
    fn new<E: std::fmt::Display>(kind: MoverErrorKind) -> impl FnOnce(E) -> MoverError {
        move |error| MoverError {
            kind,
            message: error.to_string(),
        }
    }
}

/// A question the mover or a survey asked a shard's master that got no
/// usable answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The node could not be reached, or its connection broke.
    #[error("{addr}: {error}")]
    Node { addr: SocketAddr, error: NodeError },
    /// An answer that does not fit the question.
    #[error("{addr}: {command}: unexpected reply {reply}")]
    Unexpected {
        addr: SocketAddr,
        command: &'static str,
        reply: String,
    },
    /// The shard has no master now (a failover under way).
    #[error("shard '{0}' has no master now; waiting for one")]
    NoMaster(Arc<str>),
    #[error("no such shard")]
    NoShard,
}

impl std::fmt::Display for MoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An event and the number of the mover it comes from (a stopped mover
/// may still report while the next one runs).
pub type Tagged = (u64, MoverEvent);

/// Where a mover's events go.
#[derive(Clone)]
pub struct Reports {
    pub mover: u64,
    pub to: mpsc::UnboundedSender<Tagged>,
}

impl Reports {
    fn send(&self, event: MoverEvent) {
        let _ = self.to.send((self.mover, event));
    }
}

/// What a mover and its coordinator share.
#[derive(Debug, Default)]
pub struct MoverFlags {
    /// A MIGRATE is out. The servers finish it whether or not anyone
    /// waits for its reply: a mover is not dropped meanwhile.
    pub migrating: AtomicBool,
    /// Stop once the MIGRATE that is out is answered.
    pub stop: AtomicBool,
}

/// Moves the keys of `state`'s current migration, from `progress` on.
pub async fn run(
    state: Arc<PoolState>,
    progress: Progress,
    reports: Reports,
    flags: Arc<MoverFlags>,
) {
    let outcome = move_all(&state, progress, &reports, &flags).await;
    reports.send(match outcome {
        Ok(()) => MoverEvent::Finished,
        Err(why) => MoverEvent::Failed(why),
    });
}

async fn move_all(
    state: &Arc<PoolState>,
    progress: Progress,
    events: &Reports,
    flags: &MoverFlags,
) -> Result<(), MoverError> {
    let mut conns = Conns::default();
    let mut limit = Limit::new(&state.config());
    let mut cursors = progress.cursors;
    let shard_names: Vec<Arc<str>> = state
        .topology()
        .shards
        .iter()
        .map(|s| s.name.clone())
        .collect();
    // Passes until every source was scanned through on the master it has
    // now: a failover may bring back keys moved away from the old master
    // (its DELs not replicated, or done after the replica was promoted),
    // so a source whose master changed is scanned again from the start.
    events.send(MoverEvent::ToScan(
        to_scan(&mut conns, state, &shard_names, &cursors).await,
    ));
    loop {
        let mut rescanned = false;
        for (shard, name) in shard_names.iter().enumerate() {
            let dbs = databases(&mut conns, state, shard)
                .await
                .map_err(MoverError::new(Server))?;
            for db in dbs {
                let source = format!("{name}/{db}");
                let on = master(&state.topology(), shard).map_err(MoverError::new(NoMaster))?;
                let mut cursor = match cursors.get(&source).map(|c| Cursor::parse(c)) {
                    Some(Cursor { on: Some(was), at }) if was == on => at,
                    Some(Cursor { on: was, .. }) => {
                        tracing::info!(
                            pool = %state.name,
                            "{source}: its master changed ({} -> {on}): scanned again from the start (a failover may bring back keys that moved)",
                            was.map_or("?".into(), |a| a.to_string())
                        );
                        "0".into()
                    }
                    None => "0".into(),
                };
                if cursor == "done" {
                    continue;
                }
                rescanned = true;
                loop {
                    let topology = state.topology();
                    if !topology.is_moving() {
                        return Err(MoverError::new(Stopped)(
                            "the migration ended under the mover",
                        ));
                    }
                    if master(&topology, shard).map_err(MoverError::new(NoMaster))? != on {
                        // Scanned again on the new master by the next pass.
                        break;
                    }
                    let (next, keys) = scan(&mut conns, &topology, shard, db, &cursor)
                        .await
                        .map_err(MoverError::new(Server))?;
                    let scanned = keys.len() as u64;
                    let mut run = Run {
                        conns: &mut conns,
                        limit: &mut limit,
                        events,
                        flags,
                    };
                    let (moved, bytes) = run.migrate(&topology, shard, db, keys).await?;
                    cursor = if next == "0" { "done".into() } else { next };
                    let checkpoint = Cursor::format(on, &cursor);
                    cursors.insert(source.clone(), checkpoint.clone());
                    events.send(MoverEvent::Checkpoint {
                        source: source.clone(),
                        cursor: checkpoint,
                        keys: moved,
                        bytes,
                        scanned,
                    });
                    if cursor == "done" {
                        break;
                    }
                }
            }
        }
        if !rescanned {
            return Ok(());
        }
    }
}

/// Keys in the sources not scanned through yet (all of each: a source
/// resumed halfway counts whole, so the time left is an upper bound). A
/// shard that cannot be asked counts nothing.
async fn to_scan(
    conns: &mut Conns,
    state: &PoolState,
    shard_names: &[Arc<str>],
    cursors: &BTreeMap<String, String>,
) -> u64 {
    let topology = state.topology();
    let mut total = 0;
    for (shard, name) in shard_names.iter().enumerate() {
        let Ok(keyspace) = keyspace(conns, &topology, shard).await else {
            continue;
        };
        for (db, keys) in keyspace {
            let done = cursors
                .get(&format!("{name}/{db}"))
                .is_some_and(|c| Cursor::is_done(c));
            if !done {
                total += keys;
            }
        }
    }
    total
}

/// A checkpoint: the master a source was scanned on, and how far (a SCAN
/// cursor, or `done`). SCAN cursors mean nothing on another server.
pub(super) struct Cursor {
    on: Option<SocketAddr>,
    at: String,
}

impl Cursor {
    fn parse(checkpoint: &str) -> Cursor {
        match checkpoint.split_once(' ') {
            Some((on, at)) => Cursor {
                on: on.parse().ok(),
                at: at.to_string(),
            },
            None => Cursor {
                on: None,
                at: checkpoint.to_string(),
            },
        }
    }

    fn format(on: SocketAddr, at: &str) -> String {
        format!("{on} {at}")
    }

    /// Whether a checkpoint says its source was scanned through.
    pub(super) fn is_done(checkpoint: &str) -> bool {
        checkpoint.ends_with("done")
    }
}

/// Control connections to the nodes, by address.
#[derive(Default)]
pub(super) struct Conns {
    open: BTreeMap<SocketAddr, WireConn>,
}

impl Conns {
    /// A command on `addr` (connecting first); an error drops the
    /// connection.
    pub(super) async fn query(
        &mut self,
        addr: SocketAddr,
        handshake: &Handshake,
        commands: &[&[&[u8]]],
        timeout: Duration,
    ) -> Result<Vec<Value>, QueryError> {
        let conn = match self.open.entry(addr) {
            std::collections::btree_map::Entry::Occupied(open) => open.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let conn = WireConn::connect(addr, handshake, timeout)
                    .await
                    .map_err(|error| QueryError::Node { addr, error })?;
                slot.insert(conn)
            }
        };
        match conn.query(commands, timeout).await {
            Ok(replies) => Ok(replies),
            Err(error) => {
                self.open.remove(&addr);
                Err(QueryError::Node { addr, error })
            }
        }
    }
}

pub(super) fn handshake(config: &PoolConfig) -> Handshake {
    Handshake {
        auth: config.redis_auth.clone(),
        client_name: Some("shardgate-mover".into()),
        ..Handshake::default()
    }
}

pub(super) fn master(topology: &Topology, shard: usize) -> Result<SocketAddr, QueryError> {
    let shard = topology.shards.get(shard).ok_or(QueryError::NoShard)?;
    shard
        .master
        .as_ref()
        .map(|m| m.addr)
        .ok_or_else(|| QueryError::NoMaster(shard.name.clone()))
}

/// The databases of the shard's master that hold keys.
async fn databases(
    conns: &mut Conns,
    state: &PoolState,
    shard: usize,
) -> Result<Vec<u32>, QueryError> {
    let keyspace = keyspace(conns, &state.topology(), shard).await?;
    Ok(keyspace.into_iter().map(|(db, _)| db).collect())
}

/// `INFO keyspace` of the shard's master: each database holding keys,
/// and how many.
pub(super) async fn keyspace(
    conns: &mut Conns,
    topology: &Topology,
    shard: usize,
) -> Result<Vec<(u32, u64)>, QueryError> {
    let addr = master(topology, shard)?;
    let config = &topology.config;
    let replies = conns
        .query(
            addr,
            &handshake(config),
            &[&[b"INFO", b"keyspace"]],
            config.timeout,
        )
        .await?;
    let info = replies.first().and_then(text).unwrap_or_default();
    Ok(info
        .lines()
        .filter_map(|line| {
            let (db, fields) = line.strip_prefix("db")?.split_once(':')?;
            let keys = fields.split(',').find_map(|f| f.strip_prefix("keys="))?;
            Some((db.parse().ok()?, keys.parse().ok()?))
        })
        .collect())
}

/// One SCAN step on the shard's master: the next cursor and the keys.
pub(super) async fn scan(
    conns: &mut Conns,
    topology: &Topology,
    shard: usize,
    db: u32,
    cursor: &str,
) -> Result<(String, Vec<Bytes>), QueryError> {
    let addr = master(topology, shard)?;
    let config = &topology.config;
    let db = db.to_string();
    let replies = conns
        .query(
            addr,
            &handshake(config),
            &[
                &[b"SELECT", db.as_bytes()],
                &[b"SCAN", cursor.as_bytes(), b"COUNT", SCAN_COUNT.as_bytes()],
            ],
            config.timeout,
        )
        .await?;
    match replies.get(1) {
        Some(Value::Array(parts)) => {
            let next = parts.first().and_then(text).unwrap_or_else(|| "0".into());
            let keys = match parts.get(1) {
                Some(Value::Array(keys)) => keys
                    .iter()
                    .filter_map(|k| match k {
                        Value::Bulk(b) => Some(b.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Ok((next, keys))
        }
        other => Err(QueryError::Unexpected {
            addr,
            command: "SCAN",
            reply: format!("{other:?}"),
        }),
    }
}

/// What one SCAN step's migration works with.
struct Run<'a> {
    conns: &'a mut Conns,
    limit: &'a mut Limit,
    events: &'a Reports,
    flags: &'a MoverFlags,
}

impl Run<'_> {
    /// Migrates the keys of `keys` that leave `shard`, grouped by
    /// destination, in batches; big keys alone. Returns (keys, bytes) moved.
    async fn migrate(
        &mut self,
        topology: &Topology,
        shard: usize,
        db: u32,
        keys: Vec<Bytes>,
    ) -> Result<(u64, u64), MoverError> {
        let mut by_destination: BTreeMap<usize, Vec<Bytes>> = BTreeMap::new();
        for key in keys {
            if let Some((source, destination)) = topology.moving(&key) {
                if source == shard {
                    by_destination.entry(destination).or_default().push(key);
                }
            }
        }
        let (mut moved, mut bytes) = (0u64, 0u64);
        let config = topology.config.clone();
        let big = config.reshard.big_key_bytes;
        if by_destination.is_empty() {
            return Ok((0, 0));
        }
        // Every replica linked to the source must have a batch's deletions
        // before the next one (WAIT), not only those fit for reads: a
        // lagging one may still be promoted. The source's own count; the
        // topology's (which may be stale) only when it cannot say, since a
        // replica the topology still lists but that unlinked would make
        // every WAIT come back short.
        let source = master(topology, shard).map_err(MoverError::new(NoMaster))?;
        let fit = topology.shards.get(shard).map_or(0, |s| s.replicas.len());
        let linked = linked_replicas(self.conns, &config, source)
            .await
            .unwrap_or(fit);
        for (destination, keys) in by_destination {
            for batch in keys.chunks(BATCH) {
                let addr = master(topology, shard).map_err(MoverError::new(NoMaster))?;
                let hop = Hop {
                    from: addr,
                    to: master(topology, destination).map_err(MoverError::new(NoMaster))?,
                    replicas: linked,
                };
                let sizes = sizes(self.conns, &config, addr, db, batch)
                    .await
                    .map_err(MoverError::new(Server))?;
                let (small, large): (Vec<_>, Vec<_>) =
                    batch.iter().zip(sizes).partition(|(_, size)| *size < big);
                if !small.is_empty() {
                    let keys: Vec<&Bytes> = small.iter().map(|(k, _)| *k).collect();
                    let size: u64 = small.iter().map(|(_, s)| *s).sum();
                    self.limit.wait(keys.len() as u64, size).await;
                    migrate_batch(
                        self.conns,
                        self.flags,
                        &config,
                        &hop,
                        db,
                        &keys,
                        config.timeout,
                    )
                    .await?;
                    moved += keys.len() as u64;
                    bytes += size;
                }
                for (key, size) in large {
                    self.limit.wait(1, size).await;
                    // The servers stop answering while it moves: every proxy's
                    // health checks must know, or take that for a failure.
                    self.events.send(MoverEvent::BigKeyMoving(true));
                    tokio::time::sleep(super::TICK * 3).await;
                    let started = Instant::now();
                    let moved_big = migrate_batch(
                        self.conns,
                        self.flags,
                        &config,
                        &hop,
                        db,
                        &[key],
                        BIG_KEY_TIMEOUT,
                    )
                    .await;
                    let took = started.elapsed();
                    self.events.send(MoverEvent::BigKeyMoving(false));
                    moved_big?;
                    self.events.send(MoverEvent::BigKey {
                        key: String::from_utf8_lossy(key).into_owned(),
                        bytes: size,
                        took,
                    });
                    // Let both servers breathe after a long block.
                    tokio::time::sleep(took.min(Duration::from_secs(1))).await;
                    moved += 1;
                    bytes += size;
                }
            }
        }
        Ok((moved, bytes))
    }
}

/// How many replicas are linked to `addr` now (`connected_slaves` of
/// `INFO replication`).
async fn linked_replicas(
    conns: &mut Conns,
    config: &PoolConfig,
    addr: SocketAddr,
) -> Result<usize, QueryError> {
    let replies = conns
        .query(
            addr,
            &handshake(config),
            &[&[b"INFO", b"replication"]],
            config.timeout,
        )
        .await?;
    let info = replies.first().and_then(text).unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| QueryError::Unexpected {
            addr,
            command: "INFO replication",
            reply: "no connected_slaves".into(),
        })
}

/// `MEMORY USAGE` of each key (0 when gone).
pub(super) async fn sizes(
    conns: &mut Conns,
    config: &PoolConfig,
    addr: SocketAddr,
    db: u32,
    keys: &[Bytes],
) -> Result<Vec<u64>, QueryError> {
    let db = db.to_string();
    let mut commands: Vec<Vec<&[u8]>> = vec![vec![b"SELECT", db.as_bytes()]];
    for key in keys {
        commands.push(vec![b"MEMORY", b"USAGE", key]);
    }
    let commands: Vec<&[&[u8]]> = commands.iter().map(Vec::as_slice).collect();
    let replies = conns
        .query(addr, &handshake(config), &commands, config.timeout)
        .await?;
    Ok(replies
        .iter()
        .skip(1)
        .map(|r| match r {
            Value::Integer(n) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        })
        .collect())
}

/// `MIGRATE ... REPLACE` of `keys` from `from` to `to`: OK or NOKEY
/// (gone already: a client's request moved it) are both fine. REPLACE:
/// while the source has a key, its copy is the one clients were served
/// (a destination copy can only be left by a MIGRATE that failed midway,
/// and nothing reads a destination before a MIGRATE succeeded).
///
/// `flags` says a MIGRATE is out while it is (see [`MoverFlags`]); once it
/// is answered, a mover asked to stop does.
async fn migrate_batch(
    conns: &mut Conns,
    flags: &MoverFlags,
    config: &PoolConfig,
    hop: &Hop,
    db: u32,
    keys: &[&Bytes],
    timeout: Duration,
) -> Result<(), MoverError> {
    let Hop { from, to, replicas } = *hop;
    let host = to.ip().to_string();
    let port = to.port().to_string();
    let db = db.to_string();
    let millis = timeout.as_millis().to_string();
    let mut migrate: Vec<&[u8]> = vec![
        b"MIGRATE",
        host.as_bytes(),
        port.as_bytes(),
        b"",
        db.as_bytes(),
        millis.as_bytes(),
        b"REPLACE",
    ];
    if let Some(auth) = &config.redis_auth {
        match &auth.user {
            Some(user) => migrate.extend([&b"AUTH2"[..], user.as_bytes()]),
            None => migrate.push(b"AUTH"),
        }
        migrate.push(auth.password.expose().as_bytes());
    }
    migrate.push(b"KEYS");
    migrate.extend(keys.iter().map(|k| &k[..]));
    // The source's DELs reach its replicas before the next batch: a
    // replica promoted later must not bring back keys that moved (and
    // were written since on their destination). Only the instant between
    // MIGRATE and WAIT is left to Redis's asynchronous replication.
    let replicas = replicas.to_string();
    let wait: [&[u8]; 3] = [b"WAIT", replicas.as_bytes(), millis.as_bytes()];
    let commands: &[&[&[u8]]] = if hop.replicas > 0 {
        &[&[b"SELECT", db.as_bytes()], &migrate, &wait]
    } else {
        &[&[b"SELECT", db.as_bytes()], &migrate]
    };
    flags.migrating.store(true, Ordering::Relaxed);
    let replies = conns
        .query(
            from,
            &handshake(config),
            commands,
            timeout * 2 + config.timeout,
        )
        .await;
    flags.migrating.store(false, Ordering::Relaxed);
    let replies = replies.map_err(MoverError::new(Server))?;
    if flags.stop.load(Ordering::Relaxed) {
        return Err(MoverError::new(Stopped)(
            "stopped once its MIGRATE was answered",
        ));
    }
    let migrated = match replies.get(1) {
        Some(Value::Simple(s)) if &s[..] == b"OK" || &s[..] == b"NOKEY" => Ok(()),
        Some(Value::Error(e)) => Err(format!(
            "MIGRATE from {from} to {to}: {}",
            String::from_utf8_lossy(e)
        )),
        other => Err(format!(
            "MIGRATE from {from} to {to}: unexpected reply {other:?}"
        )),
    };
    migrated.map_err(MoverError::new(Migrate))?;
    // The deletions must have reached the replicas before the next batch
    // (else the mover stops here and retries: a replica promoted meanwhile
    // would bring back keys that moved).
    match replies.get(2) {
        None => Ok(()),
        Some(Value::Integer(acked)) if usize::try_from(*acked).is_ok_and(|n| n >= hop.replicas) => {
            Ok(())
        }
        Some(other) => Err(MoverError::new(Replicas)(format!(
            "WAIT on {from}: {other:?} of {replicas} replicas have the batch's deletions"
        ))),
    }
}

/// One batch's way: from the source's master to the destination's, and
/// how many replicas are linked to the source (each must have the batch's
/// deletions before the next batch).
struct Hop {
    from: SocketAddr,
    to: SocketAddr,
    replicas: usize,
}

/// The pool's rate limits: keys and bytes per second (0: none).
struct Limit {
    keys_per_second: f64,
    bytes_per_second: f64,
    started: Instant,
    keys: f64,
    bytes: f64,
}

impl Limit {
    fn new(config: &PoolConfig) -> Limit {
        Limit {
            keys_per_second: f64::from(config.reshard.keys_per_second),
            bytes_per_second: config.reshard.bytes_per_second as f64,
            started: Instant::now(),
            keys: 0.0,
            bytes: 0.0,
        }
    }

    /// Waits until moving `keys` more keys and `bytes` more bytes keeps
    /// within the rates.
    async fn wait(&mut self, keys: u64, bytes: u64) {
        self.keys += keys as f64;
        self.bytes += bytes as f64;
        let due = |done: f64, rate: f64| if rate > 0.0 { done / rate } else { 0.0 };
        let seconds =
            due(self.keys, self.keys_per_second).max(due(self.bytes, self.bytes_per_second));
        let at = self.started + Duration::from_secs_f64(seconds);
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}
