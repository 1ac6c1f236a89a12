//! The proxy-wide limit on client memory (`--maxmemory-clients`, as Redis
//! 7's `maxmemory-clients`): what sessions hold for their clients (read
//! buffers, requests queued in MULTI, replies not yet written) is summed
//! over every client of every pool ten times a second; above the limit
//! the clients holding the most are closed, heaviest first, until the
//! rest fit, each with a log line. Per-client limits (`client_output_limit`,
//! `max_request_bytes`) bound one client; this bounds them all together,
//! so many slow readers or many big requests at once cannot take the
//! proxy's memory.
//!
//! The sums come from what each session records of its buffers (the same
//! figures as CLIENT LIST's `tot-mem`), read with relaxed atomics on a
//! thread of its own: nothing is added to the data path.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::clients::{ClientEntry, KILLED};
use super::PoolState;

/// How often the sums are taken.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Starts the thread that enforces `limit` bytes over the clients of
/// `pools()`, until `shutdown`.
pub fn spawn(
    limit: u64,
    pools: impl Fn() -> Arc<Vec<Arc<PoolState>>> + Send + 'static,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("shardgate-client-memory".into())
        .spawn(move || {
            while !*shutdown.borrow() {
                sweep(limit, &pools());
                std::thread::sleep(SWEEP_EVERY);
            }
        })
        .map(drop)
}

/// One sweep: sums every pool's clients, closes the heaviest while the
/// sum is above `limit`.
fn sweep(limit: u64, pools: &[Arc<PoolState>]) {
    let mut clients: Vec<(u64, &Arc<PoolState>, Arc<ClientEntry>)> = Vec::new();
    for pool in pools {
        let mut sum = 0;
        for client in pool.clients.list() {
            let held = client.memory();
            sum += held;
            // Closed already, and letting go of what it held.
            if client.signal() < KILLED {
                clients.push((held, pool, client));
            }
        }
        pool.client_memory.store(sum, Relaxed);
    }
    let held: Vec<u64> = clients.iter().map(|(held, _, _)| *held).collect();
    for i in heaviest_over(&held, limit) {
        let Some((bytes, pool, client)) = clients.get(i) else {
            continue;
        };
        client.kill();
        pool.evicted_clients.fetch_add(1, Relaxed);
        tracing::warn!(
            pool = %pool.name,
            client = %client.addr,
            id = client.id,
            held = bytes,
            limit,
            "client closed: clients hold more memory than --maxmemory-clients allows, and this one held the most"
        );
    }
}

/// The indexes of the clients to close so that the rest of `held` fits in
/// `limit`: heaviest first (ties: the later client, so older ones stay).
fn heaviest_over(held: &[u64], limit: u64) -> Vec<usize> {
    let mut total: u64 = held.iter().sum();
    if total <= limit {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..held.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse((held.get(i).copied().unwrap_or(0), i)));
    let mut closed = Vec::new();
    for i in order {
        if total <= limit {
            break;
        }
        total -= held.get(i).copied().unwrap_or(0);
        closed.push(i);
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::heaviest_over;

    #[test]
    fn the_heaviest_clients_go_until_the_rest_fit() {
        assert!(heaviest_over(&[10, 20, 30], 60).is_empty());
        assert_eq!(heaviest_over(&[10, 50, 30], 60), vec![1]);
        assert_eq!(heaviest_over(&[40, 50, 30], 30), vec![1, 0]);
        // Ties: the newer client goes first.
        assert_eq!(heaviest_over(&[50, 50], 60), vec![1]);
        assert!(heaviest_over(&[], 0).is_empty());
    }
}
