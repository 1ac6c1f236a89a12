//! The binary's contract: config checking, startup failures, exit codes,
//! graceful shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::process::Command;
use std::time::Duration;

use test_support::resp::Reply;
use test_support::RespClient;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Runs `shardgate -t` (check and exit) on a config file with `text`.
fn check_config(text: &str) -> std::process::Output {
    let file = write_config(text);
    Command::new(common::BIN)
        .arg("-t")
        .arg("-c")
        .arg(file.path())
        .output()
        .unwrap()
}

#[test]
fn dash_t_accepts_a_valid_nutcracker_yml() {
    let output = check_config(
        "alpha:\n  listen: 127.0.0.1:22121\n  hash: fnv1a_64\n  distribution: ketama\n  \
         auto_eject_hosts: true\n  redis: true\n  server_retry_timeout: 2000\n  \
         server_failure_limit: 1\n  servers:\n   - 127.0.0.1:6379:1\n",
    );
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("syntax is ok"));
}

#[test]
fn dash_t_reports_every_problem_and_exits_non_zero() {
    let output = check_config(
        "alpha:\n  listen: 127.0.0.1:22121\n  hash: nope\n  servers:\n   - 127.0.0.1:6379\n\
         beta:\n  listen: nowhere\n  servers: [\"127.0.0.1:1:1\"]\n  extra_key: 1\n",
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pool 'alpha': hash: unknown 'nope'"),
        "{stderr}"
    );
    assert!(stderr.contains("pool 'alpha': servers[0]"), "{stderr}");
    assert!(
        stderr.contains("pool 'beta': unknown field `extra_key`"),
        "{stderr}"
    );
}

#[test]
fn dash_t_rejects_a_backend_given_twice_without_showing_secrets() {
    let output = check_config(
        "alpha:\n  listen: 127.0.0.1:22121\n  failover: managed\n  redis_auth: 12345678\n  \
         servers:\n   - 127.0.0.1:7101:1 s1\n   - 127.0.0.1:7102:1 s2\n  \
         replicas:\n    s1: [127.0.0.1:7103, 127.0.0.1:7102]\n",
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pool 'alpha': replicas.s1[1]: 127.0.0.1:7102 is also servers[1] (s2)"),
        "{stderr}"
    );
    assert!(!stderr.contains("12345678"), "{stderr}");
    assert!(stderr.contains("1 problem:"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_a_clear_startup_error() {
    let output = Command::new(common::BIN)
        .args(["-c", "/nonexistent/shardgate.yml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/shardgate.yml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn a_listen_address_in_use_stops_startup_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // Without SO_REUSEPORT on the holder, shardgate's bind fails.
    let file = write_config(&format!(
        "p:\n  listen: 127.0.0.1:{port}\n  servers: [\"127.0.0.1:1:1\"]\n"
    ));
    let mut child = Command::new(common::BIN)
        .arg("-c")
        .arg(file.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("shardgate kept running");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("pool 'p': cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

fn wait_exit(
    child: &mut std::process::Child,
    deadline: Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    None
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let mut setup = common::start(1, &[]);
    let mut client = setup.client();
    assert_eq!(
        client.cmd(&["SET", "k", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    // A batch the proxy may have read only in part, then SIGTERM: every
    // request it read runs and is answered, in order; nothing it did not
    // answer ran.
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(test_support::resp::encode(&["SET", &format!("k{i}"), "v"]));
    }
    client.send_raw(&batch).unwrap();
    setup.proxy.signal("TERM");
    let mut answered = 0;
    while let Ok(reply) = client.read_reply() {
        assert_eq!(reply, Reply::Simple("OK".into()), "reply {answered}");
        answered += 1;
    }
    assert_eq!(
        setup.servers[0].dbsize(),
        answered + 1,
        "requests ran that were not answered"
    );
    let status = setup
        .proxy
        .child()
        .wait_exit(Duration::from_secs(10))
        .expect("shardgate did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        RespClient::connect(setup.port).is_err(),
        "still accepting after exit"
    );
}

/// 50 clients pipelining while SIGTERM arrives: the proxy stops reading,
/// answers everything it read, then closes. No request runs on a server
/// without its client getting the reply.
#[test]
fn sigterm_under_pipelined_load_answers_every_request_that_ran() {
    let mut setup = common::start(1, &[]);
    let port = setup.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut client = RespClient::connect(port).expect("connect");
                let key = format!("counter:{c}");
                let mut acknowledged = 0i64;
                let batch: Vec<u8> = (0..32)
                    .flat_map(|_| test_support::resp::encode(&["INCR", &key]))
                    .collect();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if client.send_raw(&batch).is_err() {
                        break;
                    }
                    for _ in 0..32 {
                        match client.read_reply() {
                            Ok(Reply::Integer(n)) => {
                                assert_eq!(n, acknowledged + 1, "replies out of order");
                                acknowledged = n;
                            }
                            Ok(other) => panic!("client {c}: {other:?}"),
                            Err(_) => return (key, acknowledged),
                        }
                    }
                }
                (key, acknowledged)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    setup.proxy.signal("TERM");
    let status = setup
        .proxy
        .child()
        .wait_exit(Duration::from_secs(10))
        .expect("shardgate did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (key, acknowledged) = client.join().expect("client thread");
        let ran = match setup.servers[0].cmd(&["GET", &key]) {
            Reply::Bulk(n) => String::from_utf8_lossy(&n).parse::<i64>().unwrap(),
            Reply::Nil => 0,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ran, acknowledged,
            "{key}: {ran} INCRs ran, {acknowledged} were answered"
        );
        total += acknowledged;
    }
    assert!(total > 0, "no traffic before the signal");
}

#[test]
fn status_prints_the_topology_and_completions_cover_every_command() {
    let setup = common::start(2, &[]);
    let admin = format!("127.0.0.1:{}", setup.proxy.admin_port().unwrap());
    // Listening starts at bind; serving once the pools are up.
    test_support::assert_eventually!(
        setup
            .proxy
            .admin_get("/ready")
            .is_ok_and(|(status, _)| status == 200),
        "never ready"
    );
    let output = Command::new(common::BIN)
        .args(["--admin", &admin, "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!("pool test on 127.0.0.1:{}", setup.port)),
        "{text}"
    );
    for server in &setup.servers {
        let line = text
            .lines()
            .find(|l| l.starts_with("    ") && l.contains(&server.addr()))
            .unwrap_or_else(|| panic!("{} missing:\n{text}", server.addr()));
        assert!(line.contains("master") && line.contains("up"), "{line}");
        assert!(
            text.contains(&format!("writes to {}", server.addr())),
            "{text}"
        );
    }
    assert!(text.contains("recent events:"), "{text}");
    // Unreachable: a clear message and exit 1.
    let output = Command::new(common::BIN)
        .args(["--admin", "127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the admin server"));
    let bash = Command::new(common::BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&bash.stdout);
    for word in [
        "reload",
        "upgrade",
        "reshard",
        "status",
        "demo",
        "--conf-file",
    ] {
        assert!(script.contains(word), "completion lacks {word}");
    }
}
