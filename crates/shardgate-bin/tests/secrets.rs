//! No secret leaves the proxy: with every kind of secret configured
//! (client passwords, users, backend and Sentinel credentials) and used
//! (AUTH, HELLO AUTH, MIGRATE AUTH / AUTH2, CONFIG SET of a password),
//! none appears in any reply, the slow log, the admin API, the metrics or
//! the log, even at debug level.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::time::Duration;

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{assert_eventually, RedisServer, RespClient, Sentinel, Shardgate};

const SERVER_PASSWORD: &str = "srv-Secret-A1";
const BACKEND_PASSWORD: &str = "usr-Secret-B2";
const SENTINEL_PASSWORD: &str = "snt-Secret-C3";
const CLIENT_PASSWORD: &str = "cli-Secret-D4";
const USER_PASSWORD: &str = "app-Secret-E5";
const MIGRATE_PASSWORD: &str = "mig-Secret-F6";
const MIGRATE2_PASSWORD: &str = "mig-Secret-G7";

#[test]
fn no_secret_appears_in_replies_logs_metrics_or_the_admin_api() {
    let secrets = [
        SERVER_PASSWORD,
        BACKEND_PASSWORD,
        SENTINEL_PASSWORD,
        CLIENT_PASSWORD,
        USER_PASSWORD,
        MIGRATE_PASSWORD,
        MIGRATE2_PASSWORD,
    ];
    // The backend: requirepass, plus the ACL user the proxy logs in as.
    let master = RedisServer::builder().password(SERVER_PASSWORD).start();
    master.cmd(&[
        "ACL",
        "SETUSER",
        "proxy",
        "on",
        &format!(">{BACKEND_PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ]);
    master.cmd(&["CONFIG", "SET", "masterauth", SERVER_PASSWORD]);
    let sentinel = Sentinel::start_secured(
        &[("shard1", master.port())],
        1,
        5000,
        SENTINEL_PASSWORD,
        "proxy",
        BACKEND_PASSWORD,
    );
    // A MIGRATE target with its own password.
    let target = RedisServer::builder().password(MIGRATE_PASSWORD).start();
    let port = free_port();
    let yaml = format!(
        "secret:\n  listen: 127.0.0.1:{port}\n  redis_user: proxy\n  redis_auth: {BACKEND_PASSWORD}\n  \
         sentinel_auth: {SENTINEL_PASSWORD}\n  sentinels:\n    - 127.0.0.1:{}:1\n  \
         password: {CLIENT_PASSWORD}\n  users:\n    - name: app\n      password: {USER_PASSWORD}\n  \
         slowlog_log_slower_than: 0\n  servers:\n    - {}:1 shard1\n",
        sentinel.port(),
        master.addr()
    );
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .arg("-v")
        .wait_port(port)
        .start();
    let mut seen = String::new();
    let mut client = RespClient::connect(port).expect("connect");
    let mut run = |client: &mut RespClient, args: &[&str]| {
        let reply = client.cmd_raw(args).expect("reply");
        seen.push_str(&String::from_utf8_lossy(&reply));
        seen.push('\n');
        reply
    };
    run(&mut client, &["AUTH", "app", "wrong-password"]);
    assert_eq!(run(&mut client, &["AUTH", CLIENT_PASSWORD]), b"+OK\r\n");
    run(&mut client, &["HELLO", "2", "AUTH", "app", USER_PASSWORD]);
    run(&mut client, &["SET", "k", "v"]);
    for auth in [
        vec!["AUTH", MIGRATE_PASSWORD],
        vec!["AUTH2", "someone", MIGRATE2_PASSWORD],
    ] {
        let target_port = target.port().to_string();
        let mut migrate = vec![
            "MIGRATE",
            "127.0.0.1",
            &target_port,
            "k",
            "0",
            "1000",
            "COPY",
        ];
        migrate.extend(auth);
        run(&mut client, &migrate);
    }
    run(&mut client, &["CONFIG", "SET", "masterauth", "another-one"]);
    for command in [
        &["CONFIG", "GET", "*"][..],
        &["CONFIG", "GET", "requirepass"],
        &["CONFIG", "GET", "*auth*"],
        &["SLOWLOG", "GET", "-1"],
        &["INFO", "everything"],
        &["CLIENT", "LIST"],
        &["ACL", "LIST"],
        &["ACL", "GETUSER", "app"],
        &["ACL", "GETUSER", "default"],
    ] {
        run(&mut client, command);
    }
    // CONFIG GET hides the server's passwords, and says so.
    let config = run(&mut client, &["CONFIG", "GET", "requirepass"]);
    assert_eq!(
        String::from_utf8_lossy(&config),
        "*2\r\n$11\r\nrequirepass\r\n$10\r\n(redacted)\r\n"
    );
    // The slow log has the MIGRATE calls, their passwords redacted.
    let slowlog =
        String::from_utf8_lossy(&run(&mut client, &["SLOWLOG", "GET", "-1"])).into_owned();
    assert!(
        slowlog.contains("MIGRATE") && slowlog.contains("(redacted)"),
        "{slowlog}"
    );
    // The admin API, every endpoint, and the Prometheus metrics.
    for path in [
        "/",
        "/metrics",
        "/stats",
        "/topology",
        "/events",
        "/api/overview",
        "/ready",
        "/health",
    ] {
        let (status, body) = proxy.admin_get(path).expect(path);
        assert!(status == 200 || path == "/ready", "{path}: {status}");
        seen.push_str(&body);
    }
    // A backend failure: its error goes to the client and the log.
    drop(master);
    assert_eventually!(
        within = Duration::from_secs(10),
        matches!(client.cmd(&["GET", "k"]), Ok(Reply::Error(_))),
        "the dead backend was never reported"
    );
    seen.push_str(&proxy.log());
    for secret in secrets {
        assert!(
            !seen.contains(secret),
            "secret {secret} leaked; context: ...{}...",
            seen.find(secret)
                .map(|at| &seen[at.saturating_sub(200)..(at + 50).min(seen.len())])
                .unwrap_or_default()
        );
    }
    // The checks above looked at real output.
    assert!(seen.contains("# Proxy") && seen.contains("shardgate_requests_total"));
}
