//! Commands about the client's own connection, answered as Redis answers
//! them: PING, ECHO, QUIT, SELECT, HELLO, AUTH, RESET.

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::super::client::ReplyMode;
use super::super::pending::Pending;
use super::super::reply::{self, OK};
use super::super::{ClientStream, End, Flow, Session};
use super::client::{valid_client_name, INVALID_NAME};
use crate::auth::AuthError;
use crate::command::REDIS_VERSION;
use crate::error::CommandError;

impl<S: ClientStream> Session<S> {
    pub(super) fn ping(&mut self, request: &Request) -> Flow {
        // The table's arity (-1) admits more; Redis's own check does not.
        if request.argc() > 2 {
            return self.answer(Err(CommandError::Arity("ping")));
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
                Some(arg) => reply::bulk(arg),
            }
        };
        self.push(Pending::Ready(reply));
        Flow::Next
    }

    pub(super) fn echo(&mut self, request: &Request) -> Flow {
        let reply = reply::bulk(request.arg(1).unwrap_or_default());
        self.push(Pending::Ready(reply));
        Flow::Next
    }

    pub(super) fn quit(&mut self) -> Flow {
        self.push(Pending::Ready(OK));
        Flow::Close(End::Quit)
    }

    /// SELECT: the client's database; its requests then use backend
    /// connections that have selected it. A barrier, so commands before
    /// and after it keep their order across the two connection sets.
    pub(super) fn select(&mut self, request: &Request) -> Flow {
        let Some(db) = resp::string2ll(request.arg(1).unwrap_or_default()) else {
            return self.error_next("ERR value is not an integer or out of range");
        };
        // Redis Cluster's own answer: cluster nodes have database 0 only.
        if self.config().cluster && db != 0 {
            return self.error_next("ERR SELECT is not allowed in cluster mode");
        }
        let databases = i64::from(self.config().databases);
        let Some(db) = u32::try_from(db)
            .ok()
            .filter(|&db| i64::from(db) < databases)
        else {
            return self.error_next("ERR DB index is out of range");
        };
        self.client.set_db(db);
        self.tx.follow_on_pinned(request.raw.clone());
        self.push(Pending::Ready(OK));
        Flow::Barrier
    }

    /// HELLO [protover [AUTH user pass] [SETNAME name]]: the protocol the
    /// client speaks (its requests then use RESP3 backend connections) and
    /// the server's identity.
    pub(super) fn hello(&mut self, request: &Request) -> Flow {
        let mut resp3 = self.client.resp3;
        if let Some(version) = request.arg(1) {
            match resp::string2ll(version) {
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
                if let Err(error) = self.authenticate(Some(user), password) {
                    self.push_auth_failure(error);
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
            (
                "mode",
                HelloValue::Str(if self.pool.state.config().cluster_face.is_some() {
                    "cluster"
                } else {
                    "standalone"
                }),
            ),
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

    pub(super) fn auth(&mut self, request: &Request) -> Flow {
        let result = match request.argc() {
            2 => self.authenticate(None, request.arg(1).unwrap_or_default()),
            3 => self.authenticate(request.arg(1), request.arg(2).unwrap_or_default()),
            _ => Err(AuthError::Syntax),
        };
        match result {
            Ok(()) => self.push(Pending::Ready(OK)),
            Err(error) => self.push_auth_failure(error),
        }
        Flow::Next
    }

    /// Checks credentials against the pool's client users (see
    /// [`crate::auth::Users`]); on success the client is that user.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8]) -> Result<(), AuthError> {
        let user = self.pool.state.users().authenticate(user, password)?;
        self.client.set_user(Some(user));
        Ok(())
    }

    /// A failed AUTH: the error, held back longer the more this connection
    /// (or the pool) fails, so passwords cannot be guessed quickly.
    fn push_auth_failure(&mut self, error: AuthError) {
        self.client.auth_failures += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let delay = self
            .pool
            .state
            .users()
            .failure_delay(self.client.auth_failures, now);
        let message = error.to_string();
        if error != AuthError::WrongPass || delay.is_zero() {
            self.push_error(&message);
        } else {
            self.push(Pending::Delayed {
                reply: crate::fanout::encode_error(&message),
                delay,
            });
        }
    }

    /// RESET: the connection as new (database, protocol, name, transaction,
    /// reply mode); answered `+RESET`.
    pub(super) fn reset(&mut self) -> Flow {
        self.tx.reset();
        self.pubsub = None;
        let db = self.config().redis_db;
        self.client.set_db(db);
        self.client.set_resp3(false);
        self.client.reply_mode = ReplyMode::On;
        self.client.entry.set_name(None);
        let user = self.pool.state.users().initial();
        self.client.set_user(user);
        self.client.entry.set_multi(-1, 0);
        self.push(Pending::Ready(Bytes::from_static(b"+RESET\r\n")));
        Flow::Barrier
    }
}

enum HelloValue {
    Str(&'static str),
    Int(i64),
    EmptyArray,
}
