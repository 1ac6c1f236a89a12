//! A fault-injecting TCP relay: listens on a free loopback port and
//! forwards every connection to a real server, byte for byte, until told
//! to misbehave. It can add latency, stall one direction, or reset every
//! connection it carries, as a bad network between a proxy and a server
//! would.
//!
//! Each relay runs its own thread with a current-thread tokio runtime;
//! dropping the relay stops it and closes every connection. Faults are
//! published through a `watch` channel that every connection's pumps read,
//! so a change applies to the connections already open and to new ones.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Which way bytes travel through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the connecting client to the server.
    ToServer,
    /// From the server back to the client.
    ToClient,
}

/// What the relay currently does to the bytes it carries.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// Added to every chunk, in both directions (latency, not a throttle:
    /// chunks are timestamped on arrival and sent when due).
    delay: Duration,
    stall_to_server: bool,
    stall_to_client: bool,
    /// Bumped by [`Relay::reset`]: connections opened before the bump are
    /// reset (RST) on both sides.
    resets: u64,
    shutdown: bool,
}

impl Faults {
    fn stalled(&self, direction: Direction) -> bool {
        match direction {
            Direction::ToServer => self.stall_to_server,
            Direction::ToClient => self.stall_to_client,
        }
    }
}

/// A relay from a free loopback port to `127.0.0.1:target`. Stops on drop.
pub struct Relay {
    port: u16,
    target: u16,
    faults: watch::Sender<Faults>,
    open: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying from a free port to `127.0.0.1:target`.
    pub fn start(target: u16) -> Relay {
        Relay::start_on(crate::ports::free_port(), target)
    }

    /// Starts relaying from `port` to `127.0.0.1:target`.
    ///
    /// # Panics
    /// When `port` cannot be bound.
    pub fn start_on(port: u16, target: u16) -> Relay {
        let listener = StdListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("relay cannot bind 127.0.0.1:{port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (faults, watcher) = watch::channel(Faults::default());
        let open = Arc::new(AtomicUsize::new(0));
        let thread = {
            let open = open.clone();
            std::thread::Builder::new()
                .name(format!("relay-{port}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("relay runtime");
                    runtime.block_on(accept_loop(listener, target, watcher, open));
                })
                .expect("spawn relay thread")
        };
        Relay {
            port,
            target,
            faults,
            open,
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's port.
    pub fn target(&self) -> u16 {
        self.target
    }

    /// Connections open through the relay right now.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Adds `delay` to every chunk in both directions (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.faults.send_modify(|f| f.delay = delay);
    }

    /// Holds (or releases) every byte travelling in `direction`: the
    /// connections stay open, nothing arrives.
    pub fn stall(&self, direction: Direction, stalled: bool) {
        self.faults.send_modify(|f| match direction {
            Direction::ToServer => f.stall_to_server = stalled,
            Direction::ToClient => f.stall_to_client = stalled,
        });
    }

    /// Resets (RST) both sides of every connection open now. New
    /// connections are relayed as usual.
    pub fn reset(&self) {
        self.faults.send_modify(|f| f.resets += 1);
    }

    /// No delay, no stall.
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            f.delay = Duration::ZERO;
            f.stall_to_server = false;
            f.stall_to_client = false;
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.faults.send_modify(|f| f.shutdown = true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: StdListener,
    target: u16,
    mut faults: watch::Receiver<Faults>,
    open: Arc<AtomicUsize>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let template = faults.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    let (faults, open) = (template.clone(), open.clone());
                    tokio::spawn(async move {
                        open.fetch_add(1, Ordering::Relaxed);
                        serve(client, target, faults).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
            _ = faults.wait_for(|f| f.shutdown) => return,
        }
    }
}

/// Closes `stream` with a reset rather than a FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(mut client: TcpStream, target: u16, mut faults: watch::Receiver<Faults>) {
    let generation = faults.borrow().resets;
    let address = SocketAddr::from(([127, 0, 0, 1], target));
    let mut server =
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await {
            Ok(Ok(server)) => server,
            // The server is down: the client sees its connection reset, as
            // close as a relay gets to a refused connection.
            _ => return reset(client),
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let was_reset = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(
            client_read,
            server_write,
            Direction::ToServer,
            faults.clone(),
        );
        let down = pump(
            server_read,
            client_write,
            Direction::ToClient,
            faults.clone(),
        );
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            _ = faults.wait_for(|f| f.resets != generation || f.shutdown) => true,
        }
    };
    if was_reset {
        reset(client);
        reset(server);
    }
}

/// Copies `from` to `to` under the current faults until `from` ends, then
/// shuts `to`'s write side (the FIN travels on).
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    direction: Direction,
    faults: watch::Receiver<Faults>,
) {
    let (chunks, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = {
        let faults = faults.clone();
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                match from.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let at = Instant::now() + faults.borrow().delay;
                        if chunks.send((at, buffer[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut faults = faults;
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if faults.wait_for(|f| !f.stalled(direction)).await.is_err() {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
