//! TLS from the proxy to its Redis servers and Sentinels, with real
//! processes: redis-server and redis-sentinel listening with TLS only
//! (`--port 0 --tls-port P`), certificates made by the openssl CLI, the
//! proxy verifying them (or told loudly not to). Every path a backend
//! connection takes is exercised: shared pipelined connections, leased
//! ones (MULTI, blocking pops), Pub/Sub links, health probes, Sentinel,
//! and a failover whose new master the proxy dials with TLS too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::BIN;
use test_support::pki::{Ca, Issued, Pki};
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Sentinel, Shardgate, Tls};

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Reply {
    Reply::Simple("OK".into())
}

/// A redis-server with TLS only, its certificate signed by `ca`.
fn tls_redis(pki: &Pki, ca: &Ca, name: &str, auth_clients: bool) -> RedisServer {
    let cert = pki.server(ca, name);
    RedisServer::builder()
        .tls(Tls {
            cert: cert.cert,
            key: cert.key,
            ca: ca.cert.clone(),
            auth_clients,
            only: true,
        })
        .start()
}

/// A `backend_tls:` / `sentinel_tls:` block (two spaces in).
fn upstream(key: &str, ca: Option<&Ca>, identity: Option<&Issued>, extra: &[&str]) -> String {
    let mut yaml = format!("  {key}:\n");
    if let Some(ca) = ca {
        yaml.push_str(&format!("    ca: {}\n", ca.cert.display()));
    }
    if let Some(identity) = identity {
        yaml.push_str(&format!(
            "    cert: {}\n    key: {}\n",
            identity.cert.display(),
            identity.key.display()
        ));
    }
    for line in extra {
        yaml.push_str(&format!("    {line}\n"));
    }
    yaml
}

#[test]
fn every_backend_path_runs_over_tls_to_a_tls_only_server_that_wants_client_certificates() {
    let pki = Pki::new();
    let ca = pki.ca("redis-ca");
    let redis = tls_redis(&pki, &ca, "redis", true);
    let identity = pki.client(&ca, "proxy", "shardgate");
    let port = free_port();
    let yaml = format!(
        "p:\n  listen: 127.0.0.1:{port}\n  timeout: 2000\n{}  servers:\n    - {}:1\n",
        upstream("backend_tls", Some(&ca), Some(&identity), &[]),
        redis.tls_addr()
    );
    let proxy = Shardgate::builder(BIN, &yaml).wait_port(port).start();
    let mut client = RespClient::connect(port).unwrap();

    // Shared pipelined connection.
    assert_eq!(client.cmd(&["SET", "k", "v"]).unwrap(), ok());
    for i in 0..300 {
        client.send(&["RPUSH", "list", &i.to_string()]).unwrap();
    }
    for i in 1..=300 {
        assert_eq!(client.read_reply().unwrap(), Reply::Integer(i));
    }
    // A big value, many TLS records each way.
    let big = "x".repeat(1 << 20);
    assert_eq!(client.cmd(&["SET", "big", &big]).unwrap(), ok());
    assert_eq!(client.cmd(&["GET", "big"]).unwrap(), bulk(&big));
    assert_eq!(redis.tls_cli(&["GET", "k"]), Ok("v".into()));

    // Leased: a transaction and a blocking pop.
    assert_eq!(client.cmd(&["MULTI"]).unwrap(), ok());
    assert_eq!(
        client.cmd(&["INCR", "n"]).unwrap(),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        client.cmd(&["EXEC"]).unwrap(),
        Reply::Array(vec![Reply::Integer(1)])
    );
    let mut blocked = RespClient::connect(port).unwrap();
    blocked.send(&["BLPOP", "queue", "5"]).unwrap();
    // It blocks on the server (over TLS) before the push arrives.
    assert_eventually!(
        redis
            .tls_cli(&["INFO", "clients"])
            .is_ok_and(|info| info.contains("blocked_clients:1")),
        "the BLPOP never blocked on the server"
    );
    assert_eq!(
        client.cmd(&["LPUSH", "queue", "job"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        blocked.read_reply().unwrap(),
        Reply::Array(vec![bulk("queue"), bulk("job")])
    );

    // A Pub/Sub link.
    let mut subscriber = RespClient::connect(port).unwrap();
    subscriber.cmd(&["SUBSCRIBE", "news"]).unwrap();
    assert_eventually!(
        matches!(
            client.cmd(&["PUBLISH", "news", "hello"]),
            Ok(Reply::Integer(1))
        ),
        "the subscription never reached the server"
    );
    assert_eq!(
        subscriber.read_reply().unwrap(),
        Reply::Array(vec![bulk("message"), bulk("news"), bulk("hello")])
    );

    // Health probes: the node is up and its role known.
    let (_, topology) = proxy.admin_get("/topology").unwrap();
    assert!(
        topology.contains("\"role\":\"master\"") && topology.contains("\"health\":\"up\""),
        "{topology}"
    );
    // Every connection the server sees presents the proxy's certificate:
    // it refuses any other (tls-auth-clients yes), so the clients it
    // lists all came through TLS.
    let clients = redis.tls_cli(&["CLIENT", "LIST"]).unwrap();
    assert!(clients.lines().count() >= 4, "{clients}");

    // The proxy's own certificate: its expiry in /metrics, renewed by a
    // reload while every connection carries on.
    let expiry = || {
        let (_, metrics) = proxy.admin_get("/metrics").unwrap();
        metrics
            .lines()
            .find(|l| l.contains("use=\"backend_tls\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
    };
    assert_eq!(expiry(), Some(identity.not_after()));
    let renewed = pki.issue(
        &ca,
        "proxy",
        "shardgate",
        test_support::pki::Usage::Client,
        test_support::pki::Validity::Days(700),
    );
    let (status, body) = proxy.reload();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("backend_tls: certificate (re)loaded"),
        "{body}"
    );
    assert_eq!(expiry(), Some(renewed.not_after()));
    assert_eq!(client.cmd(&["GET", "k"]).unwrap(), bulk("v"));
    assert_eq!(
        client.cmd(&["PUBLISH", "news", "again"]).unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().unwrap(),
        Reply::Array(vec![bulk("message"), bulk("news"), bulk("again")])
    );
}

#[test]
fn a_server_the_proxy_cannot_verify_is_refused_in_words_unless_verification_is_off() {
    let pki = Pki::new();
    let ca = pki.ca("redis-ca");
    let other = pki.ca("other-ca");
    // tls-auth-clients no: the proxy needs no certificate of its own.
    let redis = tls_redis(&pki, &ca, "redis", false);
    let needs_cert = tls_redis(&pki, &ca, "strict", true);
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let pool = |name: &str, port: u16, tls: String, server: &RedisServer| {
        format!(
            "{name}:\n  listen: 127.0.0.1:{port}\n  timeout: 1000\n{tls}  servers:\n    - {}:1\n",
            server.tls_addr()
        )
    };
    let yaml = [
        pool(
            "good",
            ports[0],
            upstream("backend_tls", Some(&ca), None, &[]),
            &redis,
        ),
        pool(
            "foreign",
            ports[1],
            upstream("backend_tls", Some(&other), None, &[]),
            &redis,
        ),
        pool(
            "unchecked",
            ports[2],
            upstream(
                "backend_tls",
                None,
                None,
                &["insecure_skip_verify_for_tests: true"],
            ),
            &redis,
        ),
        pool(
            "misnamed",
            ports[3],
            upstream(
                "backend_tls",
                Some(&ca),
                None,
                &["server_name: redis.example.com"],
            ),
            &redis,
        ),
        pool(
            "anonymous",
            ports[4],
            upstream("backend_tls", Some(&ca), None, &[]),
            &needs_cert,
        ),
    ]
    .concat();
    let mut builder = Shardgate::builder(BIN, &yaml);
    for port in &ports {
        builder = builder.wait_port(*port);
    }
    let proxy = builder.start();
    let answer = |port: u16| {
        RespClient::connect(port)
            .unwrap()
            .cmd(&["SET", "k", "v"])
            .unwrap()
    };
    assert_eq!(answer(ports[0]), ok());
    assert_eq!(answer(ports[2]), ok(), "verification off must connect");
    for (port, words) in [
        (
            ports[1],
            "the server's certificate is not signed by a trusted CA",
        ),
        (
            ports[3],
            "the server's certificate is not valid for the name dialled",
        ),
        (ports[4], "the server requires a client certificate"),
    ] {
        assert_eventually!(
            matches!(answer(port), Reply::Error(ref e) if e.contains(words)),
            "port {port}: no error saying '{words}': {:?}\nlog:\n{}",
            answer(port),
            proxy.log()
        );
    }
}

#[test]
fn sentinels_over_tls_report_masters_that_are_dialled_with_tls_and_a_failover_moves_writes() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let mut master = tls_redis(&pki, &ca, "master", true);
    let replica_cert = pki.server(&ca, "replica");
    let replica = RedisServer::builder()
        .tls(Tls {
            cert: replica_cert.cert.clone(),
            key: replica_cert.key.clone(),
            ca: ca.cert.clone(),
            auth_clients: true,
            only: true,
        })
        .replica_of(&master)
        .start();
    assert_eventually!(
        within = Duration::from_secs(20),
        replica.linked(),
        "the replica never linked over TLS"
    );
    let sentinel_cert = pki.server(&ca, "sentinel");
    let sentinel_tls = Tls {
        cert: sentinel_cert.cert.clone(),
        key: sentinel_cert.key.clone(),
        ca: ca.cert.clone(),
        auth_clients: true,
        only: true,
    };
    let master_port = master.tls_port().unwrap();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start_tls(&[("shard1", master_port)], 2, 1000, &sentinel_tls))
        .collect();
    let identity = pki.client(&ca, "proxy", "shardgate");
    let port = free_port();
    let sentinel_lines: String = sentinels
        .iter()
        .map(|s| format!("    - 127.0.0.1:{}:1\n", s.port()))
        .collect();
    let yaml = format!(
        "p:\n  listen: 127.0.0.1:{port}\n  timeout: 1000\n{}{}  sentinels:\n{sentinel_lines}  servers:\n    - {}:1 shard1\n",
        upstream("backend_tls", Some(&ca), Some(&identity), &[]),
        upstream("sentinel_tls", Some(&ca), Some(&identity), &[]),
        master.tls_addr()
    );
    let proxy = Shardgate::builder(BIN, &yaml).wait_port(port).start();
    let mut client = RespClient::connect(port).unwrap();
    assert_eq!(client.cmd(&["SET", "k", "1"]).unwrap(), ok());
    assert_eventually!(
        within = Duration::from_secs(30),
        sentinels.iter().all(|s| {
            s.tls_cli(&["SENTINEL", "REPLICAS", "shard1"])
                .is_ok_and(|r| r.contains(&replica.tls_port().unwrap().to_string()))
                && s.tls_cli(&["SENTINEL", "SENTINELS", "shard1"])
                    .is_ok_and(|r| r.matches("127.0.0.1").count() >= 2)
        }),
        "the Sentinels never found the replica and each other"
    );

    master.kill();
    // The Sentinels promote the replica and report it over TLS; the proxy
    // dials the new master with TLS and writes go on.
    assert_eventually!(
        within = Duration::from_secs(30),
        matches!(client.cmd(&["SET", "k", "2"]), Ok(ref r) if *r == ok()),
        "writes never moved to the promoted replica:\n{}",
        proxy.log()
    );
    assert_eq!(replica.role().as_deref(), Some("master"));
    assert_eq!(replica.tls_cli(&["GET", "k"]), Ok("2".into()));
    assert!(
        proxy.log().contains("switch") || proxy.log().contains("failover"),
        "{}",
        proxy.log()
    );
}

/// A Redis Cluster whose nodes speak TLS (`tls-cluster yes`): the proxy
/// reads their TLS ports from `CLUSTER SHARDS` and dials every node with
/// TLS, seeds and map alike.
#[test]
fn a_cluster_pool_dials_every_node_of_a_tls_cluster_with_tls() {
    let pki = Pki::new();
    let ca = pki.ca("cluster-ca");
    let cert = pki.server(&ca, "node");
    let cluster = test_support::RedisCluster::start_tls(
        3,
        0,
        2000,
        Tls {
            cert: cert.cert,
            key: cert.key,
            ca: ca.cert.clone(),
            auth_clients: false,
            only: false,
        },
    );
    let port = free_port();
    let mut servers = String::new();
    for seed in cluster.tls_seeds() {
        servers.push_str(&format!("    - {seed}\n"));
    }
    let yaml = format!(
        "c:\n  listen: 127.0.0.1:{port}\n  cluster: true\n  timeout: 2000\n{}  servers:\n{servers}",
        upstream("backend_tls", Some(&ca), None, &[])
    );
    let proxy = Shardgate::builder(BIN, &yaml).wait_port(port).start();
    let mut client = RespClient::connect(port).unwrap();
    for i in 0..300 {
        let (key, value) = (format!("k{i}"), i.to_string());
        assert_eq!(
            client.cmd(&["SET", &key, &value]).unwrap(),
            ok(),
            "{}",
            proxy.log()
        );
    }
    for i in 0..300 {
        assert_eq!(
            client.cmd(&["GET", &format!("k{i}")]).unwrap(),
            bulk(&i.to_string())
        );
    }
    let stored: u64 = (0..cluster.len())
        .map(|i| cluster.node(i).dbsize() as u64)
        .sum();
    assert_eq!(stored, 300);
    // Every connection the proxy holds to a node came in on its TLS port.
    for i in 0..cluster.len() {
        let node = cluster.node(i);
        let list = node.cmd(&["CLIENT", "LIST"]).bulk_str().unwrap();
        let proxies: Vec<&str> = list
            .lines()
            .filter(|l| !l.contains("cmd=client|list"))
            .collect();
        assert!(
            !proxies.is_empty(),
            "the proxy has no connection to node {i}"
        );
        let tls = format!("laddr=127.0.0.1:{} ", node.tls_port().unwrap());
        assert!(
            proxies.iter().all(|l| l.contains(&tls)),
            "node {i}: a connection not on its TLS port: {proxies:#?}"
        );
    }
}
