//! `shardgate-chaos --check-pubsub-failover`: a focused, repeatable check
//! of one promise the chaos run found broken (docs/chaos.md, "Findings"):
//! after a Sentinel failover, a subscriber through the proxy must hear the
//! messages published on the shard's new master. Kept out of `make test`
//! while the proxy does not keep it.
//!
//! A subscriber on proxy 0 listens to a channel on shard 1; a publisher on
//! proxy 1 publishes a sequence number every 20 ms. The shard's master is
//! then frozen until Sentinel fails it over and thawed at once (variant
//! "SIGSTOP"), or killed and restarted after the failover ("kill -9").
//! Measured: the time from `+switch-master` to the first message received
//! that was published at least 500 ms after it (when the publishing proxy
//! has long moved to the new master). It must be under 2 s.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::resp::Reply;
use test_support::RespClient;

use crate::clock::{now, secs, wait_for, Ms};
use crate::cluster::Cluster;
use crate::journal::Journal;
use crate::monitor;
use crate::run::Options;

const BOUND: Ms = 2_000;
const LAG: Ms = 500;

/// Runs both variants; true when both pass.
pub fn check(options: &Options) -> bool {
    now();
    std::fs::create_dir_all(&options.out).expect("create the output directory");
    let journal = Arc::new(Journal::default());
    let mut cluster = Cluster::start(&options.shardgate, &options.out);
    let _kill_proxies = crate::run::KillProxiesOnDrop(cluster.proxies.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<_> = cluster
        .sentinels
        .iter()
        .map(|s| monitor::watch_sentinel(s.port(), journal.clone(), stop.clone()))
        .collect();
    assert!(
        wait_for(Duration::from_secs(60), || cluster.healed().is_ok()),
        "the topology never came up: {:?}",
        cluster.healed()
    );
    let ports = cluster.proxies.ports();
    let tags = crate::run::probe_tags(&cluster, ports[0]);
    let channel = format!("{}news", tags[0][0]);
    // (seq, when published) and (seq, when received)
    let published: Arc<Mutex<Vec<(u64, Ms)>>> = Arc::default();
    let received: Arc<Mutex<Vec<(u64, Ms)>>> = Arc::default();
    let subscriber = {
        let (stop, received, channel, port) =
            (stop.clone(), received.clone(), channel.clone(), ports[0]);
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let Ok(mut conn) = RespClient::connect(port) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                conn.set_read_timeout(Some(Duration::from_millis(200)));
                if conn.send(&["SUBSCRIBE", &channel]).is_err() {
                    continue;
                }
                while !stop.load(Relaxed) {
                    match conn.read_reply() {
                        Ok(Reply::Array(parts)) if parts.len() == 3 => {
                            if let Some(seq) = parts[2].bulk_str().and_then(|s| s.parse().ok()) {
                                received.lock().unwrap().push((seq, now()));
                            }
                        }
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }
        })
    };
    let publisher = {
        let (stop, published, channel, port) =
            (stop.clone(), published.clone(), channel.clone(), ports[1]);
        std::thread::spawn(move || {
            let mut seq = 0u64;
            let mut conn: Option<RespClient> = None;
            while !stop.load(Relaxed) {
                seq += 1;
                if conn.is_none() {
                    conn = RespClient::connect(port).ok();
                }
                if let Some(c) = conn.as_mut() {
                    let at = now();
                    match c.cmd(&["PUBLISH", &channel, &seq.to_string()]) {
                        Ok(Reply::Integer(_)) => published.lock().unwrap().push((seq, at)),
                        Ok(_) => {}
                        Err(_) => conn = None,
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut rows = Vec::new();
    for variant in [
        "SIGSTOP until failed over",
        "kill -9, restarted after the failover",
    ] {
        std::thread::sleep(Duration::from_secs(3));
        let heard_before = received.lock().unwrap().len();
        let master = cluster.master_of(0).expect("shard1 has a master");
        let port = cluster.nodes[master].port();
        let start = now();
        if variant.starts_with("SIGSTOP") {
            cluster.nodes[master].server.pause();
        } else {
            cluster.nodes[master].server.kill();
        }
        let switched = wait_for(Duration::from_secs(30), || {
            journal
                .failovers()
                .iter()
                .any(|f| f.shard == 0 && f.from == port && f.at >= start)
        });
        if variant.starts_with("SIGSTOP") {
            cluster.nodes[master].server.resume();
        } else {
            let to = journal
                .failovers()
                .iter()
                .rev()
                .find(|f| f.shard == 0 && f.from == port)
                .map(|f| f.to);
            cluster.nodes[master].server.restart_replicating(to);
        }
        let switch_at = journal
            .failovers()
            .iter()
            .rev()
            .find(|f| f.shard == 0 && f.from == port)
            .map(|f| f.at);
        let resumed = |switch_at: Ms| -> Option<Ms> {
            let first_seq = published
                .lock()
                .unwrap()
                .iter()
                .find(|(_, at)| *at >= switch_at + LAG)
                .map(|(seq, _)| *seq)?;
            received
                .lock()
                .unwrap()
                .iter()
                .find(|(seq, _)| *seq >= first_seq)
                .map(|(_, at)| at - switch_at)
        };
        let mut deaf = None;
        if let (true, Some(switch_at)) = (switched, switch_at) {
            wait_for(Duration::from_secs(30), || {
                deaf = resumed(switch_at);
                deaf.is_some()
            });
        }
        let log = cluster.proxies.lock()[0]
            .proxy
            .as_ref()
            .map(|p| p.log())
            .unwrap_or_default();
        let relinks = log.lines().filter(|l| l.contains("push link lost")).count();
        rows.push((variant, switched, deaf, heard_before, relinks));
        assert!(
            wait_for(Duration::from_secs(60), || cluster.healed().is_ok()),
            "not healed after {variant}: {:?}",
            cluster.healed()
        );
    }
    stop.store(true, Relaxed);
    let _ = subscriber.join();
    let _ = publisher.join();
    for watcher in watchers {
        let _ = watcher.join();
    }
    let logs: Vec<String> = cluster
        .proxies
        .lock()
        .iter()
        .map(|s| s.proxy.as_ref().map(|p| p.log()).unwrap_or_default())
        .collect();
    for (i, log) in logs.iter().enumerate() {
        cluster.proxies.keep_log(i, 0, log);
    }
    cluster.proxies.stop_proxies(&journal);
    println!("\nPub/Sub across a Sentinel failover: a subscriber on proxy 0, a publisher on proxy 1, channel {channel} on shard1");
    println!("| variant | failed over | deaf after +switch-master (s) | bound (s) | push links lost so far (proxy 0 log) |");
    println!("|---|---|---:|---:|---:|");
    let mut pass = true;
    for (variant, switched, deaf, heard_before, relinks) in &rows {
        let ok = *switched && *heard_before > 0 && deaf.is_some_and(|d| d <= BOUND);
        pass &= ok;
        println!(
            "| {variant} | {} | {} | {} | {relinks} |",
            if *switched { "yes" } else { "no" },
            deaf.map(secs).unwrap_or_else(|| "never (30 s)".into()),
            secs(BOUND)
        );
    }
    println!("logs: {}", options.out.display());
    if pass {
        println!(
            "PASS: subscribers hear the new master within {} s",
            secs(BOUND)
        );
    } else {
        println!("FAIL: subscribers through the proxy stay on the old master after a failover");
    }
    println!(
        "pubsub-failover: {} passed, {} failed",
        usize::from(pass),
        usize::from(!pass)
    );
    pass
}
