//! SLOWLOG: the proxy's own slow log (requests slower than the pool's
//! threshold through the proxy, with the node that served each).

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::super::reply::{self, OK};
use super::super::{ClientStream, Flow, Session};
use super::{subcommand, Subcommand};
use crate::command::Resolution;
use crate::error::CommandError;

impl<S: ClientStream> Session<S> {
    pub(super) fn slowlog(&mut self, request: &Request, resolution: &Resolution) -> Flow {
        let log = &self.pool.state.slowlog;
        let reply = match subcommand(request, resolution) {
            Subcommand::Known("len") => Ok(reply::integer(log.len() as i64)),
            Subcommand::Known("reset") => {
                log.reset();
                Ok(OK)
            }
            Subcommand::Known("get") => match request.arg(2).map(resp::string2ll) {
                None => Ok(entries(&log.get(None))),
                Some(Some(n)) if n >= -1 => Ok(entries(&log.get(Some(n)))),
                Some(_) => Err(CommandError::Invalid(
                    "ERR count should be greater than or equal to -1",
                )),
            },
            Subcommand::Known("help") => Ok(help()),
            Subcommand::Known(sub) => {
                Err(CommandError::unknown_subcommand("slowlog", sub.as_bytes()))
            }
            Subcommand::Unknown(sub) => Err(CommandError::unknown_subcommand("slowlog", sub)),
        };
        self.answer(reply)
    }
}

/// SLOWLOG GET's reply: Redis's six fields per entry, then the node.
fn entries(entries: &[crate::metrics::SlowEntry]) -> Bytes {
    let mut out = BytesMut::new();
    resp::encode::array_header(&mut out, entries.len());
    for entry in entries {
        resp::encode::array_header(&mut out, 7);
        resp::encode::integer(&mut out, entry.id as i64);
        resp::encode::integer(&mut out, entry.at_unix as i64);
        resp::encode::integer(&mut out, entry.duration_us as i64);
        resp::encode::array_header(&mut out, entry.args.len());
        for arg in &entry.args {
            resp::encode::bulk(&mut out, arg);
        }
        resp::encode::bulk(&mut out, entry.client_addr.as_bytes());
        resp::encode::bulk(&mut out, entry.client_name.as_bytes());
        resp::encode::bulk(&mut out, entry.node.as_bytes());
    }
    out.freeze()
}

fn help() -> Bytes {
    reply::help(&[
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the proxy's slowlog (default: 10, -1 mean all).",
        "    Entries are made of: id, timestamp, time in microseconds, arguments array,",
        "    client IP and port, client name, and the node that served the request.",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Print this help.",
    ])
}
