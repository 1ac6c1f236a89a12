//! RESP2/RESP3 codec for the shardgate proxy: a request parser, a reply
//! scanner, a reply decoder and writers. No I/O, no async: everything works
//! on caller-owned [`bytes::BytesMut`] / byte slices.
//!
//! The hot path is zero-copy. [`RequestParser::next`] finds the argument
//! ranges of the request at the front of the read buffer and hands back
//! the client's own bytes (`split_to(n).freeze()`), to be forwarded as is.
//! [`ReplyScanner::scan`] only finds where a reply ends, so replies pass
//! through untouched; [`decode`] builds a [`Value`] only where the proxy
//! must merge replies (MGET across shards, DBSIZE sums, SCAN...).
//!
//! Both the parser and the scanner are resumable: fed a frame in pieces,
//! they continue where they stopped instead of rescanning from byte 0.
//! Both are bounded by [`Limits`]; no buffer is ever sized from a length
//! read off the wire. Requests are accepted exactly as redis-server 7
//! accepts them (inline commands included) and refused with its error
//! strings (see [`ProtocolError`] and [`encode::protocol_error`]).
//!
//! ```
//! use bytes::BytesMut;
//! use resp::{Limits, ReplyScanner, RequestParser};
//!
//! let mut parser = RequestParser::new(Limits::default());
//! let mut inbox = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nEC"[..]);
//! let get = parser.next(&mut inbox)?.expect("complete");
//! assert_eq!(get.arg(1), Some(&b"k"[..]));
//! assert_eq!(&get.raw[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"); // forwarded as is
//! let ping = parser.next(&mut inbox)?.expect("complete");
//! assert_eq!(&ping.raw[..], b"*1\r\n$4\r\nPING\r\n"); // inline, re-encoded
//! assert!(parser.next(&mut inbox)?.is_none()); // partial ECHO kept in `inbox`
//!
//! let mut scanner = ReplyScanner::new(Limits::default());
//! let mut replies = BytesMut::from(&b"$1\r\nv\r\n+PONG\r\n"[..]);
//! let frame = scanner.scan(&replies)?.expect("complete");
//! assert_eq!((frame.len, frame.kind), (7, b'$'));
//! let _bulk = replies.split_to(frame.len);
//! # Ok::<(), resp::ProtocolError>(())
//! ```
//!
//! # Layout
//!
//! - [`limits`](Limits): the bounds (bulk length, aggregate length, depth,
//!   line length) and their defaults.
//! - [`error`](ProtocolError): [`ProtocolError`] and [`ErrorKind`], worded as
//!   redis-server words them.
//! - `find`: the line-end search shared by parser and scanner.
//! - `number`: `string2ll`-exact integer parsing, integer formatting.
//! - `request`: [`Request`] (raw bytes + argument ranges) and
//!   [`RequestParser`]; `request::inline` is `sdssplitargs`.
//! - `reply`: [`ReplyScanner`] (frame ends, no values), [`Value`] and
//!   [`decode`].
//! - [`encode`]: writers for replies the proxy makes itself.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod encode;
mod error;
mod find;
mod limits;
mod number;
mod reply;
mod request;

pub use error::{ErrorKind, ProtocolError};
pub use limits::Limits;
pub use number::string2ll;
pub use reply::{decode, ReplyFrame, ReplyScanner, Value};
pub use request::{Request, RequestParser};
