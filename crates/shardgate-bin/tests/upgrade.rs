//! Binary upgrade (SIGUSR2, `shardgate upgrade`): the new process takes
//! the listening sockets and every client between two requests; idle,
//! pipelining and subscribed clients stay connected and are served by the
//! new process; the old one exits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::BIN;
use test_support::load::Load;
use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Shardgate};

/// The process that serves `client` (INFO proxy's `process_id`).
fn served_by(client: &mut RespClient) -> u32 {
    let info = client.cmd(&["INFO", "proxy"]).unwrap().bulk_str().unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_id in {info}"))
}

/// Kills the new process when the test ends (the harness knows only the
/// one it started).
struct Successor(Option<u32>);

impl Drop for Successor {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

fn pool(port: u16, server: &RedisServer) -> String {
    format!(
        "up:\n  listen: 127.0.0.1:{port}\n  servers:\n    - {}:1 s1\n",
        server.addr()
    )
}

#[test]
fn an_upgrade_keeps_idle_pipelining_and_subscribed_clients_and_the_old_process_exits() {
    let server = RedisServer::start();
    let port = free_port();
    let mut proxy = Shardgate::builder(BIN, &pool(port, &server))
        .wait_port(port)
        .arg("--shutdown-grace")
        .arg("10")
        .start();
    let old = proxy.pid();
    let mut successor = Successor(None);

    let mut idle: Vec<RespClient> = (0..200)
        .map(|_| RespClient::connect(port).unwrap())
        .collect();
    for (i, client) in idle.iter_mut().enumerate() {
        assert_eq!(
            client.cmd(&["SELECT", "2"]).unwrap(),
            Reply::Simple("OK".into())
        );
        let name = format!("idle-{i}");
        assert_eq!(
            client.cmd(&["CLIENT", "SETNAME", &name]).unwrap(),
            Reply::Simple("OK".into())
        );
    }
    let mut subscribers: Vec<RespClient> = (0..10)
        .map(|i| {
            let mut client = RespClient::connect(port).unwrap();
            client.send(&["SUBSCRIBE", &format!("news-{i}")]).unwrap();
            let confirmed = client.read_reply().unwrap();
            assert!(
                matches!(&confirmed, Reply::Array(items) if items[0] == Reply::Bulk(b"subscribe".to_vec())),
                "{confirmed:?}"
            );
            client
        })
        .collect();
    let load = Load::start(port, 20, 16);
    load.wait_for(5_000);

    proxy.signal("USR2");
    let mut probe = None;
    assert_eventually!(
        {
            let client = RespClient::connect(port).ok();
            probe = client;
            probe.as_mut().is_some_and(|c| served_by(c) != old)
        },
        "no new process serves; log:\n{}",
        proxy.log()
    );
    let new = served_by(probe.as_mut().unwrap());
    successor.0 = Some(new);
    assert!(
        proxy.child().wait_exit(Duration::from_secs(15)).is_some(),
        "the old process did not exit; log:\n{}",
        proxy.log()
    );
    load.wait_for(5_000);
    let report = load.stop();
    eprintln!("pipelining clients across the upgrade: {report:?}");
    assert_eq!(report.error_count, 0, "{:?}", report.errors);
    assert_eq!(
        report.disconnects, 0,
        "pipelining clients were disconnected"
    );

    // Every idle client: still connected, served by the new process, with
    // its database and name.
    for (i, client) in idle.iter_mut().enumerate() {
        assert_eq!(served_by(client), new, "idle client {i}");
        assert_eq!(
            client.cmd(&["CLIENT", "GETNAME"]).unwrap(),
            Reply::Bulk(format!("idle-{i}").into_bytes())
        );
    }
    let mut direct = server.client();
    assert_eq!(
        idle[0].cmd(&["SET", "db-check", "2"]).unwrap(),
        Reply::Simple("OK".into())
    );
    direct.cmd(&["SELECT", "2"]).unwrap();
    assert_eq!(
        direct.cmd(&["GET", "db-check"]).unwrap(),
        Reply::Bulk(b"2".to_vec())
    );

    // Subscribers receive what is published after the upgrade.
    for (i, subscriber) in subscribers.iter_mut().enumerate() {
        let channel = format!("news-{i}");
        let receivers = direct.cmd(&["PUBLISH", &channel, "after"]).unwrap();
        assert_eq!(
            receivers,
            Reply::Integer(1),
            "{channel}: one subscription (the new process's)"
        );
        subscriber.set_read_timeout(Some(Duration::from_secs(5)));
        let message = subscriber.read_reply().unwrap();
        assert_eq!(
            message,
            Reply::Array(vec![
                Reply::Bulk(b"message".to_vec()),
                Reply::Bulk(channel.into_bytes()),
                Reply::Bulk(b"after".to_vec()),
            ])
        );
    }
    assert!(proxy.log().contains("upgrade: pid"), "{}", proxy.log());
}

#[test]
fn an_upgrade_that_fails_changes_nothing() {
    let server = RedisServer::start();
    let port = free_port();
    let proxy = Shardgate::builder(BIN, &pool(port, &server))
        .wait_port(port)
        .start();
    let mut client = RespClient::connect(port).unwrap();
    // The new process will read a broken file: it cannot start.
    std::fs::write(proxy.config_path(), "up: [not a pool\n").unwrap();
    let admin = format!("127.0.0.1:{}", proxy.admin_port().unwrap());
    let cli = std::process::Command::new(BIN)
        .args(["--admin", &admin, "upgrade"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{printed}");
    assert!(printed.contains("the upgrade failed"), "{printed}");
    assert!(proxy
        .log()
        .contains("upgrade failed, this process carries on"));
    assert_eq!(served_by(&mut client), proxy.pid());
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert!(RespClient::connect(port).is_ok(), "still listening");
}

/// SIGTERM while an upgrade waits for a successor that never answers (an
/// upgrade waits up to 30 s for it): the proxy stops at once, as it does
/// when idle, and its clients get their replies first.
#[test]
fn sigterm_during_an_upgrade_that_hangs_stops_the_proxy_at_once() {
    let server = RedisServer::start();
    let port = free_port();
    // The proxy runs from a copy, so the test can put another program at
    // its path: the upgrade starts whatever is there.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("shardgate");
    std::fs::copy(BIN, &binary).unwrap();
    let mut proxy = Shardgate::builder(&binary, &pool(port, &server))
        .wait_port(port)
        .start();
    let pid_file = dir.path().join("successor.pid");
    let hang = dir.path().join("hang");
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&hang, &binary).unwrap();

    let mut client = RespClient::connect(port).unwrap();
    proxy.signal("USR2");
    // The shell creates the file before it writes the pid: read it once
    // it holds one.
    let read_pid =
        || -> Option<u32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
    assert_eventually!(
        read_pid().is_some(),
        "the upgrade never started the successor"
    );
    let successor: u32 = read_pid().expect("the successor's pid");
    let _successor = Successor(Some(successor));
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    proxy.signal("TERM");
    let status = proxy
        .child()
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM:\n{}", proxy.log()));
    assert!(status.success(), "{status:?}");
    assert!(proxy.log().contains("SIGTERM received: shutting down"));
    assert!(
        RespClient::connect(port).is_err(),
        "still accepting after exit"
    );
    // The successor it was waiting for was stopped, not left behind.
    assert!(proxy.log().contains("this process is shutting down"));
    assert_eventually!(
        !std::path::Path::new(&format!("/proc/{successor}")).exists(),
        "the successor outlived the proxy"
    );
}
