//! Scripts through the proxy: bodies remembered as clients send them
//! (EVAL, SCRIPT LOAD), loaded ahead of an EVALSHA on a connection that
//! has not used them, and an EVALSHA answered `NOSCRIPT` (a failover, a
//! restart: Redis does not replicate its script cache) loaded and retried.
//! The pool's cache of bodies and which commands carry code are in core
//! (`scripts`); what a script does on moving keys is in `moving`.

use std::rc::Rc;

use bytes::Bytes;
use resp::Request;

use super::pending::{EvalShaRetry, Pending};
use super::{ClientStream, Flow, Session};
use crate::backend::{Conn, Node, ReplyResult, ReplySlot};
use crate::command;
use crate::metrics::UNKNOWN_COMMAND;
use crate::scripts::{self, ScriptUse};

impl<S: ClientStream> Session<S> {
    /// How the command being dispatched uses scripts.
    pub(super) fn script_use(&self) -> ScriptUse {
        if self.command == UNKNOWN_COMMAND {
            return ScriptUse::None;
        }
        scripts::script_use(command::CommandId(self.command))
    }

    /// Remembers script bodies (EVAL, SCRIPT LOAD) for NOSCRIPT retries.
    pub(super) fn note_script(&self, request: &Request) {
        if let ScriptUse::Body(index) = self.script_use() {
            if let Some(body) = request.arg(index) {
                if self.pool.first_sight_of_script(body) {
                    self.pool.state.scripts.remember(body);
                }
            }
        }
    }

    /// EVALSHA on the node's shared connection, retried once loaded
    /// should the node answer NOSCRIPT.
    pub(super) fn evalsha(&mut self, node: &Rc<Node>, request: Request) -> Flow {
        let conn = node.with_shared(self.client.conn_key(), self.client.id(), Conn::clone);
        self.load_script_first(&conn, &request);
        let slot = conn.send(request.raw.clone());
        let retry = Box::new(EvalShaRetry {
            conn,
            request: request.raw,
            state: self.pool.state.clone(),
        });
        self.push(Pending::EvalSha { slot, retry });
        Flow::Next
    }

    /// EVALSHA on a connection that has not used the script yet: sends
    /// SCRIPT LOAD ahead of it when the proxy knows the body, so the call
    /// runs in order even on a server that lost its scripts. (The NOSCRIPT
    /// retry remains for scripts flushed behind the proxy's back.)
    fn load_script_first(&self, conn: &Conn, request: &Request) {
        let Some(sha) = request.arg(1) else { return };
        if !conn.first_use_of_script(sha) {
            return;
        }
        if let Some(body) = self.pool.state.scripts.body(sha) {
            // Its reply (the SHA) is not needed.
            drop(conn.send(load(&body)));
        }
    }
}

impl EvalShaRetry {
    /// The EVALSHA's reply, or, if it was NOSCRIPT and the proxy has seen
    /// the script, the reply of the call run again once loaded.
    pub async fn resolve(&self, slot: ReplySlot) -> ReplyResult {
        let reply = slot.await;
        if let Ok(frame) = &reply {
            if frame.starts_with(b"-NOSCRIPT") {
                if let Some(retried) = self.run().await {
                    return retried;
                }
            }
        }
        reply
    }

    /// Loads the script and runs the EVALSHA again; None if the proxy has
    /// not seen the script (the NOSCRIPT stands).
    async fn run(&self) -> Option<ReplyResult> {
        let mut buf = bytes::BytesMut::from(&self.request[..]);
        let request = resp::RequestParser::new(resp::Limits::default())
            .next(&mut buf)
            .ok()??;
        let body = self.state.scripts.body(request.arg(1)?)?;
        drop(self.conn.send(load(&body)));
        Some(self.conn.send(self.request.clone()).await)
    }
}

/// `SCRIPT LOAD body`.
fn load(body: &[u8]) -> Bytes {
    Request::from_args(&[&b"SCRIPT"[..], b"LOAD", body]).raw
}
