//! Debian's `prometheus` server, scraping given targets every second, for
//! tests of the metrics, the alert rules and the Grafana dashboard against
//! a real Prometheus (its own temp storage dir and a free web port).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::ports::free_port;
use crate::process::{wait_for_port, Child};
use crate::require_program;

/// The scrape job's name in the generated `prometheus.yml`.
pub const JOB: &str = "shardgate";

/// A running Prometheus. Killed on drop.
pub struct Prometheus {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port` of admin servers)
    /// every second under job [`JOB`], evaluating `rule_files` every second.
    pub fn start(targets: &[String], rule_files: &[PathBuf]) -> Prometheus {
        let program = require_program("prometheus", "prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rule_files.is_empty() {
            config.push_str("rule_files:\n");
            for file in rule_files {
                let _ = writeln!(config, "  - {:?}", file.display().to_string());
            }
        }
        let _ = write!(
            config,
            "scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: {targets:?}\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let mut command = Command::new(program);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut child = Child::spawn("prometheus", command, &dir.path().join("prometheus.log"));
        wait_for_port(&mut child, port, Duration::from_secs(30));
        let prometheus = Prometheus { port, child, dir };
        crate::assert_eventually!(
            within = Duration::from_secs(30),
            crate::http::get(port, "/-/ready").is_ok_and(|(status, _)| status == 200),
            "prometheus never became ready; log:\n{}",
            prometheus.log()
        );
        prometheus
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// GETs an API path and returns its JSON `data` when the HTTP status is
    /// 200 and `status` is `success`; otherwise the status and body.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) =
            crate::http::get(self.port, path).map_err(|e| format!("GET {path}: {e}"))?;
        let reply: Value =
            serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
        if status != 200 || reply["status"] != "success" {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        Ok(reply["data"].clone())
    }

    /// An instant query (`/api/v1/query`): the `result` array of a vector.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)))?;
        match data["result"].as_array() {
            Some(result) if data["resultType"] == "vector" => Ok(result.clone()),
            _ => Err(format!("`{expr}` is not an instant vector: {data}")),
        }
    }

    /// The single value of `expr` (summed by the caller, e.g. `sum(...)`);
    /// None when the result is empty or has several series.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).ok()?.as_slice() {
            [series] => series["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

/// Percent-encodes a query-string value (everything but RFC 3986's
/// unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
