//! The new process's side: take the old process's listening sockets at
//! start, say when serving, then adopt each client it hands over.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::channel::{connect, Channel, Message};
use super::handoff::SessionState;

/// The old process's listening sockets, taken as the new one starts.
pub struct Inheritance {
    channel: Channel,
    /// By (pool, endpoint): the configured address and each worker's socket.
    listeners: HashMap<(String, u8), (String, Vec<OwnedFd>)>,
    admin: Option<(String, OwnedFd)>,
}

/// A client connection handed over, with what the session needs to go on.
pub struct Adoption {
    pub state: SessionState,
    pub fd: OwnedFd,
    /// Fires once the old process no longer writes to the connection
    /// (None: it already does not).
    pub released: Option<oneshot::Receiver<()>>,
    /// Tells the old process the session's subscriptions are in place.
    pub subscribed: Subscribed,
}

/// See [`Adoption::subscribed`].
pub struct Subscribed {
    key: u64,
    channel: Arc<Channel>,
}

impl Subscribed {
    pub fn done(self) {
        let _ = self
            .channel
            .send(&Message::Subscribed { key: self.key }, &[]);
    }
}

impl Inheritance {
    /// Connects to the old process at `path` and takes its listeners.
    pub fn take(path: &Path) -> std::io::Result<Inheritance> {
        let channel = connect(path)?;
        let mut listeners: HashMap<(String, u8), (String, Vec<OwnedFd>)> = HashMap::new();
        let mut admin = None;
        loop {
            let Some((message, mut fds)) = channel.recv()? else {
                return Err(std::io::Error::other(
                    "the old process closed the channel before sending its listeners",
                ));
            };
            match (message, fds.pop()) {
                (
                    Message::Listener {
                        pool,
                        endpoint,
                        addr,
                        ..
                    },
                    Some(fd),
                ) => {
                    let entry = listeners
                        .entry((pool, endpoint))
                        .or_insert_with(|| (addr, Vec::new()));
                    entry.1.push(fd);
                }
                (Message::Admin { addr }, Some(fd)) => admin = Some((addr, fd)),
                (Message::ListenersDone, _) => break,
                (other, _) => {
                    return Err(std::io::Error::other(format!(
                        "unexpected message from the old process: {other:?}"
                    )))
                }
            }
        }
        Ok(Inheritance {
            channel,
            listeners,
            admin,
        })
    }

    /// The sockets the old process listened on for `pool`'s `endpoint`,
    /// if it listened on `addr` (a new config may have moved it).
    pub fn listeners(&mut self, pool: &str, endpoint: u8, addr: &str) -> Option<Vec<OwnedFd>> {
        let key = (pool.to_string(), endpoint);
        match self.listeners.get(&key) {
            Some((inherited, _)) if inherited == addr => {
                self.listeners.remove(&key).map(|(_, fds)| fds)
            }
            _ => None,
        }
    }

    /// The admin server's socket, if it listened on `addr`.
    pub fn admin(&mut self, addr: &str) -> Option<OwnedFd> {
        match &self.admin {
            Some((inherited, _)) if inherited == addr => self.admin.take().map(|(_, fd)| fd),
            _ => None,
        }
    }

    /// Tells the old process this one serves, then adopts each client it
    /// hands over with `adopt`, until the old process exits.
    pub fn serve(self, adopt: impl Fn(Adoption) + Send + 'static) -> std::io::Result<()> {
        let Inheritance { channel, .. } = self;
        channel.send(
            &Message::Ready {
                pid: std::process::id(),
            },
            &[],
        )?;
        let channel = Arc::new(channel);
        std::thread::Builder::new()
            .name("shardgate-adopt".into())
            .spawn(move || adopt_all(&channel, adopt))?;
        Ok(())
    }
}

fn adopt_all(channel: &Arc<Channel>, adopt: impl Fn(Adoption)) {
    let gates: Mutex<HashMap<u64, oneshot::Sender<()>>> = Mutex::new(HashMap::new());
    let mut adopted = 0u64;
    while let Ok(Some((message, mut fds))) = channel.recv() {
        match (message, fds.pop()) {
            (
                Message::Session {
                    key,
                    state,
                    released,
                },
                Some(fd),
            ) => {
                let released = (!released).then(|| {
                    let (tx, rx) = oneshot::channel();
                    lock(&gates).insert(key, tx);
                    rx
                });
                adopted += 1;
                adopt(Adoption {
                    state,
                    fd,
                    released,
                    subscribed: Subscribed {
                        key,
                        channel: channel.clone(),
                    },
                });
            }
            (Message::Released { key }, _) => {
                if let Some(gate) = lock(&gates).remove(&key) {
                    let _ = gate.send(());
                }
            }
            (other, _) => tracing::warn!("upgrade: unexpected message {other:?}"),
        }
    }
    // The old process has exited: it writes to nothing any more.
    for (_, gate) in lock(&gates).drain() {
        let _ = gate.send(());
    }
    tracing::info!("the old process has exited; {adopted} client connection(s) adopted");
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
