//! Commands the proxy answers itself, one module per family, dispatched
//! by the command table's entry (its id and name; the dispatcher has
//! checked its arity against the table already).
//!
//! # Layout
//! - `connection`: PING, ECHO, QUIT, SELECT, HELLO, AUTH, RESET.
//! - `client`: CLIENT and its subcommands, about the pool's clients.
//! - `acl`: ACL, from the proxy's own users.
//! - `slowlog`: SLOWLOG, the proxy's slow log.
//! - `info`: INFO's plan and the proxy's own section.
//! - `cluster`: CLUSTER and its connection flags, as the proxies'
//!   own cluster (`cluster_proxies`).
//!
//! Transactions, Pub/Sub and MONITOR drive backend connections and live
//! beside the session loop (`transaction`, `pubsub`).

mod acl;
mod client;
mod cluster;
mod connection;
pub(super) mod info;
mod slowlog;

use resp::Request;

use super::{ClientStream, Flow, Session};
use crate::command::Resolution;
use crate::error::CommandError;
use crate::route::SessionCommand;

impl<S: ClientStream> Session<S> {
    /// A command the session answers or drives.
    pub(super) fn session_command(
        &mut self,
        command: SessionCommand,
        request: Request,
        resolution: &Resolution,
    ) -> Flow {
        match command {
            SessionCommand::Ping => self.ping(&request),
            SessionCommand::Echo => self.echo(&request),
            SessionCommand::Quit => self.quit(),
            SessionCommand::Select => self.select(&request),
            SessionCommand::Hello => self.hello(&request),
            SessionCommand::Auth => self.auth(&request),
            SessionCommand::Reset => self.reset(),
            SessionCommand::Multi => self.multi(),
            SessionCommand::Exec => self.error_next("ERR EXEC without MULTI"),
            SessionCommand::Discard => self.error_next("ERR DISCARD without MULTI"),
            SessionCommand::Watch => self.watch(request),
            SessionCommand::Unwatch => self.unwatch(),
            SessionCommand::Client => self.client_command(&request, resolution),
            SessionCommand::Subscribe(kind) => self.subscribe(kind, request),
            SessionCommand::Unsubscribe(kind) => self.unsubscribe(kind, request),
            SessionCommand::Monitor => self.monitor(),
            SessionCommand::Slowlog => self.slowlog(&request, resolution),
            SessionCommand::Acl => self.acl(&request, resolution),
            SessionCommand::Cluster => self.cluster(&request, resolution),
        }
    }

    /// Queues `message` as an error reply and goes on.
    fn error_next(&mut self, message: &str) -> Flow {
        self.push_error(message);
        Flow::Next
    }

    /// Queues a reply the proxy made (or an error) and goes on.
    fn answer(&mut self, reply: Result<bytes::Bytes, CommandError>) -> Flow {
        match reply {
            Ok(bytes) => self.push(super::pending::Pending::Ready(bytes)),
            Err(error) => self.push_error(&error.to_string()),
        }
        Flow::Next
    }
}

/// The subcommand a container command resolved to (`setname` of
/// `client|setname`), or the one the client named when the table does not
/// know it.
fn subcommand<'a>(request: &'a Request, resolution: &Resolution) -> Subcommand<'a> {
    match resolution {
        Resolution::Known(_, spec) if spec.is_subcommand() => {
            Subcommand::Known(spec.subcommand_name())
        }
        _ => Subcommand::Unknown(request.arg(1).unwrap_or_default()),
    }
}

enum Subcommand<'a> {
    /// A subcommand of the table, by its lowercase name.
    Known(&'static str),
    /// Not in the table: the client's word.
    Unknown(&'a [u8]),
}
