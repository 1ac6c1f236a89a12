//! Why a server did not answer as asked: the control plane's and the
//! connections' typed failure, rendered to words only where they are
//! shown (a log line, an event, a client's error after the server's name).

use std::fmt;
use std::time::Duration;

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
