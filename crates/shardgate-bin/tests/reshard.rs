//! Online resharding through real proxies over real redis-servers, under
//! a checked load: writers increment per-key counters and record every
//! acknowledged value, readers check they never see a value older than
//! one already acknowledged, transfers move amounts between two tagged
//! keys in MULTI/EXEC and their sum must not change. Afterwards every key
//! is on its new owner and nowhere else, and every counter equals its
//! acknowledged count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::BIN;
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Sentinel, Shardgate};

const COUNTERS: usize = 2_000;
const ACCOUNTS: usize = 50;
const TOTAL: i64 = 1_000;

/// The first `n` of `servers`, named s1, s2, ...
fn named(servers: &[RedisServer], n: usize) -> Vec<(&'static str, &RedisServer)> {
    const NAMES: [&str; 4] = ["s1", "s2", "s3", "s4"];
    NAMES.into_iter().zip(servers).take(n).collect()
}

/// Two proxies over `servers`, coordinated through `store`, moving keys
/// with no pace limit: their pool settings, and each with its port.
fn two_proxies(
    servers: &[(&str, &RedisServer)],
    store: &RedisServer,
) -> (String, [(Shardgate, u16); 2]) {
    let coordination = format!(
        "  coordination: {}\n  reshard_keys_per_second: 0\n",
        store.addr()
    );
    let proxies = [free_port(), free_port()].map(|port| {
        let proxy = Shardgate::builder(BIN, &pool(port, servers, &coordination))
            .wait_port(port)
            .start();
        (proxy, port)
    });
    (coordination, proxies)
}

/// A pool over `servers` (named), optionally coordinated through `store`.
fn pool(port: u16, servers: &[(&str, &RedisServer)], extra: &str) -> String {
    let mut yaml =
        format!("data:\n  listen: 127.0.0.1:{port}\n  hash_tag: \"{{}}\"\n{extra}  servers:\n");
    for (name, server) in servers {
        yaml.push_str(&format!("    - {}:1 {name}\n", server.addr()));
    }
    yaml
}

/// Runs a script that fills `key` with a big value, straight on `server`:
/// seconds of work on a loaded machine, past a client's usual 10 s read
/// timeout.
fn fill(server: &RedisServer, script: &str, key: &str) {
    let mut client = server.client();
    client.set_read_timeout(Some(Duration::from_secs(120)));
    assert_eq!(
        client.cmd(&["EVAL", script, "1", key]).unwrap(),
        Reply::Integer(1)
    );
}

fn int(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Integer(n) => Some(*n),
        Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// What the clients were told, and what went wrong.
#[derive(Default)]
struct Checker {
    /// Per counter: the highest value acknowledged to a writer.
    acked: Vec<AtomicU64>,
    stop: AtomicBool,
    /// Writers and transfers hold off (readers go on).
    paused: AtomicBool,
    problems: Mutex<Vec<String>>,
    /// Retryable refusals seen (TRYAGAIN, EXECABORT): not errors.
    retries: AtomicU64,
    writes: AtomicU64,
    reads: AtomicU64,
    transfers: AtomicU64,
}

impl Checker {
    fn new() -> Arc<Checker> {
        Arc::new(Checker {
            acked: (0..COUNTERS).map(|_| AtomicU64::new(0)).collect(),
            ..Checker::default()
        })
    }

    fn problem(&self, what: String) {
        let mut problems = self.problems.lock().unwrap();
        if problems.len() < 20 {
            problems.push(what);
        }
    }

    fn retryable(reply: &Reply) -> bool {
        matches!(reply, Reply::Error(e) if e.starts_with("TRYAGAIN") || e.starts_with("EXECABORT"))
    }
}

fn counter(i: usize) -> String {
    format!("ctr:{i}")
}

/// A writer: INCR of its counters (`i % writers == id`); each reply must
/// be one more than the last acknowledged.
fn writer(port: u16, id: usize, writers: usize, checker: Arc<Checker>) {
    let mut client = RespClient::connect(port).unwrap();
    let mut n = id;
    while !checker.stop.load(Relaxed) {
        let i = n % COUNTERS;
        n += writers * 7;
        if i % writers != id {
            continue;
        }
        if checker.paused.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let reply = client.cmd(&["INCR", &counter(i)]).unwrap();
        match int(&reply) {
            Some(value) => {
                let before = checker.acked[i].swap(value as u64, Relaxed);
                if value as u64 != before + 1 {
                    checker.problem(format!(
                        "{}: INCR gave {value} after {before} was acknowledged",
                        counter(i)
                    ));
                }
                checker.writes.fetch_add(1, Relaxed);
            }
            None if Checker::retryable(&reply) => {
                checker.retries.fetch_add(1, Relaxed);
            }
            None => checker.problem(format!("INCR {}: {reply:?}", counter(i))),
        }
    }
}

/// A reader: GET must never be older than what was acknowledged before
/// it was sent.
fn reader(port: u16, seed: usize, checker: Arc<Checker>) {
    let mut client = RespClient::connect(port).unwrap();
    let mut n = seed;
    while !checker.stop.load(Relaxed) {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (n >> 33) % COUNTERS;
        let floor = checker.acked[i].load(Relaxed);
        let reply = client.cmd(&["GET", &counter(i)]).unwrap();
        let value = match &reply {
            Reply::Nil => 0,
            other => match int(other) {
                Some(v) => v as u64,
                None if Checker::retryable(other) => {
                    checker.retries.fetch_add(1, Relaxed);
                    continue;
                }
                None => {
                    checker.problem(format!("GET {}: {other:?}", counter(i)));
                    continue;
                }
            },
        };
        if value < floor {
            checker.problem(format!(
                "stale read: {} = {value} after {floor} was acknowledged",
                counter(i)
            ));
        }
        checker.reads.fetch_add(1, Relaxed);
    }
}

/// Transfers between two tagged keys in MULTI/EXEC, and checks of their sum.
fn transfers(port: u16, seed: usize, checker: Arc<Checker>) {
    let mut client = RespClient::connect(port).unwrap();
    let mut n = seed;
    while !checker.stop.load(Relaxed) {
        if checker.paused.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        n += 1;
        let account = n % ACCOUNTS;
        let (a, b) = (
            format!("{{acct{account}}}:a"),
            format!("{{acct{account}}}:b"),
        );
        let amount = (n % 7 + 1).to_string();
        let mut replies = Vec::new();
        for command in [
            vec!["MULTI"],
            vec!["DECRBY", &a, &amount],
            vec!["INCRBY", &b, &amount],
            vec!["EXEC"],
        ] {
            replies.push(client.cmd(&command).unwrap());
        }
        match replies.last() {
            Some(Reply::Array(_)) => {
                checker.transfers.fetch_add(1, Relaxed);
            }
            Some(other) if Checker::retryable(other) => {
                checker.retries.fetch_add(1, Relaxed);
            }
            other => checker.problem(format!("transfer: {replies:?} ended {other:?}")),
        }
        match client.cmd(&["MGET", &a, &b]).unwrap() {
            Reply::Array(values) => {
                let sum: i64 = values.iter().map(|v| int(v).unwrap_or(0)).sum();
                if sum != TOTAL {
                    checker.problem(format!("{a} + {b} = {sum}, not {TOTAL}"));
                }
            }
            other if Checker::retryable(&other) => {
                checker.retries.fetch_add(1, Relaxed);
            }
            other => checker.problem(format!("MGET {a} {b}: {other:?}")),
        }
    }
}

/// Counters, accounts and keys with a TTL, written through `port`.
fn preload(port: u16) {
    let mut client = RespClient::connect(port).unwrap();
    for i in 0..COUNTERS {
        client.send(&["SET", &counter(i), "0"]).unwrap();
    }
    for account in 0..ACCOUNTS {
        client
            .send(&["SET", &format!("{{acct{account}}}:a"), &TOTAL.to_string()])
            .unwrap();
        client
            .send(&["SET", &format!("{{acct{account}}}:b"), "0"])
            .unwrap();
    }
    for i in 0..500 {
        client
            .send(&["SET", &format!("ttl:{i}"), "x", "EX", "1000"])
            .unwrap();
    }
    for _ in 0..(COUNTERS + 2 * ACCOUNTS + 500) {
        assert_eq!(client.read_reply().unwrap(), Reply::Simple("OK".into()));
    }
}

/// Every key of every server, and where it is.
fn placement(servers: &[&RedisServer]) -> BTreeMap<String, Vec<u16>> {
    let mut keys: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for server in servers {
        let mut client = server.client();
        let mut cursor = "0".to_string();
        loop {
            let Reply::Array(parts) = client.cmd(&["SCAN", &cursor, "COUNT", "1000"]).unwrap()
            else {
                panic!("SCAN");
            };
            cursor = parts[0].bulk_str().unwrap();
            if let Reply::Array(found) = &parts[1] {
                for key in found {
                    keys.entry(key.bulk_str().unwrap())
                        .or_default()
                        .push(server.port());
                }
            }
            if cursor == "0" {
                break;
            }
        }
    }
    keys
}

fn reshard(proxy: &Shardgate, action: &str) -> (bool, String) {
    let admin = format!("127.0.0.1:{}", proxy.admin_port().unwrap());
    let output = std::process::Command::new(BIN)
        .args(["--admin", &admin, "reshard", action])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The pool's migration status (`GET /reshard`, the first pool's).
fn status(proxy: &Shardgate) -> serde_json::Value {
    let (_, body) = proxy.admin_get("/reshard").unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    all[0].clone()
}

fn phase(proxy: &Shardgate) -> String {
    status(proxy)["phase"].as_str().unwrap_or("?").to_string()
}

fn wait_done(proxy: &Shardgate, within: Duration, servers: &[&RedisServer]) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if phase(proxy) == "done" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let doubles: Vec<_> = placement(servers)
        .into_iter()
        .filter(|(_, on)| on.len() > 1)
        .take(10)
        .map(|(key, on)| {
            let values: Vec<String> = on
                .iter()
                .map(|port| {
                    let server = servers.iter().find(|s| s.port() == *port).unwrap();
                    format!("{port}={:?}", server.cmd(&["GET", &key]))
                })
                .collect();
            (key, values)
        })
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port()).collect();
    eprintln!("servers s1..s4: {ports:?}");
    panic!(
        "not done within {within:?}: {}\nkeys on several servers: {doubles:?}\nlog:\n{}",
        proxy.admin_get("/reshard").unwrap().1,
        proxy.log()
    );
}

/// Runs the checked load on `ports` while `during` runs, then checks.
fn under_load(ports: &[u16], during: impl FnOnce(&Checker)) -> Arc<Checker> {
    let checker = Checker::new();
    let mut threads = Vec::new();
    for (k, &port) in ports.iter().enumerate() {
        let writers = 2;
        for id in 0..writers {
            // Each counter has one writer across all proxies.
            let (checker, global) = (checker.clone(), k * writers + id);
            let all = ports.len() * writers;
            threads.push(std::thread::spawn(move || {
                writer(port, global, all, checker)
            }));
        }
        for seed in 0..2 {
            let checker = checker.clone();
            threads.push(std::thread::spawn(move || {
                reader(port, seed * 31 + k, checker)
            }));
        }
        let checker2 = checker.clone();
        threads.push(std::thread::spawn(move || {
            transfers(port, k * 1000, checker2)
        }));
    }
    // The load runs before the change and after it: each phase waits until
    // writers, readers and transfers have all gone on (checked reads and sums,
    // not just refusals), so a fast change on a slow machine still checks
    // something on both sides of it.
    let ran = |checker: &Checker| {
        let counters = [&checker.writes, &checker.reads, &checker.transfers];
        let from = counters.map(|counter| counter.load(Relaxed));
        assert_eventually!(
            counters
                .iter()
                .zip(from)
                .zip([200, 50, 5])
                .all(|((counter, from), more)| counter.load(Relaxed) >= from + more),
            "the load made no progress"
        );
    };
    ran(&checker);
    during(&checker);
    ran(&checker);
    checker.stop.store(true, Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    checker
}

fn assert_clean(checker: &Checker) {
    let problems = checker.problems.lock().unwrap();
    eprintln!(
        "checked: {} writes, {} reads, {} transfers, {} retryable refusals",
        checker.writes.load(Relaxed),
        checker.reads.load(Relaxed),
        checker.transfers.load(Relaxed),
        checker.retries.load(Relaxed)
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// After a migration: every key on exactly one server, and where a proxy
/// with only the final placement finds it; every counter equal to its
/// acknowledged count; TTLs kept.
fn assert_placed(servers: &[&RedisServer], final_yaml: impl Fn(u16) -> String, checker: &Checker) {
    let keys = placement(servers);
    let doubles: Vec<_> = keys.iter().filter(|(_, on)| on.len() > 1).take(5).collect();
    assert!(doubles.is_empty(), "keys on several servers: {doubles:?}");
    let port = free_port();
    let fresh = Shardgate::builder(BIN, &final_yaml(port))
        .wait_port(port)
        .start();
    let mut client = RespClient::connect(port).unwrap();
    for i in 0..COUNTERS {
        let value = int(&client.cmd(&["GET", &counter(i)]).unwrap());
        assert_eq!(
            value,
            Some(checker.acked[i].load(Relaxed) as i64),
            "{} lost writes",
            counter(i)
        );
    }
    for i in 0..500 {
        let ttl = int(&client.cmd(&["TTL", &format!("ttl:{i}")]).unwrap()).unwrap();
        assert!((900..=1000).contains(&ttl), "ttl:{i} has TTL {ttl}");
    }
    drop(fresh);
}

#[test]
fn a_pool_grows_from_three_to_four_servers_under_load_through_two_proxies() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let (three, four) = (named(&servers, 3), named(&servers, 4));
    let (coordination, [(one, p1), (two, p2)]) = two_proxies(&three, &store);
    preload(p1);
    let checker = under_load(&[p1, p2], |_| {
        one.write_config(&pool(p1, &four, &coordination));
        let (ok, said) = reshard(&one, "start");
        assert!(ok, "{said}\n{}", one.log());
        let all: Vec<&RedisServer> = servers.iter().collect();
        wait_done(&one, Duration::from_secs(60), &all);
        wait_done(&two, Duration::from_secs(10), &all);
    });
    assert_clean(&checker);
    let all: Vec<&RedisServer> = servers.iter().collect();
    assert!(
        servers[3].dbsize() > 400,
        "the new server got its share: {}",
        servers[3].dbsize()
    );
    assert_placed(&all, |port| pool(port, &four, ""), &checker);
    let (_, metrics) = one.admin_get("/metrics").unwrap();
    assert!(
        metrics.contains("shardgate_reshard_phase{pool=\"data\",phase=\"done\"} 1"),
        "{metrics}"
    );
    for kind in ["server", "migrate", "replicas", "no_master", "stopped"] {
        let family =
            format!("shardgate_reshard_mover_errors_total{{pool=\"data\",kind=\"{kind}\"}} ");
        assert!(metrics.contains(&family), "no {family}in {metrics}");
    }
    // Both proxies report the generation's count from the store: what
    // every mover moved (these two fresh proxies' movers, whichever ran).
    let moved = |proxy: &Shardgate| {
        let status = status(proxy);
        (
            status["generation_keys_moved"].as_u64(),
            status["keys_moved"].as_u64().unwrap_or(0),
        )
    };
    let ((total_one, mine_one), (total_two, mine_two)) = (moved(&one), moved(&two));
    assert_eq!(total_one, total_two);
    assert_eq!(total_one, Some(mine_one + mine_two));
    assert!(mine_one + mine_two > 0, "no mover moved a key");
}

#[test]
fn a_server_is_drained_from_four_to_three_through_two_proxies() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let (three, four) = (named(&servers, 3), named(&servers, 4));
    let (coordination, [(one, p1), (two, p2)]) = two_proxies(&four, &store);
    preload(p1);
    assert!(servers[3].dbsize() > 400);
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[p1, p2], |_| {
        // The migration is started through the second proxy this time.
        two.write_config(&pool(p2, &three, &coordination));
        let (ok, said) = reshard(&two, "start");
        assert!(ok, "{said}\n{}", two.log());
        wait_done(&two, Duration::from_secs(60), &all);
        wait_done(&one, Duration::from_secs(10), &all);
    });
    assert_clean(&checker);
    assert_eq!(servers[3].dbsize(), 0, "the drained server keeps keys");
    assert_placed(&all, |port| pool(port, &three, ""), &checker);
}

#[test]
fn a_proxy_alone_drains_a_server_from_four_to_three() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let three = named(&servers, 3);
    let four = named(&servers, 4);
    let port = free_port();
    let extra = "  reshard_keys_per_second: 0\n";
    let proxy = Shardgate::builder(BIN, &pool(port, &four, extra))
        .wait_port(port)
        .start();
    preload(port);
    assert!(servers[3].dbsize() > 400);
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[port], |_| {
        proxy.write_config(&pool(port, &three, extra));
        let (ok, said) = reshard(&proxy, "start");
        assert!(ok, "{said}\n{}", proxy.log());
        wait_done(&proxy, Duration::from_secs(60), &all);
    });
    assert_clean(&checker);
    assert_eq!(servers[3].dbsize(), 0, "the drained server keeps keys");
    assert_placed(&all, |port| pool(port, &three, ""), &checker);
}

/// Which server of `yaml`'s pool owns `key` (as every proxy computes it).
fn owner(yaml: &str, key: &str) -> Option<usize> {
    let config = shardgate::config::parse(yaml)
        .expect("config")
        .pools
        .remove(0);
    shardgate::topology::Topology::from_config(&std::sync::Arc::new(config))
        .shard_of(key.as_bytes())
}

/// A key name that moves between the two pools, starting with `prefix`.
fn moving_name(prefix: &str, from: &str, to: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|key| owner(from, key) != owner(to, key))
        .expect("a key that moves")
}

#[test]
fn modula_to_slots_under_load_through_two_proxies_moves_big_keys_intact() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let named: Vec<(&str, &RedisServer)> = vec![
        ("s1", &servers[0]),
        ("s2", &servers[1]),
        ("s3", &servers[2]),
    ];
    let settings = format!(
        "  coordination: {}\n  reshard_keys_per_second: 0\n  reshard_big_key_bytes: 1000000\n",
        store.addr()
    );
    let (p1, p2) = (free_port(), free_port());
    let modula = |port| {
        pool(
            port,
            &named,
            &format!("{settings}  hash: crc16\n  distribution: modula\n"),
        )
    };
    let slots = |port| {
        pool(
            port,
            &named,
            &format!("{settings}  hash: crc16\n  distribution: slots\n"),
        )
    };
    let one = Shardgate::builder(BIN, &modula(p1)).wait_port(p1).start();
    let two = Shardgate::builder(BIN, &modula(p2)).wait_port(p2).start();
    preload(p1);
    // A 50 MB hash and a 1M-element sorted set that both move.
    let (hash, zset) = (
        moving_name("big:hash:", &modula(p1), &slots(p1)),
        moving_name("big:zset:", &modula(p1), &slots(p1)),
    );
    // Written on their servers directly: a script this long would make the
    // proxy's health checks see a busy server.
    let fill_hash =
        "for i=1,500000 do redis.call('HSET', KEYS[1], 'f'..i, string.rep('x', 90)) end return 1";
    let fill_zset = "for i=1,1000000 do redis.call('ZADD', KEYS[1], i, 'm'..i) end return 1";
    for (script, key) in [(fill_hash, &hash), (fill_zset, &zset)] {
        let home = &servers[owner(&modula(p1), key).unwrap()];
        fill(home, script, key);
    }
    // Filling them kept their servers busy: both proxies must see every
    // shard up again before the load starts.
    for proxy in [&one, &two] {
        test_support::assert_eventually!(
            proxy
                .admin_get("/ready")
                .is_ok_and(|(status, _)| status == 200),
            "a shard stayed down after the big keys were written"
        );
    }
    let mut client = RespClient::connect(p1).unwrap();
    let digest = |client: &mut RespClient| {
        (
            client.cmd(&["HLEN", &hash]).unwrap(),
            client.cmd(&["HGET", &hash, "f424242"]).unwrap(),
            client.cmd(&["ZCARD", &zset]).unwrap(),
            client.cmd(&["ZSCORE", &zset, "m777777"]).unwrap(),
        )
    };
    let before = digest(&mut client);
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[p1, p2], |_| {
        one.write_config(&slots(p1));
        let (ok, said) = reshard(&one, "start");
        assert!(ok, "{said}\n{}", one.log());
        wait_done(&one, Duration::from_secs(90), &all);
        wait_done(&two, Duration::from_secs(10), &all);
    });
    assert_clean(&checker);
    assert_eq!(digest(&mut client), before, "big keys moved intact");
    let (_, status) = one.admin_get("/reshard").unwrap();
    let (_, other) = two.admin_get("/reshard").unwrap();
    assert!(
        status.contains("moved alone") || other.contains("moved alone"),
        "the big keys took the big-key lane: {status} {other}"
    );
    let unshared = |port| pool(port, &named, "  hash: crc16\n  distribution: slots\n");
    assert_placed(&all, unshared, &checker);
}

#[test]
fn an_aborted_migration_moves_every_key_back() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let three = named(&servers, 3);
    let four = named(&servers, 4);
    let port = free_port();
    let slow = "  reshard_keys_per_second: 300\n";
    let proxy = Shardgate::builder(BIN, &pool(port, &three, slow))
        .wait_port(port)
        .start();
    preload(port);
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[port], |_| {
        proxy.write_config(&pool(port, &four, slow));
        let (ok, said) = reshard(&proxy, "start");
        assert!(ok, "{said}");
        assert_eventually!(
            within = Duration::from_secs(20),
            servers[3].dbsize() > 0,
            "keys never started moving"
        );
        let (ok, said) = reshard(&proxy, "abort");
        assert!(ok, "{said}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while phase(&proxy) != "aborted" {
            assert!(
                Instant::now() < deadline,
                "not aborted: {}",
                proxy.admin_get("/reshard").unwrap().1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert_clean(&checker);
    assert_eq!(servers[3].dbsize(), 0, "every key went back");
    assert_placed(&all, |port| pool(port, &three, ""), &checker);
}

/// An abort while a big key's MIGRATE is out: the servers finish a MIGRATE
/// whoever waits for it, so the proxy holds its acknowledgement of the
/// abort until it is answered; the migration back then finds the key on
/// the new server and brings it home (moved back too early, it would scan
/// that server before the key landed there and leave it behind).
#[test]
fn an_abort_during_a_big_keys_migrate_waits_for_it_and_brings_the_key_back() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let settings = format!(
        "  coordination: {}\n  reshard_keys_per_second: 0\n  reshard_big_key_bytes: 1000000\n",
        store.addr()
    );
    let three = named(&servers, 3);
    // The new server first: a mover scans shards in order, and the blocked
    // source, scanned first, would hold a migration back until its MIGRATE
    // ended whatever this proxy acknowledged.
    let mut four = vec![("s4", &servers[3])];
    four.extend(three.iter().copied());
    let port = free_port();
    let proxy = Shardgate::builder(BIN, &pool(port, &three, &settings))
        .wait_port(port)
        .start();
    // A key that moves to s4 (by index, `moving_name` would take the new
    // order for a move).
    let big = (0..1000)
        .map(|i| format!("big:{i}"))
        .find(|key| owner(&pool(port, &four, ""), key) == Some(0))
        .expect("a key for s4");
    let home = &servers[owner(&pool(port, &three, ""), &big).unwrap()];
    // About 110 MB: its MIGRATE takes a second or more here.
    let script =
        "for i=1,1000000 do redis.call('HSET', KEYS[1], 'f'..i, string.rep('x', 90)) end return 1";
    fill(home, script, &big);
    assert_eventually!(
        proxy
            .admin_get("/ready")
            .is_ok_and(|(status, _)| status == 200),
        "a shard stayed down after the big key was written"
    );
    proxy.write_config(&pool(port, &four, &settings));
    let (ok, said) = reshard(&proxy, "start");
    assert!(ok, "{said}");
    // The mover flags the key, waits 300 ms for every proxy to see it, then
    // sends the MIGRATE. The new server holds writes for 3 s (its RESTORE
    // among them), so the MIGRATE is surely out when the abort comes.
    assert_eventually!(
        within = Duration::from_secs(20),
        store.cmd(&["EXISTS", "shardgate:{data}:big-key-moving"]) == Reply::Integer(1),
        "the big key never started moving: {}\n{}",
        proxy.admin_get("/reshard").unwrap().1,
        proxy.log()
    );
    assert_eq!(
        servers[3].cmd(&["CLIENT", "PAUSE", "3000", "WRITE"]),
        Reply::Simple("OK".into())
    );
    std::thread::sleep(Duration::from_millis(500));
    let (ok, said) = reshard(&proxy, "abort");
    assert!(ok, "{said}");
    assert_eventually!(
        within = Duration::from_secs(60),
        phase(&proxy) == "aborted",
        "not aborted: {}",
        proxy.admin_get("/reshard").unwrap().1
    );
    let log = proxy.log();
    assert!(
        log.contains("the mover stops once the MIGRATE it has out is answered")
            && log.contains("the stopped mover's MIGRATE was answered"),
        "the abort did not meet the MIGRATE out:\n{log}"
    );
    assert_eq!(servers[3].dbsize(), 0, "a key was left on the new server");
    assert_eq!(home.cmd(&["HLEN", &big]), Reply::Integer(1_000_000));
    let mut client = RespClient::connect(port).unwrap();
    assert_eq!(
        client.cmd(&["HGET", &big, "f777777"]).unwrap(),
        Reply::Bulk(vec![b'x'; 90])
    );
}

#[test]
fn a_proxy_started_mid_move_serves_at_once_and_takes_over_when_the_mover_is_killed() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let three = named(&servers, 3);
    let four = named(&servers, 4);
    let settings = format!(
        "  coordination: {}\n  reshard_keys_per_second: 150\n",
        store.addr()
    );
    let (p1, p2) = (free_port(), free_port());
    let mut one = Shardgate::builder(BIN, &pool(p1, &three, &settings))
        .wait_port(p1)
        .start();
    preload(p1);
    one.write_config(&pool(p1, &four, &settings));
    let (ok, said) = reshard(&one, "start");
    assert!(ok, "{said}");
    assert_eventually!(
        within = Duration::from_secs(20),
        servers[3].dbsize() > 0,
        "keys never started moving"
    );
    // Started with the old file: it routes with the store's migration.
    let two = Shardgate::builder(BIN, &pool(p2, &three, &settings))
        .wait_port(p2)
        .start();
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[p2], |_| {
        assert!(servers[3].dbsize() > 0, "keys started moving");
        one.child().kill();
        wait_done(&two, Duration::from_secs(60), &all);
    });
    assert_clean(&checker);
    assert!(
        two.log().contains("every key moved"),
        "the second proxy finished the move"
    );
    assert_placed(&all, |port| pool(port, &four, ""), &checker);
}

/// A proxy restarted halfway (SIGTERM, then started again with its old
/// file): it loads the migration from the store before it serves, routes
/// every key where it is while the other proxy's mover goes on, and ends
/// in step.
#[test]
fn a_proxy_restarted_mid_move_loads_the_migration_and_serves_in_step() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let store = RedisServer::start();
    let (three, four) = (named(&servers, 3), named(&servers, 4));
    let settings = format!(
        "  coordination: {}\n  reshard_keys_per_second: 100\n",
        store.addr()
    );
    let (p1, p2) = (free_port(), free_port());
    let one = Shardgate::builder(BIN, &pool(p1, &three, &settings))
        .wait_port(p1)
        .start();
    let mut two = Shardgate::builder(BIN, &pool(p2, &three, &settings))
        .wait_port(p2)
        .start();
    preload(p1);
    let all: Vec<&RedisServer> = servers.iter().collect();
    let checker = under_load(&[p1], |checker| {
        one.write_config(&pool(p1, &four, &settings));
        let (ok, said) = reshard(&one, "start");
        assert!(ok, "{said}");
        assert_eventually!(
            within = Duration::from_secs(20),
            servers[3].dbsize() > 0,
            "keys never started moving"
        );
        two.signal("TERM");
        let status = two.child().wait_exit(Duration::from_secs(10));
        assert!(status.is_some_and(|s| s.success()), "{}", two.log());
        two = Shardgate::builder(BIN, &pool(p2, &three, &settings))
            .wait_port(p2)
            .start();
        // It routed with the store's migration from its first request (read
        // before it listened); its status shows it from its first heartbeat.
        assert_eventually!(
            phase(&two) == "moving",
            "the restarted proxy's status: {}",
            two.admin_get("/reshard").unwrap().1
        );
        // Through the restarted proxy, while keys move: never older than
        // what was acknowledged through the other one.
        let mut client = RespClient::connect(p2).unwrap();
        for i in 0..COUNTERS {
            let floor = checker.acked[i].load(Relaxed);
            match client.cmd(&["GET", &counter(i)]).unwrap() {
                Reply::Nil => assert_eq!(floor, 0, "{} missing", counter(i)),
                reply => {
                    if let Some(value) = int(&reply) {
                        assert!(value as u64 >= floor, "{}: {value} < {floor}", counter(i));
                    } else {
                        assert!(Checker::retryable(&reply), "{}: {reply:?}", counter(i));
                    }
                }
            }
        }
        wait_done(&one, Duration::from_secs(90), &all);
        wait_done(&two, Duration::from_secs(10), &all);
    });
    assert_clean(&checker);
    assert_placed(&all, |port| pool(port, &four, ""), &checker);
}

/// `shardgate reshard plan`: (exit status, what it printed).
fn plan(proxy: &Shardgate, args: &[&str]) -> (bool, String) {
    let admin = format!("127.0.0.1:{}", proxy.admin_port().unwrap());
    let output = std::process::Command::new(BIN)
        .args(["--admin", &admin, "reshard", "plan"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_plan_counts_what_would_move_and_changes_nothing() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let three = named(&servers, 3);
    let four = named(&servers, 4);
    let extra = "  reshard_keys_per_second: 1000\n  reshard_big_key_bytes: 1048576\n";
    let port = free_port();
    let proxy = Shardgate::builder(BIN, &pool(port, &three, extra))
        .wait_port(port)
        .start();
    preload(port);
    // A big key that moves to s4.
    let (now, next) = (pool(port, &three, extra), pool(port, &four, extra));
    let big = moving_name("big:", &now, &next);
    let mut client = RespClient::connect(port).unwrap();
    let two_mib = "x".repeat(2 << 20);
    assert_eq!(
        client.cmd(&["SET", &big, &two_mib]).unwrap(),
        Reply::Simple("OK".into())
    );
    // What should move, from every key there is.
    let keys = placement(&servers.iter().collect::<Vec<_>>());
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for key in keys.keys() {
        let (from, to) = (owner(&now, key).unwrap(), owner(&next, key).unwrap());
        if from != to {
            *expected
                .entry(format!("s{} -> s{}", from + 1, to + 1))
                .or_default() += 1;
        }
    }
    assert!(!expected.is_empty());

    let file = proxy.dir().join("four.yml");
    std::fs::write(&file, &next).unwrap();
    let (ok, said) = plan(&proxy, &["-c", file.to_str().unwrap()]);
    assert!(ok, "{said}\n{}", proxy.log());
    assert!(
        said.contains(&format!("every key scanned: {}", keys.len())),
        "{said}"
    );
    for (flow, count) in &expected {
        assert!(
            said.contains(&format!("{flow}: {count} keys")),
            "{flow}: {count} in\n{said}"
        );
    }
    // MEMORY USAGE counts the allocation: 2.5 MiB for 2 MiB of value.
    let line = said.lines().find(|l| l.contains(&big)).unwrap_or_default();
    assert!(line.contains("s4): 2.") && line.ends_with("MiB"), "{said}");
    assert!(said.contains("destination s4"), "{said}");
    let total: u64 = expected.values().sum();
    // 1,000 keys/s and 64 MiB/s: the keys set the pace.
    let seconds = (total as f64 / 1000.0).round();
    assert!(said.contains(&format!("about {seconds:.0} s")), "{said}");
    // Nothing changed.
    assert_eq!(servers[3].dbsize(), 0);
    assert_eq!(phase(&proxy), "none");

    // A sample: the figures are scaled up, close to the exact ones.
    let (ok, said) = plan(
        &proxy,
        &["-c", file.to_str().unwrap(), "--max-keys", "1000"],
    );
    assert!(ok, "{said}");
    assert!(said.contains("scaled up from that sample"), "{said}");
    let estimated: u64 = said
        .lines()
        .filter(|l| l.contains(" -> ") && l.ends_with("B"))
        .filter_map(|l| {
            l.split(" keys")
                .next()?
                .rsplit(": ")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let error = (estimated as f64 - total as f64).abs() / total as f64;
    assert!(error < 0.25, "estimated {estimated} of {total}: {said}");

    // A destination that may evict is refused.
    let used = match servers[3].client().cmd(&["INFO", "memory"]).unwrap() {
        Reply::Bulk(b) => String::from_utf8_lossy(&b)
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse::<u64>().ok())
            .unwrap(),
        other => panic!("{other:?}"),
    };
    let limit = (used + (1 << 20)).to_string();
    for setting in [
        ["maxmemory", limit.as_str()],
        ["maxmemory-policy", "allkeys-lru"],
    ] {
        let mut args = vec!["CONFIG", "SET"];
        args.extend(setting);
        assert_eq!(
            servers[3].client().cmd(&args).unwrap(),
            Reply::Simple("OK".into())
        );
    }
    let (ok, said) = plan(&proxy, &["-c", file.to_str().unwrap()]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("refused: destination 's4' may evict keys (allkeys-lru)"),
        "{said}"
    );
    // Without a file: the proxy's own, which matches what it runs.
    let (ok, said) = plan(&proxy, &[]);
    assert!(!ok && said.contains("no pool's servers"), "{said}");
}

#[test]
fn a_source_fails_over_halfway_and_the_move_completes_with_nothing_lost() {
    // s1 has a replica; every shard is watched by three Sentinels.
    let mut servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let replica = RedisServer::builder().replica_of(&servers[0]).start();
    assert_eventually!(replica.linked(), "the replica never linked");
    let watched: Vec<(String, u16)> = (servers.iter().enumerate())
        .map(|(i, s)| (format!("s{}", i + 1), s.port()))
        .collect();
    let watched: Vec<(&str, u16)> = watched.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(&watched, 2, 1000)).collect();
    assert_eventually!(
        within = Duration::from_secs(20),
        sentinels.iter().all(|s| matches!(
            s.client().cmd(&["SENTINEL", "REPLICAS", "s1"]),
            Ok(Reply::Array(r)) if !r.is_empty()
        )),
        "the Sentinels never learned s1's replica"
    );
    let mut settings = String::from("  reshard_keys_per_second: 100\n  sentinels:\n");
    for sentinel in &sentinels {
        settings.push_str(&format!("    - 127.0.0.1:{}:1\n", sentinel.port()));
    }
    let named = |servers: &[RedisServer], n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("s{}", i + 1), servers[i].addr()))
            .collect()
    };
    let yaml = |port: u16, servers: &[(String, String)]| {
        let mut yaml = format!(
            "data:\n  listen: 127.0.0.1:{port}\n  hash_tag: \"{{}}\"\n{settings}  servers:\n"
        );
        for (name, addr) in servers {
            yaml.push_str(&format!("    - {addr}:1 {name}\n"));
        }
        yaml
    };
    let (three, four) = (named(&servers, 3), named(&servers, 4));
    let port = free_port();
    let proxy = Shardgate::builder(BIN, &yaml(port, &three))
        .wait_port(port)
        .start();
    let master_of_s1 = || -> String {
        let (_, body) = proxy.admin_get("/topology").unwrap();
        let topology: serde_json::Value = serde_json::from_str(&body).unwrap();
        topology[0]["shards"][0]["master"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eventually!(
        within = Duration::from_secs(10),
        master_of_s1() == servers[0].addr(),
        "the proxy never routed s1 to its master"
    );
    preload(port);
    let checker = under_load(&[port], |checker| {
        proxy.write_config(&yaml(port, &four));
        let (ok, said) = reshard(&proxy, "start");
        assert!(ok, "{said}\n{}", proxy.log());
        assert_eventually!(
            within = Duration::from_secs(20),
            servers[3].dbsize() > 50,
            "keys never started moving"
        );
        // Writes acknowledged by a master that is then deposed are lost
        // by Redis's asynchronous replication, migration or not: hold
        // them while the Sentinels switch, and check what the migration
        // adds. The mover and the readers go on throughout; the mover
        // keeps moving keys off the old master until the proxy follows
        // the switch, keys the new master still has.
        checker.paused.store(true, Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        let offset = |server: &RedisServer, field: &str| -> u64 {
            server
                .info_field("replication", field)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let written = offset(&servers[0], "master_repl_offset");
        assert_eventually!(
            offset(&replica, "slave_repl_offset") >= written,
            "the replica never caught up"
        );
        let moved_before = servers[3].dbsize();
        assert_eq!(
            sentinels[0]
                .client()
                .cmd(&["SENTINEL", "FAILOVER", "s1"])
                .unwrap(),
            Reply::Simple("OK".into())
        );
        assert_eventually!(
            within = Duration::from_secs(20),
            master_of_s1() == replica.addr(),
            "the proxy never followed the failover"
        );
        checker.paused.store(false, Relaxed);
        eprintln!(
            "failover while {} of the destination's keys had arrived",
            moved_before
        );
        let all: Vec<&RedisServer> = vec![&replica, &servers[1], &servers[2], &servers[3]];
        wait_done(&proxy, Duration::from_secs(90), &all);
    });
    assert_clean(&checker);
    servers[0].kill();
    let all: Vec<&RedisServer> = vec![&replica, &servers[1], &servers[2], &servers[3]];
    let four: Vec<(String, String)> = vec![
        ("s1".into(), replica.addr()),
        four[1].clone(),
        four[2].clone(),
        four[3].clone(),
    ];
    assert_placed(&all, |port| yaml(port, &four), &checker);
    assert!(
        proxy.log().contains("s1/0: its master changed"),
        "the mover did not scan s1 again on its new master:\n{}",
        proxy.log()
    );
}

#[test]
fn the_status_page_shows_a_migration_as_it_moves_and_ends() {
    let servers: Vec<RedisServer> = (0..4).map(|_| RedisServer::start()).collect();
    let three = named(&servers, 3);
    let four = named(&servers, 4);
    // Slow enough that the time left shows for seconds: the first SCAN
    // step (1,000 keys, a quarter of them moving) takes about 5 s.
    let extra = "  reshard_keys_per_second: 50\n";
    let port = free_port();
    let proxy = Shardgate::builder(BIN, &pool(port, &three, extra))
        .wait_port(port)
        .start();
    preload(port);
    let browser = test_support::browser::Browser::start();
    browser.open(&format!(
        "http://127.0.0.1:{}/",
        proxy.admin_port().unwrap()
    ));
    let band = || {
        browser.eval(
            "const m = document.querySelector('section.pool[data-pool=\"data\"] .migration');\
             return m ? { phase: m.dataset.phase, moved: Number(m.dataset.keysMoved), text: m.innerText } : null;",
        )
    };
    assert_eventually!(
        browser.eval("return document.querySelector('section.pool') !== null;") == true,
        "the page never showed the pool"
    );
    assert_eq!(
        band(),
        serde_json::Value::Null,
        "a band before any migration"
    );
    proxy.write_config(&pool(port, &four, extra));
    let (ok, said) = reshard(&proxy, "start");
    assert!(ok, "{said}");
    assert_eventually!(
        within = Duration::from_secs(20),
        band()["phase"] == "moving" && band()["moved"].as_u64().unwrap_or(0) > 0,
        "the page never showed keys moving: {}",
        band()
    );
    let text = band()["text"].as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("migration 1") && text.contains("mover: "),
        "{text}"
    );
    // The time left, once the mover's rate is known.
    assert_eventually!(
        within = Duration::from_secs(20),
        band()["text"].as_str().is_some_and(|t| t.contains(" left")),
        "the page never showed the time left: {}",
        band()
    );
    let now = status(&proxy);
    assert!(
        now["eta_seconds"].as_u64().is_some() || now["phase"] == "done",
        "{now}"
    );
    assert_eventually!(
        within = Duration::from_secs(60),
        band()["phase"] == "done",
        "the page never showed the migration done: {}",
        band()
    );
}
