//! `redis-server` and `redis-sentinel` guards.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{wait_for_port, Child};
use crate::require_program;
use crate::resp::{Reply, RespClient};

/// Generous: a deadline, not a sleep. A machine busy with other builds
/// can take seconds to start a process; failing then is no finding.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Builds a [`RedisServer`].
#[derive(Default)]
pub struct RedisBuilder {
    port: Option<u16>,
    args: Vec<String>,
    password: Option<String>,
    tls: Option<Tls>,
}

/// TLS for a redis-server or redis-sentinel (PEM files; the certificate
/// is also the one it presents to its master as a replica, and to the
/// masters it watches as a Sentinel).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// `tls-auth-clients`: clients must present a certificate.
    pub auth_clients: bool,
    /// No plaintext port at all (`--port 0`).
    pub only: bool,
}

impl Tls {
    /// The server's TLS arguments, with `port` as its TLS port.
    fn args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            self.cert.display().to_string(),
            "--tls-key-file".into(),
            self.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca.display().to_string(),
            "--tls-replication".into(),
            "yes".into(),
        ];
        if !self.auth_clients {
            args.extend(["--tls-auth-clients".into(), "no".into()]);
        }
        args
    }

    /// `redis-cli --tls ...` arguments that reach a server with this TLS.
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca.display().to_string(),
            "--cert".into(),
            self.cert.display().to_string(),
            "--key".into(),
            self.key.display().to_string(),
        ]
    }
}

impl RedisBuilder {
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// An extra `--name value` argument for redis-server.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_string());
        self
    }
    /// With TLS on a port of its own (see [`RedisServer::tls_port`]).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Starts as a replica of `master` (over TLS when the master has it).
    pub fn replica_of(self, master: &RedisServer) -> Self {
        let port = master.tls_port().unwrap_or(master.port()).to_string();
        let mut builder = self;
        builder
            .args
            .extend(["--replicaof".into(), "127.0.0.1".into(), port]);
        builder
    }
    /// Starts as a replica of the server at `127.0.0.1:port` (for example a
    /// relay in front of the master rather than the master itself).
    pub fn replica_of_port(mut self, port: u16) -> Self {
        self.args
            .extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
        self
    }
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self.arg("requirepass", password)
    }
    pub fn start(self) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = self.port.unwrap_or_else(free_port);
        let tls = self.tls.map(|tls| (free_port(), tls));
        let mut server = RedisServer {
            port,
            args: self.args,
            password: self.password,
            tls,
            child: None,
            dir,
        };
        server.spawn();
        server
    }
}

/// A real `redis-server` on a free loopback port in a temp dir. Killed on drop.
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    password: Option<String>,
    /// The TLS port and settings.
    tls: Option<(u16, Tls)>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    /// A plain server with persistence off.
    pub fn start() -> RedisServer {
        RedisBuilder::default().start()
    }

    fn spawn(&mut self) {
        let program = require_program("redis-server", "redis-server");
        let mut command = Command::new(program);
        let plain_port = match &self.tls {
            Some((_, tls)) if tls.only => 0,
            _ => self.port,
        };
        command
            .arg("--port")
            .arg(plain_port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if let Some((port, tls)) = &self.tls {
            command.args(tls.args(*port));
        }
        command.args(&self.args);
        let log = self.dir.path().join("redis.log");
        let mut child = Child::spawn(&format!("redis-server:{}", self.port), command, &log);
        if let Some((port, tls)) = self.tls.clone().filter(|(_, tls)| tls.only) {
            wait_for_port(&mut child, port, READY_DEADLINE);
            self.child = Some(child);
            crate::assert_eventually!(
                within = READY_DEADLINE,
                self.tls_cli(&["PING"]).is_ok_and(|r| r == "PONG"),
                "redis-server on TLS port {port} never answered PING ({:?})",
                tls
            );
            return;
        }
        wait_for_port(&mut child, self.port, READY_DEADLINE);
        self.child = Some(child);
        crate::assert_eventually!(
            within = READY_DEADLINE,
            self.try_client()
                .and_then(|mut c| c.cmd(&["PING"]).ok())
                .is_some_and(|r| !r.is_error()
                    || r == Reply::Error("LOADING Redis is loading the dataset in memory".into())),
            "redis-server on {} never answered PING",
            self.port
        );
    }

    /// The plaintext port (unused when the server is TLS only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, when the server has TLS.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(port, _)| *port)
    }

    /// TLS with no plaintext port.
    pub fn tls_only(&self) -> bool {
        self.tls.as_ref().is_some_and(|(_, tls)| tls.only)
    }

    /// `127.0.0.1:TLS_PORT`.
    pub fn tls_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port().expect("a TLS server"))
    }

    /// `redis-cli --tls` to the TLS port (with the server's own
    /// certificate as the client's): its output, or why it failed.
    pub fn tls_cli(&self, args: &[&str]) -> Result<String, String> {
        let (port, tls) = self.tls.as_ref().ok_or("not a TLS server")?;
        let program = require_program("redis-cli", "redis-tools");
        let mut command = Command::new(program);
        command
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(tls.cli_args());
        if let Some(password) = &self.password {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        let out = command.args(args).output().map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !stdout.starts_with("Could not connect") {
            Ok(stdout)
        } else {
            Err(format!(
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.pid()).unwrap_or(0)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn try_client(&self) -> Option<RespClient> {
        let mut client = RespClient::connect(self.port).ok()?;
        if let Some(password) = &self.password {
            client.cmd(&["AUTH", password]).ok()?;
        }
        Some(client)
    }

    /// A connection straight to this server (authenticated if it has a password).
    ///
    /// # Panics
    /// When the server does not accept connections.
    pub fn client(&self) -> RespClient {
        self.try_client()
            .unwrap_or_else(|| panic!("cannot connect to redis-server on {}", self.port))
    }

    /// Runs one command directly on this server.
    pub fn cmd(&self, args: &[&str]) -> Reply {
        self.client()
            .cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} on {}: {e}", self.port))
    }

    /// SIGKILL, like a crash. The port stays reserved for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts again on the same port and dir after [`kill`](Self::kill).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts again like [`restart`](Self::restart), as a replica of
    /// `127.0.0.1:port`, or as a master with `None`: what a server whose
    /// config file Sentinel had rewritten would come back as.
    pub fn restart_replicating(&mut self, master_port: Option<u16>) {
        if let Some(at) = self.args.iter().position(|a| a == "--replicaof") {
            self.args.drain(at..(at + 3).min(self.args.len()));
        }
        if let Some(port) = master_port {
            self.args
                .extend(["--replicaof".into(), "127.0.0.1".into(), port.to_string()]);
        }
        self.restart();
    }

    /// SIGSTOP: the server hangs with its sockets open.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            child.signal("STOP");
        }
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            child.signal("CONT");
        }
    }

    pub fn log(&self) -> String {
        self.child.as_ref().map(|c| c.log()).unwrap_or_default()
    }

    /// Number of keys in db 0.
    pub fn dbsize(&self) -> i64 {
        match self.cmd(&["DBSIZE"]) {
            Reply::Integer(n) => n,
            other => panic!("DBSIZE on {}: {other:?}", self.port),
        }
    }

    /// A field of an INFO section (`INFO replication` -> `role`).
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info = if self.tls_only() {
            self.tls_cli(&["INFO", section]).ok()?
        } else {
            self.client().cmd(&["INFO", section]).ok()?.bulk_str()?
        };
        let prefix = format!("{field}:");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|v| v.trim().to_string())
    }

    /// `master` or `slave`, as INFO replication says (None if unreachable).
    pub fn role(&self) -> Option<String> {
        if !self.tls_only() {
            self.try_client()?;
        }
        self.info_field("replication", "role")
    }

    /// True when this replica's link to its master is up.
    pub fn linked(&self) -> bool {
        self.info_field("replication", "master_link_status")
            .as_deref()
            == Some("up")
    }

    /// Writes this node refused because it is a replica (`errorstat_READONLY`).
    pub fn readonly_errors(&self) -> u64 {
        self.info_field("errorstats", "errorstat_READONLY")
            .and_then(|v| v.strip_prefix("count=")?.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// `calls` of one command from INFO commandstats (0 if never called).
    pub fn command_calls(&self, command: &str) -> u64 {
        let info = self
            .cmd(&["INFO", "commandstats"])
            .bulk_str()
            .unwrap_or_default();
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// A real `redis-sentinel` watching the given masters. Killed on drop.
pub struct Sentinel {
    port: u16,
    child: Child,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
}

impl Sentinel {
    /// Starts a sentinel monitoring `masters` as `(name, port)` with the
    /// given quorum and `down-after-milliseconds`.
    pub fn start(masters: &[(&str, u16)], quorum: u32, down_after_ms: u64) -> Sentinel {
        Sentinel::start_with(masters, quorum, down_after_ms, "")
    }

    /// Like [`Sentinel::start`], with credentials: the Sentinel's own
    /// password (`requirepass`) and what it logs in to the masters with
    /// (`sentinel auth-user` / `auth-pass`).
    pub fn start_secured(
        masters: &[(&str, u16)],
        quorum: u32,
        down_after_ms: u64,
        password: &str,
        master_user: &str,
        master_password: &str,
    ) -> Sentinel {
        let mut extra = format!("requirepass \"{password}\"\n");
        for (name, _) in masters {
            extra.push_str(&format!(
                "sentinel auth-user {name} {master_user}\nsentinel auth-pass {name} {master_password}\n"
            ));
        }
        Sentinel::start_with(masters, quorum, down_after_ms, &extra)
    }

    /// Like [`Sentinel::start`], listening with TLS only (no plaintext
    /// port) and watching its masters over TLS (`tls-replication yes`):
    /// `masters` are their TLS ports.
    pub fn start_tls(
        masters: &[(&str, u16)],
        quorum: u32,
        down_after_ms: u64,
        tls: &Tls,
    ) -> Sentinel {
        let mut extra = format!(
            "tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-replication yes\n",
            tls.cert.display(),
            tls.key.display(),
            tls.ca.display()
        );
        if !tls.auth_clients {
            extra.push_str("tls-auth-clients no\n");
        }
        Sentinel::start_inner(masters, quorum, down_after_ms, &extra, Some(tls.clone()))
    }

    /// Like [`Sentinel::start`], with `extra` appended to its config file
    /// (later lines override earlier ones, e.g. `sentinel failover-timeout`).
    pub fn start_with(
        masters: &[(&str, u16)],
        quorum: u32,
        down_after_ms: u64,
        extra: &str,
    ) -> Sentinel {
        Sentinel::start_inner(masters, quorum, down_after_ms, extra, None)
    }

    fn start_inner(
        masters: &[(&str, u16)],
        quorum: u32,
        down_after_ms: u64,
        extra: &str,
        tls: Option<Tls>,
    ) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let listen = match &tls {
            Some(_) => format!("port 0\ntls-port {port}"),
            None => format!("port {port}"),
        };
        let mut conf = format!("{listen}\nbind 127.0.0.1\ndir {}\n", dir.path().display());
        for (name, master_port) in masters {
            conf.push_str(&format!(
                "sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                 sentinel down-after-milliseconds {name} {down_after_ms}\n\
                 sentinel failover-timeout {name} 10000\n\
                 sentinel parallel-syncs {name} 1\n"
            ));
        }
        conf.push_str(extra);
        let conf_path = dir.path().join("sentinel.conf");
        std::fs::write(&conf_path, conf).expect("write sentinel.conf");
        let child = Sentinel::spawn(port, dir.path());
        Sentinel {
            port,
            child,
            tls,
            dir,
        }
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let program = require_program("redis-sentinel", "redis-sentinel");
        let mut command = Command::new(program);
        command.arg(dir.join("sentinel.conf"));
        let mut child = Child::spawn(
            &format!("redis-sentinel:{port}"),
            command,
            &dir.join("sentinel.log"),
        );
        wait_for_port(&mut child, port, READY_DEADLINE);
        child
    }

    /// Starts again on the same port after [`kill`](Self::kill), from the
    /// config file the Sentinel has been rewriting (its known replicas,
    /// peers, epochs and current masters), as a restarted Sentinel would.
    pub fn restart(&mut self) {
        self.child.kill();
        self.child = Sentinel::spawn(self.port, self.dir.path());
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// `redis-cli --tls` to a TLS Sentinel: its output, or why it failed.
    pub fn tls_cli(&self, args: &[&str]) -> Result<String, String> {
        let tls = self.tls.as_ref().ok_or("not a TLS Sentinel")?;
        let out = Command::new(require_program("redis-cli", "redis-tools"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(tls.cli_args())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !stdout.starts_with("Could not connect") {
            Ok(stdout)
        } else {
            Err(format!(
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect to sentinel")
    }

    pub fn kill(&mut self) {
        self.child.kill();
    }

    pub fn log(&self) -> String {
        self.child.log()
    }
}
