//! Steady load through a proxy with every reply checked: each client
//! pipelines SETs of its own keys and GETs of keys it wrote before, and
//! counts what went wrong (an error reply, a wrong value, a closed
//! connection). What the proxy does meanwhile (reload, upgrade, failover)
//! must cost nothing here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::resp::{Reply, RespClient};

/// What the clients saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Replies checked and right.
    pub ok: u64,
    /// Error replies and wrong values (the first few, verbatim).
    pub errors: Vec<String>,
    pub error_count: u64,
    /// Connections that closed or failed under a client.
    pub disconnects: u64,
}

/// Clients running until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<LoadReport>>,
    /// Replies so far, across clients (for throughput over time).
    pub done: Arc<AtomicU64>,
    started: Instant,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
}

impl Load {
    /// `clients` clients on `port`, each `depth` requests deep.
    pub fn start(port: u16, clients: usize, depth: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|id| {
                let stop = stop.clone();
                let done = done.clone();
                std::thread::spawn(move || run_client(port, id, depth, &stop, &done))
            })
            .collect();
        let load = Load {
            stop,
            threads,
            done,
            started: Instant::now(),
            samples: Arc::default(),
        };
        load.sample_every(Duration::from_millis(100));
        load
    }

    /// Records the reply count every `interval` (see [`Load::rate_around`]).
    fn sample_every(&self, interval: Duration) {
        let (stop, done, samples, started) = (
            self.stop.clone(),
            self.done.clone(),
            self.samples.clone(),
            self.started,
        );
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                std::thread::sleep(interval);
                let mut samples = samples.lock().unwrap_or_else(|e| e.into_inner());
                samples.push((started.elapsed(), done.load(Relaxed)));
            }
        });
    }

    /// Waits until at least `replies` more replies arrived (or 10 s).
    pub fn wait_for(&self, replies: u64) {
        let target = self.done.load(Relaxed) + replies;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.done.load(Relaxed) < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Time since the load started (to mark moments for [`Load::rate_around`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Replies per second over `window` starting at `from` (after start).
    pub fn rate(&self, from: Duration, window: Duration) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let at = |t: Duration| {
            samples
                .iter()
                .min_by_key(|(when, _)| when.abs_diff(t))
                .map_or((t, 0), |s| *s)
        };
        let (t0, n0) = at(from);
        let (t1, n1) = at(from + window);
        let seconds = t1.saturating_sub(t0).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        (n1.saturating_sub(n0)) as f64 / seconds
    }

    /// Stops every client and sums what they saw.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Relaxed);
        let mut total = LoadReport::default();
        for thread in self.threads {
            let report = thread.join().unwrap_or_else(|_| LoadReport {
                errors: vec!["a load client panicked".into()],
                error_count: 1,
                ..LoadReport::default()
            });
            total.ok += report.ok;
            total.error_count += report.error_count;
            total.disconnects += report.disconnects;
            for error in report.errors {
                if total.errors.len() < 10 {
                    total.errors.push(error);
                }
            }
        }
        total
    }
}

fn run_client(
    port: u16,
    id: usize,
    depth: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
) -> LoadReport {
    let mut report = LoadReport::default();
    let mut next = 0u64;
    // Keys below this were acknowledged: only those are read back (a SET
    // cut off by a closed connection may or may not have landed).
    let mut acked = 0u64;
    // Keys whose SET was cut off: never read back.
    let mut unsure: Vec<std::ops::RangeInclusive<u64>> = Vec::new();
    let mut client: Option<RespClient> = None;
    while !stop.load(Relaxed) {
        let Some(connection) = client.as_mut() else {
            match RespClient::connect(port) {
                Ok(c) => client = Some(c),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            continue;
        };
        // Half SETs of new keys, half GETs of keys acknowledged before.
        let mut expected = Vec::with_capacity(depth);
        for i in 0..depth {
            let sent = if i % 2 == 0 || acked == 0 {
                next += 1;
                let (key, value) = (format!("load:{id}:{next}"), format!("v{next}"));
                expected.push((Reply::Simple("OK".into()), Some(next)));
                connection.send(&["SET", &key, &value])
            } else {
                let mut n = 1 + (next * 7919 + i as u64) % acked;
                if unsure.iter().any(|r| r.contains(&n)) {
                    n = acked;
                }
                let key = format!("load:{id}:{n}");
                expected.push((Reply::Bulk(format!("v{n}").into_bytes()), None));
                connection.send(&["GET", &key])
            };
            if sent.is_err() {
                break;
            }
        }
        let mut failed = expected.len() < depth;
        for (want, set) in &expected {
            match connection.read_reply() {
                Ok(reply) if reply == *want => {
                    report.ok += 1;
                    done.fetch_add(1, Relaxed);
                    if let Some(n) = set {
                        acked = acked.max(*n);
                    }
                }
                Ok(reply) => {
                    report.error_count += 1;
                    if report.errors.len() < 10 {
                        report
                            .errors
                            .push(format!("client {id}: wanted {want:?}, got {reply:?}"));
                    }
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            report.disconnects += 1;
            unsure.push(acked + 1..=next);
            client = None;
        }
    }
    report
}
