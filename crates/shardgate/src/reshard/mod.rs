//! Online resharding (see `docs/resharding.md`): each pool's coordinator
//! keeps this proxy in step with the pool's migration (through the
//! coordination store, or alone), and runs the mover when it holds the
//! mover's lock.
//!
//! # Layout
//! - `store`: [`Store`], the coordination store (a Redis, or memory).
//! - `mover`: the background mover.
//! - `eta`: the time a migration has left, from its mover's scan rate.
//! - `survey`: what a migration would move (`shardgate reshard plan`).

mod eta;
pub mod mover;
pub mod store;
pub mod survey;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use shardgate_core::reshard::{MigrationRecord, PlacementError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::pool::PoolState;
use crate::topology::Events;
use mover::MoverEvent;
pub use store::{Progress, Store};

/// How often a proxy renews its lease and reads the migration.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// A proxy that has not reached the store this long stops serving the
/// pool: a migration it does not know of may start once the others stop
/// waiting for it (`store::FORGET` after its lease ran out).
const FENCE_AFTER: Duration = Duration::from_secs(20);
/// How often the store's count of a migration's progress is read.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// A failed mover tries again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// Applies a migration record to this proxy's pool (the reload thread
/// does it): once it returns, the proxy routes with it and nothing it sent
/// under the previous placement is still in flight.
pub type Apply = Arc<dyn Fn(MigrationRecord) -> Result<(), MigrateError> + Send + Sync>;

/// Why a migration record was not applied to this proxy's pool.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("shutting down")]
    ShuttingDown,
    #[error("no pool '{0}'")]
    NoPool(String),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("requests sent before the migration are still in flight; it was not applied")]
    InFlight,
    /// The task waiting for the reload thread failed.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why an operator's word about a migration was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReshardError {
    #[error("pool '{pool}': a migration is under way (generation {generation}); pause, abort or wait for it")]
    UnderWay { pool: Arc<str>, generation: u64 },
    #[error("pool '{0}': no migration under way")]
    NoneUnderWay(Arc<str>),
    #[error("the migration changed meanwhile (another proxy?): look again")]
    Changed,
    #[error("coordination store: {0}")]
    Store(#[from] shardgate_core::error::NodeError),
}

/// The generation an operator's word started, or why not.
pub type Answer = oneshot::Sender<Result<u64, ReshardError>>;

/// What an operator asks of a pool's migration.
pub enum ReshardCommand {
    /// Start moving keys to `to` (the record's `from` is where they are).
    Start(Box<MigrationRecord>, Answer),
    Pause(Answer),
    Resume(Answer),
    /// Move the keys back where they were.
    Abort(Answer),
    Status(oneshot::Sender<ReshardStatus>),
}

/// What `shardgate reshard status` and the status page show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReshardStatus {
    pub pool: String,
    /// One of [`PHASES`].
    pub phase: String,
    pub generation: u64,
    pub shared: bool,
    /// What this proxy's mover moved (every generation since it started).
    pub keys_moved: u64,
    pub bytes_moved: u64,
    /// What this generation moved so far, by every proxy's mover (the
    /// coordination store's count; None when it could not be read).
    pub generation_keys_moved: Option<u64>,
    pub generation_bytes_moved: Option<u64>,
    /// The time left, as the mover estimated it at its last checkpoint
    /// (keys left to scan at its recent rate; an upper bound after a
    /// takeover). None until it knows.
    pub eta_seconds: Option<u64>,
    /// Sources (`shard/db`) scanned through, and those the mover reached
    /// (on the proxy running it).
    pub sources_done: usize,
    pub sources_seen: usize,
    /// Keys per second moved over the last minute.
    pub keys_per_second: f64,
    /// Proxies that have not acknowledged the generation yet.
    pub waiting_for: Vec<String>,
    /// Who runs the mover (this proxy or another).
    pub mover: Option<String>,
    /// The mover's last error.
    pub last_error: Option<String>,
    pub big_keys: Vec<String>,
    /// This proxy cannot reach the store and refuses the pool's requests.
    pub out_of_step: bool,
}

/// This proxy's running mover.
struct MoverTask {
    abort: AbortHandle,
    /// Its number among this coordinator's movers (on its events).
    number: u64,
    generation: u64,
    flags: Arc<mover::MoverFlags>,
}

/// One pool's coordinator (on the control thread).
pub struct Coordinator {
    state: Arc<PoolState>,
    events: Arc<Events>,
    store: Store,
    instance: Arc<str>,
    apply: Apply,
    /// The record this proxy routes with.
    applied: Option<MigrationRecord>,
    last_contact: Instant,
    last_heartbeat: store::Heartbeat,
    mover: Option<MoverTask>,
    /// A mover stopped while its MIGRATE was out, and the acknowledgement
    /// this proxy gives until that MIGRATE is answered: the servers finish
    /// it regardless, so until then something sent under the previous
    /// generation is still in flight (a migration back could scan the
    /// destination before the key lands there, and leave it behind).
    retiring: Option<(MoverTask, u64)>,
    /// Movers started so far (tags their events).
    movers: u64,
    /// How fast this proxy's mover scans, for the time left.
    scan_clock: Option<eta::ScanClock>,
    /// When the store's progress was last read, for which generation and
    /// phase (see `read_progress`).
    progress_read: Option<(Instant, (u64, bool))>,
    mover_events: (
        mpsc::UnboundedSender<mover::Tagged>,
        mpsc::UnboundedReceiver<mover::Tagged>,
    ),
    retry_at: Option<Instant>,
    status: ReshardStatus,
    moved_samples: std::collections::VecDeque<(Instant, u64)>,
    /// The mover's checkpoint of each source it reached.
    sources: std::collections::BTreeMap<String, String>,
    /// The store's `big-key-moving` flag was set by this proxy's mover and
    /// not cleared yet (a mover stopped mid-key clears it afterwards, or
    /// every proxy would take silence for busy until it expires).
    big_key_flagged: bool,
}

impl Coordinator {
    /// `applied`: the record the pool started with (read before it
    /// served).
    pub fn new(
        state: Arc<PoolState>,
        events: Arc<Events>,
        instance: Arc<str>,
        apply: Apply,
        applied: Option<MigrationRecord>,
    ) -> Coordinator {
        let config = state.config();
        let store = Store::for_pool(&config);
        let status = ReshardStatus {
            pool: state.name.to_string(),
            shared: store.is_shared(),
            ..ReshardStatus::default()
        };
        Coordinator {
            state,
            events,
            store,
            instance,
            apply,
            applied,
            last_contact: Instant::now(),
            last_heartbeat: store::Heartbeat::default(),
            mover: None,
            retiring: None,
            movers: 0,
            scan_clock: None,
            progress_read: None,
            mover_events: mpsc::unbounded_channel(),
            retry_at: None,
            status,
            moved_samples: std::collections::VecDeque::new(),
            sources: std::collections::BTreeMap::new(),
            big_key_flagged: false,
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<ReshardCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.step().await,
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                Some((mover, event)) = self.mover_events.1.recv() => {
                    if self.mover.as_ref().is_some_and(|m| m.number == mover) {
                        self.mover_event(event).await;
                    } else if self.retiring.as_ref().is_some_and(|(m, _)| m.number == mover) {
                        self.retiring_event(event).await;
                    }
                }
                () = crate::shutdown::until_shutdown(&mut shutdown) => break,
            }
        }
        self.stop_mover();
        if let Some((retiring, _)) = self.retiring.take() {
            retiring.abort.abort();
        }
        let instance = self.instance.clone();
        self.store.leave(&instance).await;
    }

    /// What this proxy acknowledges: the generation and phase it routes with.
    fn acked(&self) -> u64 {
        match &self.retiring {
            Some((_, held)) => *held,
            None => self.applied.as_ref().map_or(0, MigrationRecord::ack),
        }
    }

    /// One heartbeat: stay in step, and run the mover when it is this
    /// proxy's turn.
    async fn step(&mut self) {
        let instance = self.instance.clone();
        let heartbeat = match self.store.heartbeat(&instance, self.acked()).await {
            Ok(heartbeat) => heartbeat,
            Err(e) => {
                if self.store.is_shared() && self.last_contact.elapsed() > FENCE_AFTER {
                    if !self.state.out_of_step() {
                        tracing::error!(pool = %self.state.name, "cannot reach the coordination store for {FENCE_AFTER:?} ({e}): refusing the pool's requests until it is back");
                    }
                    self.state.set_out_of_step(true);
                    self.status.out_of_step = true;
                }
                self.stop_mover();
                return;
            }
        };
        self.last_contact = Instant::now();
        if self.state.out_of_step() {
            tracing::info!(pool = %self.state.name, "coordination store reachable again");
            self.state.set_out_of_step(false);
            self.status.out_of_step = false;
        }
        // Another proxy's mover moving a big key (ours says so itself).
        if self.mover.is_none() {
            self.state.keep_busy(heartbeat.big_key_moving);
        }
        if heartbeat.record != self.applied {
            if let Some(record) = heartbeat.record.clone() {
                if !self.adopt(record).await {
                    return;
                }
            }
        }
        self.last_heartbeat = heartbeat;
        self.manage_mover().await;
        self.read_progress().await;
        self.refresh_status();
    }

    /// The migration's pool-wide progress (every proxy's mover, from the
    /// store) into the status, at most once a second, and once more when
    /// it is done.
    async fn read_progress(&mut self) {
        let Some(record) = &self.applied else {
            return;
        };
        let seen = (record.generation, record.done);
        let fresh = self
            .progress_read
            .is_some_and(|(at, was)| was == seen && at.elapsed() < PROGRESS_EVERY);
        if fresh {
            return;
        }
        self.progress_read = Some((Instant::now(), seen));
        let progress = self.store.progress(record.generation).await.ok();
        self.status.generation_keys_moved = progress.as_ref().map(|p| p.keys);
        self.status.generation_bytes_moved = progress.as_ref().map(|p| p.bytes);
        self.status.eta_seconds = progress.and_then(|p| p.eta_seconds).filter(|_| !seen.1);
    }

    /// Routes with `record` from now on (through the reload thread).
    async fn adopt(&mut self, record: MigrationRecord) -> bool {
        let apply = self.apply.clone();
        let applying = record.clone();
        let outcome = tokio::task::spawn_blocking(move || apply(applying))
            .await
            .unwrap_or_else(|e| Err(MigrateError::Task(e)));
        match outcome {
            Ok(()) => {
                if self.applied.as_ref().map(|r| (r.generation, r.done))
                    != Some((record.generation, record.done))
                {
                    self.event(phase_message(&record));
                }
                if self
                    .mover
                    .as_ref()
                    .is_some_and(|m| m.generation != record.generation)
                    || record.done
                    || record.paused
                {
                    self.stop_mover();
                }
                self.applied = Some(record);
                true
            }
            Err(e) => {
                tracing::error!(pool = %self.state.name, "cannot apply the pool's migration: {e}");
                self.status.last_error = Some(e.to_string());
                false
            }
        }
    }

    async fn manage_mover(&mut self) {
        if self.mover.is_none() && self.big_key_flagged {
            self.big_key_flagged = self.store.big_key_moving(false).await.is_err();
        }
        let Some(record) = self.applied.clone() else {
            return;
        };
        if record.done || record.paused {
            self.stop_mover();
            return;
        }
        let waiting: Vec<String> = (self.last_heartbeat.proxies.iter())
            .filter(|(_, acked)| *acked != Some(record.ack()))
            .map(|(proxy, _)| proxy.clone())
            .collect();
        self.status.waiting_for = waiting.clone();
        let instance = self.instance.clone();
        let locked = self.store.lock_mover(&instance).await.unwrap_or_default();
        if !locked {
            self.stop_mover();
            self.status.mover = Some("another proxy".into());
            return;
        }
        self.status.mover = Some(instance.to_string());
        if self.retiring.is_some() {
            // Nothing moves until the stopped mover's MIGRATE is answered.
            return;
        }
        if !record.moving {
            // Keys may move once every proxy refuses them (none routes
            // them to their source any more): then the pull rule begins.
            if waiting.is_empty() {
                let moving = MigrationRecord {
                    moving: true,
                    ..record.clone()
                };
                match self.store.update(&Some(record), &moving).await {
                    Ok(true) => {
                        self.adopt(moving).await;
                    }
                    Ok(false) => {}
                    Err(e) => self.status.last_error = Some(e.to_string()),
                }
            }
            return;
        }
        if self.mover.is_some() {
            return;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let progress = match self.store.progress(record.generation).await {
            Ok(progress) => progress,
            Err(e) => {
                self.status.last_error = Some(e.to_string());
                return;
            }
        };
        self.sources = progress.cursors.clone();
        self.movers += 1;
        let flags = Arc::new(mover::MoverFlags::default());
        let reports = mover::Reports {
            mover: self.movers,
            to: self.mover_events.0.clone(),
        };
        let task = tokio::task::spawn_local(mover::run(
            self.state.clone(),
            progress,
            reports,
            flags.clone(),
        ));
        self.mover = Some(MoverTask {
            abort: task.abort_handle(),
            number: self.movers,
            generation: record.generation,
            flags,
        });
    }

    /// Stops the mover: at once between MIGRATEs; with one out, once it
    /// is answered, holding this proxy's acknowledgement until then (see
    /// `retiring`). Call before `applied` changes.
    fn stop_mover(&mut self) {
        let Some(task) = self.mover.take() else {
            return;
        };
        // No mover starts while one retires (`manage_mover`).
        debug_assert!(self.retiring.is_none());
        if task.flags.migrating.load(Ordering::Relaxed) {
            task.flags.stop.store(true, Ordering::Relaxed);
            tracing::info!(pool = %self.state.name, "the mover stops once the MIGRATE it has out is answered");
            let held = self.acked();
            self.retiring = Some((task, held));
        } else {
            task.abort.abort();
            self.state.keep_busy(false);
        }
    }

    /// An event of a mover stopped mid-MIGRATE: its end releases the
    /// acknowledgement; the rest is what it did meanwhile.
    async fn retiring_event(&mut self, event: MoverEvent) {
        match event {
            MoverEvent::Finished | MoverEvent::Failed(_) => {
                self.retiring = None;
                self.state.keep_busy(false);
                tracing::info!(pool = %self.state.name, "the stopped mover's MIGRATE was answered");
            }
            MoverEvent::BigKeyMoving(false) => {
                self.state.keep_busy(false);
                self.big_key_flagged = self.store.big_key_moving(false).await.is_err();
            }
            MoverEvent::BigKey { key, bytes, took } => self.event(format!(
                "big key '{key}' ({bytes} bytes) moved alone by a stopped mover; both servers were busy for {} ms",
                took.as_millis()
            )),
            MoverEvent::Checkpoint { .. }
            | MoverEvent::ToScan(_)
            | MoverEvent::BigKeyMoving(true) => {}
        }
    }

    async fn mover_event(&mut self, event: MoverEvent) {
        let Some(record) = self.applied.clone() else {
            return;
        };
        match event {
            MoverEvent::ToScan(keys) => {
                self.scan_clock = Some(eta::ScanClock::new(keys, Instant::now()));
            }
            MoverEvent::Checkpoint {
                source,
                cursor,
                keys,
                bytes,
                scanned,
            } => {
                let eta_seconds = (self.scan_clock.as_mut())
                    .and_then(|clock| clock.scanned(scanned, Instant::now()));
                self.sources.insert(source.clone(), cursor.clone());
                self.state
                    .stats
                    .keys_moved
                    .fetch_add(keys, std::sync::atomic::Ordering::Relaxed);
                self.state
                    .stats
                    .bytes_moved
                    .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                let checkpoint = store::Checkpoint {
                    source: &source,
                    cursor: &cursor,
                    keys,
                    bytes,
                    eta_seconds,
                };
                let _ = self.store.checkpoint(record.generation, &checkpoint).await;
            }
            MoverEvent::BigKeyMoving(moving) => {
                self.state.keep_busy(moving);
                match self.store.big_key_moving(moving).await {
                    Ok(()) => self.big_key_flagged = moving,
                    Err(e) => {
                        self.big_key_flagged |= !moving;
                        self.status.last_error = Some(e.to_string());
                    }
                }
            }
            MoverEvent::BigKey { key, bytes, took } => {
                let message = format!(
                    "big key '{key}' ({bytes} bytes) moved alone; both servers were busy for {} ms",
                    took.as_millis()
                );
                self.status.big_keys.push(message.clone());
                self.event(message);
            }
            MoverEvent::Finished => {
                self.mover = None;
                let done = MigrationRecord {
                    done: true,
                    ..record.clone()
                };
                match self.store.update(&Some(record), &done).await {
                    Ok(true) => {
                        // Applied by the next heartbeat, as on every proxy.
                        tracing::info!(pool = %self.state.name, "every key moved");
                    }
                    Ok(false) => {}
                    Err(e) => self.status.last_error = Some(e.to_string()),
                }
            }
            MoverEvent::Failed(why) => {
                self.mover = None;
                let kind = mover::MoverErrorKind::ALL
                    .iter()
                    .position(|k| *k == why.kind);
                if let Some(count) = kind.and_then(|i| self.state.stats.mover_errors.get(i)) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(pool = %self.state.name, kind = why.kind.label(), "the mover stopped ({why}); retrying");
                self.status.last_error = Some(why.message);
                self.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    async fn command(&mut self, command: ReshardCommand) {
        match command {
            ReshardCommand::Start(record, reply) => {
                let current = self.last_heartbeat.record.clone();
                if current.as_ref().is_some_and(|r| !r.done) {
                    let _ = reply.send(Err(ReshardError::UnderWay {
                        pool: self.state.name.clone(),
                        generation: current.as_ref().map_or(0, |r| r.generation),
                    }));
                    return;
                }
                let record = MigrationRecord {
                    generation: current.as_ref().map_or(0, |r| r.generation) + 1,
                    // A proxy alone needs no first phase: no other one
                    // routes the keys to their source.
                    moving: !self.store.is_shared(),
                    ..*record
                };
                let _ = reply.send(self.write(current, record).await);
            }
            ReshardCommand::Pause(reply)
            | ReshardCommand::Resume(reply)
            | ReshardCommand::Abort(reply)
                if self.last_heartbeat.record.as_ref().is_none_or(|r| r.done) =>
            {
                let _ = reply.send(Err(ReshardError::NoneUnderWay(self.state.name.clone())));
            }
            ReshardCommand::Pause(reply) => {
                let current = self.last_heartbeat.record.clone();
                let next = current
                    .clone()
                    .map(|r| MigrationRecord { paused: true, ..r });
                let _ = reply.send(self.write_some(current, next).await);
            }
            ReshardCommand::Resume(reply) => {
                let current = self.last_heartbeat.record.clone();
                let next = current
                    .clone()
                    .map(|r| MigrationRecord { paused: false, ..r });
                let _ = reply.send(self.write_some(current, next).await);
            }
            ReshardCommand::Abort(reply) => {
                let current = self.last_heartbeat.record.clone();
                let alone = !self.store.is_shared();
                let next = current.clone().map(|r| MigrationRecord {
                    generation: r.generation + 1,
                    back: !r.back,
                    moving: alone,
                    paused: false,
                    ..r
                });
                let _ = reply.send(self.write_some(current, next).await);
            }
            ReshardCommand::Status(reply) => {
                // From memory: a status page polling must never wait on
                // the store (the heartbeat reads the progress).
                self.refresh_status();
                let _ = reply.send(self.status.clone());
            }
        }
    }

    async fn write_some(
        &mut self,
        current: Option<MigrationRecord>,
        next: Option<MigrationRecord>,
    ) -> Result<u64, ReshardError> {
        match next {
            Some(next) => self.write(current, next).await,
            None => Err(ReshardError::NoneUnderWay(self.state.name.clone())),
        }
    }

    /// Writes `next` if the store still holds `current`; this proxy
    /// applies it at its next heartbeat, as every other proxy does.
    async fn write(
        &mut self,
        current: Option<MigrationRecord>,
        next: MigrationRecord,
    ) -> Result<u64, ReshardError> {
        match self.store.update(&current, &next).await {
            Ok(true) => {
                // Take it now rather than at the next heartbeat.
                self.step().await;
                Ok(next.generation)
            }
            Ok(false) => Err(ReshardError::Changed),
            Err(e) => Err(ReshardError::Store(e)),
        }
    }

    fn event(&self, message: String) {
        tracing::info!(pool = %self.state.name, "{message}");
        self.events
            .record(&self.state.name, None, "reshard", message);
    }

    fn refresh_status(&mut self) {
        let record = self.applied.clone();
        let moved = self
            .state
            .stats
            .keys_moved
            .load(std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        self.moved_samples.push_back((now, moved));
        while self
            .moved_samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > Duration::from_secs(60))
        {
            self.moved_samples.pop_front();
        }
        if let Some((at, first)) = self.moved_samples.front() {
            let seconds = now.duration_since(*at).as_secs_f64();
            if seconds > 0.5 {
                self.status.keys_per_second = (moved - first) as f64 / seconds;
            }
        }
        self.status.generation = record.as_ref().map_or(0, |r| r.generation);
        self.status.phase = match &record {
            None => "none",
            Some(r) if r.done && r.back => "aborted",
            Some(r) if r.done => "done",
            Some(r) if r.paused => "paused",
            Some(r) if !r.moving => "preparing",
            Some(r) if r.back => "aborting",
            Some(_) => "moving",
        }
        .into();
        self.status.keys_moved = moved;
        self.status.sources_seen = self.sources.len();
        self.status.sources_done = (self.sources.values())
            .filter(|c| mover::Cursor::is_done(c))
            .count();
        self.status.bytes_moved = self
            .state
            .stats
            .bytes_moved
            .load(std::sync::atomic::Ordering::Relaxed);
        let stats = &self.state.stats;
        let phase = PHASES
            .iter()
            .position(|p| *p == self.status.phase)
            .unwrap_or(0);
        stats
            .reshard_phase
            .store(phase as u64, std::sync::atomic::Ordering::Relaxed);
        (stats.reshard_waiting).store(
            self.status.waiting_for.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The phases a pool's migration can be in (`ReshardStatus::phase`).
pub const PHASES: [&str; 7] = [
    "none",
    "preparing",
    "moving",
    "paused",
    "aborting",
    "done",
    "aborted",
];

fn phase_message(record: &MigrationRecord) -> String {
    let to = &record.destination().servers;
    match (record.done, record.back, record.paused) {
        (true, false, _) => format!(
            "migration {} done: keys are on {}",
            record.generation,
            to.join(", ")
        ),
        (true, true, _) => format!(
            "migration {} aborted: keys are back on {}",
            record.generation,
            to.join(", ")
        ),
        (false, _, true) => format!("migration {} paused", record.generation),
        (false, true, false) => format!(
            "migration {}: moving keys back to {}",
            record.generation,
            to.join(", ")
        ),
        (false, false, false) => format!(
            "migration {}: moving keys to {}",
            record.generation,
            to.join(", ")
        ),
    }
}
