//! Dispatch: turns a routed request into a pending reply. The session
//! collects pending replies in request order.

use bytes::{Bytes, BytesMut};
use resp::Request;

use crate::backend::ReplyReceiver;
use crate::route::{self, Local, Route};
use crate::worker::pool::{PoolView, PoolWorker};

/// A reply that is ready, or will be.
pub enum Pending {
    Ready(Bytes),
    Backend(ReplyReceiver),
}

impl Pending {
    /// An error reply; `message` carries its prefix (`ERR ...`).
    pub fn error(message: &str) -> Pending {
        let mut out = BytesMut::with_capacity(message.len() + 3);
        resp::encode::error(&mut out, message);
        Pending::Ready(out.freeze())
    }

    /// Waits for the reply bytes.
    pub async fn resolve(self) -> Bytes {
        match self {
            Pending::Ready(bytes) => bytes,
            Pending::Backend(receiver) => match receiver.await {
                Ok(Ok(reply)) => reply,
                Ok(Err(error)) => error_bytes(&error.client_message()),
                Err(_) => error_bytes("ERR shardgate: backend connection closed"),
            },
        }
    }
}

fn error_bytes(message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 3);
    resp::encode::error(&mut out, message);
    out.freeze()
}

/// What a session does with a request.
pub enum Dispatched {
    Reply(Pending),
    /// Reply, then close the connection.
    Quit(Pending),
    /// Relay this client's bytes to the server on a connection of its own
    /// from now on, starting with `request`.
    Tunnel { server: usize, request: Request },
}

/// Routes `request` and starts it on its way.
pub async fn dispatch(_pool: &PoolWorker, view: &PoolView, request: Request) -> Dispatched {
    let pending = match route::route(&request, &view.topology) {
        Route::Local(Local::Pong) => Pending::Ready(Bytes::from_static(b"+PONG\r\n")),
        Route::Local(Local::Echo) => {
            let arg = request.arg(1).unwrap_or_default();
            let mut out = BytesMut::with_capacity(arg.len() + 16);
            resp::encode::bulk(&mut out, arg);
            Pending::Ready(out.freeze())
        }
        Route::Local(Local::Quit) => {
            return Dispatched::Quit(Pending::Ready(Bytes::from_static(b"+OK\r\n")))
        }
        Route::Tunnel(server) => return Dispatched::Tunnel { server, request },
        Route::Error(message) => Pending::error(&message),
        Route::Shard(shard) => match view.servers.get(shard) {
            Some(server) => match server.pick().send(request.raw).await {
                Ok(receiver) => Pending::Backend(receiver),
                Err(error) => Pending::error(&error.client_message()),
            },
            None => Pending::error("ERR shardgate: internal error: no such shard"),
        },
    };
    Dispatched::Reply(pending)
}
