//! The channel between the old and the new process: a unix
//! `SOCK_SEQPACKET` socket (each message arrives whole, with its file
//! descriptors), messages in JSON, descriptors passed with `SCM_RIGHTS`.
//! The socket lives in a directory only this user can enter, and the old
//! process checks that the peer is the child it started.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

use super::handoff::SessionState;

/// The environment variable that tells a new process where to find the
/// old one.
pub const ENV: &str = "SHARDGATE_UPGRADE_SOCKET";

/// Largest message: a session's state with its subscriptions.
const MAX_MESSAGE: usize = 256 * 1024;

/// What the processes say to each other.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Old -> new: one listening socket (its descriptor attached) of a
    /// pool's endpoint (`endpoint` 0: read-write, 1: read-only), for
    /// worker `index`; `addr` as configured.
    Listener {
        pool: String,
        endpoint: u8,
        index: usize,
        addr: String,
    },
    /// Old -> new: the admin server's listening socket (attached).
    Admin { addr: String },
    /// Old -> new: every listener was sent.
    ListenersDone,
    /// New -> old: serving; the old process may hand its clients over.
    Ready { pid: u32 },
    /// Old -> new: a client connection (attached) and its session's
    /// state. With `released` false the old process still writes to it
    /// (Pub/Sub messages) until the new one says [`Message::Subscribed`]
    /// and it answers [`Message::Released`].
    Session {
        key: u64,
        state: SessionState,
        released: bool,
    },
    /// New -> old: the session's subscriptions are in place.
    Subscribed { key: u64 },
    /// Old -> new: the old process no longer writes to the session.
    Released { key: u64 },
}

/// One end of the channel. Sends are atomic per message, so several
/// threads may send at once.
pub struct Channel {
    socket: OwnedFd,
}

impl Channel {
    /// Sends `message` with `fds` attached.
    pub fn send(&self, message: &Message, fds: &[&OwnedFd]) -> std::io::Result<()> {
        let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
            return Err(std::io::Error::other(
                "too many descriptors for one message",
            ));
        }
        rustix::net::sendmsg(
            &self.socket,
            &[IoSlice::new(&body)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// The next message and its descriptors; None at the end (the other
    /// process closed its end or exited).
    pub fn recv(&self) -> std::io::Result<Option<(Message, Vec<OwnedFd>)>> {
        let mut body = vec![0u8; MAX_MESSAGE];
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            &self.socket,
            &mut [IoSliceMut::new(&mut body)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if received.bytes == 0 {
            return Ok(None);
        }
        let body = body.get(..received.bytes).unwrap_or_default();
        let message = serde_json::from_slice(body).map_err(std::io::Error::other)?;
        Ok(Some((message, fds)))
    }

    /// A second handle on the same socket (one thread reads while others
    /// send).
    pub fn try_clone(&self) -> std::io::Result<Channel> {
        Ok(Channel {
            socket: self.socket.try_clone()?,
        })
    }
}

/// The old process's end before the new process connects.
pub struct Rendezvous {
    dir: PathBuf,
    listener: OwnedFd,
}

impl Rendezvous {
    /// A listening socket in a fresh directory only this user can enter.
    pub fn open() -> std::io::Result<Rendezvous> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(
            "shardgate-upgrade-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let listener = seqpacket()?;
        let path = dir.join("socket");
        rustix::net::bind(&listener, &SocketAddrUnix::new(&path)?)?;
        rustix::net::listen(&listener, 1)?;
        Ok(Rendezvous { dir, listener })
    }

    /// The socket's path (for [`ENV`]).
    pub fn path(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// Waits up to `within` for process `pid` to connect (anyone else is
    /// turned away); gives up early when `keep_waiting` says no (the child
    /// is gone, or this process shuts down).
    pub fn accept(
        &self,
        pid: u32,
        within: Duration,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> std::io::Result<Channel> {
        rustix::io::ioctl_fionbio(&self.listener, true)?;
        let deadline = Instant::now() + within;
        loop {
            match rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                Ok(socket) => {
                    let peer = rustix::net::sockopt::socket_peercred(&socket)?;
                    if peer.pid.as_raw_nonzero().get() as u32 == pid {
                        rustix::io::ioctl_fionbio(&socket, false)?;
                        return Ok(Channel { socket });
                    }
                    tracing::warn!(
                        "upgrade: a process other than the new shardgate (pid {}) connected; turned away",
                        peer.pid.as_raw_nonzero()
                    );
                }
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the new process did not connect in time",
                ));
            }
            if !keep_waiting() {
                return Err(std::io::Error::other("gave up waiting for the new process"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The new process's end: connects to the old process at `path`.
pub fn connect(path: &Path) -> std::io::Result<Channel> {
    let socket = seqpacket()?;
    rustix::net::connect(&socket, &SocketAddrUnix::new(path)?)?;
    Ok(Channel { socket })
}

fn seqpacket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
