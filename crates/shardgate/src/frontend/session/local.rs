//! Commands about the client's own connection, answered by the proxy the
//! way Redis answers them: PING, ECHO, QUIT, SELECT, HELLO, AUTH, RESET,
//! CLIENT.

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::client::ReplyMode;
use super::dispatch::InfoPlan;
use super::pending::Pending;
use super::{ClientStream, End, Flow, Session};
use crate::command::REDIS_VERSION;
use crate::route::SessionCommand;

impl<S: ClientStream> Session<S> {
    /// A command the session answers or drives; `dispatch_route` has
    /// checked its arity against the command table already.
    pub(super) fn session_command(&mut self, command: SessionCommand, request: Request) -> Flow {
        match command {
            SessionCommand::Ping => self.ping(&request),
            SessionCommand::Echo => {
                let reply = bulk(request.arg(1).unwrap_or_default());
                self.push(Pending::Ready(reply));
                Flow::Next
            }
            SessionCommand::Quit => {
                self.push(Pending::Ready(Bytes::from_static(b"+OK\r\n")));
                Flow::Close(End::Quit)
            }
            SessionCommand::Select => self.select(&request),
            SessionCommand::Hello => self.hello(&request),
            SessionCommand::Auth => self.auth(&request),
            SessionCommand::Reset => self.reset(),
            SessionCommand::Multi => self.multi(),
            SessionCommand::Exec => self.exec_outside(),
            SessionCommand::Discard => self.discard_outside(),
            SessionCommand::Watch => self.watch(request),
            SessionCommand::Unwatch => self.unwatch(),
            SessionCommand::Client => self.client_command(&request),
            SessionCommand::Subscribe(kind) => self.subscribe(kind, request),
            SessionCommand::Unsubscribe(kind) => self.unsubscribe(kind, request),
            SessionCommand::Monitor => self.monitor(),
            SessionCommand::Slowlog => self.slowlog(&request),
            SessionCommand::Acl => self.acl(&request),
        }
    }

    fn exec_outside(&mut self) -> Flow {
        self.push_error("ERR EXEC without MULTI");
        Flow::Next
    }

    fn discard_outside(&mut self) -> Flow {
        self.push_error("ERR DISCARD without MULTI");
        Flow::Next
    }

    fn ping(&mut self, request: &Request) -> Flow {
        if request.argc() > 2 {
            return self.error_next(&arity("ping"));
        }
        let reply = if self.in_subscribed_mode() {
            // Subscribed RESP2 clients get PING's reply as a message.
            let mut out = BytesMut::with_capacity(32);
            resp::encode::array_header(&mut out, 2);
            resp::encode::bulk(&mut out, b"pong");
            resp::encode::bulk(&mut out, request.arg(1).unwrap_or_default());
            out.freeze()
        } else {
            match request.arg(1) {
                None => Bytes::from_static(b"+PONG\r\n"),
                Some(arg) => bulk(arg),
            }
        };
        self.push(Pending::Ready(reply));
        Flow::Next
    }

    fn error_next(&mut self, message: &str) -> Flow {
        self.push_error(message);
        Flow::Next
    }

    /// SELECT: the client's database; its requests then use backend
    /// connections that have selected it. A barrier, so commands before
    /// and after it keep their order across the two connection sets.
    fn select(&mut self, request: &Request) -> Flow {
        let Some(db) = parse_integer(request.arg(1).unwrap_or_default()) else {
            return self.error_next("ERR value is not an integer or out of range");
        };
        let databases = i64::from(self.pool.config().databases);
        if !(0..databases).contains(&db) {
            return self.error_next("ERR DB index is out of range");
        }
        self.client.set_db(db as u32);
        self.tx.follow_on_pinned(request.raw.clone());
        self.push(Pending::Ready(Bytes::from_static(b"+OK\r\n")));
        Flow::Barrier
    }

    /// HELLO [protover [AUTH user pass] [SETNAME name]]: the protocol the
    /// client speaks (its requests then use RESP3 backend connections) and
    /// the server's identity.
    fn hello(&mut self, request: &Request) -> Flow {
        let mut resp3 = self.client.resp3;
        if let Some(version) = request.arg(1) {
            match parse_integer(version) {
                Some(2) => resp3 = false,
                Some(3) => resp3 = true,
                Some(_) => return self.error_next("NOPROTO unsupported protocol version"),
                None => {
                    return self
                        .error_next("ERR Protocol version is not an integer or out of range")
                }
            }
        }
        let mut name = None;
        let mut i = 2;
        while let Some(option) = request.arg(i) {
            let more = request.argc() - i - 1;
            if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                let user = request.arg(i + 1).unwrap_or_default();
                let password = request.arg(i + 2).unwrap_or_default();
                if let Err(message) = self.authenticate(Some(user), password) {
                    self.push_auth_failure(&message);
                    return Flow::Next;
                }
                i += 3;
            } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                let value = request.arg(i + 1).unwrap_or_default();
                if !valid_client_name(value) {
                    return self.error_next(INVALID_NAME);
                }
                name = Some(String::from_utf8_lossy(value).into_owned());
                i += 2;
            } else {
                let option = String::from_utf8_lossy(option);
                return self.error_next(&format!("ERR Syntax error in HELLO option '{option}'"));
            }
        }
        if self.client.user.is_none() {
            return self.error_next("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if resp3 != self.client.resp3 && self.pubsub.as_ref().is_some_and(|p| p.total() > 0) {
            return self
                .error_next("ERR shardgate: HELLO cannot change the protocol while subscribed");
        }
        if let Some(name) = name {
            self.client
                .entry
                .set_name((!name.is_empty()).then_some(name));
        }
        if resp3 != self.client.resp3 {
            // Only the protocol: the client's AUTH and SETNAME are the proxy's.
            self.tx.follow_on_pinned(Bytes::from_static(if resp3 {
                b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"
            } else {
                b"*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n"
            }));
        }
        self.client.set_resp3(resp3);
        let reply = self.hello_reply();
        self.push(Pending::Ready(reply));
        Flow::Barrier
    }

    fn hello_reply(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(160);
        let fields: [(&str, HelloValue); 7] = [
            ("server", HelloValue::Str("redis")),
            ("version", HelloValue::Str(REDIS_VERSION)),
            (
                "proto",
                HelloValue::Int(if self.client.resp3 { 3 } else { 2 }),
            ),
            ("id", HelloValue::Int(self.client.id() as i64)),
            ("mode", HelloValue::Str("standalone")),
            ("role", HelloValue::Str("master")),
            ("modules", HelloValue::EmptyArray),
        ];
        if self.client.resp3 {
            resp::encode::map_header(&mut out, fields.len());
        } else {
            resp::encode::array_header(&mut out, fields.len() * 2);
        }
        for (key, value) in fields {
            resp::encode::bulk(&mut out, key.as_bytes());
            match value {
                HelloValue::Str(s) => resp::encode::bulk(&mut out, s.as_bytes()),
                HelloValue::Int(n) => resp::encode::integer(&mut out, n),
                HelloValue::EmptyArray => resp::encode::array_header(&mut out, 0),
            }
        }
        out.freeze()
    }

    fn auth(&mut self, request: &Request) -> Flow {
        let result = match request.argc() {
            2 => self.authenticate(None, request.arg(1).unwrap_or_default()),
            3 => self.authenticate(request.arg(1), request.arg(2).unwrap_or_default()),
            _ => Err("ERR syntax error".to_string()),
        };
        match result {
            Ok(()) => self.push(Pending::Ready(Bytes::from_static(b"+OK\r\n"))),
            Err(message) => self.push_auth_failure(&message),
        }
        Flow::Next
    }

    /// Checks credentials against the pool's client users (see
    /// [`crate::auth::Users`]); on success the client is that user.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Result<(), String> {
        let user = self.pool.state.users.authenticate(user, password)?;
        self.client.set_user(Some(user));
        Ok(())
    }

    /// A failed AUTH: the error, held back longer the more this connection
    /// (or the pool) fails, so passwords cannot be guessed quickly.
    fn push_auth_failure(&mut self, message: &str) {
        self.client.auth_failures += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let delay = self
            .pool
            .state
            .users
            .failure_delay(self.client.auth_failures, now);
        if !message.starts_with("WRONGPASS") || delay.is_zero() {
            self.push_error(message);
        } else {
            self.push(Pending::Delayed {
                reply: crate::fanout::encode_error(message),
                delay,
            });
        }
    }

    /// RESET: the connection as new (database, protocol, name, transaction,
    /// reply mode); answered `+RESET`.
    fn reset(&mut self) -> Flow {
        self.tx.reset();
        self.pubsub = None;
        let db = self.pool.config().redis_db;
        self.client.set_db(db);
        self.client.set_resp3(false);
        self.client.reply_mode = ReplyMode::On;
        self.client.entry.set_name(None);
        let user = self.pool.state.users.initial();
        self.client.set_user(user);
        self.client
            .entry
            .multi
            .store(-1, std::sync::atomic::Ordering::Relaxed);
        self.push(Pending::Ready(Bytes::from_static(b"+RESET\r\n")));
        Flow::Barrier
    }

    fn client_command(&mut self, request: &Request) -> Flow {
        let sub = request
            .arg(1)
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let argc = request.argc();
        let reply: Result<Bytes, String> = match (sub.as_slice(), argc) {
            (b"ID", 2) => Ok(integer(self.client.id() as i64)),
            (b"GETNAME", 2) => Ok(match self.client.entry.name() {
                Some(name) => bulk(name.as_bytes()),
                None => self.null(),
            }),
            (b"SETNAME", 3) => {
                let value = request.arg(2).unwrap_or_default();
                if valid_client_name(value) {
                    let name = String::from_utf8_lossy(value).into_owned();
                    self.client
                        .entry
                        .set_name((!name.is_empty()).then_some(name));
                    Ok(Bytes::from_static(b"+OK\r\n"))
                } else {
                    Err(INVALID_NAME.into())
                }
            }
            (b"INFO", 2) => Ok(verbatim_or_bulk(
                self.client.resp3,
                &format!("{}\n", self.client.entry.line()),
            )),
            (b"LIST", _) => Ok(self.client_list(request)),
            (b"KILL", _) => self.client_kill(request),
            (b"REPLY", 3) => {
                let mode = request.arg(2).unwrap_or_default();
                if mode.eq_ignore_ascii_case(b"ON") {
                    self.client.reply_mode = ReplyMode::On;
                    Ok(Bytes::from_static(b"+OK\r\n"))
                } else if mode.eq_ignore_ascii_case(b"OFF") {
                    self.client.reply_mode = ReplyMode::Off;
                    return Flow::Next;
                } else if mode.eq_ignore_ascii_case(b"SKIP") {
                    self.client.reply_mode = ReplyMode::SkipNext;
                    return Flow::Next;
                } else {
                    Err("ERR syntax error".into())
                }
            }
            (b"SETINFO", 4) | (b"NO-EVICT", 3) | (b"NO-TOUCH", 3) => {
                Ok(Bytes::from_static(b"+OK\r\n"))
            }
            (b"GETREDIR", 2) => Ok(integer(-1)),
            (b"TRACKINGINFO", 2) => Ok(self.tracking_info()),
            (b"PAUSE", 3 | 4) => self.client_pause(request),
            (b"UNPAUSE", 2) => {
                self.pool.state.pause.unpause();
                Ok(Bytes::from_static(b"+OK\r\n"))
            }
            (b"UNBLOCK", 3 | 4) => self.client_unblock(request),
            (b"TRACKING" | b"CACHING", _) => Err(format!(
                "ERR shardgate: CLIENT {} is not supported through the proxy",
                String::from_utf8_lossy(&sub)
            )),
            (b"HELP", 2) => Ok(client_help()),
            (
                b"ID" | b"GETNAME" | b"SETNAME" | b"INFO" | b"REPLY" | b"SETINFO" | b"NO-EVICT"
                | b"GETREDIR" | b"TRACKINGINFO" | b"HELP" | b"PAUSE" | b"UNPAUSE" | b"UNBLOCK",
                _,
            ) => Err(arity(&format!(
                "client|{}",
                String::from_utf8_lossy(&sub).to_lowercase()
            ))),
            _ if argc < 2 => Err(arity("client")),
            _ => Err(format!(
                "ERR unknown subcommand '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(request.arg(1).unwrap_or_default())
            )),
        };
        match reply {
            Ok(bytes) => self.push(Pending::Ready(bytes)),
            Err(message) => self.push_error(&message),
        }
        Flow::Next
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
        verbatim_or_bulk(self.client.resp3, &text)
    }

    /// CLIENT KILL addr | CLIENT KILL [ID id] [ADDR addr] [LADDR addr]
    /// [USER name] [SKIPME yes/no], among this pool's clients.
    fn client_kill(&self, request: &Request) -> Result<Bytes, String> {
        let clients = self.pool.state.clients.list();
        if request.argc() == 3 {
            let addr = request.arg(2).unwrap_or_default();
            return match clients.iter().find(|c| c.addr.as_bytes() == addr) {
                Some(entry) => {
                    entry.kill();
                    Ok(Bytes::from_static(b"+OK\r\n"))
                }
                None => Err("ERR No such client".into()),
            };
        }
        if request.argc() < 4 || !request.argc().is_multiple_of(2) {
            return Err("ERR syntax error".into());
        }
        let mut skip_me = true;
        let mut filters: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for pair in request.args().skip(2).collect::<Vec<_>>().chunks(2) {
            let [name, value] = pair else {
                return Err("ERR syntax error".into());
            };
            let name = name.to_ascii_uppercase();
            match name.as_slice() {
                b"SKIPME" => {
                    skip_me = match value.to_ascii_lowercase().as_slice() {
                        b"yes" => true,
                        b"no" => false,
                        _ => return Err("ERR syntax error".into()),
                    }
                }
                b"ID" | b"ADDR" | b"LADDR" | b"USER" => filters.push((name, value.to_vec())),
                _ => return Err("ERR syntax error".into()),
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
        Ok(integer(killed))
    }

    /// CLIENT PAUSE timeout [WRITE|ALL]: every client of the pool (this one
    /// included) holds the commands the mode covers until the timeout or
    /// CLIENT UNPAUSE, as Redis holds its clients.
    fn client_pause(&self, request: &Request) -> Result<Bytes, String> {
        let timeout = match parse_integer(request.arg(2).unwrap_or_default()) {
            Some(ms) if ms < 0 => return Err("ERR timeout is negative".into()),
            Some(ms) => ms,
            None => return Err("ERR timeout is not an integer or out of range".into()),
        };
        let mode = match request.arg(3) {
            None => crate::frontend::clients::PAUSE_ALL,
            Some(m) if m.eq_ignore_ascii_case(b"ALL") => crate::frontend::clients::PAUSE_ALL,
            Some(m) if m.eq_ignore_ascii_case(b"WRITE") => crate::frontend::clients::PAUSE_WRITE,
            Some(_) => return Err("ERR CLIENT PAUSE mode must be WRITE or ALL".into()),
        };
        let until = std::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(timeout).unwrap_or(0));
        self.pool.state.pause.pause(until, mode);
        Ok(Bytes::from_static(b"+OK\r\n"))
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking
    /// call as Redis would; 1 if it was blocked.
    fn client_unblock(&self, request: &Request) -> Result<Bytes, String> {
        use crate::frontend::clients::{UNBLOCK_ERROR, UNBLOCK_TIMEOUT};
        let Some(id) = parse_integer(request.arg(2).unwrap_or_default()) else {
            return Err("ERR value is not an integer or out of range".into());
        };
        let how = match request.arg(3) {
            None => UNBLOCK_TIMEOUT,
            Some(m) if m.eq_ignore_ascii_case(b"TIMEOUT") => UNBLOCK_TIMEOUT,
            Some(m) if m.eq_ignore_ascii_case(b"ERROR") => UNBLOCK_ERROR,
            Some(_) => return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into()),
        };
        let unblocked = u64::try_from(id)
            .ok()
            .and_then(|id| self.pool.state.clients.get(id))
            .is_some_and(|entry| entry.unblock(how));
        Ok(integer(i64::from(unblocked)))
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

    /// The proxy's slow log (requests slower than the pool's
    /// `slowlog_threshold` through the proxy).
    fn slowlog(&mut self, request: &Request) -> Flow {
        let log = &self.pool.state.slowlog;
        let sub = request
            .arg(1)
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let reply = match (sub.as_slice(), request.argc()) {
            (b"LEN", 2) => integer(log.len() as i64),
            (b"RESET", 2) => {
                log.reset();
                Bytes::from_static(b"+OK\r\n")
            }
            (b"GET", 2 | 3) => {
                let count = match request.arg(2) {
                    None => None,
                    Some(n) => match parse_integer(n) {
                        Some(n) if n >= -1 => Some(n),
                        _ => {
                            return self
                                .error_next("ERR count should be greater than or equal to -1")
                        }
                    },
                };
                slowlog_entries(&log.get(count))
            }
            (b"HELP", 2) => slowlog_help(),
            (b"LEN" | b"RESET" | b"GET" | b"HELP", _) => {
                let name = format!("slowlog|{}", String::from_utf8_lossy(&sub).to_lowercase());
                return self.error_next(&arity(&name));
            }
            _ => {
                let sub = String::from_utf8_lossy(request.arg(1).unwrap_or_default()).into_owned();
                return self.error_next(&format!(
                    "ERR unknown subcommand '{sub}'. Try SLOWLOG HELP."
                ));
            }
        };
        self.push(Pending::Ready(reply));
        Flow::Next
    }

    /// Decides what INFO needs: the proxy section alone, or the shards'
    /// sections (with the proxy section first when asked for).
    pub(super) fn info_plan(&self, request: &Request) -> InfoPlan {
        let sections: Vec<String> = request
            .args()
            .skip(1)
            .map(|s| String::from_utf8_lossy(s).to_lowercase())
            .collect();
        let wants_proxy = sections.is_empty()
            || sections
                .iter()
                .any(|s| matches!(s.as_str(), "proxy" | "all" | "everything" | "default"));
        let proxy = wants_proxy.then(|| self.proxy_info_section());
        if sections.len() == 1 && sections.first().is_some_and(|s| s == "proxy") {
            return InfoPlan::ProxyOnly(proxy.unwrap_or_default());
        }
        let clients = &self.pool.state.clients;
        let blocked = clients.blocked() as u64;
        let mut figures = vec![
            ("connected_clients", clients.count() as u64),
            ("blocked_clients", blocked),
            ("tracking_clients", 0),
            ("clients_in_timeout_table", blocked),
        ];
        let limit = self.pool.config().client_connections;
        if limit > 0 {
            figures.push(("maxclients", u64::from(limit)));
        }
        InfoPlan::Shards {
            patch: crate::fanout::broadcast::InfoPatch {
                proxy,
                clients: figures,
            },
        }
    }

    /// `# Proxy`: the proxy's version, uptime and workers, then one line
    /// per pool with its shards, clients and commands processed.
    fn proxy_info_section(&self) -> String {
        let proxy = &self.pool.state.proxy;
        let pools = proxy.pools();
        let mut text = format!(
            "# Proxy\r\nproxy:shardgate\r\nproxy_version:{}\r\nuptime_in_seconds:{}\r\nworkers:{}\r\npools:{}\r\nthis_pool:{}\r\n",
            crate::proxy_info::ProxyInfo::version(),
            proxy.uptime().as_secs(),
            proxy.workers,
            pools.len(),
            self.pool.config().name,
        );
        for pool in pools {
            let topology = pool.topology();
            let workers = pool.worker_stats();
            let commands: u64 = workers
                .iter()
                .map(|w| w.commands().map(|(_, c)| c.requests.get()).sum::<u64>())
                .sum();
            let replica_reads: u64 = workers.iter().map(|w| w.replica_reads.get()).sum();
            text.push_str(&format!(
                "pool_{}:shards={},shards_without_master={},clients={},commands_processed={commands},replica_reads={replica_reads}\r\n",
                pool.config.name,
                topology.shard_count(),
                topology.shards.iter().filter(|s| s.master.is_none() && !s.ejected).count(),
                pool.clients.count(),
            ));
        }
        text.push_str("\r\n");
        text
    }

    pub(super) fn encode_info(&self, text: &str) -> Bytes {
        verbatim_or_bulk(self.client.resp3, text)
    }

    fn null(&self) -> Bytes {
        Bytes::from_static(if self.client.resp3 {
            b"_\r\n"
        } else {
            b"$-1\r\n"
        })
    }
}

enum HelloValue {
    Str(&'static str),
    Int(i64),
    EmptyArray,
}

const INVALID_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";

/// Redis's rule: printable ASCII without spaces.
fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// Redis's wording for a wrong number of arguments.
pub(super) fn arity(command: &str) -> String {
    format!("ERR wrong number of arguments for '{command}' command")
}

/// `string2ll`: an integer with no sign quirks or spaces.
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.starts_with('+') || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

fn bulk(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 16);
    resp::encode::bulk(&mut out, payload);
    out.freeze()
}

fn integer(n: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(24);
    resp::encode::integer(&mut out, n);
    out.freeze()
}

/// A text reply: a verbatim string in RESP3 (as Redis sends CLIENT LIST
/// and INFO), a bulk string in RESP2.
pub(super) fn verbatim_or_bulk(resp3: bool, text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 24);
    if resp3 {
        out.extend_from_slice(format!("={}\r\ntxt:", text.len() + 4).as_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        resp::encode::bulk(&mut out, text.as_bytes());
    }
    out.freeze()
}

fn client_help() -> Bytes {
    let lines = [
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
        "HELP",
        "    Print this help.",
    ];
    help_reply(&lines)
}

/// A HELP subcommand's reply: one simple string per line, as Redis sends it.
pub(super) fn help_reply(lines: &[&str]) -> Bytes {
    let mut out = BytesMut::new();
    resp::encode::array_header(&mut out, lines.len());
    for line in lines {
        resp::encode::simple(&mut out, line.as_bytes());
    }
    out.freeze()
}

/// SLOWLOG GET's reply: Redis's six fields per entry, then the node.
fn slowlog_entries(entries: &[crate::metrics::SlowEntry]) -> Bytes {
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

fn slowlog_help() -> Bytes {
    let lines = [
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
    ];
    help_reply(&lines)
}
