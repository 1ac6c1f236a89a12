//! The container image (contrib/container/Containerfile): built by
//! scripts/build-container.sh with Debian's podman from `scratch` (no
//! registry), a static musl binary run as nobody, in front of a real
//! redis-server; and the compose demo's configuration.
//!
//! podman runs containers here with runc, not its default crun (which
//! refuses this machine's hybrid cgroups), and with explicit ulimits no
//! higher than this process's (raising them needs CAP_SYS_RESOURCE).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use test_support::ports::free_port;
use test_support::{assert_eventually, require_program, RedisServer, RespClient};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn run(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An image tag, removed on drop.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

/// A container by name, removed (killed) on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

/// podman's run options that work on this machine (see the crate doc).
fn run_options() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let hard = |name: &str| -> u64 {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().rev().nth(1)?.parse().ok())
            .unwrap_or(4096)
    };
    let nofile = hard("Max open files").min(4096);
    let nproc = hard("Max processes").min(4096);
    vec![
        "--runtime".into(),
        "runc".into(),
        "--ulimit".into(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".into(),
        format!("nproc={nproc}:{nproc}"),
    ]
}

#[test]
fn the_image_builds_from_scratch_and_proxies_to_a_real_redis() {
    require_program("podman", "podman");
    require_program("runc", "runc");
    require_program("musl-gcc", "musl-tools");
    // Its own target dir: this cargo build must not wait for the one
    // running this test.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("container");
    let image = Image(format!("localhost/shardgate-test:{}", std::process::id()));
    let built = run(Command::new("bash")
        .arg(repo("scripts/build-container.sh"))
        .arg(&image.0)
        .env("PROFILE", "dev")
        .env("CARGO_TARGET_DIR", &target));
    assert!(built.ends_with(&format!("built {}", image.0)), "{built}");

    let config = run(Command::new("podman").args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}} {{len .RootFS.Layers}}",
        &image.0,
    ]));
    assert_eq!(
        config, "65534:65534 [\"/usr/bin/shardgate\"] 2",
        "user, entrypoint, layers (binary and config only)"
    );
    // Nothing but shardgate: there is no shell to run.
    let shell = output(
        Command::new("podman")
            .arg("run")
            .arg("--rm")
            .args(run_options())
            .args(["--entrypoint", "/bin/sh", &image.0, "-c", "true"]),
    );
    assert!(!shell.status.success(), "a shell ran in the image");

    // The proxy in the container, on the host's loopback, in front of a
    // real redis-server, with a config mounted over the default one.
    let server = RedisServer::start();
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("shardgate.yml");
    std::fs::write(
        &conf,
        format!(
            "main:\n  listen: 127.0.0.1:{port}\n  servers:\n    - {}:1\n",
            server.addr()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let container = Container(format!("shardgate-test-{}-{port}", std::process::id()));
    run(Command::new("podman")
        .args(["run", "-d", "--name", &container.0, "--network", "host"])
        .args(run_options())
        .arg("-v")
        .arg(format!(
            "{}:/etc/shardgate/shardgate.yml:ro",
            conf.display()
        ))
        .arg(&image.0)
        .args(["-c", "/etc/shardgate/shardgate.yml", "--admin"])
        .arg(format!("127.0.0.1:{admin}")));
    let logs = || run(Command::new("podman").args(["logs", &container.0]));
    assert_eventually!(
        within = Duration::from_secs(20),
        RespClient::connect(port).is_ok(),
        "the containerized proxy never listened; logs:\n{}",
        logs()
    );
    let mut client = RespClient::connect(port).unwrap();
    assert_eq!(client.cmd(&["SET", "boxed", "yes"]).unwrap(), common::ok());
    assert_eq!(client.cmd(&["GET", "boxed"]).unwrap(), common::bulk("yes"));
    assert_eq!(server.dbsize(), 1);
    let (status, metrics) = test_support::http::get(admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("shardgate_requests_total{pool=\"main\",command=\"set\"} 1"),
        "{metrics}"
    );
    // It runs as nobody.
    let pid =
        run(Command::new("podman").args(["inspect", "--format", "{{.State.Pid}}", &container.0]));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65534"),
        "{uid}"
    );
    // SIGTERM (podman stop) drains and exits 0.
    drop(client);
    run(Command::new("podman").args(["stop", "-t", "10", &container.0]));
    let exit = run(Command::new("podman").args([
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &container.0,
    ]));
    assert_eq!(exit, "0", "logs:\n{}", logs());
}

/// Host names in a shardgate config's `servers`, `sentinels` and
/// `replicas` (`host:port[:weight] [name]`).
fn hostnames(config: &str) -> BTreeSet<String> {
    let pools: serde_json::Value = yaml_serde::from_str(config).expect("config is YAML");
    let mut addresses = Vec::new();
    for pool in pools.as_object().expect("pools").values() {
        for list in [&pool["servers"], &pool["sentinels"]] {
            addresses.extend(list.as_array().into_iter().flatten().cloned());
        }
        for replicas in pool["replicas"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            addresses.extend(replicas.as_array().into_iter().flatten().cloned());
        }
    }
    addresses
        .iter()
        .map(|a| {
            a.as_str()
                .expect("an address")
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn the_compose_demo_names_only_its_services_and_its_config_passes_dash_t() {
    let unshare = require_program("unshare", "util-linux");
    let compose: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string(repo("contrib/container/compose.yml")).unwrap(),
    )
    .expect("compose.yml is YAML");
    let services: BTreeSet<String> = compose["services"]
        .as_object()
        .expect("services")
        .keys()
        .cloned()
        .collect();
    let shardgate = &compose["services"]["shardgate"];
    assert_eq!(
        shardgate["image"], "localhost/shardgate:latest",
        "the tag make container builds"
    );
    assert_eq!(
        shardgate["volumes"][0],
        "./demo.yml:/etc/shardgate/demo.yml:ro,z"
    );
    for service in services.iter().filter(|s| *s != "shardgate") {
        assert_eq!(
            compose["services"][service]["image"], "docker.io/library/redis:7.2",
            "{service}"
        );
    }

    let demo = std::fs::read_to_string(repo("contrib/container/demo.yml")).unwrap();
    let names = hostnames(&demo);
    assert_eq!(
        names.len(),
        9,
        "three masters, three replicas, three Sentinels: {names:?}"
    );
    let strangers: Vec<_> = names.difference(&services).collect();
    assert!(
        strangers.is_empty(),
        "demo.yml names hosts compose does not run: {strangers:?}"
    );
    let default = std::fs::read_to_string(repo("contrib/container/shardgate.yml")).unwrap();
    assert_eq!(hostnames(&default), BTreeSet::from(["redis".to_string()]));

    // `shardgate -t` resolves host names: give the services loopback
    // addresses in a private /etc/hosts, as compose's DNS would.
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let mut table = String::from("127.0.0.1 localhost\n");
    for (i, name) in services
        .iter()
        .chain(["redis".to_string()].iter())
        .enumerate()
    {
        table.push_str(&format!("127.0.1.{} {name}\n", i + 1));
    }
    std::fs::write(&hosts, table).unwrap();
    let script =
        r#"mount --bind "$HOSTS" /etc/hosts && "$BIN" -t -c "$DEMO" && "$BIN" -t -c "$DEFAULT""#;
    let checked = run(Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("HOSTS", &hosts)
        .env("BIN", common::BIN)
        .env("DEMO", repo("contrib/container/demo.yml"))
        .env("DEFAULT", repo("contrib/container/shardgate.yml")));
    assert_eq!(
        checked.matches("syntax is ok (1 pool)").count(),
        2,
        "{checked}"
    );
}
