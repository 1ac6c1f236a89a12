//! CLIENT and its subcommands, answered about the pool's clients (the
//! proxy's own, not the servers' connections, which the proxy shares).

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::super::client::ReplyMode;
use super::super::reply::{self, OK};
use super::super::{ClientStream, Flow, Session};
use super::{subcommand, Subcommand};
use crate::command::Resolution;
use crate::error::CommandError;
use crate::pool::clients::{PAUSE_ALL, PAUSE_WRITE, UNBLOCK_ERROR, UNBLOCK_TIMEOUT};

pub(super) const INVALID_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

/// Redis's rule for a client name: printable ASCII without spaces.
pub(super) fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

impl<S: ClientStream> Session<S> {
    pub(super) fn client_command(&mut self, request: &Request, resolution: &Resolution) -> Flow {
        let reply = match subcommand(request, resolution) {
            Subcommand::Known("id") => Ok(reply::integer(self.client.id() as i64)),
            Subcommand::Known("getname") => Ok(match self.client.entry.name() {
                Some(name) => reply::bulk(name.as_bytes()),
                None => reply::null(self.client.resp3),
            }),
            Subcommand::Known("setname") => self.client_setname(request.arg(2).unwrap_or_default()),
            Subcommand::Known("info") => Ok(reply::verbatim_or_bulk(
                self.client.resp3,
                &format!("{}\n", self.client.entry.line()),
            )),
            Subcommand::Known("list") => Ok(self.client_list(request)),
            Subcommand::Known("kill") => self.client_kill(request),
            Subcommand::Known("reply") => {
                let mode = request.arg(2).unwrap_or_default();
                let mode = if mode.eq_ignore_ascii_case(b"ON") {
                    ReplyMode::On
                } else if mode.eq_ignore_ascii_case(b"OFF") {
                    ReplyMode::Off
                } else if mode.eq_ignore_ascii_case(b"SKIP") {
                    ReplyMode::SkipNext
                } else {
                    return self.error_next("ERR syntax error");
                };
                self.client.reply_mode = mode;
                // OFF and SKIP are not answered (this reply would be the first skipped).
                if mode != ReplyMode::On {
                    return Flow::Next;
                }
                Ok(OK)
            }
            Subcommand::Known("no-evict") => Ok(OK),
            Subcommand::Known("getredir") => Ok(reply::integer(-1)),
            Subcommand::Known("trackinginfo") => Ok(self.tracking_info()),
            Subcommand::Known("pause") => self.client_pause(request),
            Subcommand::Known("unpause") => {
                self.pool.state.pause.unpause();
                Ok(OK)
            }
            Subcommand::Known("unblock") => self.client_unblock(request),
            Subcommand::Known("help") => Ok(help()),
            Subcommand::Known(other @ ("tracking" | "caching")) => {
                Err(CommandError::NotThroughProxy {
                    command: "client",
                    subcommand: other.to_string(),
                    why: "is not supported through the proxy",
                })
            }
            // Redis 7.2's connection metadata, sent by newer client
            // libraries on connect: harmless, and the proxy's own to keep.
            Subcommand::Unknown(sub)
                if sub.eq_ignore_ascii_case(b"SETINFO")
                    || sub.eq_ignore_ascii_case(b"NO-TOUCH") =>
            {
                Ok(OK)
            }
            Subcommand::Known(sub) => {
                Err(CommandError::unknown_subcommand("client", sub.as_bytes()))
            }
            Subcommand::Unknown(sub) => Err(CommandError::unknown_subcommand("client", sub)),
        };
        self.answer(reply)
    }

    fn client_setname(&self, value: &[u8]) -> Result<Bytes, CommandError> {
        if !valid_client_name(value) {
            return Err(CommandError::Invalid(INVALID_NAME));
        }
        let name = String::from_utf8_lossy(value).into_owned();
        self.client
            .entry
            .set_name((!name.is_empty()).then_some(name));
        Ok(OK)
    }

    fn client_list(&self, request: &Request) -> Bytes {
        let mut ids: Option<Vec<u64>> = None;
        let mut i = 2;
        while let Some(option) = request.arg(i) {
            if option.eq_ignore_ascii_case(b"ID") {
                ids = Some(
                    request
                        .args()
                        .skip(i + 1)
                        .filter_map(|a| std::str::from_utf8(a).ok()?.parse().ok())
                        .collect(),
                );
                break;
            }
            i += 2;
        }
        let mut text = String::new();
        for entry in self.pool.state.clients.list() {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&entry.id)) {
                continue;
            }
            text.push_str(&entry.line());
            text.push('\n');
        }
        reply::verbatim_or_bulk(self.client.resp3, &text)
    }

    /// CLIENT KILL addr | CLIENT KILL [ID id] [ADDR addr] [LADDR addr]
    /// [USER name] [SKIPME yes/no], among this pool's clients.
    fn client_kill(&self, request: &Request) -> Result<Bytes, CommandError> {
        let clients = self.pool.state.clients.list();
        if request.argc() == 3 {
            let addr = request.arg(2).unwrap_or_default();
            return match clients.iter().find(|c| c.addr.as_bytes() == addr) {
                Some(entry) => {
                    entry.kill();
                    Ok(OK)
                }
                None => Err(CommandError::Invalid("ERR No such client")),
            };
        }
        if request.argc() < 4 || !request.argc().is_multiple_of(2) {
            return Err(CommandError::Syntax);
        }
        let mut skip_me = true;
        let mut filters: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for pair in request.args().skip(2).collect::<Vec<_>>().chunks(2) {
            let [name, value] = pair else {
                return Err(CommandError::Syntax);
            };
            let name = name.to_ascii_uppercase();
            match name.as_slice() {
                b"SKIPME" => {
                    skip_me = match value.to_ascii_lowercase().as_slice() {
                        b"yes" => true,
                        b"no" => false,
                        _ => return Err(CommandError::Syntax),
                    }
                }
                b"ID" | b"ADDR" | b"LADDR" | b"USER" => filters.push((name, value.to_vec())),
                _ => return Err(CommandError::Syntax),
            }
        }
        let mut killed = 0;
        for entry in clients {
            if skip_me && entry.id == self.client.id() {
                continue;
            }
            let matches = filters.iter().all(|(name, value)| match name.as_slice() {
                b"ID" => entry.id.to_string().as_bytes() == value.as_slice(),
                b"ADDR" => entry.addr.as_bytes() == value.as_slice(),
                b"LADDR" => entry.laddr.as_bytes() == value.as_slice(),
                b"USER" => entry
                    .user
                    .lock()
                    .map(|u| u.as_bytes() == value.as_slice())
                    .unwrap_or(false),
                _ => false,
            });
            if matches {
                entry.kill();
                killed += 1;
            }
        }
        Ok(reply::integer(killed))
    }

    /// CLIENT PAUSE timeout [WRITE|ALL]: every client of the pool (this one
    /// included) holds the commands the mode covers until the timeout or
    /// CLIENT UNPAUSE, as Redis holds its clients.
    fn client_pause(&self, request: &Request) -> Result<Bytes, CommandError> {
        let timeout = match resp::string2ll(request.arg(2).unwrap_or_default()) {
            Some(ms) if ms < 0 => return Err(CommandError::Invalid("ERR timeout is negative")),
            Some(ms) => ms,
            None => {
                return Err(CommandError::Invalid(
                    "ERR timeout is not an integer or out of range",
                ))
            }
        };
        let mode = match request.arg(3) {
            None => PAUSE_ALL,
            Some(m) if m.eq_ignore_ascii_case(b"ALL") => PAUSE_ALL,
            Some(m) if m.eq_ignore_ascii_case(b"WRITE") => PAUSE_WRITE,
            Some(_) => {
                return Err(CommandError::Invalid(
                    "ERR CLIENT PAUSE mode must be WRITE or ALL",
                ))
            }
        };
        let until = std::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(timeout).unwrap_or(0));
        self.pool.state.pause.pause(until, mode);
        Ok(OK)
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking
    /// call as Redis would; 1 if it was blocked.
    fn client_unblock(&self, request: &Request) -> Result<Bytes, CommandError> {
        let Some(id) = resp::string2ll(request.arg(2).unwrap_or_default()) else {
            return Err(CommandError::NotAnInteger);
        };
        let how = match request.arg(3) {
            None => UNBLOCK_TIMEOUT,
            Some(m) if m.eq_ignore_ascii_case(b"TIMEOUT") => UNBLOCK_TIMEOUT,
            Some(m) if m.eq_ignore_ascii_case(b"ERROR") => UNBLOCK_ERROR,
            Some(_) => {
                return Err(CommandError::Invalid(
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                ))
            }
        };
        let unblocked = u64::try_from(id)
            .ok()
            .and_then(|id| self.pool.state.clients.get(id))
            .is_some_and(|entry| entry.unblock(how));
        Ok(reply::integer(i64::from(unblocked)))
    }

    fn tracking_info(&self) -> Bytes {
        let mut out = BytesMut::new();
        if self.client.resp3 {
            resp::encode::map_header(&mut out, 3);
        } else {
            resp::encode::array_header(&mut out, 6);
        }
        resp::encode::bulk(&mut out, b"flags");
        resp::encode::array_header(&mut out, 1);
        resp::encode::bulk(&mut out, b"off");
        resp::encode::bulk(&mut out, b"redirect");
        resp::encode::integer(&mut out, -1);
        resp::encode::bulk(&mut out, b"prefixes");
        resp::encode::array_header(&mut out, 0);
        out.freeze()
    }
}

fn help() -> Bytes {
    reply::help(&[
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ID",
        "    Return the ID of the current connection.",
        "GETNAME",
        "    Return the name of the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST [ID <id> [<id> ...]]",
        "    Return information about the proxy's client connections.",
        "KILL <ip:port> | KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections (ID, ADDR, LADDR, USER, SKIPME).",
        "REPLY (ON|OFF|SKIP)",
        "    Control the replies sent to the current connection.",
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend the pool's clients for <timeout> milliseconds.",
        "UNPAUSE",
        "    Stop the current client pause, resuming traffic.",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Unblock the specified blocked client.",
        "HELP",
        "    Print this help.",
    ])
}
