//! Commands that talk to a running proxy's admin server: `shardgate
//! reload` (`POST /reload`), `shardgate upgrade` (`POST /upgrade`) and
//! `shardgate reshard ...` (`/reshard`), each printing the outcome. They
//! send the admin token when given one, and speak HTTPS when given the
//! CAs of the admin server's certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use shardgate_tls::rustls;

/// A running proxy's admin server, as the commands reach it.
pub struct Admin {
    pub addr: SocketAddr,
    /// The bearer token (`--admin-token-file`).
    pub token: Option<String>,
    /// HTTPS, verified against these CAs (`--admin-ca`).
    pub ca: Option<PathBuf>,
}

/// A reload waits for new pools' first health checks, an upgrade for the
/// new process's: allow for them.
const ANSWER_WITHIN: Duration = Duration::from_secs(90);

pub fn run(admin: &Admin) -> ExitCode {
    match post_reload(admin) {
        Ok((status, body)) => {
            print!("{}", describe(status, &body));
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => cannot_reach(admin, "reload", &error),
    }
}

pub fn upgrade(admin: &Admin) -> ExitCode {
    let old = pid(admin);
    match request(admin, "POST", "/upgrade") {
        Ok((200, body)) => {
            let new = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("pid")?.as_u64());
            match (old, new) {
                (Some(old), Some(new)) => println!("upgraded: pid {old} handed over to pid {new}"),
                _ => println!("upgraded: {body}"),
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(String::from))
                .unwrap_or(body);
            eprintln!("shardgate upgrade: the upgrade failed ({status}), the old process carries on: {why}");
            ExitCode::from(1)
        }
        Err(e) => cannot_reach(admin, "upgrade", &e),
    }
}

/// Says `command` could not reach the admin server; exit status 1.
fn cannot_reach(admin: &Admin, command: &str, error: &std::io::Error) -> ExitCode {
    eprintln!(
        "shardgate {command}: cannot reach the admin server at {}: {error}",
        admin.addr
    );
    ExitCode::from(1)
}

/// The pid serving the admin API.
fn pid(admin: &Admin) -> Option<u64> {
    let (status, body) = request(admin, "GET", "/api/overview").ok()?;
    if status != 200 {
        return None;
    }
    let overview: serde_json::Value = serde_json::from_str(&body).ok()?;
    overview.get("pid")?.as_u64()
}

/// `POST /reload`; the status code and body.
fn post_reload(admin: &Admin) -> std::io::Result<(u16, String)> {
    request(admin, "POST", "/reload")
}

fn request(admin: &Admin, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    send(admin, method, path, "")
}

/// One request with `body`; (status, body).
fn send(admin: &Admin, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    if admin.token.is_some() && admin.ca.is_none() && !admin.addr.ip().is_loopback() {
        // The token would cross the network in cleartext.
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the admin token is only sent over HTTPS beyond loopback: give --admin-ca",
        ));
    }
    let stream = TcpStream::connect_timeout(&admin.addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    let authorization = admin
        .token
        .as_ref()
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        admin.addr,
        body.len()
    );
    let response = match &admin.ca {
        Some(ca) => exchange(tls_stream(admin.addr, ca, stream)?, &head)?,
        None => exchange(stream, &head)?,
    };
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Writes the request, reads the whole response.
fn exchange(mut stream: impl Read + Write, head: &str) -> std::io::Result<String> {
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify after a complete
        // response: the response is still whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// A TLS client session to the admin server, verified against `ca` (the
/// certificate must carry the address dialled).
fn tls_stream(
    addr: SocketAddr,
    ca: &std::path::Path,
    stream: TcpStream,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let roots = shardgate_tls::roots(ca).map_err(|e| invalid(format!("--admin-ca {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(shardgate_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(rustls::StreamOwned::new(connection, stream))
}

/// The outcome as the operator reads it.
fn describe(status: u16, body: &str) -> String {
    let Ok(outcome) = serde_json::from_str::<serde_json::Value>(body) else {
        return format!("shardgate reload: the admin server answered {status}: {body}\n");
    };
    let field = |name: &str| outcome.get(name).cloned().unwrap_or_default();
    let result = field("result").as_str().unwrap_or("unknown").to_string();
    let lines = field("lines");
    let lines: Vec<&str> = lines
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut text = match result.as_str() {
        "applied" => format!(
            "reload applied (configuration epoch {})",
            field("epoch").as_u64().unwrap_or(0)
        ),
        other => format!("reload {other}: nothing changed"),
    };
    if lines.is_empty() && result == "applied" {
        text.push_str(": nothing to change");
    }
    text.push('\n');
    for line in lines {
        text.push_str(&format!("  - {line}\n"));
    }
    text
}

/// `shardgate reshard start|pause|resume|abort|status [--pool P]`.
pub fn reshard(admin: &Admin, action: &str, pool: Option<&str>) -> ExitCode {
    let query = pool.map(|p| format!("?pool={p}")).unwrap_or_default();
    let outcome = match action {
        "status" => request(admin, "GET", "/reshard"),
        action => request(admin, "POST", &format!("/reshard/{action}{query}")),
    };
    let (status, body) = match outcome {
        Ok(answer) => answer,
        Err(e) => return cannot_reach(admin, "reshard", &e),
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) else {
        eprintln!("shardgate reshard: the admin server answered {status}: {body}");
        return ExitCode::from(1);
    };
    if action == "status" {
        for pool in value.as_array().into_iter().flatten() {
            print!("{}", describe_status(pool));
        }
        return ExitCode::SUCCESS;
    }
    let lines: Vec<&str> = value
        .get("lines")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let ok = status == 200;
    for line in lines {
        if ok {
            println!("{line}");
        } else {
            eprintln!("shardgate reshard {action}: {line}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `shardgate reshard plan`: what would move, measured by the running
/// proxy against its pools' servers; nothing changes. Exits 1 when a
/// migration would be refused (or the file is not valid).
pub fn reshard_plan(admin: &Admin, conf_file: Option<&Path>, max_keys: u64) -> ExitCode {
    let text = match conf_file.map(std::fs::read_to_string).transpose() {
        Ok(text) => text.unwrap_or_default(),
        Err(e) => {
            eprintln!("shardgate reshard plan: cannot read the file: {e}");
            return ExitCode::from(1);
        }
    };
    let path = format!("/reshard/plan?max_keys={max_keys}");
    let (status, body) = match send(admin, "POST", &path, &text) {
        Ok(answer) => answer,
        Err(e) => return cannot_reach(admin, "reshard", &e),
    };
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let lines = value.get("lines").and_then(|l| l.as_array());
    let Some(lines) = lines else {
        eprintln!("shardgate reshard plan: the admin server answered {status}: {body}");
        return ExitCode::from(1);
    };
    for line in lines.iter().filter_map(|l| l.as_str()) {
        println!("{line}");
    }
    if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One pool's migration, as the operator reads it.
fn describe_status(pool: &serde_json::Value) -> String {
    let field = |name: &str| pool.get(name).cloned().unwrap_or_default();
    let name = field("pool");
    let phase = field("phase");
    let mut text = format!(
        "pool {}: {} (migration {})",
        name.as_str().unwrap_or("?"),
        phase.as_str().unwrap_or("?"),
        field("generation"),
    );
    if let (Some(keys), Some(bytes)) = (
        field("generation_keys_moved").as_u64(),
        field("generation_bytes_moved").as_u64(),
    ) {
        text.push_str(&format!(
            ", {keys} keys / {bytes} bytes moved by every proxy"
        ));
    }
    text.push_str(&format!(
        ", {} keys / {} bytes by this proxy's mover, {:.0} keys/s",
        field("keys_moved"),
        field("bytes_moved"),
        field("keys_per_second").as_f64().unwrap_or(0.0),
    ));
    if let Some(left) = field("eta_seconds").as_u64() {
        text.push_str(&format!(", about {left} s left"));
    }
    if let Some(mover) = field("mover").as_str() {
        text.push_str(&format!(", mover: {mover}"));
    }
    let waiting = field("waiting_for");
    if waiting.as_array().is_some_and(|w| !w.is_empty()) {
        text.push_str(&format!(", waiting for {waiting}"));
    }
    if let Some(error) = field("last_error").as_str() {
        text.push_str(&format!(", last error: {error}"));
    }
    text.push('\n');
    text
}

/// `shardgate status`: the topology, roles, health, lag and recent events
/// from the admin server, for a terminal.
pub fn status(admin: &Admin) -> ExitCode {
    let overview = match request(admin, "GET", "/api/overview") {
        Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok(),
        Ok((status, body)) => {
            eprintln!("shardgate status: the admin server answered {status}: {body}");
            return ExitCode::from(1);
        }
        Err(e) => return cannot_reach(admin, "status", &e),
    };
    let Some(overview) = overview else {
        eprintln!("shardgate status: the admin server's answer is not JSON");
        return ExitCode::from(1);
    };
    print!("{}", describe_overview(&overview));
    ExitCode::SUCCESS
}

/// The overview as lines of text.
fn describe_overview(overview: &serde_json::Value) -> String {
    let field = |v: &serde_json::Value, name: &str| v.get(name).cloned().unwrap_or_default();
    let text = |v: &serde_json::Value, name: &str| match v.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    let mut out = format!(
        "shardgate {} (pid {}), up {} s, {} worker(s)\n",
        text(overview, "version"),
        text(overview, "pid"),
        text(overview, "uptime_seconds"),
        text(overview, "workers"),
    );
    for pool in field(overview, "pools").as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\npool {} on {}: {} / {}, failover {}, reads {}, {} client(s)\n",
            text(pool, "pool"),
            text(pool, "listen"),
            text(pool, "distribution"),
            text(pool, "hash"),
            text(pool, "failover"),
            text(pool, "read_policy"),
            text(pool, "clients"),
        ));
        for shard in field(pool, "shards").as_array().into_iter().flatten() {
            let state = match (
                shard.get("master").and_then(|m| m.as_str()),
                shard.get("down").and_then(|d| d.as_str()),
            ) {
                (Some(master), _) => format!("writes to {master}"),
                (None, Some(why)) => format!("NO MASTER: {why}"),
                (None, None) => "NO MASTER".into(),
            };
            let ejected = if field(shard, "ejected").as_bool() == Some(true) {
                " (ejected)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  shard {}: {state}{ejected}\n",
                text(shard, "name")
            ));
            for node in field(shard, "nodes").as_array().into_iter().flatten() {
                let mut line = format!(
                    "    {:<22} {:<8} {:<8}",
                    text(node, "addr"),
                    text(node, "role"),
                    text(node, "health"),
                );
                if let Some(lag) = node.get("lag_seconds").and_then(|l| l.as_u64()) {
                    line.push_str(&format!(" lag {lag} s"));
                }
                if field(node, "serves_reads").as_bool() == Some(true) {
                    line.push_str(" serves reads");
                }
                if let Some(why) = node.get("excluded").and_then(|e| e.as_str()) {
                    line.push_str(&format!(" (excluded: {why})"));
                }
                if field(node, "busy").as_bool() == Some(true) {
                    line.push_str(" BUSY");
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    let events = field(overview, "events");
    let events: Vec<&serde_json::Value> = events.as_array().into_iter().flatten().collect();
    if !events.is_empty() {
        out.push_str("\nrecent events:\n");
        for event in events.iter().take(15) {
            let at = event.get("at_ms").and_then(|a| a.as_u64()).unwrap_or(0) / 1000;
            out.push_str(&format!(
                "  {} {} {}: {}\n",
                clock(at),
                text(event, "pool"),
                text(event, "kind"),
                text(event, "message"),
            ));
        }
    }
    out
}

/// `HH:MM:SS` UTC of a Unix time.
fn clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}
