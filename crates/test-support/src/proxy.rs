//! The shardgate binary under test, started from a YAML config.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{wait_for_port, Child};

/// Builds a [`Shardgate`].
pub struct ShardgateBuilder {
    binary: PathBuf,
    yaml: String,
    args: Vec<String>,
    wait_ports: Vec<u16>,
    nofile: Option<u64>,
}

impl ShardgateBuilder {
    /// Runs the proxy with this file descriptor limit (soft and hard), under
    /// util-linux's `prlimit`.
    pub fn nofile_limit(mut self, limit: u64) -> Self {
        self.nofile = Some(limit);
        self
    }
    /// An extra command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    /// Extra command-line arguments.
    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args.extend(args.into_iter().map(String::from));
        self
    }
    /// A port to wait for before `start` returns (a pool's listen port).
    pub fn wait_port(mut self, port: u16) -> Self {
        self.wait_ports.push(port);
        self
    }
    pub fn start(self) -> Shardgate {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("shardgate.yml");
        std::fs::write(&conf, &self.yaml).expect("write shardgate.yml");
        let mut command = match self.nofile {
            Some(limit) => {
                let mut command = Command::new(crate::require_program("prlimit", "util-linux"));
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg("--")
                    .arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command.arg("-c").arg(&conf).args(&self.args);
        // Every proxy gets its own admin port unless the test chose one.
        let admin_port = if self.args.iter().any(|a| a == "--admin") {
            None
        } else {
            let port = crate::ports::free_port();
            command.arg("--admin").arg(format!("127.0.0.1:{port}"));
            Some(port)
        };
        let mut child = Child::spawn("shardgate", command, &dir.path().join("shardgate.log"));
        for &port in &self.wait_ports {
            wait_for_port(&mut child, port, Duration::from_secs(20));
        }
        if let Some(port) = admin_port {
            wait_for_port(&mut child, port, Duration::from_secs(20));
        }
        Shardgate {
            child,
            dir,
            admin_port,
        }
    }
}

/// A running shardgate process. Killed on drop.
pub struct Shardgate {
    child: Child,
    dir: tempfile::TempDir,
    admin_port: Option<u16>,
}

impl Shardgate {
    /// `binary` is usually `env!("CARGO_BIN_EXE_shardgate")`.
    pub fn builder(binary: impl AsRef<Path>, yaml: &str) -> ShardgateBuilder {
        ShardgateBuilder {
            binary: binary.as_ref().to_path_buf(),
            yaml: yaml.to_string(),
            args: Vec::new(),
            wait_ports: Vec::new(),
            nofile: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The admin server's port (when the harness chose it).
    pub fn admin_port(&self) -> Option<u16> {
        self.admin_port
    }

    /// GET `path` from the admin server: (status code, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let port = self
            .admin_port
            .ok_or_else(|| std::io::Error::other("no admin port"))?;
        crate::http::get(port, path)
    }

    /// Sends `method path` to the admin server: (status code, body).
    pub fn admin_request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let port = self
            .admin_port
            .ok_or_else(|| std::io::Error::other("no admin port"))?;
        crate::http::request(port, method, path, None)
    }

    /// The configuration file the proxy was started with.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("shardgate.yml")
    }

    /// Replaces the configuration file (a reload then reads it).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.config_path(), yaml).expect("write shardgate.yml");
    }

    /// `POST /reload`: (status code, body).
    pub fn reload(&self) -> (u16, String) {
        self.admin_request("POST", "/reload").expect("POST /reload")
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, signal: &str) {
        self.child.signal(signal);
    }
}
