//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`), for end-to-end tests of the status page: open a
//! page once, read its live DOM as it updates, take screenshots.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::http::request;
use crate::ports::free_port;
use crate::process::{wait_for_port, Child};
use crate::require_program;

/// A browser session; chromedriver (and Chromium) die with it.
pub struct Browser {
    port: u16,
    session: String,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        let driver = require_program("chromedriver", "chromium-driver");
        let chromium = require_program("chromium", "chromium");
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let mut command = Command::new(driver);
        command.arg(format!("--port={port}"));
        let mut child = Child::spawn(
            "chromedriver",
            command,
            &profile.path().join("chromedriver.log"),
        );
        wait_for_port(&mut child, port, Duration::from_secs(20));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", "--window-size=1440,900",
                    format!("--user-data-dir={}", profile.path().join("chrome").display()),
                ]
            }
        }}});
        let (status, body) = request(port, "POST", "/session", Some(&capabilities.to_string()))
            .expect("new session");
        assert_eq!(status, 200, "chromedriver refused the session: {body}");
        let reply: Value = serde_json::from_str(&body).expect("session json");
        let session = reply["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Browser {
            port,
            session,
            _driver: child,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = body.map(|b| b.to_string());
        let (status, text) =
            request(self.port, method, &path, body.as_deref()).expect("webdriver call");
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).expect("webdriver json")["value"].take()
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = request(self.port, "DELETE", &path, None);
    }
}
