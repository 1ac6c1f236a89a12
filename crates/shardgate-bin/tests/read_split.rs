//! Read/write splitting over real replication groups: reads spread over
//! fit replicas as the policy says, never reach a replica whose link is
//! down or that lags too far, writes never reach a replica, and a client's
//! reads follow its writes when asked to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::{group, ok};

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

/// A proxy over `master` with `extra` pool lines; waits until the proxy
/// serves reads from `fit` replicas (its log says so).
fn proxy(master: &RedisServer, extra: &str, fit: usize) -> (Shardgate, u16) {
    let port = free_port();
    let yaml = format!(
        "rw:\n  listen: 127.0.0.1:{port}\n  health_check: {{interval: 100, timeout: 100, rise: 1, fall: 1}}\n{extra}  servers:\n    - {}:1 shard1\n",
        master.addr()
    );
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    assert_eventually!(
        proxy.log().matches("serves reads").count() >= fit,
        "the proxy never used {fit} replicas; log:\n{}",
        proxy.log()
    );
    (proxy, port)
}

fn gets(server: &RedisServer) -> u64 {
    server.command_calls("get")
}

#[test]
fn round_robin_spreads_reads_evenly_and_never_reads_the_master_under_replica() {
    let (master, replicas) = group(2);
    master.cmd(&["SET", "k", "v"]);
    assert_eventually!(
        replicas
            .iter()
            .all(|r| r.cmd(&["GET", "k"]) == Reply::Bulk(b"v".to_vec())),
        "not replicated"
    );
    let (_proxy, port) = proxy(
        &master,
        "  read_policy: replica\n  read_balance: round-robin\n",
        2,
    );
    let before: Vec<u64> = replicas.iter().map(gets).collect();
    let master_before = gets(&master);
    let mut clients: Vec<RespClient> = (0..4)
        .map(|_| RespClient::connect(port).expect("connect"))
        .collect();
    for i in 0..2000 {
        let client = &mut clients[i % 4];
        assert_eq!(
            client.cmd(&["GET", "k"]).unwrap(),
            Reply::Bulk(b"v".to_vec())
        );
    }
    let served: Vec<u64> = replicas
        .iter()
        .zip(&before)
        .map(|(r, b)| gets(r) - b)
        .collect();
    eprintln!("round-robin over 2 replicas, 2000 GETs: {served:?}");
    for n in &served {
        let share = *n as f64 / 2000.0;
        assert!(
            (0.45..=0.55).contains(&share),
            "replica share {share} of 2000 GETs: {served:?}"
        );
    }
    assert_eq!(
        gets(&master) - master_before,
        0,
        "the master served reads under read_policy: replica"
    );
    // Writes still go to the master, never to a replica.
    assert_eq!(clients[0].cmd(&["SET", "w", "1"]).unwrap(), ok());
    assert_eq!(master.cmd(&["GET", "w"]), Reply::Bulk(b"1".to_vec()));
    for replica in &replicas {
        assert_eq!(replica.readonly_errors(), 0);
    }
}

#[test]
fn a_replica_whose_link_is_cut_stops_serving_reads() {
    let (master, replicas) = group(2);
    let (proxy, port) = proxy(&master, "  read_policy: prefer-replica\n", 2);
    let mut client = RespClient::connect(port).expect("connect");
    // Cut replica 0's link: it replicates from a port nobody listens on.
    let nowhere = free_port().to_string();
    replicas[0].cmd(&["REPLICAOF", "127.0.0.1", &nowhere]);
    assert_eventually!(
        proxy.log().contains(&format!(
            "replica {} no longer serves reads",
            replicas[0].addr()
        )),
        "the cut replica was never excluded; log:\n{}",
        proxy.log()
    );
    let before = gets(&replicas[0]);
    for _ in 0..300 {
        assert!(!client.cmd(&["GET", "k"]).unwrap().is_error());
    }
    assert_eq!(
        gets(&replicas[0]) - before,
        0,
        "reads reached a replica whose link is down"
    );
    // It comes back when linked again.
    replicas[0].cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    assert_eventually!(
        proxy
            .log()
            .matches(&format!("replica {} serves reads", replicas[0].addr()))
            .count()
            >= 2,
        "the relinked replica never served reads again"
    );
}

#[test]
fn replicas_lagging_past_the_bound_stop_serving_reads() {
    let (master, replicas) = group(1);
    master.cmd(&["SET", "k", "v"]);
    let (proxy, port) = proxy(
        &master,
        "  read_policy: replica\n  replica_fallback: error\n  max_replica_lag: {seconds: 1}\n",
        1,
    );
    let mut client = RespClient::connect(port).expect("connect");
    assert_eventually!(
        client.cmd(&["GET", "k"]).ok() == Some(Reply::Bulk(b"v".to_vec())),
        "no replica read"
    );
    // A frozen master: the replica's link looks up, but it hears nothing.
    master.pause();
    assert_eventually!(
        proxy.log().contains("no longer serves reads: lag"),
        "the lagging replica was never excluded; log:\n{}",
        proxy.log()
    );
    let before = gets(&replicas[0]);
    let reply = client.cmd(&["GET", "k"]).unwrap();
    master.resume();
    assert!(
        matches!(&reply, Reply::Error(e) if e.contains("no replica fit to serve reads")),
        "{reply:?}"
    );
    assert_eq!(
        gets(&replicas[0]) - before,
        0,
        "a read reached the lagging replica"
    );
}

#[test]
fn reads_follow_the_clients_own_writes_with_read_your_writes() {
    let (master, replicas) = group(2);
    let (_proxy, port) = proxy(
        &master,
        "  read_policy: replica\n  read_your_writes: 2000\n",
        2,
    );
    let master_before = gets(&master);
    let replicas_before: u64 = replicas.iter().map(gets).sum();
    let handles: Vec<_> = (0..16)
        .map(|c| {
            std::thread::spawn(move || {
                let mut client = RespClient::connect(port).expect("connect");
                let mut stale = 0;
                for i in 0..150 {
                    let key = format!("ryw:{c}");
                    let value = i.to_string();
                    assert_eq!(client.cmd(&["SET", &key, &value]).unwrap(), ok());
                    if client.cmd(&["GET", &key]).unwrap() != Reply::Bulk(value.into_bytes()) {
                        stale += 1;
                    }
                }
                stale
            })
        })
        .collect();
    let stale: usize = handles.into_iter().map(|h| h.join().expect("client")).sum();
    assert_eq!(stale, 0, "reads that missed the client's own write");
    // Every read came within the window after its client's write: the
    // master served them all (replication on loopback is too fast for
    // stale reads to show reliably, so the routing is what is checked).
    assert_eq!(gets(&master) - master_before, 16 * 150);
    assert_eq!(replicas.iter().map(gets).sum::<u64>() - replicas_before, 0);
    // The window is per client: one that has not written reads replicas.
    let mut client = RespClient::connect(port).expect("connect");
    let before: u64 = replicas.iter().map(gets).sum();
    client.cmd(&["GET", "ryw:0"]).unwrap();
    assert_eq!(replicas.iter().map(gets).sum::<u64>() - before, 1);
}

#[test]
fn the_read_only_endpoint_serves_reads_and_refuses_writes() {
    let (master, replicas) = group(1);
    master.cmd(&["SET", "k", "v"]);
    let readonly = free_port();
    let (_proxy, port) = proxy(
        &master,
        &format!("  readonly_listen: 127.0.0.1:{readonly}\n"),
        1,
    );
    let mut reader = RespClient::connect(readonly).expect("connect read-only endpoint");
    let before = gets(&replicas[0]);
    assert_eventually!(
        reader.cmd(&["GET", "k"]).ok() == Some(Reply::Bulk(b"v".to_vec())),
        "no read"
    );
    assert!(
        gets(&replicas[0]) > before,
        "the read-only endpoint did not read from the replica"
    );
    for write in [
        &["SET", "k", "x"][..],
        &["DEL", "k"],
        &["EVAL", "return 1", "0"],
        &["FLUSHALL"],
        &["NOSUCH", "k"],
    ] {
        assert_eq!(
            reader.cmd(write).unwrap(),
            Reply::Error("READONLY You can't write against a read only replica.".into()),
            "{write:?}"
        );
    }
    assert_eq!(reader.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    // The read-write endpoint still writes.
    let mut writer = RespClient::connect(port).expect("connect");
    assert_eq!(writer.cmd(&["SET", "k", "y"]).unwrap(), ok());
    assert_eq!(master.cmd(&["GET", "k"]), Reply::Bulk(b"y".to_vec()));
}

#[test]
fn a_replica_added_with_replicaof_gets_reads_without_restart() {
    let (master, _replicas) = group(0);
    master.cmd(&["SET", "k", "v"]);
    let (proxy, port) = proxy(
        &master,
        "  read_policy: replica\n  replica_fallback: error\n",
        0,
    );
    let mut client = RespClient::connect(port).expect("connect");
    let reply = client.cmd(&["GET", "k"]).unwrap();
    assert!(
        reply.is_error(),
        "no replica yet, and fallback is an error: {reply:?}"
    );
    let newcomer = RedisServer::start();
    newcomer.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    assert_eventually!(
        proxy
            .log()
            .contains(&format!("replica {} serves reads", newcomer.addr())),
        "the new replica never joined; log:\n{}",
        proxy.log()
    );
    let before = gets(&newcomer);
    assert_eq!(
        client.cmd(&["GET", "k"]).unwrap(),
        Reply::Bulk(b"v".to_vec())
    );
    assert_eq!(gets(&newcomer) - before, 1);
    // Detached, it stops getting reads.
    newcomer.cmd(&["REPLICAOF", "NO", "ONE"]);
    assert_eventually!(
        proxy.log().contains(&format!(
            "replica {} no longer serves reads",
            newcomer.addr()
        )),
        "the detached replica kept serving reads"
    );
    let before = gets(&newcomer);
    assert!(client.cmd(&["GET", "k"]).unwrap().is_error());
    assert_eq!(gets(&newcomer) - before, 0);
}
