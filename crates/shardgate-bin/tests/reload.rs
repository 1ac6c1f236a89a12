//! Reloading the configuration of a running proxy (SIGHUP, `POST /reload`,
//! `shardgate reload`), against real redis-servers, with clients that check
//! every reply: what a reload applies costs them no error and no closed
//! connection; what it refuses changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::{bulk, ok, BIN};
use test_support::load::Load;
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

/// A pool `name` on `port` with these YAML lines (indented two spaces).
fn pool(name: &str, port: u16, lines: &[String]) -> String {
    let mut yaml = format!("{name}:\n  listen: 127.0.0.1:{port}\n");
    for line in lines {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml
}

fn start(yaml: &str, port: u16) -> Shardgate {
    Shardgate::builder(BIN, yaml).wait_port(port).start()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The reload's answer must be "applied".
fn reload_applied(proxy: &Shardgate) -> serde_json::Value {
    let (status, body) = proxy.reload();
    assert_eq!(
        status,
        200,
        "reload not applied: {body}\nlog:\n{}",
        proxy.log()
    );
    json(&body)
}

fn metric(proxy: &Shardgate, line_start: &str) -> Option<f64> {
    let (_, body) = proxy.admin_get("/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn replicas_added_and_removed_under_load_serve_reads_at_once_and_cost_no_client_anything() {
    let master = RedisServer::start();
    let replicas: Vec<RedisServer> = (0..2)
        .map(|_| RedisServer::builder().replica_of(&master).start())
        .collect();
    for replica in &replicas {
        assert_eventually!(replica.linked(), "replica never linked");
    }
    let port = free_port();
    let config = |declared: &[&RedisServer]| {
        let list: Vec<String> = declared.iter().map(|r| r.addr()).collect();
        pool(
            "rw",
            port,
            &[
                "read_policy: replica".into(),
                // The load reads back what it wrote: from the master (a
                // replica may lag); the reader below reads from replicas.
                "read_your_writes: 60000".into(),
                "discover_replicas: false".into(),
                "health_check: {interval: 100, timeout: 200, rise: 1, fall: 2}".into(),
                "servers:".into(),
                format!("  - {}:1 s1", master.addr()),
                "replicas:".into(),
                format!("  s1: [{}]", list.join(", ")),
            ],
        )
    };
    let proxy = start(&config(&[&replicas[0]]), port);
    assert_eventually!(
        proxy.log().contains("serves reads"),
        "no replica serves reads"
    );
    master.cmd(&["SET", "static", "v"]);
    assert_eventually!(
        replicas
            .iter()
            .all(|r| r.cmd(&["GET", "static"]) == Reply::Bulk(b"v".to_vec())),
        "not replicated"
    );
    let load = Load::start(port, 8, 16);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut client = RespClient::connect(port).unwrap();
            let mut wrong = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if client.cmd(&["GET", "static"]).unwrap() != Reply::Bulk(b"v".to_vec()) {
                    wrong += 1;
                }
            }
            wrong
        })
    };
    let gets = |r: &RedisServer| r.command_calls("get");
    // (The check above read each replica once, directly.)
    let undeclared = gets(&replicas[1]);
    load.wait_for(5_000);
    assert_eq!(
        gets(&replicas[1]),
        undeclared,
        "an undeclared replica got reads"
    );

    // Add the second replica: it serves reads once probed.
    proxy.write_config(&config(&[&replicas[0], &replicas[1]]));
    let answer = reload_applied(&proxy);
    assert!(
        answer["lines"][0]
            .as_str()
            .unwrap()
            .contains(&format!("+{}", replicas[1].addr())),
        "{answer}"
    );
    assert_eventually!(
        gets(&replicas[1]) > 100,
        "the added replica serves no reads"
    );

    // Remove the first: once the reload has answered, it gets no more.
    proxy.write_config(&config(&[&replicas[1]]));
    reload_applied(&proxy);
    load.wait_for(2_000);
    let after = gets(&replicas[0]);
    load.wait_for(10_000);
    assert_eq!(
        gets(&replicas[0]),
        after,
        "a removed replica still serves reads"
    );

    let report = load.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        reader.join().unwrap(),
        0,
        "the replica reader got a wrong reply"
    );
    eprintln!("load across two reloads: {report:?}");
    assert!(report.ok > 15_000, "{report:?}");
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert_eq!(report.disconnects, 0, "clients were disconnected");
    // Not learned back from the master's INFO either.
    assert_eventually!(
        {
            let (_, topology) = proxy.admin_get("/topology").unwrap();
            !topology.contains(&replicas[0].addr())
        },
        "the removed replica is still in the topology"
    );
}

#[test]
fn a_named_server_moved_to_a_copy_of_its_data_keeps_every_key_in_place() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let port = free_port();
    let config = |s1: &RedisServer| {
        pool(
            "cache",
            port,
            &[
                "servers:".into(),
                format!("  - {}:1 s1", s1.addr()),
                format!("  - {}:1 s2", b.addr()),
            ],
        )
    };
    let proxy = start(&config(&a), port);
    let mut client = RespClient::connect(port).unwrap();
    for i in 0..1000 {
        let key = format!("key:{i}");
        assert_eq!(client.cmd(&["SET", &key, &key]).unwrap(), ok());
    }
    assert!(
        a.dbsize() > 100 && b.dbsize() > 100,
        "keys on both servers: {} {}",
        a.dbsize(),
        b.dbsize()
    );
    // Copy s1's data to a new server, as an operator would.
    let c = RedisServer::start();
    c.cmd(&["REPLICAOF", "127.0.0.1", &a.port().to_string()]);
    assert_eventually!(c.linked() && c.dbsize() == a.dbsize(), "copy incomplete");
    c.cmd(&["REPLICAOF", "NO", "ONE"]);

    proxy.write_config(&config(&c));
    let answer = reload_applied(&proxy);
    assert!(
        answer.to_string().contains("server 's1' moves from"),
        "{answer}"
    );
    let gets_on_a = a.command_calls("get");
    for i in 0..1000 {
        let key = format!("key:{i}");
        assert_eq!(client.cmd(&["GET", &key]).unwrap(), bulk(&key), "{key}");
    }
    assert_eq!(
        a.command_calls("get"),
        gets_on_a,
        "reads still reach the old host"
    );
    assert_eq!(
        c.command_calls("get"),
        c.dbsize() as u64,
        "the new host serves s1's keys"
    );
}

#[test]
fn a_change_that_would_move_keys_is_refused_unless_the_pool_is_a_cache() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let port = free_port();
    let config = |weight: u32, extra: &str| {
        let mut lines = vec![
            "servers:".into(),
            format!("  - {}:1 s1", a.addr()),
            format!("  - {}:{weight} s2", b.addr()),
        ];
        if !extra.is_empty() {
            lines.push(extra.into());
        }
        pool("data", port, &lines)
    };
    let proxy = start(&config(1, ""), port);
    let mut client = RespClient::connect(port).unwrap();
    assert_eq!(client.cmd(&["SET", "k", "v"]).unwrap(), ok());
    let epoch = json(&proxy.admin_get("/config").unwrap().1)["epoch"].clone();

    proxy.write_config(&config(3, ""));
    let (status, body) = proxy.reload();
    assert_eq!(status, 409, "{body}");
    let answer = json(&body);
    assert_eq!(answer["result"], "refused");
    let why = answer["lines"][0].as_str().unwrap();
    assert!(
        why.contains("pool 'data'") && why.contains("weight of 's2': 1 -> 3"),
        "{why}"
    );
    let config_now = json(&proxy.admin_get("/config").unwrap().1);
    assert_eq!(
        config_now["epoch"], epoch,
        "a refused reload changed the epoch"
    );
    assert_eq!(config_now["last_reload"]["result"], "refused");
    assert_eq!(
        metric(&proxy, "shardgate_config_reloads_total{result=\"refused\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&proxy, "shardgate_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        client.cmd(&["GET", "k"]).unwrap(),
        bulk("v"),
        "nothing moved"
    );

    // A cache may move keys: applied, and the log says how many.
    proxy.write_config(&config(3, "keys_may_move: true"));
    let answer = reload_applied(&proxy);
    assert!(answer.to_string().contains("% of keys move"), "{answer}");
    assert!(proxy.log().contains("% of keys move"));
    assert_eq!(
        metric(&proxy, "shardgate_config_last_reload_successful"),
        Some(1.0)
    );
}

#[test]
fn a_bad_file_changes_nothing_and_every_problem_is_reported_by_each_trigger() {
    let server = RedisServer::start();
    let port = free_port();
    let good = pool(
        "p",
        port,
        &["servers:".into(), format!("  - {}:1", server.addr())],
    );
    let proxy = start(&good, port);
    let bad = format!("{good}  timeout: -5\n  read_policy: sometimes\n");
    proxy.write_config(&bad);

    // POST /reload: 422 with both problems.
    let (status, body) = proxy.reload();
    assert_eq!(status, 422, "{body}");
    let answer = json(&body);
    let lines = answer["lines"].to_string();
    assert!(
        lines.contains("timeout") && lines.contains("read_policy"),
        "{lines}"
    );

    // `shardgate reload`: exit status 1 and the same problems.
    let admin = format!("127.0.0.1:{}", proxy.admin_port().unwrap());
    let cli = std::process::Command::new(BIN)
        .args(["--admin", &admin, "reload"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("reload invalid: nothing changed"),
        "{printed}"
    );
    assert!(printed.contains("read_policy"), "{printed}");

    // SIGHUP: logged.
    proxy.signal("HUP");
    assert_eventually!(
        proxy.log().matches("configuration reload invalid").count() >= 3,
        "SIGHUP's failed reload is not logged:\n{}",
        proxy.log()
    );
    assert_eq!(
        metric(&proxy, "shardgate_config_reloads_total{result=\"invalid\"}"),
        Some(3.0)
    );
    let mut client = RespClient::connect(port).unwrap();
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    // Fixed: the CLI says what changed and exits 0.
    proxy.write_config(&format!("{good}  timeout: 700\n"));
    let cli = std::process::Command::new(BIN)
        .args(["--admin", &admin, "reload"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("reload applied (configuration epoch 1)"),
        "{printed}"
    );
    assert!(printed.contains("pool 'p': timeout"), "{printed}");
    // SIGHUP's reload ran off the signal loop's runtime: blocking on its
    // outcome there panicked the main thread, and the process exited.
    assert!(
        !proxy.log().contains("panicked"),
        "SIGHUP took the process down:\n{}",
        proxy.log()
    );
}

#[test]
fn passwords_change_for_the_next_auth_and_a_removed_user_is_disconnected() {
    let server = RedisServer::start();
    let port = free_port();
    let config = |alice: &str, alice_commands: &str, with_bob: bool| {
        let mut lines = vec![
            "servers:".into(),
            format!("  - {}:1", server.addr()),
            "users:".into(),
            format!("  - {{name: alice, password: {alice}, commands: \"{alice_commands}\"}}"),
        ];
        if with_bob {
            lines.push("  - {name: bob, password: bob-secret}".into());
        }
        pool("auth", port, &lines)
    };
    let proxy = start(&config("old-secret", "+@all", true), port);
    let mut alice = RespClient::connect(port).unwrap();
    assert_eq!(alice.cmd(&["AUTH", "alice", "old-secret"]).unwrap(), ok());
    let mut bob = RespClient::connect(port).unwrap();
    assert_eq!(bob.cmd(&["AUTH", "bob", "bob-secret"]).unwrap(), ok());

    proxy.write_config(&config("new-secret", "+@all -set", false));
    reload_applied(&proxy);
    // Alice stays in, under her new permissions.
    assert_eq!(alice.cmd(&["GET", "x"]).unwrap(), Reply::Nil);
    let denied = alice.cmd(&["SET", "x", "1"]).unwrap();
    assert!(
        matches!(&denied, Reply::Error(e) if e.starts_with("NOPERM")),
        "{denied:?}"
    );
    // Her next AUTH needs the new password.
    let old = alice.cmd(&["AUTH", "alice", "old-secret"]).unwrap();
    assert!(
        matches!(&old, Reply::Error(e) if e.starts_with("WRONGPASS")),
        "{old:?}"
    );
    assert_eq!(alice.cmd(&["AUTH", "alice", "new-secret"]).unwrap(), ok());
    // Bob is gone: his connection closes without him sending anything.
    bob.set_read_timeout(Some(Duration::from_secs(5)));
    assert!(
        test_support::resp::closed_by_peer(&bob.read_reply()),
        "a removed user's connection stays open"
    );
    // No password ever reaches the log, the config view or the metrics.
    let (_, shown) = proxy.admin_get("/config").unwrap();
    let (_, metrics) = proxy.admin_get("/metrics").unwrap();
    for secret in ["old-secret", "new-secret", "bob-secret"] {
        assert!(!proxy.log().contains(secret), "{secret} in the log");
        assert!(!shown.contains(secret), "{secret} in GET /config");
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
    assert!(shown.contains("(redacted)"), "{shown}");
}

#[test]
fn pools_are_added_and_removed_while_the_others_clients_carry_on() {
    let server = RedisServer::start();
    let (port_a, port_b) = (free_port(), free_port());
    let servers = ["servers:".into(), format!("  - {}:1", server.addr())];
    let a = pool("a", port_a, &servers);
    let b = pool("b", port_b, &servers);
    let proxy = start(&a, port_a);
    let load = Load::start(port_a, 4, 8);
    let mut idle_a = RespClient::connect(port_a).unwrap();
    assert_eq!(idle_a.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    proxy.write_config(&format!("{a}{b}"));
    let answer = reload_applied(&proxy);
    assert!(answer.to_string().contains("pool 'b' added"), "{answer}");
    let mut client_b = RespClient::connect(port_b).expect("pool b listens");
    assert_eq!(client_b.cmd(&["SET", "via-b", "1"]).unwrap(), ok());
    let info = client_b
        .cmd(&["INFO", "proxy"])
        .unwrap()
        .bulk_str()
        .unwrap();
    assert!(
        info.contains("pools:2") && info.contains("config_epoch:1"),
        "{info}"
    );
    let report = load.stop();
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert_eq!(report.disconnects, 0);

    // Remove a: its listener closes, its clients are closed, b carries on.
    proxy.write_config(&b);
    reload_applied(&proxy);
    idle_a.set_read_timeout(Some(Duration::from_secs(5)));
    assert!(
        test_support::resp::closed_by_peer(&idle_a.read_reply()),
        "a removed pool's client stays open"
    );
    assert!(
        RespClient::connect(port_a).is_err(),
        "a removed pool still listens"
    );
    assert_eq!(client_b.cmd(&["GET", "via-b"]).unwrap(), bulk("1"));
    assert!(proxy.log().contains("pool removed by a reload"));
}

#[test]
fn two_reloads_in_quick_succession_apply_in_order_and_the_last_file_wins() {
    let server = RedisServer::start();
    let port = free_port();
    let servers = ["servers:".into(), format!("  - {}:1", server.addr())];
    let proxy = start(&pool("p", port, &servers), port);
    let load = Load::start(port, 4, 16);
    load.wait_for(2_000);
    let first = format!("{}  timeout: 800\n", pool("p", port, &servers));
    let second = format!(
        "{}  timeout: 900\n  read_your_writes: 50\n",
        pool("p", port, &servers)
    );
    proxy.write_config(&first);
    let admin = proxy.admin_port().unwrap();
    let one = std::thread::spawn(move || {
        test_support::http::request(admin, "POST", "/reload", None).unwrap()
    });
    std::thread::sleep(Duration::from_millis(10));
    proxy.write_config(&second);
    let two = proxy.reload();
    let one = one.join().unwrap();
    assert_eq!((one.0, two.0), (200, 200), "{one:?} {two:?}");
    let shown = json(&proxy.admin_get("/config").unwrap().1);
    assert_eq!(shown["epoch"], 2);
    assert_eq!(shown["config"]["p"]["timeout"], 900);
    assert_eq!(shown["config"]["p"]["read_your_writes"], 50);
    // INFO proxy shows the same configuration.
    let mut client = RespClient::connect(port).unwrap();
    let info = client.cmd(&["INFO", "proxy"]).unwrap().bulk_str().unwrap();
    let hash = shown["hash"].as_str().unwrap();
    assert!(info.contains(&format!("config_hash:{hash}")), "{info}");
    let report = load.stop();
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert_eq!(report.disconnects, 0);
}
