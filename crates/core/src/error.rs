//! Typed failures, rendered to words only where they are shown (a reply,
//! a log line, an event).
//!
//! The error model, by the side a failure is on:
//! - the client's: [`CommandError`] (a command the proxy answers itself,
//!   refused for its arguments; the same request fails again),
//!   [`crate::auth::AuthError`], and resp's protocol errors;
//! - the proxy's: [`crate::route::Refusal`] (a request the proxy will not
//!   run, with whether a retry can succeed) and [`CommandError`]'s
//!   `NotThroughProxy`;
//! - a server's: [`NodeError`] here (the control plane's connections) and
//!   the backend crate's `BackendError` (the data path's: which server,
//!   and whether the request may have run).

use std::fmt;
use std::time::Duration;

/// Why a command the proxy answers itself (CLIENT, ACL, SLOWLOG, CLUSTER,
/// AUTH's neighbours) failed; `Display` is the reply Redis would give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(&'static str),
    /// A subcommand its container command does not have.
    #[error("ERR unknown subcommand '{subcommand}'. Try {} HELP.", .command.to_ascii_uppercase())]
    UnknownSubcommand {
        command: &'static str,
        subcommand: String,
    },
    /// An argument outside what the command takes, in Redis's own words.
    #[error("{0}")]
    Invalid(&'static str),
    /// A name the command looks up does not exist: `ERR {what} '{name}' not
    /// found` (ACL DRYRUN's user and command).
    #[error("ERR {what} '{name}' not found")]
    NotFound { what: &'static str, name: String },
    /// ACL CAT of a category the table does not have.
    #[error("ERR Unknown category '{0}'")]
    UnknownCategory(String),
    /// The proxy's side: a subcommand Redis has that the proxy does not
    /// answer; `why` says where to run it instead.
    #[error("ERR shardgate: {} {} {why}", .command.to_ascii_uppercase(), .subcommand.to_ascii_uppercase())]
    NotThroughProxy {
        command: &'static str,
        subcommand: String,
        why: &'static str,
    },
    /// The proxy's side: it has no secure random source (ACL GENPASS).
    #[error("ERR shardgate: no secure random source: {0}")]
    NoRandom(String),
}

impl CommandError {
    /// `ERR unknown subcommand`, with the client's word as sent.
    pub fn unknown_subcommand(command: &'static str, subcommand: &[u8]) -> CommandError {
        CommandError::UnknownSubcommand {
            command,
            subcommand: String::from_utf8_lossy(subcommand).into_owned(),
        }
    }
}

/// A failure talking to one server (a Redis node or a Sentinel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// The TCP connect failed (refused, unreachable, no route).
    Connect(String),
    /// No answer within the bound (connect, handshake or reply).
    Timeout(Duration),
    /// A command of the connection's handshake (AUTH, HELLO, SELECT,
    /// CLIENT SETNAME) was refused; `reply` is the server's error.
    Handshake {
        command: &'static str,
        reply: String,
    },
    /// The server answered the command with an error.
    Replied(String),
    /// The connection broke, or the server sent something that is not RESP.
    Io(String),
    /// An answer that does not fit the question.
    Unexpected(String),
}

impl NodeError {
    /// Redis's `BUSY` (a script or function runs past its threshold): the
    /// server is alive.
    pub fn is_busy(&self) -> bool {
        match self {
            NodeError::Replied(text) | NodeError::Handshake { reply: text, .. } => {
                text.starts_with("BUSY ")
            }
            _ => false,
        }
    }

    /// The server's own error text, when it answered with one.
    pub fn server_error(&self) -> Option<&str> {
        match self {
            NodeError::Replied(text) | NodeError::Handshake { reply: text, .. } => Some(text),
            _ => None,
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Connect(reason) | NodeError::Io(reason) => f.write_str(reason),
            NodeError::Timeout(after) => write!(f, "no reply within {} ms", after.as_millis()),
            NodeError::Handshake { command, reply } => write!(f, "{command} failed: {reply}"),
            NodeError::Replied(text) | NodeError::Unexpected(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for NodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_read_as_redis_replies() {
        assert_eq!(
            CommandError::unknown_subcommand("client", b"frob").to_string(),
            "ERR unknown subcommand 'frob'. Try CLIENT HELP."
        );
        assert_eq!(
            CommandError::Arity("get").to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            CommandError::NotThroughProxy {
                command: "client",
                subcommand: "tracking".into(),
                why: "is not supported through the proxy",
            }
            .to_string(),
            "ERR shardgate: CLIENT TRACKING is not supported through the proxy"
        );
        assert_eq!(
            CommandError::NotFound {
                what: "User",
                name: "ghost".into()
            }
            .to_string(),
            "ERR User 'ghost' not found"
        );
    }

    #[test]
    fn busy_is_recognised_wherever_the_server_said_it() {
        let busy = "BUSY Redis is busy running a script.".to_string();
        assert!(NodeError::Replied(busy.clone()).is_busy());
        assert!(NodeError::Handshake {
            command: "CLIENT SETNAME",
            reply: busy.clone()
        }
        .is_busy());
        assert!(!NodeError::Io(busy).is_busy());
        assert_eq!(
            NodeError::Timeout(Duration::from_millis(300)).to_string(),
            "no reply within 300 ms"
        );
    }
}
