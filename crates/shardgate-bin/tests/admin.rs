//! Observability: the admin endpoints, metrics, INFO proxy, SLOWLOG, and
//! the live status page in a real headless Chromium, through a failover.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::browser::Browser;
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

const CLIENT_PASSWORD: &str = "client-secret-4711";
const BACKEND_PASSWORD: &str = "backend-secret-0815";

fn json(proxy: &Shardgate, path: &str) -> Value {
    let (status, body) = proxy.admin_get(path).expect("admin GET");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

#[test]
fn endpoints_report_traffic_topology_and_readiness_without_secrets() {
    let servers: Vec<RedisServer> = (0..2)
        .map(|_| RedisServer::builder().password(BACKEND_PASSWORD).start())
        .collect();
    let port = free_port();
    let yaml = format!(
        "obs:\n  listen: 127.0.0.1:{port}\n  redis_auth: {BACKEND_PASSWORD}\n  password: {CLIENT_PASSWORD}\n  servers:\n    - {}:1 alpha\n    - {}:1 beta\n",
        servers[0].addr(),
        servers[1].addr()
    );
    let mut servers = servers;
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    let mut client = RespClient::connect(port).expect("connect");
    assert_eq!(
        client.cmd(&["AUTH", CLIENT_PASSWORD]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert!(client.cmd(&["AUTH", "wrong-guess"]).unwrap().is_error());
    for i in 0..50 {
        client
            .cmd(&["SET", &format!("privatekey{i}"), "v"])
            .unwrap();
        client.cmd(&["GET", &format!("privatekey{i}")]).unwrap();
    }
    client.cmd(&["LPUSH", "privatekey0", "x"]).unwrap(); // WRONGTYPE: an error reply
    client
        .cmd(&["MGET", "privatekey1", "privatekey2", "privatekey3"])
        .unwrap();

    assert_eq!(proxy.admin_get("/health").unwrap().0, 200);
    assert_eventually!(proxy.admin_get("/ready").unwrap().0 == 200, "never ready");

    let (_, metrics) = proxy.admin_get("/metrics").unwrap();
    for line in [
        "shardgate_requests_total{pool=\"obs\",command=\"set\"} 50",
        "shardgate_requests_total{pool=\"obs\",command=\"get\"} 50",
        "shardgate_request_errors_total{pool=\"obs\",command=\"lpush\"} 1",
        "shardgate_auth_failures_total{pool=\"obs\"} 1",
        "shardgate_client_connections{pool=\"obs\"} 1",
        "shardgate_request_duration_seconds_count{pool=\"obs\",command=\"set\"} 50",
    ] {
        assert!(
            metrics.contains(line),
            "missing `{line}` in /metrics:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("shardgate_node_requests_total{pool=\"obs\",shard=\"alpha\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardgate_node_up{pool=\"obs\",shard=\"beta\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("shardgate_fanouts_total{pool=\"obs\"} "),
        "{metrics}"
    );

    let stats = json(&proxy, "/stats");
    assert_eq!(stats["service"], "nutcracker");
    assert_eq!(stats["obs"]["client_connections"], 1);
    let alpha = stats["obs"]["alpha"]["requests"]
        .as_u64()
        .expect("alpha requests");
    let beta = stats["obs"]["beta"]["requests"]
        .as_u64()
        .expect("beta requests");
    assert!(alpha + beta >= 100, "stats requests: {alpha} + {beta}");

    let topology = json(&proxy, "/topology");
    let shards = topology[0]["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[0]["master"], servers[0].addr().as_str());
    assert_eq!(shards[0]["nodes"][0]["role"], "master");
    assert_eq!(shards[0]["nodes"][0]["health"], "up");

    // A dead shard: not ready, and the reason names it.
    servers[1].kill();
    assert_eventually!(
        proxy.admin_get("/ready").unwrap().0 == 503,
        "still ready with a shard down"
    );
    let (_, body) = proxy.admin_get("/ready").unwrap();
    assert!(body.contains("shard 'beta'"), "{body}");
    let events = json(&proxy, "/events");
    assert!(
        events
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["kind"] == "health" && e["shard"] == "beta"),
        "{events}"
    );

    // No key names, no client addresses, no passwords anywhere.
    let everything = [
        metrics,
        proxy.admin_get("/metrics").unwrap().1,
        proxy.admin_get("/stats").unwrap().1,
        proxy.admin_get("/topology").unwrap().1,
        proxy.admin_get("/events").unwrap().1,
        proxy.admin_get("/api/overview").unwrap().1,
        proxy.log(),
    ]
    .join("\n");
    for secret in [
        CLIENT_PASSWORD,
        BACKEND_PASSWORD,
        "wrong-guess",
        "privatekey",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked into the admin API or the log"
        );
    }
}

#[test]
fn info_proxy_and_slowlog_answer_inside_the_protocol() {
    let server = RedisServer::builder()
        .arg("enable-debug-command", "yes")
        .start();
    let port = free_port();
    let yaml = format!(
        "slow:\n  listen: 127.0.0.1:{port}\n  slowlog_log_slower_than: 20000\n  servers:\n    - {}:1\n",
        server.addr()
    );
    let _proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    let mut client = RespClient::connect(port).expect("connect");
    let info = client
        .cmd(&["INFO", "proxy"])
        .unwrap()
        .bulk_str()
        .expect("INFO proxy");
    for field in [
        "# Proxy",
        "proxy_version:",
        "uptime_in_seconds:",
        "workers:",
        "pools:1",
        "pool_slow:shards=1",
    ] {
        assert!(
            info.contains(field),
            "{field} missing from INFO proxy:\n{info}"
        );
    }
    let all = client.cmd(&["INFO"]).unwrap().bulk_str().expect("INFO");
    assert!(
        all.starts_with("# Proxy") && all.contains("# Server") && all.contains("redis_version:"),
        "{all}"
    );

    assert_eq!(client.cmd(&["SLOWLOG", "LEN"]).unwrap(), Reply::Integer(0));
    client.cmd(&["SET", "fast", "1"]).unwrap();
    // A script that spins for 50 ms (DEBUG is not allowed through the proxy).
    let spin = "local t=redis.call('TIME') local e=t[1]*1e6+t[2]+5e4 \
                repeat t=redis.call('TIME') until t[1]*1e6+t[2]>e return 1";
    assert!(
        spin.len() <= 128,
        "the slow log keeps 128 bytes of an argument"
    );
    client.cmd(&["EVAL", spin, "0"]).unwrap();
    assert_eq!(client.cmd(&["SLOWLOG", "LEN"]).unwrap(), Reply::Integer(1));
    let Reply::Array(entries) = client.cmd(&["SLOWLOG", "GET"]).unwrap() else {
        panic!("SLOWLOG GET");
    };
    let Reply::Array(entry) = &entries[0] else {
        panic!("entry")
    };
    let Reply::Integer(micros) = entry[2] else {
        panic!("duration")
    };
    assert!(micros >= 50_000, "{micros} us");
    assert_eq!(
        entry[3],
        Reply::Array(vec![
            Reply::Bulk(b"EVAL".to_vec()),
            Reply::Bulk(spin.as_bytes().to_vec()),
            Reply::Bulk(b"0".to_vec())
        ])
    );
    assert_eq!(
        entry[6],
        Reply::Bulk(server.addr().into_bytes()),
        "the node that served it"
    );
    assert_eq!(
        client.cmd(&["SLOWLOG", "RESET"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(client.cmd(&["SLOWLOG", "LEN"]).unwrap(), Reply::Integer(0));
}

#[test]
fn the_status_page_shows_the_live_topology_and_a_failover() {
    let master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&master).start();
    assert_eventually!(replica.linked(), "replica never linked");
    let other = RedisServer::start();
    let port = free_port();
    let yaml = format!(
        "shop:\n  listen: 127.0.0.1:{port}\n  failover: managed\n  read_policy: prefer-replica\n  health_check: {{interval: 200, timeout: 200, rise: 1, fall: 2}}\n  servers:\n    - {}:1 orders\n    - {}:1 carts\n",
        master.addr(),
        other.addr()
    );
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    let admin = proxy.admin_port().expect("admin port");
    // Some traffic, so the page has rates to show.
    let mut client = RespClient::connect(port).expect("connect");
    for i in 0..200 {
        client.cmd(&["SET", &format!("k{i}"), "v"]).unwrap();
        client.cmd(&["GET", &format!("k{i}")]).unwrap();
    }

    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{admin}/"));
    let master_of = |shard: &str| {
        browser.eval(&format!(
            "const s = document.querySelector('[data-shard=\"{shard}\"]'); return s ? s.dataset.master : null;"
        ))
    };
    assert_eventually!(
        master_of("orders") == Value::String(master.addr()),
        "the page never showed {} as master of orders: {:?}",
        master.addr(),
        master_of("orders")
    );
    assert_eq!(master_of("carts"), Value::String(other.addr()));
    let replica_role = browser.eval(&format!(
        "const n = document.querySelector('[data-node=\"{}\"]'); return n ? n.dataset.role : null;",
        replica.addr()
    ));
    assert_eq!(replica_role, Value::String("replica".into()));

    // A failover while the page is open: it must update by itself.
    let mut master = master;
    master.kill();
    assert_eventually!(
        within = Duration::from_secs(15),
        master_of("orders") == Value::String(replica.addr()),
        "the page never showed the promoted replica: {:?}",
        master_of("orders")
    );
    let events = browser.eval("return document.getElementById('events').innerText;");
    assert!(
        events.as_str().unwrap_or_default().contains("promoting"),
        "{events}"
    );
    // The old master comes back as a replica, and the page says so.
    master.restart();
    let role_of = |node: &RedisServer| {
        browser.eval(&format!(
            "const n = document.querySelector('[data-node=\"{}\"]'); return n ? n.dataset.role : null;",
            node.addr()
        ))
    };
    assert_eventually!(
        within = Duration::from_secs(15),
        role_of(&master) == Value::String("replica".into()),
        "the page never showed the old master as a replica: {:?}",
        role_of(&master)
    );
    // Traffic after the failover, for a screenshot with live rates.
    for i in 0..300 {
        client.cmd(&["GET", &format!("k{i}")]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // The charts: requests/s drawn from more than one sample, and the
    // failover marked on them (the page polls /api/history every 5 s).
    let chart = || {
        browser.eval(
            "const s = document.querySelector('section.charts[data-pool=\"shop\"] svg.chart.requests');\
             if (!s) return null;\
             const p = s.querySelector('polyline').getAttribute('points').trim();\
             return { points: p ? p.split(' ').length : 0,\
                      kinds: [...s.querySelectorAll('line.marker')].map(m => m.dataset.kind) };",
        )
    };
    assert_eventually!(
        within = Duration::from_secs(15),
        chart()["points"].as_u64().unwrap_or(0) > 1
            && chart()["kinds"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "failover" || k == "master")),
        "no chart with points and a failover marker: {}",
        chart()
    );
    let nodes =
        browser.eval("return document.querySelectorAll('section.charts svg.chart.node').length;");
    assert_eq!(nodes.as_u64(), Some(3), "one ops/s chart per node: {nodes}");
    let history = json(&proxy, "/api/history");
    let rps = history["pools"][0]["rps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        rps.iter().any(|r| r.as_f64().unwrap_or(0.0) > 0.0),
        "/api/history shows no requests: {history}"
    );
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    browser.screenshot(&path);
    assert!(std::fs::metadata(&path).expect("screenshot").len() > 10_000);
    eprintln!("status page screenshot: {}", path.display());
}

/// The status of `GET /health` sent with `Host: host`.
fn status_for_host(port: u16, host: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_admin_server_answers_only_its_own_names_and_drops_idle_connections() {
    use std::io::Read;
    let setup = common::start_with(
        vec![RedisServer::start()],
        &[],
        &["--admin-host", "proxy.example"],
    );
    let port = setup.proxy.admin_port().expect("admin port");
    // DNS rebinding: a page on another name resolving to 127.0.0.1.
    for (host, expected) in [
        (format!("127.0.0.1:{port}"), 200),
        ("localhost".to_string(), 200),
        (format!("[::1]:{port}"), 200),
        ("proxy.example:8001".to_string(), 200),
        ("evil.example".to_string(), 421),
        (format!("evil.example:{port}"), 421),
        ("127.0.0.1.evil.example".to_string(), 421),
    ] {
        assert_eq!(status_for_host(port, &host), expected, "Host: {host}");
    }
    // Connections that never send a request hold no more than a bounded
    // number of descriptors, never lock out a real request, and are
    // closed after the header timeout.
    let fds = |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    // The proxy may still be opening its backend connections: count once
    // the number holds still.
    let mut before = fds(setup.proxy.pid());
    assert_eventually!(
        {
            std::thread::sleep(Duration::from_millis(200));
            let now = fds(setup.proxy.pid());
            std::mem::replace(&mut before, now) == now
        },
        "the proxy's descriptors never settled"
    );
    let mut idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    assert_eq!(status_for_host(port, "localhost"), 200);
    let during = fds(setup.proxy.pid());
    // 64 kept, plus those whose task is aborted but not yet dropped:
    // bounded, and far from the 200 opened.
    assert!(
        during <= before + 100,
        "{before} descriptors before, {during} with 200 idle admin connections"
    );
    let start = Instant::now();
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut byte = [0u8; 1];
        // Closed by the proxy: end of stream (or a reset).
        assert!(matches!(stream.read(&mut byte), Ok(0) | Err(_)));
    }
    assert!(
        start.elapsed() < Duration::from_secs(12),
        "idle connections stayed open {:?}",
        start.elapsed()
    );
}
