//! TLS on every hop, with real processes: clients to the proxy (TLS and
//! plaintext listeners of one pool side by side, mutual TLS accepted and
//! refused), certificates made by the openssl CLI for each test, redis-cli
//! and openssl s_client as clients. Nothing here is faked: a refused
//! handshake is refused by the proxy's rustls, and says why in its log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use common::BIN;
use test_support::pki::{Issued, Pki, Usage, Validity};
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::tls::{redis_cli, s_client_serial, TlsClient};
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// A pool in front of `redis` with these YAML lines (two spaces in).
fn yaml(redis: &RedisServer, lines: &[String]) -> String {
    let mut yaml = "p:\n".to_string();
    for line in lines {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml.push_str(&format!("  servers:\n    - {}:1\n", redis.addr()));
    yaml
}

/// `tls:` lines for a listener certificate, plus `extra` keys in the block.
fn tls_block(cert: &Issued, extra: &[String]) -> Vec<String> {
    let mut lines = vec![
        "tls:".to_string(),
        format!("  cert: {}", cert.cert.display()),
        format!("  key: {}", cert.key.display()),
    ];
    lines.extend(extra.iter().map(|l| format!("  {l}")));
    lines
}

/// A pool listening in plaintext and with TLS (`cert`) side by side: its
/// lines, and the plaintext and TLS ports.
fn side_by_side(cert: &Issued) -> (Vec<String>, u16, u16) {
    let (plain, tls) = (free_port(), free_port());
    let mut lines = vec![
        format!("listen: 127.0.0.1:{plain}"),
        format!("tls_listen: 127.0.0.1:{tls}"),
    ];
    lines.extend(tls_block(cert, &[]));
    (lines, plain, tls)
}

#[test]
fn a_tls_listener_and_a_plaintext_listener_of_one_pool_serve_the_same_keys() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "proxy");
    let redis = RedisServer::start();
    let (lines, plain, tls) = side_by_side(&cert);
    let proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(plain)
        .wait_port(tls)
        .start();

    let mut secure = TlsClient::connect(tls, &ca.cert, None).expect("TLS handshake");
    assert_eq!(
        secure.cmd(&["SET", "greeting", "over tls"]).unwrap(),
        Reply::Simple("OK".into())
    );
    let mut clear = RespClient::connect(plain).unwrap();
    assert_eq!(clear.cmd(&["GET", "greeting"]).unwrap(), bulk("over tls"));
    clear.cmd(&["SET", "other", "in the clear"]).unwrap();
    assert_eq!(secure.cmd(&["GET", "other"]).unwrap(), bulk("in the clear"));
    // Pipelined over TLS: every reply in order.
    for i in 0..200 {
        secure.send(&["INCR", "counter"]).unwrap();
        let _ = i;
    }
    for i in 1..=200 {
        assert_eq!(secure.read_reply().unwrap(), Reply::Integer(i));
    }
    assert_eq!(
        redis_cli(tls, &ca.cert, None, &["GET", "greeting"]),
        Ok("over tls".into())
    );
    assert_eq!(secure.server_serial(), cert.serial());

    // Plaintext to the TLS port is refused at the handshake, and said so.
    let mut wrong = RespClient::connect(tls).unwrap();
    let reply = wrong.cmd(&["PING"]);
    assert!(
        !matches!(reply, Ok(Reply::Simple(ref s)) if s == "PONG"),
        "plaintext PING answered on the TLS port: {reply:?}"
    );
    assert_eventually!(
        proxy
            .log()
            .contains("TLS handshake refused: the client does not speak TLS here"),
        "no log line for the plaintext client:\n{}",
        proxy.log()
    );
    // The TLS client is unaffected.
    assert_eq!(secure.cmd(&["GET", "greeting"]).unwrap(), bulk("over tls"));
}

#[test]
fn a_pool_may_listen_with_tls_alone_and_answers_reads_only_on_its_tls_readonly_port() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "proxy");
    let redis = RedisServer::start();
    let (tls, tls_ro) = (free_port(), free_port());
    let mut lines = vec![
        format!("tls_listen: 127.0.0.1:{tls}"),
        format!("tls_readonly_listen: 127.0.0.1:{tls_ro}"),
    ];
    lines.extend(tls_block(&cert, &["min_version: 1.3".into()]));
    let _proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(tls)
        .wait_port(tls_ro)
        .start();
    let mut rw = TlsClient::connect(tls, &ca.cert, None).unwrap();
    assert_eq!(
        rw.cmd(&["SET", "k", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    let mut ro = TlsClient::connect(tls_ro, &ca.cert, None).unwrap();
    assert_eq!(ro.cmd(&["GET", "k"]).unwrap(), bulk("v"));
    assert_eq!(
        ro.cmd(&["SET", "k", "w"]).unwrap(),
        Reply::Error("READONLY You can't write against a read only replica.".into())
    );
    // min_version 1.3: a TLS 1.2 client is refused.
    let openssl = test_support::require_program("openssl", "openssl");
    let out = std::process::Command::new(openssl)
        .args([
            "s_client",
            "-tls1_2",
            "-connect",
            &format!("127.0.0.1:{tls}"),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a TLS 1.2 handshake succeeded against min_version 1.3"
    );
    assert!(
        s_client_serial(tls, &ca.cert, None).is_some(),
        "TLS 1.3 works"
    );
}

#[test]
fn mutual_tls_accepts_a_signed_client_and_refuses_missing_foreign_and_expired_certificates() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let clients_ca = pki.ca("clients-ca");
    let other_ca = pki.ca("other-ca");
    let cert = pki.server(&ca, "proxy");
    let good = pki.client(&clients_ca, "app", "app");
    let foreign = pki.client(&other_ca, "intruder", "app");
    let expired = pki.issue(&clients_ca, "old", "app", Usage::Client, Validity::Expired);
    let redis = RedisServer::start();
    let tls = free_port();
    let mut lines = vec![format!("tls_listen: 127.0.0.1:{tls}")];
    lines.extend(tls_block(
        &cert,
        &[format!("client_ca: {}", clients_ca.cert.display())],
    ));
    let proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(tls)
        .start();

    let mut client = TlsClient::connect(tls, &ca.cert, Some(&good)).unwrap();
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(
        redis_cli(tls, &ca.cert, Some(&good), &["PING"]),
        Ok("PONG".into())
    );

    let refused = |identity: Option<&Issued>, what: &str, words: &str| {
        // TLS 1.3: the client finishes first; the refusal arrives as an
        // alert at its first read.
        let answered = TlsClient::connect(tls, &ca.cert, identity)
            .and_then(|mut c| c.cmd(&["PING"]))
            .is_ok_and(|r| r == Reply::Simple("PONG".into()));
        assert!(!answered, "{what}: served");
        assert_eventually!(
            proxy
                .log()
                .contains(&format!("TLS handshake refused: {words}")),
            "{what}: no log line '{words}':\n{}",
            proxy.log()
        );
    };
    refused(
        None,
        "no certificate",
        "the client presented no certificate",
    );
    refused(
        Some(&foreign),
        "another CA's certificate",
        "the client's certificate is not signed by a trusted CA",
    );
    refused(
        Some(&expired),
        "an expired certificate",
        "the client's certificate has expired",
    );
    // Refusals are counted; the good client was never disturbed.
    let (_, metrics) = proxy.admin_get("/metrics").unwrap();
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("shardgate_tls_handshake_failures_total{pool=\"p\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(failures.is_some_and(|n| n >= 3.0), "{metrics}");
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}

#[test]
fn optional_client_auth_serves_clients_with_and_without_a_certificate() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "proxy");
    let good = pki.client(&ca, "app", "app");
    let redis = RedisServer::start();
    let tls = free_port();
    let mut lines = vec![format!("tls_listen: 127.0.0.1:{tls}")];
    lines.extend(tls_block(
        &cert,
        &[
            format!("client_ca: {}", ca.cert.display()),
            "client_auth: optional".into(),
        ],
    ));
    let _proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(tls)
        .start();
    for identity in [None, Some(&good)] {
        let mut client = TlsClient::connect(tls, &ca.cert, identity).unwrap();
        assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    }
}

#[test]
fn a_certificate_that_does_not_load_stops_startup_and_the_check_says_which_file() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let a = pki.server(&ca, "a");
    let b = pki.server(&ca, "b");
    let redis = RedisServer::start();
    let tls = free_port();
    let mut lines = vec![format!("tls_listen: 127.0.0.1:{tls}")];
    lines.extend(vec![
        "tls:".to_string(),
        format!("  cert: {}", a.cert.display()),
        format!("  key: {}", b.key.display()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shardgate.yml");
    std::fs::write(&file, yaml(&redis, &lines)).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pool 'p': tls:") && stderr.contains("b.key is not the private key of"),
        "{stderr}"
    );
    let out = std::process::Command::new(BIN)
        .arg("-c")
        .arg(&file)
        .args(["--admin", "off"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(std::net::TcpStream::connect(("127.0.0.1", tls)).is_err());
}

#[test]
fn handshakes_are_bounded_per_worker_and_time_out_while_plaintext_clients_are_served() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "proxy");
    let redis = RedisServer::start();
    let (plain, tls) = (free_port(), free_port());
    let mut lines = vec![
        format!("listen: 127.0.0.1:{plain}"),
        format!("tls_listen: 127.0.0.1:{tls}"),
    ];
    lines.extend(tls_block(
        &cert,
        &["handshake_timeout: 1500".into(), "max_handshakes: 2".into()],
    ));
    let proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .arg("--workers")
        .arg("1")
        .wait_port(plain)
        .wait_port(tls)
        .start();
    // Connections that never send a byte hold no place: a client still
    // gets its handshake at once.
    let silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", tls)).unwrap())
        .collect();
    let asked = std::time::Instant::now();
    let mut first = TlsClient::connect(tls, &ca.cert, None).expect("handshake");
    assert_eq!(first.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert!(
        asked.elapsed() < std::time::Duration::from_millis(1000),
        "silent connections held the handshake places ({:?})",
        asked.elapsed()
    );
    // Two clients that start a ClientHello and stall take both places.
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", tls)).unwrap();
            std::io::Write::write_all(&mut stream, &[0x16, 0x03, 0x01]).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let waiting = std::thread::spawn(move || {
        let mut client = TlsClient::connect(tls, &ca.cert, None).expect("handshake");
        let reply = client.cmd(&["PING"]).unwrap();
        (reply, started.elapsed())
    });
    // Meanwhile plaintext clients are served at once.
    let mut clear = RespClient::connect(plain).unwrap();
    for _ in 0..20 {
        let asked = std::time::Instant::now();
        assert_eq!(clear.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
        assert!(asked.elapsed() < std::time::Duration::from_millis(500));
    }
    let (reply, waited) = waiting.join().unwrap();
    assert_eq!(reply, Reply::Simple("PONG".into()));
    // It waited for a place: until the stalled ones timed out.
    assert!(
        waited >= std::time::Duration::from_millis(1000),
        "the third handshake did not wait for a place ({waited:?})"
    );
    assert_eventually!(
        proxy
            .log()
            .contains("TLS handshake refused: no handshake within 1500 ms (tls.handshake_timeout)"),
        "no timeout line:\n{}",
        proxy.log()
    );
    drop((silent, stalled));
}

/// Clients that each SET and GET their own keys over TLS until stopped;
/// every reply checked, every error kept.
struct TlsLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl TlsLoad {
    fn start(port: u16, ca: &std::path::Path, clients: usize) -> TlsLoad {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let ok = std::sync::Arc::new(AtomicU64::new(0));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let threads = (0..clients)
            .map(|id| {
                let (stop, ok, ca, ready_tx) =
                    (stop.clone(), ok.clone(), ca.to_path_buf(), ready_tx.clone());
                std::thread::spawn(move || {
                    let mut errors = Vec::new();
                    let mut client = match TlsClient::connect(port, &ca, None) {
                        Ok(client) => client,
                        Err(e) => return vec![format!("client {id}: connect: {e}")],
                    };
                    let _ = ready_tx.send(());
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("load:{id}:{}", n % 50);
                        let value = format!("v{n}");
                        match client.cmd(&["SET", &key, &value]) {
                            Ok(Reply::Simple(s)) if s == "OK" => {}
                            other => errors.push(format!("client {id}: SET: {other:?}")),
                        }
                        match client.cmd(&["GET", &key]) {
                            Ok(reply) if reply == bulk(&value) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => errors.push(format!("client {id}: GET: {other:?}")),
                        }
                        if errors.len() > 3 {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    errors
                })
            })
            .collect();
        for _ in 0..clients {
            ready
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("every client connected");
        }
        TlsLoad { stop, ok, threads }
    }

    fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

fn expiry_metric(proxy: &Shardgate) -> Option<i64> {
    let (_, metrics) = proxy.admin_get("/metrics").unwrap();
    metrics
        .lines()
        .find(|l| {
            l.starts_with(
                "shardgate_tls_certificate_expiry_timestamp_seconds{pool=\"p\",use=\"tls\"",
            )
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_certificate_replaced_and_reloaded_serves_new_handshakes_while_50_clients_carry_on() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let first = pki.issue(&ca, "proxy", "proxy", Usage::Server, Validity::Days(30));
    let redis = RedisServer::start();
    let tls = free_port();
    let mut lines = vec![format!("tls_listen: 127.0.0.1:{tls}")];
    lines.extend(tls_block(&first, &[]));
    let proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(tls)
        .start();
    let old_serial = first.serial();
    assert_eq!(
        s_client_serial(tls, &ca.cert, None),
        Some(old_serial.clone())
    );
    assert_eq!(expiry_metric(&proxy), Some(first.not_after()));

    let load = TlsLoad::start(tls, &ca.cert, 50);
    assert_eventually!(load.ok() > 200, "the clients make no progress");

    // Renewed in place (same paths), then reloaded with the file unchanged.
    let second = pki.issue(&ca, "proxy", "proxy", Usage::Server, Validity::Days(90));
    let new_serial = second.serial();
    assert_ne!(new_serial, old_serial);
    let (status, body) = proxy.reload();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("certificate (re)loaded: serial {new_serial}")),
        "{body}"
    );
    assert_eq!(
        s_client_serial(tls, &ca.cert, None),
        Some(new_serial.clone())
    );
    assert_eq!(expiry_metric(&proxy), Some(second.not_after()));
    let before = load.ok();
    assert_eventually!(
        load.ok() > before + 500,
        "the clients stalled after the reload"
    );

    // A key that is not the certificate's: the reload keeps the one in
    // use and says so; handshakes go on with it.
    let stranger = pki.server(&ca, "stranger");
    std::fs::copy(&stranger.key, &second.key).unwrap();
    let (status, body) = proxy.reload();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("is not the private key of")
            && body.contains(&format!(
                "keeping the certificate in use (serial {new_serial})"
            )),
        "{body}"
    );
    assert!(proxy.log().contains("keeping the certificate in use"));
    assert_eq!(s_client_serial(tls, &ca.cert, None), Some(new_serial));

    let errors = load.stop();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
}

#[test]
fn the_status_page_warns_of_a_certificate_within_14_days_of_expiry_and_only_of_that_one() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let soon = pki.issue(&ca, "soon", "soon", Usage::Server, Validity::Days(5));
    let fresh = pki.issue(&ca, "fresh", "fresh", Usage::Server, Validity::Days(300));
    let redis = RedisServer::start();
    let (a, b) = (free_port(), free_port());
    let pool = |name: &str, port: u16, cert: &Issued| {
        let mut yaml = format!("{name}:\n  tls_listen: 127.0.0.1:{port}\n");
        for line in tls_block(cert, &[]) {
            yaml.push_str(&format!("  {line}\n"));
        }
        yaml.push_str(&format!("  servers:\n    - {}:1\n", redis.addr()));
        yaml
    };
    let yaml = pool("soon", a, &soon) + &pool("fresh", b, &fresh);
    let proxy = Shardgate::builder(BIN, &yaml)
        .wait_port(a)
        .wait_port(b)
        .start();
    // The listening sockets are bound before the pools start: wait for both.
    let overview = || -> serde_json::Value {
        let (_, body) = proxy.admin_get("/api/overview").unwrap();
        serde_json::from_str(&body).unwrap()
    };
    assert_eventually!(
        overview()["pools"].as_array().is_some_and(|p| p.len() == 2),
        "the pools never started"
    );
    let overview = overview();
    let cert_of = |pool: &str| {
        overview["pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"] == pool)
            .unwrap()["certificates"][0]
            .clone()
    };
    assert_eq!(cert_of("soon")["expires_soon"], true);
    assert_eq!(cert_of("soon")["serial"], soon.serial());
    assert_eq!(cert_of("soon")["not_after"], soon.not_after());
    assert_eq!(cert_of("fresh")["expires_soon"], false);

    let browser = test_support::browser::Browser::start();
    browser.open(&format!(
        "http://127.0.0.1:{}/",
        proxy.admin_port().unwrap()
    ));
    let warning = |pool: &str| {
        browser.eval(&format!(
            "const w = document.querySelector('[data-pool=\"{pool}\"] [data-cert-warning]'); return w ? w.innerText : null;"
        ))
    };
    assert_eventually!(
        warning("soon")
            .as_str()
            .is_some_and(|w| w.contains("expires in 4d") && w.contains(&soon.serial())),
        "no warning for the certificate expiring in 5 days: {:?}",
        warning("soon")
    );
    assert_eq!(warning("fresh"), serde_json::Value::Null);
}

#[test]
fn a_client_certificates_common_name_logs_the_client_in_as_that_user() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let clients_ca = pki.ca("clients-ca");
    let cert = pki.server(&ca, "proxy");
    let reader = pki.client(&clients_ca, "reader", "reader");
    let stranger = pki.client(&clients_ca, "stranger", "nobody-here");
    let redis = RedisServer::start();
    let (plain, tls) = (free_port(), free_port());
    let mut lines = vec![
        format!("listen: 127.0.0.1:{plain}"),
        format!("tls_listen: 127.0.0.1:{tls}"),
        "users:".into(),
        "  - {name: reader, password: r-secret, commands: \"+@read +@connection +acl|whoami\"}"
            .into(),
        "  - {name: writer, password: w-secret}".into(),
    ];
    lines.extend(tls_block(
        &cert,
        &[
            format!("client_ca: {}", clients_ca.cert.display()),
            "user_from_cert: CN".into(),
        ],
    ));
    let _proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .wait_port(plain)
        .wait_port(tls)
        .start();
    redis.cmd(&["SET", "k", "v"]);

    // CN=reader: logged in as reader, with reader's permissions.
    let mut client = TlsClient::connect(tls, &ca.cert, Some(&reader)).unwrap();
    assert_eq!(client.cmd(&["ACL", "WHOAMI"]).unwrap(), bulk("reader"));
    assert_eq!(client.cmd(&["GET", "k"]).unwrap(), bulk("v"));
    assert!(
        matches!(client.cmd(&["SET", "k", "w"]).unwrap(), Reply::Error(ref e) if e.starts_with("NOPERM")),
        "reader may not write"
    );
    // It may still switch users with AUTH.
    assert_eq!(
        client.cmd(&["AUTH", "writer", "w-secret"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        client.cmd(&["SET", "k", "w"]).unwrap(),
        Reply::Simple("OK".into())
    );

    // A name that is no user: nothing granted, AUTH needed.
    let mut client = TlsClient::connect(tls, &ca.cert, Some(&stranger)).unwrap();
    assert!(
        matches!(client.cmd(&["GET", "k"]).unwrap(), Reply::Error(ref e) if e.starts_with("NOAUTH")),
        "an unknown name must not log in"
    );
    // Plaintext clients have no certificate: AUTH needed.
    let mut clear = RespClient::connect(plain).unwrap();
    assert!(
        matches!(clear.cmd(&["GET", "k"]).unwrap(), Reply::Error(ref e) if e.starts_with("NOAUTH"))
    );
}

/// The process serving a client (INFO proxy's `process_id`).
fn process_of(reply: std::io::Result<Reply>) -> Option<u32> {
    let info = reply.ok()?.bulk_str()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

#[test]
fn an_upgrade_hands_plaintext_clients_over_and_tls_clients_stay_until_the_old_process_exits() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "proxy");
    let redis = RedisServer::start();
    let (lines, plain, tls) = side_by_side(&cert);
    let mut proxy = Shardgate::builder(BIN, &yaml(&redis, &lines))
        .args(["--shutdown-grace", "3"])
        .wait_port(plain)
        .wait_port(tls)
        .start();
    let old = proxy.pid();
    let mut secure = TlsClient::connect(tls, &ca.cert, None).unwrap();
    let mut clear = RespClient::connect(plain).unwrap();
    assert_eq!(process_of(secure.cmd(&["INFO", "proxy"])), Some(old));
    assert_eq!(process_of(clear.cmd(&["INFO", "proxy"])), Some(old));

    let asked = std::time::Instant::now();
    proxy.signal("USR2");
    let mut new = None;
    assert_eventually!(
        {
            new = RespClient::connect(plain)
                .ok()
                .and_then(|mut c| process_of(c.cmd(&["INFO", "proxy"])))
                .filter(|pid| *pid != old);
            new.is_some()
        },
        "no new process serves; log:\n{}",
        proxy.log()
    );
    let new = new.unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
    let _successor = Kill(new);
    // The plaintext client went over between two requests...
    assert_eventually!(
        process_of(clear.cmd(&["INFO", "proxy"])) == Some(new),
        "the plaintext client was not handed over"
    );
    // ...the TLS one cannot: it stays with the old process, served...
    assert_eq!(process_of(secure.cmd(&["INFO", "proxy"])), Some(old));
    assert_eq!(
        secure.cmd(&["SET", "k", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    // ...while new TLS clients go to the new one.
    let mut fresh = TlsClient::connect(tls, &ca.cert, None).unwrap();
    assert_eq!(process_of(fresh.cmd(&["INFO", "proxy"])), Some(new));
    assert_eq!(fresh.cmd(&["GET", "k"]).unwrap(), bulk("v"));
    // The old process exits after its grace (not before: its TLS client
    // holds it); the TLS client is closed then.
    assert!(
        proxy
            .child()
            .wait_exit(std::time::Duration::from_secs(15))
            .is_some(),
        "the old process did not exit; log:\n{}",
        proxy.log()
    );
    assert!(
        asked.elapsed() >= std::time::Duration::from_secs(3),
        "the old process exited {:?} after SIGUSR2, within its 3 s grace; log:\n{}",
        asked.elapsed(),
        proxy.log()
    );
    assert!(
        test_support::resp::closed_by_peer(&secure.cmd(&["PING"])),
        "the TLS client outlived its process"
    );
    assert_eq!(process_of(clear.cmd(&["INFO", "proxy"])), Some(new));
}
