//! Background watchers for the whole run: each Sentinel's `+switch-master`
//! (the failovers the checker's explanations rest on), the proxies'
//! liveness (an exit nobody asked for is a crash: recorded, log kept, the
//! proxy started again so the run goes on) and their resident memory; and
//! the machine's own stalls.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use test_support::resp::Reply;
use test_support::RespClient;

use crate::cluster::{check_log, ProxySet, SHARDS};
use crate::journal::{Check, Journal};

/// Subscribes to `+switch-master` on the Sentinel at `port` until `stop`,
/// reconnecting while it is down.
pub fn watch_sentinel(port: u16, journal: Arc<Journal>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Relaxed) {
            let Ok(mut client) = RespClient::connect(port) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            client.set_read_timeout(Some(Duration::from_millis(200)));
            if client.send(&["SUBSCRIBE", "+switch-master"]).is_err() {
                continue;
            }
            while !stop.load(Relaxed) {
                match client.read_reply() {
                    Ok(Reply::Array(parts)) => {
                        if let Some((shard, from, to)) = switch_master(&parts) {
                            if journal.failover(shard, from, to) {
                                journal.note(format!(
                                    "+switch-master shard{} {from} -> {to}",
                                    shard + 1
                                ));
                            }
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
}

/// `["message", "+switch-master", "shard2 127.0.0.1 p1 127.0.0.1 p2"]`
fn switch_master(parts: &[Reply]) -> Option<(usize, u16, u16)> {
    if parts.first()?.bulk_str()? != "message" {
        return None;
    }
    let text = parts.get(2)?.bulk_str()?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let shard: usize = fields.first()?.strip_prefix("shard")?.parse().ok()?;
    if shard == 0 || shard > SHARDS {
        return None;
    }
    Some((
        shard - 1,
        fields.get(2)?.parse().ok()?,
        fields.get(4)?.parse().ok()?,
    ))
}

/// Every 250 ms: a proxy that exited without being asked is a crash
/// (recorded, log kept, restarted); every second: each proxy's RSS.
pub fn watch_proxies(
    proxies: Arc<ProxySet>,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut tick = 0u64;
        while !stop.load(Relaxed) {
            tick += 1;
            let mut crashed = Vec::new();
            {
                let mut slots = proxies.lock();
                for (index, slot) in slots.iter_mut().enumerate() {
                    if slot.restarting {
                        continue;
                    }
                    let Some(proxy) = slot.proxy.as_mut() else {
                        continue;
                    };
                    if let Some(status) = proxy.child().wait_exit(Duration::from_millis(1)) {
                        let log = proxy.log();
                        journal.violation(
                            Check::Crash,
                            format!("proxy {index} exited by itself: {status}"),
                        );
                        check_log(index, &log, &journal);
                        proxies.keep_log(index, slot.incarnation, &log);
                        slot.proxy = None;
                        crashed.push(index);
                    } else if tick.is_multiple_of(4) {
                        if let Some(kib) = rss_kib(proxy.pid()) {
                            journal.rss(index, slot.incarnation, kib);
                        }
                    }
                }
            }
            for index in crashed {
                proxies.respawn_crashed(index);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

/// Measures how late a 50 ms sleep wakes up: stalls of the machine itself
/// (other builds, other tests), which slow everything under test alike and
/// which the report shows next to the recovery times.
pub fn watch_stalls(journal: Arc<Journal>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Relaxed) {
            let started = std::time::Instant::now();
            std::thread::sleep(Duration::from_millis(50));
            let late = started.elapsed().saturating_sub(Duration::from_millis(50));
            if late > Duration::from_millis(200) {
                journal.stall(late.as_millis() as u64);
            }
        }
    })
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_switch_master() {
        let parts = [
            Reply::Bulk(b"message".to_vec()),
            Reply::Bulk(b"+switch-master".to_vec()),
            Reply::Bulk(b"shard2 127.0.0.1 4001 127.0.0.1 4002".to_vec()),
        ];
        assert_eq!(switch_master(&parts), Some((1, 4001, 4002)));
        let confirm = [
            Reply::Bulk(b"subscribe".to_vec()),
            Reply::Bulk(b"+switch-master".to_vec()),
            Reply::Integer(1),
        ];
        assert_eq!(switch_master(&confirm), None);
    }
}
