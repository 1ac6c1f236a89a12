//! The admin server's own protection: a bearer token for what changes
//! the proxy (and for everything beyond loopback), and HTTPS. Driven with
//! curl and with `shardgate reload`, against the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::path::Path;
use std::process::Command;

use common::BIN;
use test_support::pki::Pki;
use test_support::ports::free_port;
use test_support::tls::s_client_serial;
use test_support::{assert_eventually, RedisServer, Shardgate};

fn config(redis: &RedisServer, port: u16) -> String {
    format!(
        "p:\n  listen: 127.0.0.1:{port}\n  servers:\n    - {}:1\n",
        redis.addr()
    )
}

/// `curl` with `args`: (HTTP status, body). Status 0: no HTTP answer.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new(test_support::require_program("curl", "curl"))
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `shardgate reload` with `args`: (exit code, stdout + stderr).
fn cli_reload(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("reload").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn token_file(dir: &Path, token: &str) -> String {
    let path = dir.join("admin.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path.display().to_string()
}

#[test]
fn a_token_guards_what_changes_the_proxy_and_shardgate_reload_sends_it() {
    let redis = RedisServer::start();
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "s3cret-token");
    let admin_addr = format!("127.0.0.1:{admin}");
    let _proxy = Shardgate::builder(BIN, &config(&redis, port))
        .args(["--admin", &admin_addr, "--admin-token-file", &token])
        .wait_port(port)
        .wait_port(admin)
        .start();
    let url = |path: &str| format!("http://{admin_addr}{path}");
    // Reading on loopback needs no token.
    assert_eq!(curl(&[&url("/metrics")]).0, 200);
    // Changing does.
    let (status, body) = curl(&["-X", "POST", &url("/reload")]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("needs the admin token"), "{body}");
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer wrong",
            &url("/reload")
        ])
        .0,
        401
    );
    assert_eq!(
        curl(&[
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer s3cret-token",
            &url("/reload")
        ])
        .0,
        200
    );
    assert_eq!(curl(&["-X", "POST", &url("/upgrade")]).0, 401);
    assert_eq!(curl(&["-X", "POST", &url("/reshard/start")]).0, 401);
    let (code, out) = cli_reload(&["--admin", &admin_addr, "--admin-token-file", &token]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reload applied"), "{out}");
    let (code, out) = cli_reload(&["--admin", &admin_addr]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("401"), "{out}");
}

#[test]
fn beyond_loopback_everything_but_health_needs_the_token_and_without_one_nothing_changes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "wide-open-no-more");

    let (port, admin) = (free_port(), free_port());
    let proxy = Shardgate::builder(BIN, &config(&redis, port))
        .args([
            "--admin",
            &format!("0.0.0.0:{admin}"),
            "--admin-token-file",
            &token,
        ])
        .wait_port(port)
        .wait_port(admin)
        .start();
    let url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    for path in ["/metrics", "/topology", "/", "/config"] {
        assert_eq!(curl(&[&url(path)]).0, 401, "{path}");
    }
    assert_eq!(curl(&[&url("/health")]).0, 200);
    assert_eq!(curl(&[&url("/ready")]).0, 200);
    let (status, metrics) = curl(&[
        "-H",
        "Authorization: Bearer wide-open-no-more",
        &url("/metrics"),
    ]);
    assert_eq!(status, 200);
    assert!(metrics.contains("shardgate_uptime_seconds"));
    drop(proxy);

    let (port, admin) = (free_port(), free_port());
    let proxy = Shardgate::builder(BIN, &config(&redis, port))
        .args(["--admin", &format!("0.0.0.0:{admin}")])
        .wait_port(port)
        .wait_port(admin)
        .start();
    let url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    let (status, body) = curl(&["-X", "POST", &url("/reload")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("without --admin-token-file"), "{body}");
    assert_eq!(curl(&[&url("/metrics")]).0, 200);
    assert_eventually!(
        proxy
            .log()
            .contains("listens beyond loopback without --admin-token-file"),
        "no warning at start:\n{}",
        proxy.log()
    );
}

#[test]
fn the_admin_server_speaks_https_with_a_certificate_reloaded_like_the_others() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.server(&ca, "admin");
    let redis = RedisServer::start();
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "t0ken");
    let admin_addr = format!("127.0.0.1:{admin}");
    let proxy = Shardgate::builder(BIN, &config(&redis, port))
        .args([
            "--admin",
            &admin_addr,
            "--admin-token-file",
            &token,
            "--admin-tls-cert",
            &cert.cert.display().to_string(),
            "--admin-tls-key",
            &cert.key.display().to_string(),
        ])
        .wait_port(port)
        .wait_port(admin)
        .start();
    let cacert = ca.cert.display().to_string();
    let (status, body) = curl(&["--cacert", &cacert, &format!("https://{admin_addr}/health")]);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(
        curl(&[&format!("http://{admin_addr}/health")]).0,
        0,
        "plain HTTP answered on the HTTPS admin port"
    );
    let (_, metrics) = curl(&[
        "--cacert",
        &cacert,
        &format!("https://{admin_addr}/metrics"),
    ]);
    let expiry = |metrics: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("shardgate_tls_certificate_expiry_timestamp_seconds{use=\"admin\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
    };
    assert_eq!(expiry(&metrics), Some(cert.not_after()));
    assert_eq!(s_client_serial(admin, &ca.cert, None), Some(cert.serial()));

    // Renewed and reloaded through `shardgate reload` over HTTPS.
    let renewed = pki.issue(
        &ca,
        "admin",
        "admin",
        test_support::pki::Usage::Server,
        test_support::pki::Validity::Days(500),
    );
    let (code, out) = cli_reload(&[
        "--admin",
        &admin_addr,
        "--admin-token-file",
        &token,
        "--admin-ca",
        &cacert,
    ]);
    assert_eq!(code, 0, "{out}\n{}", proxy.log());
    assert!(
        out.contains("admin server: tls: certificate (re)loaded"),
        "{out}"
    );
    assert_eq!(
        s_client_serial(admin, &ca.cert, None),
        Some(renewed.serial())
    );
    let (_, metrics) = curl(&[
        "--cacert",
        &cacert,
        &format!("https://{admin_addr}/metrics"),
    ]);
    assert_eq!(expiry(&metrics), Some(renewed.not_after()));
}
