//! Requests that span shards: split per shard (MGET...), sent to every
//! shard (FLUSHALL, DBSIZE, KEYS...), or walked shard by shard (SCAN), and
//! their replies merged into what a single Redis would answer. Pure: the
//! session sends the parts and hands the replies back here.
//!
//! # Layout
//! - `split`: MGET, MSET, DEL, UNLINK, EXISTS, TOUCH.
//! - `broadcast`: merges for commands sent to every shard.
//! - `scan`: the SCAN cursor that says which shard is next.

pub mod broadcast;
pub mod scan;
pub mod split;

use bytes::{Bytes, BytesMut};

/// One shard's answer to its part: the reply bytes, or the error reply a
/// client would get from that shard (already encoded).
pub struct PartReply {
    /// The shard's name (ring name), for errors.
    pub shard: std::sync::Arc<str>,
    pub result: Result<Bytes, Bytes>,
}

impl PartReply {
    /// The shard's reply frame (which may be its error reply).
    pub fn answered(shard: std::sync::Arc<str>, frame: Bytes) -> PartReply {
        PartReply {
            shard,
            result: Ok(frame),
        }
    }

    /// The shard could not answer; `message` is the proxy's error as the
    /// client reads it, without `-` (e.g. `ERR shardgate: ...`).
    pub fn failed(shard: std::sync::Arc<str>, message: &str) -> PartReply {
        PartReply {
            shard,
            result: Err(encode_error(message)),
        }
    }

    /// The reply frame, or the encoded error when the shard did not answer.
    pub fn frame(&self) -> Result<Bytes, Bytes> {
        self.result.clone()
    }

    /// This part's error reply, if it failed (a server's error reply, or
    /// the proxy's when the shard could not answer).
    fn error(&self) -> Option<Bytes> {
        match &self.result {
            Ok(frame) if crate::frames::is_error(frame) => Some(frame.clone()),
            Ok(_) => None,
            Err(error) => Some(error.clone()),
        }
    }

    /// `frame` (an error reply) with the shard's name added, so a client
    /// learns which shard failed: `-ERR x (shard s)`.
    pub fn named_error(&self, frame: &[u8]) -> Bytes {
        let text = crate::frames::error_text(frame)
            .unwrap_or_else(|| String::from_utf8_lossy(frame).trim_end().to_string());
        encode_error(&format!("{text} (shard {})", self.shard))
    }
}

/// The client's reply when parts failed, None when none did. When every
/// part failed with the same error, it is passed on as the server worded
/// it (a client matching Redis's error text sees Redis's text); when the
/// shards disagree (some succeeded, or failed differently) the first
/// failure names its shard. Each failure is logged with its shard.
pub fn failure(replies: &[PartReply]) -> Option<Bytes> {
    let mut first: Option<(&PartReply, Bytes)> = None;
    let mut agree = true;
    for reply in replies {
        match reply.error() {
            Some(error) => {
                tracing::debug!(shard = %reply.shard, "shard failed its part: {}", String::from_utf8_lossy(&error).trim_end());
                match &first {
                    None => first = Some((reply, error)),
                    Some((_, seen)) => agree &= *seen == error,
                }
            }
            None => agree = false,
        }
    }
    let (reply, error) = first?;
    // The proxy's own errors already name the server that failed.
    if agree || reply.result.is_err() {
        Some(error)
    } else {
        Some(reply.named_error(&error))
    }
}

/// `-message\r\n`.
pub fn encode_error(message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 3);
    resp::encode::error(&mut out, message);
    out.freeze()
}
