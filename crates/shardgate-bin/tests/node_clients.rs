//! Node.js clients from npm, ioredis and node-redis, driven through the
//! proxy by scripts in tests/node (pinned in its package-lock.json and
//! installed under target/ with `npm install --prefix` on the first run):
//! pipelines, MULTI/EXEC with WATCH, Pub/Sub with patterns across shards,
//! a blocking pop woken by another connection, EVAL/EVALSHA and the
//! clients' own script helpers, RESP3 and RESP2, and a client that lives
//! through a restart of the redis-server behind a one-shard pool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use test_support::ports::free_port;
use test_support::{require_program, RedisServer, Shardgate};

/// A suite's whole run, both protocols and the restart included.
const SUITE_DEADLINE: Duration = Duration::from_secs(90);

fn tests_node() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// Installs the pinned packages once per test binary; returns the
/// `node_modules` directory.
fn node_modules() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let npm = require_program("npm", "npm");
        let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-clients");
        std::fs::create_dir_all(&prefix).expect("create the npm prefix");
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(tests_node().join(file), prefix.join(file))
                .unwrap_or_else(|e| panic!("copy tests/node/{file}: {e}"));
        }
        let output = Command::new(npm)
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .output()
            .expect("run npm");
        assert!(
            output.status.success(),
            "npm install --prefix {} failed (is the npm registry reachable?):\n{}{}",
            prefix.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        prefix.join("node_modules")
    })
}

/// Runs `tests/node/<script>` against a 3-shard pool and a one-shard pool,
/// answering its `control:` requests (kill and restart the one-shard
/// pool's redis-server); returns its stdout.
fn run_suite(script: &str) -> String {
    let node = require_program("node", "nodejs");
    let modules = node_modules();
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let mut single = RedisServer::start();
    let (port, single_port) = (free_port(), free_port());
    let mut yaml = format!(
        "data:\n  listen: 127.0.0.1:{port}\n  hash: murmur\n  hash_tag: \"{{}}\"\n  servers:\n"
    );
    for (i, server) in servers.iter().enumerate() {
        yaml.push_str(&format!("    - {}:1 shard{i}\n", server.addr()));
    }
    // Two failed probes of up to 500 ms mark the server down: with one
    // probe of 100 ms, a probe slowed by a loaded machine published the
    // server as down right after it was back, and a command the suite
    // expects to pass got "master is down" (what `fall: 1` asks for).
    yaml.push_str(&format!(
        "one:\n  listen: 127.0.0.1:{single_port}\n  health_check: {{interval: 100, timeout: 500, rise: 1, fall: 2}}\n  servers:\n    - {}:1\n",
        single.addr()
    ));
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .wait_port(single_port)
        .start();

    let stderr_path = proxy.dir().join(format!("{script}.stderr"));
    let mut child = Command::new(node)
        .arg(tests_node().join(script))
        .arg(port.to_string())
        .arg(single_port.to_string())
        .env("NODE_PATH", modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut out = String::new();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    loop {
        let left = SUITE_DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => {
                match line.as_str() {
                    "control: kill-backend" => single.kill(),
                    "control: start-backend" => single.restart(),
                    _ => {}
                }
                if line.starts_with("control: ") {
                    writeln!(stdin, "done").expect("answer the suite");
                }
                out.push_str(&line);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "{script} did not finish within {SUITE_DEADLINE:?}:\n{out}\n{}\nproxy log:\n{}",
                    stderr(),
                    proxy.log()
                );
            }
        }
    }
    let status = child.wait().expect("wait for node");
    let stderr = stderr();
    assert!(
        !stderr.contains("Cannot find module"),
        "the suite cannot load its packages from {}:\n{stderr}",
        modules.display()
    );
    assert!(
        status.success(),
        "{script} failed ({status}):\n{out}\n{stderr}"
    );
    eprintln!("{out}");
    out
}

#[test]
fn ioredis_behaves_as_against_a_single_redis() {
    let out = run_suite("ioredis_suite.js");
    assert!(out.contains("all ioredis checks passed"), "{out}");
    for check in [
        "ok: RESP3 protocol negotiated through the proxy",
        "ok: RESP2 protocol negotiated through the proxy",
        "ok: RESP3 blpop woken by the push",
        "ok: RESP3 map reply as an object",
        "ok: restart: commands succeed again",
    ] {
        assert!(out.contains(check), "missing `{check}`:\n{out}");
    }
}

#[test]
fn node_redis_behaves_as_against_a_single_redis() {
    let out = run_suite("node_redis_suite.js");
    assert!(out.contains("all node-redis checks passed"), "{out}");
    for check in [
        "ok: RESP3 protocol negotiated through the proxy",
        "ok: RESP2 protocol negotiated through the proxy",
        "ok: RESP3 blpop woken by the push",
        "ok: RESP3 map reply as an object",
        "ok: restart: commands succeed again",
    ] {
        assert!(out.contains(check), "missing `{check}`:\n{out}");
    }
}
