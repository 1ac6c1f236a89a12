//! The old process's side: start the new binary, give it the listening
//! sockets, and once it serves, hand it each client between requests.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::channel::{Channel, Message, Rendezvous, ENV};
use super::handoff::SessionState;

/// How long the new process may take to connect, and then to serve (its
/// pools' first health checks included).
const CONNECT_WITHIN: Duration = Duration::from_secs(30);
const SERVE_WITHIN: Duration = Duration::from_secs(60);

/// A listening socket for the new process.
pub struct Inherited<'a> {
    pub pool: &'a str,
    /// 0: read-write, 1: read-only.
    pub endpoint: u8,
    /// Which worker's socket (TCP: one per worker).
    pub index: usize,
    pub addr: String,
    pub fd: &'a OwnedFd,
}

/// Why an upgrade did not happen (the old process carries on).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("cannot start {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("the new process (pid {pid}) did not take over: {reason}")]
    Successor { pid: u32, reason: NotReady },
    #[error("upgrade channel: {0}")]
    Channel(#[from] std::io::Error),
}

/// Why a started successor was stopped before it served.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("this process is shutting down")]
    ShuttingDown,
    #[error("it exited ({0}); see its log")]
    Exited(std::process::ExitStatus),
    /// Waiting for it or its channel failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("sending the listeners: {0}")]
    Listeners(std::io::Error),
    #[error("the handoff channel: {0}")]
    Channel(std::io::Error),
    #[error("the handoff thread: {0}")]
    Thread(std::io::Error),
    #[error("unexpected message {0}")]
    Unexpected(String),
    #[error("it closed the channel (see its log)")]
    Closed,
    #[error("the channel failed")]
    ChannelFailed,
    #[error("not serving after {0:?}")]
    Late(Duration),
}

/// Sessions hand themselves over through this.
pub struct Handoff {
    channel: Channel,
    /// Pub/Sub sessions waiting for the new process's subscriptions.
    acks: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Handoff {
    /// Sends a session's connection and state. With `released` false the
    /// old session keeps writing to it until the returned receiver fires
    /// (the new session's subscriptions are in place), then calls
    /// [`Handoff::release`].
    pub fn send(
        &self,
        key: u64,
        state: SessionState,
        fd: &OwnedFd,
        released: bool,
    ) -> std::io::Result<Option<oneshot::Receiver<()>>> {
        let ack = if released {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            lock(&self.acks).insert(key, tx);
            Some(rx)
        };
        let message = Message::Session {
            key,
            state,
            released,
        };
        if let Err(e) = self.channel.send(&message, &[fd]) {
            lock(&self.acks).remove(&key);
            return Err(e);
        }
        Ok(ack)
    }

    /// The old session no longer writes to the connection.
    pub fn release(&self, key: u64) {
        let _ = self.channel.send(&Message::Released { key }, &[]);
    }

    /// Reads the new process's acknowledgements until it closes.
    fn read_acks(self: Arc<Self>, reader: Channel) {
        while let Ok(Some((message, _))) = reader.recv() {
            if let Message::Subscribed { key } = message {
                if let Some(ack) = lock(&self.acks).remove(&key) {
                    let _ = ack.send(());
                }
            }
        }
        // The new process is gone: nobody waits for it any longer.
        lock(&self.acks).clear();
    }
}

/// Starts `exe args` as the new process, gives it `listeners` (and the
/// admin server's), and waits until it serves, unless `stopping` turns
/// true first (this process shuts down). Returns its pid and the handle
/// sessions hand themselves over with. On error the new process is stopped
/// and nothing changed here.
pub fn start_successor(
    exe: &PathBuf,
    args: &[OsString],
    listeners: &[Inherited<'_>],
    admin: Option<(String, &OwnedFd)>,
    stopping: impl Fn() -> bool,
) -> Result<(u32, Arc<Handoff>), UpgradeError> {
    let rendezvous = Rendezvous::open()?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .env(ENV, rendezvous.path())
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|source| UpgradeError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    let pid = child.id();
    let failed = |child: &mut std::process::Child, reason: NotReady| {
        let _ = child.kill();
        let _ = child.wait();
        UpgradeError::Successor { pid, reason }
    };
    let waiting = |child: &mut std::process::Child| {
        if stopping() {
            Err(NotReady::ShuttingDown)
        } else {
            match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(NotReady::Exited(status)),
                Err(e) => Err(NotReady::Io(e)),
            }
        }
    };
    let mut why = None;
    let connected = rendezvous.accept(pid, CONNECT_WITHIN, || match waiting(&mut child) {
        Ok(()) => true,
        Err(reason) => {
            why = Some(reason);
            false
        }
    });
    let channel = match connected {
        Ok(channel) => channel,
        Err(e) => {
            let reason = why.unwrap_or(NotReady::Io(e));
            return Err(failed(&mut child, reason));
        }
    };
    drop(rendezvous);
    let sent = send_listeners(&channel, listeners, admin);
    if let Err(e) = sent {
        return Err(failed(&mut child, NotReady::Listeners(e)));
    }
    // Everything that can fail here fails before the new process serves,
    // or stops it: never two processes serving after an error.
    let reader = match channel.try_clone() {
        Ok(reader) => reader,
        Err(e) => return Err(failed(&mut child, NotReady::Channel(e))),
    };
    match wait_ready(&channel, &mut child, waiting) {
        Ok(()) => {}
        Err(reason) => return Err(failed(&mut child, reason)),
    }
    let handoff = Arc::new(Handoff {
        channel,
        acks: Mutex::new(HashMap::new()),
    });
    let acks = handoff.clone();
    let reading = std::thread::Builder::new()
        .name("shardgate-handoff".into())
        .spawn(move || acks.read_acks(reader));
    if let Err(e) = reading {
        return Err(failed(&mut child, NotReady::Thread(e)));
    }
    Ok((pid, handoff))
}

fn send_listeners(
    channel: &Channel,
    listeners: &[Inherited<'_>],
    admin: Option<(String, &OwnedFd)>,
) -> std::io::Result<()> {
    for listener in listeners {
        let message = Message::Listener {
            pool: listener.pool.to_string(),
            endpoint: listener.endpoint,
            index: listener.index,
            addr: listener.addr.clone(),
        };
        channel.send(&message, &[listener.fd])?;
    }
    if let Some((addr, fd)) = admin {
        channel.send(&Message::Admin { addr }, &[fd])?;
    }
    channel.send(&Message::ListenersDone, &[])
}

/// Waits for `Ready` (the new process reads its config, starts its pools
/// and serves), or until `waiting` says why not (the child exited, this
/// process shuts down), or [`SERVE_WITHIN`].
fn wait_ready(
    channel: &Channel,
    child: &mut std::process::Child,
    waiting: impl Fn(&mut std::process::Child) -> Result<(), NotReady>,
) -> Result<(), NotReady> {
    let reader = channel.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(reader.recv());
    });
    let deadline = std::time::Instant::now() + SERVE_WITHIN;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(Some((Message::Ready { .. }, _)))) => return Ok(()),
            Ok(Ok(Some((other, _)))) => return Err(NotReady::Unexpected(format!("{other:?}"))),
            Ok(Ok(None)) => return Err(NotReady::Closed),
            Ok(Err(e)) => return Err(NotReady::Io(e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(NotReady::ChannelFailed)
            }
        }
        waiting(child)?;
        if std::time::Instant::now() >= deadline {
            return Err(NotReady::Late(SERVE_WITHIN));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
