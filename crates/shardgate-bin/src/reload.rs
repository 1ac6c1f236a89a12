//! `shardgate reload`: asks a running proxy's admin server to reload its
//! configuration file (`POST /reload`) and prints the outcome.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// A reload waits for new pools' first health checks: allow for them.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

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

/// `POST /reload`; the status code and body.
fn post_reload(admin: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(ANSWER_WITHIN))?;
    write!(
        stream,
        "POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
