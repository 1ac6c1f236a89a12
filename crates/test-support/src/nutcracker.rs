//! Debian's `nutcracker` (twemproxy 0.5.0), the reference for placement
//! and the peer in benchmarks.

use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{wait_for_port, Child};
use crate::require_program;

/// A running nutcracker with one config file. Killed on drop.
pub struct Nutcracker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nutcracker {
    /// Starts nutcracker with `yaml` and waits until every port in
    /// `listen_ports` accepts connections.
    pub fn start(yaml: &str, listen_ports: &[u16]) -> Nutcracker {
        let program = require_program("nutcracker", "nutcracker");
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("nutcracker.yml");
        std::fs::write(&conf, yaml).expect("write nutcracker.yml");
        let stats_port = free_port();
        let mut command = Command::new(program);
        command
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-s"])
            .arg(stats_port.to_string())
            .arg("-o")
            .arg(dir.path().join("nutcracker.log"));
        let mut child = Child::spawn("nutcracker", command, &dir.path().join("stderr.log"));
        for &port in listen_ports {
            wait_for_port(&mut child, port, Duration::from_secs(10));
        }
        Nutcracker { child, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}
