//! A child process that dies with its guard, and a readiness poll.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running child process, killed (SIGKILL) and reaped on drop.
pub struct Child {
    name: String,
    inner: Option<std::process::Child>,
    log: PathBuf,
}

impl Child {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let err = out.try_clone().expect("clone log handle");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let inner = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Child {
            name: name.to_string(),
            inner: Some(inner),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.inner.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.inner.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL and reap. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.inner.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, ...).
    pub fn signal(&self, signal: &str) {
        if self.inner.is_some() {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{signal} {} failed", self.pid());
        }
    }

    /// Waits for the process to exit by itself, up to `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Some(child) = self.inner.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.inner = None;
                    return Some(status);
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The process's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls until a TCP connection to `port` on loopback succeeds, or panics
/// with the child's log after `deadline`.
pub fn wait_for_port(child: &mut Child, port: u16, deadline: Duration) {
    let start = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if !child.is_running() {
            panic!(
                "{} exited before listening on {port}; log:\n{}",
                child.name(),
                child.log()
            );
        }
        if start.elapsed() > deadline {
            panic!(
                "{} did not listen on {port} within {deadline:?}; log:\n{}",
                child.name(),
                child.log()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
