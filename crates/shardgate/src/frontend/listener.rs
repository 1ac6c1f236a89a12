//! Listening sockets and the accept loop.
//!
//! Every worker binds its own TCP socket to each pool's address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over workers and
//! no accept is shared between threads. A unix socket cannot be shared that
//! way; worker 0 serves it alone. A TLS endpoint's clients get a session
//! once their handshake completes.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify};

use super::session::{self, ClientStream, Restore};
use super::tls::HandshakeSlots;
use super::Endpoint;
use crate::config::ListenAddr;
use crate::log_limit::LogLimit;
use crate::upgrade::Adoption;
use crate::view::PoolWorker;

/// A bound, not yet async, listening socket (created before workers start,
/// so bind errors stop the proxy before it serves anything).
pub enum BoundListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// The listening sockets of one address, one per worker: a TCP address
/// gets a socket per worker (`SO_REUSEPORT`), a unix socket one, for
/// worker 0.
pub fn bind_for_workers(
    addr: &ListenAddr,
    backlog: u32,
    workers: usize,
) -> io::Result<Vec<Option<BoundListener>>> {
    match addr {
        ListenAddr::Tcp(addr) => (0..workers)
            .map(|_| bind_tcp(*addr, backlog).map(Some))
            .collect(),
        ListenAddr::Unix { path, mode } => {
            let mut listeners: Vec<Option<BoundListener>> = (0..workers).map(|_| None).collect();
            if let Some(first) = listeners.first_mut() {
                *first = Some(bind_unix(path, *mode)?);
            }
            Ok(listeners)
        }
    }
}

impl BoundListener {
    /// A socket inherited from the old process (a binary upgrade).
    pub fn inherited(fd: std::os::fd::OwnedFd, unix: bool) -> io::Result<BoundListener> {
        if unix {
            let listener = std::os::unix::net::UnixListener::from(fd);
            listener.set_nonblocking(true)?;
            Ok(BoundListener::Unix(listener))
        } else {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true)?;
            Ok(BoundListener::Tcp(listener))
        }
    }

    /// A second descriptor of the same socket (kept to hand it over).
    pub fn duplicate(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        match self {
            BoundListener::Tcp(l) => l.as_fd().try_clone_to_owned(),
            BoundListener::Unix(l) => l.as_fd().try_clone_to_owned(),
        }
    }
}

/// Binds a TCP listener that other workers can bind too.
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<BoundListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(BoundListener::Tcp(socket.into()))
}

/// Binds a unix socket, replacing a stale socket file.
pub fn bind_unix(path: &Path, mode: Option<u32>) -> io::Result<BoundListener> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(BoundListener::Unix(listener))
}

/// Counts a worker's live sessions so shutdown can wait for them.
#[derive(Default)]
pub struct SessionTracker {
    live: Cell<usize>,
    idle: Notify,
}

impl SessionTracker {
    fn enter(&self) {
        self.live.set(self.live.get() + 1);
    }
    fn leave(&self) {
        self.live.set(self.live.get() - 1);
        if self.live.get() == 0 {
            self.idle.notify_waiters();
        }
    }
    /// Resolves when no session is left.
    pub async fn wait_idle(&self) {
        while self.live.get() > 0 {
            self.idle.notified().await;
        }
    }
}

/// A listening socket the accept loop can take clients from.
trait Acceptor {
    type Stream: ClientStream;
    /// The next client and its address.
    async fn next(&self) -> io::Result<(Self::Stream, String)>;
}

impl Acceptor for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<(Self::Stream, String)> {
        let (stream, peer) = self.accept().await?;
        Ok((stream, peer.to_string()))
    }
}

/// A unix listener and its path (clients are named `path:0`, as Redis
/// names unix socket clients).
struct Unix(UnixListener, String);

impl Acceptor for Unix {
    type Stream = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<(Self::Stream, String)> {
        let (stream, _) = self.0.accept().await?;
        Ok((stream, format!("{}:0", self.1)))
    }
}

/// Accepts clients until shutdown, starting a session for each.
pub async fn accept_loop(
    listener: BoundListener,
    endpoint: Endpoint,
    pool: Rc<PoolWorker>,
    shutdown: watch::Receiver<bool>,
    tracker: Rc<SessionTracker>,
) -> io::Result<()> {
    match listener {
        BoundListener::Tcp(std_listener) => {
            let listener = TcpListener::from_std(std_listener)?;
            // One string per listener, shared by its clients' entries.
            let local: Arc<str> = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default()
                .into();
            let settings = pool.clone();
            let prepare = move |stream: &tokio::net::TcpStream| {
                let _ = stream.set_nodelay(true);
                if settings.config().tcpkeepalive {
                    let _ = socket2::SockRef::from(stream).set_keepalive(true);
                }
            };
            if endpoint.tls() {
                return serve_tls(
                    &listener, prepare, local, endpoint, &pool, shutdown, &tracker,
                )
                .await;
            }
            serve(
                &listener, prepare, local, endpoint, &pool, shutdown, &tracker,
            )
            .await
        }
        BoundListener::Unix(std_listener) => {
            let listener = UnixListener::from_std(std_listener)?;
            let local = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_default();
            let unix = Unix(listener, local.clone());
            serve(
                &unix,
                |_| {},
                local.into(),
                endpoint,
                &pool,
                shutdown,
                &tracker,
            )
            .await
        }
    }
}

async fn serve<A: Acceptor>(
    listener: &A,
    prepare: impl Fn(&A::Stream),
    local: Arc<str>,
    endpoint: Endpoint,
    pool: &Rc<PoolWorker>,
    mut shutdown: watch::Receiver<bool>,
    tracker: &Rc<SessionTracker>,
) -> io::Result<()> {
    let mut limit = FdLimit::new();
    loop {
        tokio::select! {
            accepted = limit.next_client(listener) => if let Some((stream, peer)) = accepted {
                prepare(&stream);
                start_session(stream, peer, local.clone(), endpoint, pool, &shutdown, tracker);
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Accepts TLS clients until shutdown: each handshake runs in its own
/// task (see [`super::tls`]), at most `tls.max_handshakes` at a time on
/// this worker; a client whose handshake completes gets a session.
async fn serve_tls(
    listener: &TcpListener,
    prepare: impl Fn(&tokio::net::TcpStream),
    local: Arc<str>,
    endpoint: Endpoint,
    pool: &Rc<PoolWorker>,
    mut shutdown: watch::Receiver<bool>,
    tracker: &Rc<SessionTracker>,
) -> io::Result<()> {
    let mut limit = FdLimit::new();
    // Connections not through their handshake yet, and handshakes running.
    let (waiting, places) = (
        Rc::new(HandshakeSlots::default()),
        Rc::new(HandshakeSlots::default()),
    );
    let max = || (pool.state.tls.acceptor.current()).map_or(1, |side| side.settings.max_handshakes);
    loop {
        let slot = tokio::select! {
            slot = waiting.take(|| max().saturating_mul(super::tls::WAITING_PER_PLACE)) => slot,
            _ = shutdown.changed() => return Ok(()),
        };
        tokio::select! {
            accepted = limit.next_client(listener) => if let Some((stream, peer)) = accepted {
                prepare(&stream);
                let (pool, local, shutdown, tracker, places) =
                    (pool.clone(), local.clone(), shutdown.clone(), tracker.clone(), places.clone());
                tokio::task::spawn_local(async move {
                    let handshake = super::tls::handshake(&pool, stream, &peer, &places).await;
                    drop(slot);
                    if let Ok(stream) = handshake {
                        start_session(stream, peer, local, endpoint, &pool, &shutdown, &tracker);
                    }
                });
            },
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// What an accept loop does at the file descriptor limit: Redis answers
/// `-ERR max number of clients reached` and closes; a proxy that cannot
/// accept would instead leave clients hanging in the backlog. So one
/// descriptor is held in reserve: at the limit it is released, the
/// waiting client accepted, answered, closed, and the reserve taken back.
/// Logged once per episode, not per client.
struct FdLimit {
    reserve: Option<std::fs::File>,
    /// Clients refused in the current episode.
    refused: u64,
}

impl FdLimit {
    fn new() -> FdLimit {
        FdLimit {
            reserve: std::fs::File::open("/dev/null").ok(),
            refused: 0,
        }
    }

    /// The next client; None after an accept error, handled here (the
    /// descriptor limit: one waiting client refused in words; anything
    /// else logged and a short pause).
    async fn next_client<A: Acceptor>(&mut self, listener: &A) -> Option<(A::Stream, String)> {
        match listener.next().await {
            Ok(client) => {
                self.accepted();
                Some(client)
            }
            Err(e) if FdLimit::is_fd_limit(&e) => {
                self.refuse_one(listener).await;
                None
            }
            Err(e) => {
                accept_failed(e).await;
                None
            }
        }
    }

    fn is_fd_limit(error: &io::Error) -> bool {
        // EMFILE (the process's limit) and ENFILE (the system's).
        matches!(error.raw_os_error(), Some(24 | 23))
    }

    async fn refuse_one<A: Acceptor>(&mut self, listener: &A) {
        static LOG: LogLimit = LogLimit::new(60);
        if self.refused == 0 && LOG.allow() {
            tracing::warn!(
                "out of file descriptors: new clients are answered 'max number of clients reached' and closed (raise the limit: LimitNOFILE= or ulimit -n)"
            );
        }
        self.refused += 1;
        drop(self.reserve.take());
        match listener.next().await {
            Ok((mut stream, _)) => {
                let _ = tokio::time::timeout(
                    Duration::from_millis(100),
                    stream.write_all(b"-ERR max number of clients reached\r\n"),
                )
                .await;
            }
            // Still at the limit (another thread took the descriptor):
            // back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        self.reserve = std::fs::File::open("/dev/null").ok();
    }

    fn accepted(&mut self) {
        if self.refused > 0 {
            tracing::info!(
                "accepting clients again after refusing {} at the file descriptor limit",
                self.refused
            );
            self.refused = 0;
        }
        if self.reserve.is_none() {
            self.reserve = std::fs::File::open("/dev/null").ok();
        }
    }
}

/// Other accept errors: say so (at most once a minute) and back off
/// briefly instead of spinning.
async fn accept_failed(error: io::Error) {
    static LOG: LogLimit = LogLimit::new(60);
    if LOG.allow() {
        tracing::warn!("accept failed: {error}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn start_session<S: ClientStream>(
    mut stream: S,
    peer: String,
    local: Arc<str>,
    endpoint: Endpoint,
    pool: &Rc<PoolWorker>,
    shutdown: &watch::Receiver<bool>,
    tracker: &Rc<SessionTracker>,
) {
    if !pool.state.admit_client() {
        tokio::task::spawn_local(async move {
            // Redis's own wording when maxclients is reached.
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        });
        return;
    }
    pool.stats.clients_accepted.inc();
    let session = Serving {
        pool: pool.clone(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    tokio::task::spawn_local(session.run(stream, peer, local, endpoint, None));
}

/// Starts a session for a connection the old process handed over (a
/// binary upgrade). It was admitted there, so it is admitted here.
pub fn adopt_session(
    adoption: Adoption,
    pool: &Rc<PoolWorker>,
    shutdown: &watch::Receiver<bool>,
    tracker: &Rc<SessionTracker>,
) -> io::Result<()> {
    let Adoption {
        state,
        fd,
        released,
        subscribed,
    } = adoption;
    pool.state.admit_adopted();
    let session = Serving {
        pool: pool.clone(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    let endpoint = if state.readonly {
        Endpoint::ReadOnly
    } else {
        Endpoint::ReadWrite
    };
    let (peer, local, unix) = (
        state.addr.clone(),
        Arc::from(state.laddr.as_str()),
        state.unix,
    );
    let restore = Some(Box::new(Restore {
        state,
        released,
        subscribed,
    }));
    if unix {
        let stream = std::os::unix::net::UnixStream::from(fd);
        stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(stream)?;
        tokio::task::spawn_local(session.run(stream, peer, local, endpoint, restore));
    } else {
        let stream = std::net::TcpStream::from(fd);
        stream.set_nonblocking(true)?;
        let stream = tokio::net::TcpStream::from_std(stream)?;
        tokio::task::spawn_local(session.run(stream, peer, local, endpoint, restore));
    }
    Ok(())
}

/// What a session task needs besides its connection.
struct Serving {
    pool: Rc<PoolWorker>,
    shutdown: watch::Receiver<bool>,
    tracker: Rc<SessionTracker>,
}

impl Serving {
    /// Registers the client and serves it to the end; it is unregistered
    /// when the returned future ends (or is dropped). Registered here, not
    /// in the future: what a client's task holds is what it costs, and a
    /// future keeps every local it ever held.
    fn run<S: ClientStream>(
        self,
        stream: S,
        peer: String,
        local: Arc<str>,
        endpoint: Endpoint,
        restore: Option<Box<Restore>>,
    ) -> impl std::future::Future<Output = ()> {
        let Serving {
            pool,
            shutdown,
            tracker,
        } = self;
        tracker.enter();
        let entry = pool
            .state
            .clients
            .register(peer, local, stream.fd(), pool.config().redis_db);
        // A client accepted as shutdown began may have missed the signal.
        if *shutdown.borrow() {
            entry.request_shutdown();
        }
        let registered = Registered {
            id: entry.id,
            pool: pool.clone(),
            tracker,
        };
        session::run(stream, pool, entry, endpoint, restore, registered)
    }
}

/// A client in its pool's registry and the worker's count of sessions,
/// until dropped.
struct Registered {
    id: u64,
    pool: Rc<PoolWorker>,
    tracker: Rc<SessionTracker>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.pool.state.clients.unregister(self.id);
        self.pool.state.release_client();
        self.tracker.leave();
    }
}
