//! High availability with real processes: replication groups of real
//! redis-servers, real redis-sentinels, the real shardgate binary. Each
//! test kills or freezes a master and measures, through one client
//! connection that is never dropped: how long until writes succeed again,
//! writes a replica refused (must be 0), and acknowledged writes lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::{group, ok};

use std::time::{Duration, Instant};

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Sentinel, Shardgate};

fn proxy(yaml_body: &str) -> (Shardgate, u16) {
    let port = free_port();
    let yaml = format!("ha:\n  listen: 127.0.0.1:{port}\n{yaml_body}");
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    (proxy, port)
}

/// Writes through `client` until one succeeds; returns when, or panics
/// with the last error after `deadline`.
fn first_write_after(client: &mut RespClient, key: &str, deadline: Duration) -> Instant {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < deadline {
        match client.cmd(&["SET", key, "after"]) {
            Ok(reply) if reply == ok() => return Instant::now(),
            Ok(reply) => last = Some(format!("{reply:?}")),
            Err(e) => panic!("the client connection broke during failover: {e}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no successful write within {deadline:?}; last reply: {last:?}");
}

/// Writes `n` keys and returns those acknowledged.
fn acknowledged_writes(client: &mut RespClient, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i}"))
        .filter(|key| client.cmd(&["SET", key, "v"]).ok() == Some(ok()))
        .collect()
}

fn missing(server: &RedisServer, keys: &[String]) -> usize {
    let mut client = server.client();
    keys.iter()
        .filter(|key| client.cmd(&["EXISTS", key]).ok() != Some(Reply::Integer(1)))
        .count()
}

#[test]
fn managed_failover_promotes_the_most_advanced_replica_and_demotes_the_old_master() {
    let (mut master, replicas) = group(2);
    let (proxy, port) = proxy(&format!(
        "  failover: managed\n  timeout: 500\n  servers:\n    - {}:1 shard1\n",
        master.addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    let acked = acknowledged_writes(&mut client, "before:", 500);
    assert_eq!(acked.len(), 500);
    // Let replication catch up so the loss figure measures failover alone.
    assert_eventually!(
        replicas.iter().all(|r| r.dbsize() == 500),
        "replicas never caught up"
    );

    let killed = Instant::now();
    master.kill();
    let recovered = first_write_after(&mut client, "after-kill", Duration::from_secs(15));
    let window = recovered - killed;
    let new_master = replicas
        .iter()
        .find(|r| r.role().as_deref() == Some("master"))
        .expect("a replica was promoted");
    let other = replicas
        .iter()
        .find(|r| r.port() != new_master.port())
        .expect("the other replica");
    assert_eventually!(
        other.info_field("replication", "master_port") == Some(new_master.port().to_string()),
        "the other replica never followed the new master"
    );
    let lost = missing(new_master, &acked);
    eprintln!(
        "managed failover (kill -9): writes failed for {} ms; acknowledged writes lost: {lost}/500",
        window.as_millis()
    );
    assert_eq!(lost, 0, "writes replicated before the kill were lost");

    // The old master returns as a replica of the new one: one master only.
    master.restart();
    assert_eventually!(
        master.info_field("replication", "master_port") == Some(new_master.port().to_string()),
        "the old master was not made a replica of the new one"
    );
    assert_eq!(client.cmd(&["SET", "final", "1"]).unwrap(), ok());
    assert_eq!(
        new_master.cmd(&["GET", "final"]),
        Reply::Bulk(b"1".to_vec())
    );
    for replica in &replicas {
        assert_eq!(
            replica.readonly_errors(),
            0,
            "a write reached replica {}",
            replica.port()
        );
    }
    assert_eq!(
        master.readonly_errors(),
        0,
        "a write reached the demoted master"
    );
    let log = proxy.log();
    assert!(
        log.contains("promoting"),
        "no failover event in the log:\n{log}"
    );
}

#[test]
fn a_frozen_master_times_requests_out_and_fails_over() {
    let (master, replicas) = group(1);
    let (_proxy, port) = proxy(&format!(
        "  failover: managed\n  timeout: 300\n  servers:\n    - {}:1 shard1\n",
        master.addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    assert_eq!(client.cmd(&["SET", "k", "1"]).unwrap(), ok());
    let frozen = Instant::now();
    master.pause();
    // In flight to the frozen master: an error within the timeout, not a hang.
    let started = Instant::now();
    let reply = client.cmd(&["SET", "k", "2"]).unwrap();
    assert!(reply.is_error(), "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let recovered = first_write_after(&mut client, "k", Duration::from_secs(15));
    eprintln!(
        "managed failover (SIGSTOP): writes failed for {} ms",
        (recovered - frozen).as_millis()
    );
    assert_eq!(replicas[0].role().as_deref(), Some("master"));
    master.resume();
    assert_eventually!(
        master.info_field("replication", "master_port") == Some(replicas[0].port().to_string()),
        "the thawed master was not demoted"
    );
    assert_eq!(replicas[0].readonly_errors(), 0);
    assert_eq!(
        master.readonly_errors(),
        0,
        "a write reached the thawed master after demotion"
    );
}

#[test]
fn sentinel_failover_moves_writes_right_after_switch_master() {
    let (mut master, replicas) = group(1);
    let mut sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(&[("shard1", master.port())], 2, 1000))
        .collect();
    let sentinel_lines: String = sentinels
        .iter()
        .map(|s| format!("    - 127.0.0.1:{}:1\n", s.port()))
        .collect();
    let (_proxy, port) = proxy(&format!(
        "  timeout: 500\n  sentinels:\n{sentinel_lines}  servers:\n    - {}:1 shard1\n",
        master.addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    assert_eq!(client.cmd(&["SET", "k", "1"]).unwrap(), ok());
    // Sentinels must know each other and the replica before a failover.
    assert_eventually!(
        within = Duration::from_secs(20),
        sentinels.iter().all(|s| {
            let mut c = s.client();
            matches!(c.cmd(&["SENTINEL", "REPLICAS", "shard1"]), Ok(Reply::Array(r)) if !r.is_empty())
                && matches!(c.cmd(&["SENTINEL", "SENTINELS", "shard1"]), Ok(Reply::Array(r)) if r.len() == 2)
        }),
        "sentinels never discovered each other"
    );
    // One Sentinel down: the proxy must keep following the others.
    sentinels[2].kill();

    let mut watcher = sentinels[0].client();
    watcher.set_read_timeout(Some(Duration::from_secs(30)));
    watcher
        .cmd(&["SUBSCRIBE", "+switch-master"])
        .expect("subscribe");
    let killed = Instant::now();
    master.kill();
    let switched = loop {
        if let Reply::Array(message) = watcher.read_reply().expect("+switch-master") {
            if message.first() == Some(&Reply::Bulk(b"message".to_vec())) {
                break Instant::now();
            }
        }
    };
    let recovered = first_write_after(&mut client, "k", Duration::from_secs(10));
    let after_switch = recovered.saturating_duration_since(switched);
    eprintln!(
        "sentinel failover: +switch-master {} ms after the kill; first write {} ms after +switch-master",
        (switched - killed).as_millis(),
        after_switch.as_millis()
    );
    assert!(
        after_switch < Duration::from_secs(2),
        "writes moved {after_switch:?} after +switch-master"
    );
    assert_eq!(replicas[0].role().as_deref(), Some("master"));
    assert_eq!(
        replicas[0].cmd(&["GET", "k"]),
        Reply::Bulk(b"after".to_vec())
    );
    assert_eq!(replicas[0].readonly_errors(), 0);
}

#[test]
fn two_managed_proxies_fail_over_once() {
    let (mut master, replicas) = group(2);
    let body = format!(
        "  failover: managed\n  timeout: 500\n  servers:\n    - {}:1 shard1\n",
        master.addr()
    );
    let (_first, first_port) = proxy(&body);
    let (_second, second_port) = proxy(&body);
    let mut a = RespClient::connect(first_port).expect("connect");
    let mut b = RespClient::connect(second_port).expect("connect");
    assert_eq!(a.cmd(&["SET", "k", "1"]).unwrap(), ok());
    // Both proxies' health checks must be on every node before the test.
    assert_eventually!(
        replicas.iter().all(|r| {
            let list = r.cmd(&["CLIENT", "LIST"]).bulk_str().unwrap_or_default();
            list.matches("name=shardgate-managed-").count() == 2
        }),
        "health connections not seen"
    );
    let calls_before: u64 = replicas.iter().map(|r| r.command_calls("replicaof")).sum();
    master.kill();
    first_write_after(&mut a, "k", Duration::from_secs(15));
    first_write_after(&mut b, "k", Duration::from_secs(15));
    let promoted: Vec<u16> = replicas
        .iter()
        .filter(|r| r.role().as_deref() == Some("master"))
        .map(RedisServer::port)
        .collect();
    assert_eq!(promoted.len(), 1, "masters: {promoted:?}");
    // One REPLICAOF NO ONE on the promoted replica and one re-pointing of
    // the other: a second proxy acting would double them.
    let calls: u64 = replicas
        .iter()
        .map(|r| r.command_calls("replicaof"))
        .sum::<u64>()
        - calls_before;
    assert_eq!(calls, 2, "REPLICAOF calls by the proxies");
    let new_master = replicas
        .iter()
        .find(|r| r.port() == promoted[0])
        .expect("promoted");
    assert_eq!(
        new_master.cmd(&["GET", "k"]),
        Reply::Bulk(b"after".to_vec())
    );
}

#[test]
fn a_shard_with_no_node_up_gets_clear_errors_until_one_appears() {
    let port = free_port();
    let mut master = RedisServer::builder().port(port).start();
    master.kill();
    let (_proxy, proxy_port) = proxy(&format!(
        "  failover: managed\n  servers:\n    - 127.0.0.1:{port}:1 shard1\n"
    ));
    let mut client = RespClient::connect(proxy_port).expect("connect");
    let reply = client.cmd(&["SET", "k", "1"]).unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("shard1") || e.contains(&port.to_string())),
        "{reply:?}"
    );
    master.restart();
    first_write_after(&mut client, "k", Duration::from_secs(10));
    assert_eq!(master.cmd(&["GET", "k"]), Reply::Bulk(b"after".to_vec()));
}

#[test]
fn a_proxy_restarted_during_a_failover_finds_the_new_master() {
    let (mut master, replicas) = group(1);
    // Declared replicas: a proxy that starts while the master is down
    // cannot learn them from it.
    let body = format!(
        "  failover: managed\n  timeout: 500\n  servers:\n    - {}:1 shard1\n  replicas:\n    shard1: [\"{}\"]\n",
        master.addr(),
        replicas[0].addr()
    );
    let (first, _) = proxy(&body);
    master.kill();
    drop(first);
    // A new proxy over the same config: the configured master is gone.
    let (_second, port) = proxy(&body);
    let mut client = RespClient::connect(port).expect("connect");
    first_write_after(&mut client, "k", Duration::from_secs(15));
    assert_eq!(replicas[0].role().as_deref(), Some("master"));
    // And with the old master back, a third proxy keeps the new roles.
    master.restart();
    assert_eventually!(
        master.info_field("replication", "master_port") == Some(replicas[0].port().to_string()),
        "the old master was not demoted"
    );
    let (_third, port) = proxy(&body);
    let mut client = RespClient::connect(port).expect("connect");
    first_write_after(&mut client, "k3", Duration::from_secs(10));
    assert_eq!(
        replicas[0].cmd(&["GET", "k3"]),
        Reply::Bulk(b"after".to_vec())
    );
    assert_eq!(master.readonly_errors(), 0);
}

#[test]
fn evalsha_keeps_working_after_a_failover() {
    let (mut master, replicas) = group(1);
    let (_proxy, port) = proxy(&format!(
        "  failover: managed\n  timeout: 500\n  servers:\n    - {}:1 shard1\n",
        master.addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    let sha = client
        .cmd(&["SCRIPT", "LOAD", "return 'scripted'"])
        .unwrap()
        .bulk_str()
        .unwrap();
    assert_eq!(
        client.cmd(&["EVALSHA", &sha, "0"]).unwrap(),
        Reply::Bulk(b"scripted".to_vec())
    );
    // Redis 7 does not replicate its script cache: the replica lacks it.
    assert_eq!(
        replicas[0].cmd(&["SCRIPT", "EXISTS", &sha]),
        Reply::Array(vec![Reply::Integer(0)])
    );
    master.kill();
    first_write_after(&mut client, "k", Duration::from_secs(15));
    // The new master answers NOSCRIPT; the proxy loads the script and retries.
    assert_eq!(
        client.cmd(&["EVALSHA", &sha, "0"]).unwrap(),
        Reply::Bulk(b"scripted".to_vec())
    );
    assert_eq!(
        replicas[0].cmd(&["SCRIPT", "EXISTS", &sha]),
        Reply::Array(vec![Reply::Integer(1)])
    );
    // A script the proxy never saw still gets Redis's own NOSCRIPT.
    let reply = client
        .cmd(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"])
        .unwrap();
    assert!(
        matches!(&reply, Reply::Error(e) if e.starts_with("NOSCRIPT")),
        "{reply:?}"
    );
}

#[test]
fn a_restarted_proxy_keeps_the_master_with_the_data_when_the_old_one_returns_empty() {
    let (mut master, replicas) = group(2);
    // Declared replicas: the old master comes back empty and lists none.
    let body = format!(
        "  failover: managed\n  timeout: 500\n  servers:\n    - {}:1 shard1\n  replicas:\n    shard1: [\"{}\", \"{}\"]\n",
        master.addr(),
        replicas[0].addr(),
        replicas[1].addr()
    );
    let (first, port) = proxy(&body);
    let mut client = RespClient::connect(port).expect("connect");
    let acked = acknowledged_writes(&mut client, "data:", 200);
    assert_eq!(acked.len(), 200);
    assert_eventually!(
        replicas.iter().all(|r| r.dbsize() == 200),
        "replicas never caught up"
    );
    master.kill();
    first_write_after(&mut client, "after-kill", Duration::from_secs(15));
    let promoted = replicas
        .iter()
        .find(|r| r.role().as_deref() == Some("master"))
        .expect("a replica was promoted");
    let other = replicas
        .iter()
        .find(|r| r.port() != promoted.port())
        .expect("the other replica");
    assert_eventually!(
        other.info_field("replication", "master_port") == Some(promoted.port().to_string()),
        "the other replica never followed the new master"
    );
    drop(client);
    drop(first);

    // The old master returns empty (no persistence) and says master; then
    // a new proxy starts over the same config, with no memory of the
    // failover: two masters, and the configured one is empty.
    master.restart();
    assert_eq!(master.role().as_deref(), Some("master"));
    assert_eq!(master.dbsize(), 0);
    let calls_before = promoted.command_calls("replicaof") + other.command_calls("replicaof");
    let (second, port) = proxy(&body);
    let mut client = RespClient::connect(port).expect("connect");
    assert_eventually!(
        master.info_field("replication", "master_port") == Some(promoted.port().to_string()),
        "the empty old master was not made a replica of the one with the data; log:\n{}",
        second.log()
    );
    assert_eq!(client.cmd(&["SET", "final", "1"]).unwrap(), ok());
    assert_eq!(promoted.cmd(&["GET", "final"]), Reply::Bulk(b"1".to_vec()));
    assert_eq!(promoted.role().as_deref(), Some("master"));
    assert_eq!(
        promoted.command_calls("replicaof") + other.command_calls("replicaof"),
        calls_before,
        "the new proxy sent REPLICAOF to the nodes holding the data"
    );
    assert_eq!(missing(promoted, &acked), 0, "acknowledged writes lost");
    assert_eq!(missing(other, &acked), 0, "acknowledged writes lost");
    assert_eventually!(
        master.linked() && master.dbsize() == promoted.dbsize(),
        "the old master never synced from the new one"
    );
    assert!(
        second.log().contains("which holds the data"),
        "no two-masters event; log:\n{}",
        second.log()
    );
}

#[test]
fn a_slow_first_probe_at_startup_does_not_fail_over() {
    let (master, replicas) = group(1);
    // The master answers nothing for 1.2 s: the proxy's first probes time
    // out, but far fewer than `fall` of them.
    assert_eq!(master.cmd(&["CLIENT", "PAUSE", "1200", "ALL"]), ok());
    // The replica is declared, so a promotion candidate is known at once.
    let (proxy, port) = proxy(&format!(
        "  failover: managed\n  timeout: 500\n  health_check: {{interval: 200, timeout: 100, fall: 10}}\n  servers:\n    - {}:1 shard1\n  replicas:\n    shard1: [\"{}\"]\n",
        master.addr(),
        replicas[0].addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    first_write_after(&mut client, "k", Duration::from_secs(10));
    assert_eq!(master.cmd(&["GET", "k"]), Reply::Bulk(b"after".to_vec()));
    assert_eq!(replicas[0].role().as_deref(), Some("slave"));
    assert_eq!(replicas[0].command_calls("replicaof"), 0);
    let log = proxy.log();
    assert!(
        log.contains("is down"),
        "the first probe never failed:\n{log}"
    );
    assert!(!log.contains("promoting"), "promoted at startup:\n{log}");
}

#[test]
fn a_proxy_that_only_watches_does_not_block_managed_failover() {
    let (mut master, replicas) = group(1);
    let servers = format!("  servers:\n    - {}:1 shard1\n", master.addr());
    // Started first, so its id is older: a `failover: none` proxy.
    let (_watcher, _) = proxy(&format!("  timeout: 500\n{servers}"));
    let (managed, port) = proxy(&format!("  failover: managed\n  timeout: 500\n{servers}"));
    assert_eventually!(
        {
            let list = replicas[0]
                .cmd(&["CLIENT", "LIST"])
                .bulk_str()
                .unwrap_or_default();
            list.contains("name=shardgate-health-") && list.contains("name=shardgate-managed-")
        },
        "both proxies' health connections not seen on the replica"
    );
    let mut client = RespClient::connect(port).expect("connect");
    master.kill();
    first_write_after(&mut client, "k", Duration::from_secs(15));
    assert_eq!(replicas[0].role().as_deref(), Some("master"));
    assert!(
        !managed.log().contains("not acting"),
        "deferred to a proxy that does not fail over:\n{}",
        managed.log()
    );
}

#[test]
fn an_ejected_shard_is_back_in_the_ring_as_soon_as_it_has_failed_over() {
    let (mut master, replicas) = group(1);
    let other = RedisServer::start();
    // A retry timeout far longer than the test: only the failover can
    // bring the shard back in time.
    let (proxy, port) = proxy(&format!(
        "  failover: managed\n  timeout: 500\n  auto_eject_hosts: true\n  server_failure_limit: 2\n  server_retry_timeout: 60000\n  servers:\n    - {}:1 shard1\n    - {}:1 shard2\n",
        master.addr(),
        other.addr()
    ));
    let mut client = RespClient::connect(port).expect("connect");
    let written = acknowledged_writes(&mut client, "key:", 50);
    assert_eq!(written.len(), 50);
    let shard1_key = written
        .iter()
        .find(|key| master.cmd(&["EXISTS", key]) == Reply::Integer(1))
        .expect("some key hashes to shard1")
        .clone();
    master.kill();
    assert_eventually!(
        replicas[0].role().as_deref() == Some("master"),
        "the replica was never promoted"
    );
    assert_eventually!(
        client.cmd(&["SET", &shard1_key, "back"]).ok() == Some(ok())
            && replicas[0].cmd(&["GET", &shard1_key]) == Reply::Bulk(b"back".to_vec()),
        "shard1's keys did not go to its new master; log:\n{}",
        proxy.log()
    );
    assert!(
        proxy.log().contains("shard ejected from the ring"),
        "the shard was never ejected:\n{}",
        proxy.log()
    );
}
