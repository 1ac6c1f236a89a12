//! Routing: (request, topology) -> where it goes. Pure: no I/O, no state,
//! so every rule is tested exhaustively without sockets.

use resp::Request;

use crate::topology::PoolTopology;

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Answered by the proxy itself.
    Local(Local),
    /// Forwarded unchanged to one server (index into the topology).
    Shard(usize),
    /// The command puts the connection into a state (a transaction, a
    /// subscription, a blocking wait, a database, a protocol version) that
    /// a shared connection cannot carry: the client gets a connection of
    /// its own to this server, and its bytes are relayed as they are.
    Tunnel(usize),
    /// Refused with this error (without the leading `-`).
    Error(String),
}

/// Commands the proxy answers without a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// PING without an argument: `+PONG`.
    Pong,
    /// PING or ECHO with an argument: the argument as a bulk string.
    Echo,
    /// QUIT: `+OK`, then the connection closes.
    Quit,
}

/// Decides where `request` goes in a pool laid out as `topology`.
pub fn route(request: &Request, topology: &PoolTopology) -> Route {
    let Some(name) = request.arg(0) else {
        return Route::Error("ERR empty command".into());
    };
    if let Some(local) = local_command(name, request.argc()) {
        return local;
    }
    let stateful = needs_own_connection(name, request);
    if topology.shard_count() == 1 {
        // twemproxy's short-circuit: a one-server pool sends everything there.
        return if stateful { Route::Tunnel(0) } else { Route::Shard(0) };
    }
    if stateful {
        return Route::Error(format!(
            "ERR shardgate: '{}' is not supported on a pool with several servers",
            String::from_utf8_lossy(name).to_lowercase()
        ));
    }
    match request.arg(1).and_then(|key| topology.shard_of(key)) {
        Some(shard) => Route::Shard(shard),
        None => Route::Error("ERR shardgate: no live server in the pool".into()),
    }
}

fn local_command(name: &[u8], argc: usize) -> Option<Route> {
    if name.eq_ignore_ascii_case(b"PING") {
        return Some(match argc {
            1 => Route::Local(Local::Pong),
            2 => Route::Local(Local::Echo),
            _ => Route::Error(wrong_arity("ping")),
        });
    }
    if name.eq_ignore_ascii_case(b"ECHO") {
        return Some(match argc {
            2 => Route::Local(Local::Echo),
            _ => Route::Error(wrong_arity("echo")),
        });
    }
    if name.eq_ignore_ascii_case(b"QUIT") {
        return Some(Route::Local(Local::Quit));
    }
    None
}

/// Commands that change the state of the connection they run on, or hold
/// it (blocking), so they cannot share a pipelined backend connection.
const CONNECTION_STATE_COMMANDS: &[&[u8]] = &[
    b"AUTH", b"HELLO", b"SELECT", b"MULTI", b"WATCH", b"SUBSCRIBE", b"PSUBSCRIBE",
    b"SSUBSCRIBE", b"MONITOR", b"RESET", b"READONLY", b"READWRITE", b"ASKING", b"SYNC",
    b"PSYNC", b"REPLCONF", b"BLPOP", b"BRPOP", b"BRPOPLPUSH", b"BLMOVE", b"BLMPOP",
    b"BZPOPMIN", b"BZPOPMAX", b"BZMPOP", b"WAIT", b"WAITAOF",
];

/// CLIENT subcommands that change the connection they run on.
const CONNECTION_STATE_CLIENT_SUBCOMMANDS: &[&[u8]] = &[
    b"TRACKING", b"REPLY", b"SETNAME", b"NO-EVICT", b"NO-TOUCH", b"CACHING", b"SETINFO",
];

fn needs_own_connection(name: &[u8], request: &Request) -> bool {
    if CONNECTION_STATE_COMMANDS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
        return true;
    }
    let sub = request.arg(1).unwrap_or_default();
    if name.eq_ignore_ascii_case(b"CLIENT") {
        return CONNECTION_STATE_CLIENT_SUBCOMMANDS.iter().any(|c| sub.eq_ignore_ascii_case(c));
    }
    if name.eq_ignore_ascii_case(b"XREAD") || name.eq_ignore_ascii_case(b"XREADGROUP") {
        // Only their BLOCK form waits.
        return request.args().skip(1).any(|arg| arg.eq_ignore_ascii_case(b"BLOCK"));
    }
    false
}

/// Redis's wording for a wrong number of arguments.
pub fn wrong_arity(command: &str) -> String {
    format!("ERR wrong number of arguments for '{command}' command")
}
