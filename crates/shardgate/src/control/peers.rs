//! The peer watcher of a pool with `cluster_proxies`: which of the other
//! proxies answer, so the slots shown to cluster-aware clients are
//! divided among the live ones (`shardgate_core::cluster::face`).
//!
//! Every second each peer gets a PING on its pool address (any reply,
//! even `-NOAUTH`, is a live proxy; a TLS listener only has to accept).
//! Two misses in a row take a peer out, one answer puts it back: a killed
//! proxy's slots go to the others within about two seconds, and a client
//! that asks any live proxy for the map again is sent to the rest.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cluster::FaceView;
use crate::config::ListenAddr;
use crate::pool::PoolState;

/// How often the peers are asked.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a peer has to connect and answer.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);
/// Misses in a row that take a peer out.
const FALL: u32 = 2;

/// Watches the pool's peers until the pool is gone or the proxy stops.
pub async fn watch(state: Weak<PoolState>, mut shutdown: watch::Receiver<bool>) {
    let mut misses: HashMap<SocketAddr, u32> = HashMap::new();
    let mut shown: Option<FaceView> = None;
    loop {
        let Some(pool) = state.upgrade() else {
            return;
        };
        let config = pool.config();
        if let Some(face) = &config.cluster_face {
            // The listed addresses are TLS ones when this proxy's entry is
            // its TLS listener's (same port); those peers need only accept.
            let tls = matches!(
                config.tls_listen,
                Some(ListenAddr::Tcp(addr)) if addr.port() == face.me.port()
            );
            let plain = !tls;
            let peers: Vec<SocketAddr> = face
                .proxies
                .iter()
                .copied()
                .filter(|&p| p != face.me)
                .collect();
            drop(pool);
            for (peer, answered) in peers.iter().zip(ask_all(&peers, plain).await) {
                let count = misses.entry(*peer).or_default();
                *count = if answered { 0 } else { *count + 1 };
            }
            misses.retain(|peer, _| peers.contains(peer));
            let live = |addr: SocketAddr| misses.get(&addr).is_none_or(|&m| m < FALL);
            // The epoch is the pool's to give (`PoolState::set_face`).
            let view = FaceView::new(face, live, 0);
            if shown.as_ref().is_none_or(|old| old.nodes != view.nodes) {
                if let Some(old) = &shown {
                    log_change(&config.name, old, &view);
                }
                let Some(pool) = state.upgrade() else {
                    return;
                };
                shown = Some(pool.set_face(face.clone(), view));
            }
        } else {
            shown = None;
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = crate::shutdown::until_shutdown(&mut shutdown) => return,
        }
    }
}

/// Whether a proxy listens at `peer` and, when `plain`, answers a PING.
async fn answers(peer: SocketAddr, plain: bool) -> bool {
    let ask = async {
        let mut stream = TcpStream::connect(peer).await?;
        if plain {
            stream.write_all(b"PING\r\n").await?;
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await? == 0 {
                return Err(std::io::Error::other("closed"));
            }
        }
        Ok::<(), std::io::Error>(())
    };
    matches!(tokio::time::timeout(ANSWER_WITHIN, ask).await, Ok(Ok(())))
}

/// Asks every peer at once, so one silent peer costs the round its
/// timeout once, not once per peer.
async fn ask_all(peers: &[SocketAddr], plain: bool) -> Vec<bool> {
    let mut asking = tokio::task::JoinSet::new();
    for (i, &peer) in peers.iter().enumerate() {
        asking.spawn(async move { (i, answers(peer, plain).await) });
    }
    let mut answered = vec![false; peers.len()];
    while let Some(Ok((i, yes))) = asking.join_next().await {
        if let Some(slot) = answered.get_mut(i) {
            *slot = yes;
        }
    }
    answered
}

fn log_change(pool: &str, old: &FaceView, new: &FaceView) {
    for (before, after) in old.nodes.iter().zip(&new.nodes) {
        match (before.slots.is_some(), after.slots.is_some()) {
            (true, false) => tracing::warn!(
                pool,
                proxy = %after.addr,
                "cluster view: proxy does not answer; its slots go to the others"
            ),
            (false, true) => tracing::info!(
                pool,
                proxy = %after.addr,
                "cluster view: proxy answers again; it serves slots"
            ),
            _ => {}
        }
    }
}
