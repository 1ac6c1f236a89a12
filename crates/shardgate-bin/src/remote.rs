//! Commands that talk to a running proxy's admin server: `shardgate
//! reload` (`POST /reload`), `shardgate upgrade` (`POST /upgrade`) and
//! `shardgate reshard ...` (`/reshard`), each printing the outcome.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// A reload waits for new pools' first health checks, an upgrade for the
/// new process's: allow for them.
const ANSWER_WITHIN: Duration = Duration::from_secs(90);

pub fn run(admin: SocketAddr) -> ExitCode {
    match post_reload(admin) {
        Ok((status, body)) => {
            print!("{}", describe(status, &body));
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("shardgate reload: cannot reach the admin server at {admin}: {error}");
            ExitCode::from(1)
        }
    }
}

pub fn upgrade(admin: SocketAddr) -> ExitCode {
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
        Err(e) => {
            eprintln!("shardgate upgrade: cannot reach the admin server at {admin}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The pid serving the admin API.
fn pid(admin: SocketAddr) -> Option<u64> {
    let (status, body) = request(admin, "GET", "/api/overview").ok()?;
    if status != 200 {
        return None;
    }
    let overview: serde_json::Value = serde_json::from_str(&body).ok()?;
    overview.get("pid")?.as_u64()
}

/// `POST /reload`; the status code and body.
fn post_reload(admin: SocketAddr) -> std::io::Result<(u16, String)> {
    request(admin, "POST", "/reload")
}

fn request(admin: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
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
pub fn reshard(admin: SocketAddr, action: &str, pool: Option<&str>) -> ExitCode {
    let query = pool.map(|p| format!("?pool={p}")).unwrap_or_default();
    let outcome = match action {
        "status" => request(admin, "GET", "/reshard"),
        action => request(admin, "POST", &format!("/reshard/{action}{query}")),
    };
    let (status, body) = match outcome {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("shardgate reshard: cannot reach the admin server at {admin}: {e}");
            return ExitCode::from(1);
        }
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

/// One pool's migration, as the operator reads it.
fn describe_status(pool: &serde_json::Value) -> String {
    let field = |name: &str| pool.get(name).cloned().unwrap_or_default();
    let name = field("pool");
    let phase = field("phase");
    let mut text = format!(
        "pool {}: {} (migration {}), {} keys / {} bytes moved by this proxy, {:.0} keys/s",
        name.as_str().unwrap_or("?"),
        phase.as_str().unwrap_or("?"),
        field("generation"),
        field("keys_moved"),
        field("bytes_moved"),
        field("keys_per_second").as_f64().unwrap_or(0.0),
    );
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
