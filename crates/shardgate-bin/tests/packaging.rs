//! The packages: the default config (contrib/shardgate.yml), the systemd
//! unit (contrib/systemd/shardgate.service) and the Debian package that
//! cargo-deb builds from crates/shardgate-bin/Cargo.toml's
//! `[package.metadata.deb]`.
//!
//! The .deb is inspected with dpkg-deb and unpacked with `dpkg-deb -x` into
//! a temp dir, not installed on this machine; its maintainer scripts run in
//! a private mount namespace over copies of /etc, the unit directory and
//! /var/lib/systemd, so the user they create and the unit they enable never
//! touch the real system.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::ports::free_port;
use test_support::{require_program, RedisServer, RespClient, Shardgate};

/// cargo-deb is pinned: the test packages the dev build, which cargo-deb
/// 3.8 still accepts (with a warning) and later versions may not.
const CARGO_DEB: &str = "cargo install --locked cargo-deb --version 3.8.0";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_default_config_passes_dash_t_and_serves_through_a_real_redis() {
    let output = run(Command::new(common::BIN)
        .args(["-t", "-c"])
        .arg(repo("contrib/shardgate.yml")));
    assert!(
        stdout(&output).contains("syntax is ok (1 pool)"),
        "{output:?}"
    );

    // The same file, only with this test's ports, in front of a real
    // redis-server.
    let server = RedisServer::start();
    let port = free_port();
    let text = std::fs::read_to_string(repo("contrib/shardgate.yml")).unwrap();
    assert!(text.contains("listen: 127.0.0.1:22121") && text.contains("- 127.0.0.1:6379:1"));
    let yaml = text
        .replace("127.0.0.1:22121", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:6379:1", &format!("{}:1", server.addr()));
    let _proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .start();
    let mut client = RespClient::connect(port).expect("connect");
    assert_eq!(
        client.cmd(&["SET", "{user}1", "alice"]).unwrap(),
        common::ok()
    );
    assert_eq!(
        client.cmd(&["GET", "{user}1"]).unwrap(),
        common::bulk("alice")
    );
    assert_eq!(server.dbsize(), 1);
}

/// Builds the .deb from the dev build the tests already have.
fn build_deb(out: &Path) -> PathBuf {
    if sandbox::find_program("cargo-deb").is_none() {
        panic!("cargo-deb is not installed; install it with: {CARGO_DEB} (or run `make test`, which does)");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = run(Command::new(cargo)
        .args([
            "deb",
            "-p",
            "shardgate-bin",
            "--no-build",
            "--profile",
            "dev",
        ])
        .arg("--output")
        .arg(out)
        .current_dir(repo("")));
    let deb = PathBuf::from(stdout(&output).trim().lines().last().unwrap_or(""));
    assert!(deb.is_file(), "cargo deb wrote no .deb: {output:?}");
    deb
}

#[test]
fn the_deb_carries_the_binary_config_unit_and_a_user_for_the_service() {
    let dpkg_deb = require_program("dpkg-deb", "dpkg");
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());

    // Control data: name, dependencies, the conffile, maintainer scripts.
    let info = stdout(&run(Command::new(&dpkg_deb).arg("-I").arg(&deb)));
    for line in [
        "Package: shardgate",
        "Section: net",
        "Depends: libc6",
        "passwd",
        " postinst ",
        " prerm ",
        " postrm ",
    ] {
        assert!(
            info.contains(line),
            "`{line}` missing in dpkg-deb -I:\n{info}"
        );
    }
    let conffiles = stdout(&run(Command::new(&dpkg_deb)
        .arg("-I")
        .arg(&deb)
        .arg("conffiles")));
    assert_eq!(conffiles.trim(), "/etc/shardgate/shardgate.yml");

    // Contents, with modes.
    let contents = stdout(&run(Command::new(&dpkg_deb).arg("-c").arg(&deb)));
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/shardgate"),
        ("-rw-r-----", "./etc/shardgate/shardgate.yml"),
        ("-rw-r--r--", "./usr/lib/systemd/system/shardgate.service"),
        ("-rw-r--r--", "./usr/share/doc/shardgate/README.md"),
        ("-rw-r--r--", "./usr/share/doc/shardgate/operations.md"),
        (
            "-rw-r--r--",
            "./usr/share/doc/shardgate/contrib/prometheus/alerts.yml",
        ),
        (
            "-rw-r--r--",
            "./usr/share/doc/shardgate/contrib/grafana/shardgate.json",
        ),
    ] {
        assert!(
            contents
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path)),
            "{mode} {path} missing in dpkg-deb -c:\n{contents}"
        );
    }

    // Unpacked: the files are the repository's, and the packaged binary
    // accepts the packaged config.
    let root = dir.path().join("root");
    run(Command::new(&dpkg_deb).arg("-x").arg(&deb).arg(&root));
    for (packaged, source) in [
        ("etc/shardgate/shardgate.yml", "contrib/shardgate.yml"),
        (
            "usr/lib/systemd/system/shardgate.service",
            "contrib/systemd/shardgate.service",
        ),
    ] {
        assert_eq!(
            std::fs::read(root.join(packaged)).unwrap(),
            std::fs::read(repo(source)).unwrap(),
            "{packaged} differs from {source}"
        );
    }
    let check = run(Command::new(root.join("usr/bin/shardgate"))
        .args(["-t", "-c"])
        .arg(root.join("etc/shardgate/shardgate.yml")));
    assert!(stdout(&check).contains("syntax is ok"), "{check:?}");
    // Shipped stripped: no symbol table and no debug sections (the release
    // build keeps debug info for profiling; the package must not).
    let readelf = require_program("readelf", "binutils");
    let sections = stdout(&run(Command::new(readelf)
        .args(["-S", "-W"])
        .arg(root.join("usr/bin/shardgate"))));
    assert!(
        sections.contains(".text")
            && !sections.contains(".symtab")
            && !sections.contains(".debug_info"),
        "the packaged binary is not stripped:\n{sections}"
    );

    verify_unit(&root);
    maintainer_scripts(&dpkg_deb, &deb, dir.path());
}

/// `systemd-analyze verify` and `security` on the unit as packaged, inside
/// a root with the unpacked package, the host's units (for the targets it
/// names) and the `kill` its ExecReload runs.
fn verify_unit(root: &Path) {
    let analyze = require_program("systemd-analyze", "systemd");
    run(Command::new("cp")
        .args(["-an", "/usr/lib/systemd/system/."])
        .arg(root.join("usr/lib/systemd/system/")));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(
        sandbox::find_program("kill").expect("kill"),
        root.join("bin/kill"),
    )
    .unwrap();
    let unit = "/usr/lib/systemd/system/shardgate.service";
    let verify = run(Command::new(&analyze)
        .arg(format!("--root={}", root.display()))
        .args(["verify", unit]));
    // Unknown keys and unparsable values are only warnings: none allowed.
    let said = format!(
        "{}{}",
        stdout(&verify),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
    // The hardening holds: exposure at most 2.0 ("OK") of 10.
    let security = run(Command::new(&analyze)
        .arg(format!("--root={}", root.display()))
        .args(["security", "--offline=true", "--threshold=20", unit]));
    assert!(
        stdout(&security).contains("Overall exposure level for shardgate.service"),
        "{security:?}"
    );
}

/// postinst configure, prerm remove, postrm remove and purge, run as dpkg
/// would, in a private mount namespace over copies of /etc,
/// /usr/lib/systemd/system and /var/lib/systemd.
fn maintainer_scripts(dpkg_deb: &Path, deb: &Path, dir: &Path) {
    let unshare = require_program("unshare", "util-linux");
    let control = dir.join("control");
    run(Command::new(dpkg_deb).arg("-e").arg(deb).arg(&control));
    let (etc, units, state) = (dir.join("etc"), dir.join("units"), dir.join("state"));
    run(Command::new("cp").args(["-a", "/etc"]).arg(&etc));
    run(Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&units));
    std::fs::create_dir_all(&state).unwrap();
    // What dpkg unpacks before configure.
    std::fs::create_dir_all(etc.join("shardgate")).unwrap();
    std::fs::copy(
        repo("contrib/shardgate.yml"),
        etc.join("shardgate/shardgate.yml"),
    )
    .unwrap();
    std::fs::copy(
        repo("contrib/systemd/shardgate.service"),
        units.join("shardgate.service"),
    )
    .unwrap();
    assert!(
        !std::fs::read_to_string(etc.join("passwd"))
            .unwrap()
            .contains("\nshardgate:"),
        "this machine already has a shardgate user"
    );

    let script = r#"
        set -eu
        mount --bind "$ETC" /etc
        mount --bind "$UNITS" /usr/lib/systemd/system
        mount --bind "$STATE" /var/lib/systemd
        # What dpkg tells maintainer scripts (deb-systemd-helper wants it).
        export DPKG_MAINTSCRIPT_PACKAGE=shardgate DPKG_MAINTSCRIPT_ARCH=amd64
        maint() { DPKG_MAINTSCRIPT_NAME="$1" sh "$CONTROL/$@"; }
        maint postinst configure
        echo "user: $(getent passwd shardgate)"
        echo "config: $(stat -c '%U:%G %a' /etc/shardgate/shardgate.yml)"
        echo "enabled: $(readlink /etc/systemd/system/multi-user.target.wants/shardgate.service)"
        maint postinst configure 0.1.0-1
        echo "users after a second configure: $(grep -c '^shardgate:' /etc/passwd)"
        maint prerm remove
        maint postrm remove
        maint postrm purge
        if [ -e /etc/systemd/system/multi-user.target.wants/shardgate.service ]; then
            echo "still enabled after purge"
        fi
    "#;
    let output = run(Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("ETC", &etc)
        .env("UNITS", &units)
        .env("STATE", &state)
        .env("CONTROL", &control));
    let said = stdout(&output);
    let user = said
        .lines()
        .find_map(|l| l.strip_prefix("user: "))
        .unwrap_or("");
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields.first(), Some(&"shardgate"), "{said}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "not a system user: {user}");
    assert_eq!(fields[5], "/nonexistent", "{user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    assert!(said.contains("config: root:shardgate 640"), "{said}");
    assert!(
        said.contains("enabled: /lib/systemd/system/shardgate.service")
            || said.contains("enabled: /usr/lib/systemd/system/shardgate.service"),
        "postinst did not enable the unit:\n{said}"
    );
    assert!(said.contains("users after a second configure: 1"), "{said}");
    assert!(!said.contains("still enabled"), "{said}");
    // Nothing reached the real system.
    assert!(!std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("\nshardgate:"));
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/shardgate.service").exists());
}
