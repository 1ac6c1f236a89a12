//! Routing: (request, command, topology) -> where it goes. Pure: no I/O,
//! no state, so every rule is tested without sockets.
//!
//! # Layout
//! - `class`: how each command is routed ([`Class`]).

mod class;

pub use class::{class_of, Class, Merge, SessionCommand, SplitKind, SubKind};

use resp::Request;

use crate::command::{CommandSpec, Group, Resolution};
use crate::topology::Topology;

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To one shard: the shard of its keys or, for a command without keys,
    /// the pool's default shard (`keyless`).
    Shard {
        shard: usize,
        /// The command only reads: a replica may answer it.
        read: bool,
        /// The call may block (BLPOP, XREAD BLOCK, WAIT...).
        blocking: bool,
        keyless: bool,
    },
    /// Split per shard and merged (keys on several shards).
    Split(SplitKind),
    /// Sent to every shard, replies merged.
    Broadcast(Merge),
    /// SCAN, shard by shard.
    Scan,
    /// CONFIG GET on this shard: secrets are redacted from the reply.
    ConfigGet {
        shard: usize,
    },
    /// Answered or driven by the client session.
    Session(SessionCommand),
    Refuse(Refusal),
}

/// Why a request is refused; [`Refusal::message`] words it for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Keys on several shards, for a command that cannot be split.
    CrossSlot,
    /// Every shard is ejected.
    NoShard,
    /// Meaningless on a pool with several shards.
    MultiShard(&'static str),
    /// Would change or stop the server under every client.
    ServerOnly(&'static str),
    /// CONFIG SET of a setting the proxy depends on.
    ProtectedConfig(&'static str),
    /// Only a replica speaks it to its master; never through a proxy.
    ReplicaLink(&'static str),
    /// A transaction, script or blocking call on a key that is moving to
    /// another server (resharding): it cannot follow the key; retry.
    Moving,
    /// The proxy lost the coordination store of a pool whose keys may be
    /// moving: it cannot know where they are.
    OutOfStep,
    /// CLUSTER, ASKING, READONLY, READWRITE on a pool without
    /// `cluster_proxies`: the proxy is one plain Redis to its clients (a
    /// cluster pool's own answers would turn smart clients to the nodes;
    /// ASKING or READWRITE would change a shared connection under every
    /// client).
    NotCluster,
}

impl Refusal {
    /// The error a client gets (without the leading `-`).
    pub fn message(&self, pool: &str) -> String {
        match self {
            Refusal::CrossSlot => CROSSSLOT.to_string(),
            Refusal::NoShard => format!("ERR shardgate: pool '{pool}' has no live server"),
            Refusal::MultiShard(name) => format!(
                "ERR shardgate: '{name}' is not supported on pool '{pool}', which has several shards"
            ),
            Refusal::ServerOnly(name) => format!(
                "ERR shardgate: '{name}' is not allowed through the proxy: it would affect every client of pool '{pool}'; run it on the server itself"
            ),
            Refusal::ProtectedConfig(name) => format!(
                "ERR shardgate: CONFIG SET '{name}' is not allowed through the proxy: pool '{pool}' depends on it; change it on the servers themselves"
            ),
            Refusal::ReplicaLink(name) => format!(
                "ERR shardgate: '{name}' is part of the replication protocol and is not supported through the proxy; connect replicas to the server itself"
            ),
            Refusal::Moving => format!(
                "TRYAGAIN shardgate: a key of this request is moving to another server of pool '{pool}' (resharding); transactions, scripts and blocking calls on it must wait: retry"
            ),
            // Redis's words on an instance without cluster support.
            Refusal::NotCluster => "ERR This instance has cluster support disabled".to_string(),
            Refusal::OutOfStep => format!(
                "TRYAGAIN shardgate: this proxy lost contact with the coordination store of pool '{pool}' and cannot know where moving keys are: retry, or use another proxy"
            ),
        }
    }
}

/// Redis Cluster's wording for keys on several slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Server settings the proxy depends on; CONFIG SET of any of them is
/// refused. Credentials (a changed password locks the proxy out), limits
/// that make the server close or refuse a connection (a shared connection
/// carries every client's requests), and the script time limit (BUSY).
const PROTECTED_CONFIG: &[&str] = &[
    "requirepass",
    "masterauth",
    "masteruser",
    "timeout",
    "maxclients",
    "maxmemory-clients",
    "client-output-buffer-limit",
    "client-query-buffer-limit",
    "proto-max-bulk-len",
    "busy-reply-threshold",
    "lua-time-limit",
    "port",
    "bind",
    "unixsocket",
    "unixsocketperm",
    "protected-mode",
    "enable-protected-configs",
    "enable-debug-command",
    "enable-module-command",
    "aclfile",
];

/// The protected setting among CONFIG SET's `name value` pairs, if any
/// (TLS settings too: the proxy's connections depend on them).
pub fn protected_config(request: &Request) -> Option<&'static str> {
    (2..request.argc()).step_by(2).find_map(|i| {
        let name = request.arg(i)?;
        if name.len() > 4
            && name
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"tls-"))
        {
            return Some("tls-*");
        }
        PROTECTED_CONFIG
            .iter()
            .find(|p| p.as_bytes().eq_ignore_ascii_case(name))
            .copied()
    })
}

/// Decides where `request` goes. `keys` is scratch space (cleared here)
/// and holds the key argument indexes afterwards.
pub fn route(
    request: &Request,
    resolution: &Resolution,
    topology: &Topology,
    keys: &mut Vec<usize>,
) -> Route {
    keys.clear();
    if let Resolution::Known(_, spec) | Resolution::UnknownSubcommand(_, spec) = *resolution {
        if spec.group() == Group::Cluster {
            return match topology.config.cluster_face {
                Some(_) => Route::Session(SessionCommand::Cluster),
                None => Route::Refuse(Refusal::NotCluster),
            };
        }
    }
    let (id, spec) = match *resolution {
        Resolution::Known(id, spec) => (id, spec),
        // CLIENT, ACL and SLOWLOG are the proxy's whatever the subcommand:
        // an unknown one is answered by the session (never forwarded on a
        // shared connection); other containers let the server answer.
        Resolution::UnknownSubcommand(id, _) => {
            return match class_of(id) {
                Class::Session(command) => Route::Session(command),
                _ => default_shard(topology, false, false),
            }
        }
        Resolution::Unknown => {
            // Not in the table (renamed, or newer than the table): a write
            // to the master of the shard of argument 1, as a guess at its key.
            return match request.arg(1) {
                Some(key) => match topology.shard_of(key) {
                    Some(shard) => shard_route(shard, false, false, false),
                    None => Route::Refuse(Refusal::NoShard),
                },
                None => default_shard(topology, false, false),
            };
        }
    };
    let single = topology.shard_count() == 1;
    match class_of(id) {
        Class::Session(command) => Route::Session(command),
        Class::ReplicaLink => Route::Refuse(Refusal::ReplicaLink(spec.name())),
        Class::ServerOnly => Route::Refuse(Refusal::ServerOnly(spec.name())),
        Class::ConfigSet => match protected_config(request) {
            Some(name) => Route::Refuse(Refusal::ProtectedConfig(name)),
            None if single => keyed(request, spec, topology, keys),
            None => Route::Broadcast(Merge::AllOk),
        },
        Class::ConfigGet => match keyed(request, spec, topology, keys) {
            Route::Shard { shard, .. } => Route::ConfigGet { shard },
            other => other,
        },
        Class::SingleShard if single => keyed(request, spec, topology, keys),
        Class::SingleShard => Route::Refuse(Refusal::MultiShard(spec.name())),
        Class::Keyed => keyed(request, spec, topology, keys),
        Class::Channel => match request.arg(1) {
            Some(channel) => match topology.shard_of(channel) {
                Some(shard) => shard_route(shard, false, false, false),
                None => Route::Refuse(Refusal::NoShard),
            },
            // Wrong arity: the server words the error.
            None => default_shard(topology, false, false),
        },
        Class::Split(kind) => {
            let route = keyed(request, spec, topology, keys);
            match route {
                Route::Refuse(Refusal::CrossSlot) if splittable(kind, request, spec) => {
                    Route::Split(kind)
                }
                other => other,
            }
        }
        Class::Broadcast(merge) if !single || merge.even_on_one_shard() => Route::Broadcast(merge),
        Class::Scan if !single => Route::Scan,
        Class::Broadcast(_) | Class::Scan => keyed(request, spec, topology, keys),
    }
}

/// A split needs well-formed arguments; otherwise the command goes whole
/// to one shard, which answers with Redis's own arity error.
fn splittable(kind: SplitKind, request: &Request, spec: &CommandSpec) -> bool {
    spec.arity_ok(request.argc()) && (kind != SplitKind::Mset || request.argc() % 2 == 1)
}

fn shard_route(shard: usize, read: bool, blocking: bool, keyless: bool) -> Route {
    Route::Shard {
        shard,
        read,
        blocking,
        keyless,
    }
}

/// The shard commands without keys go to: the first live one.
pub fn default_shard_index(topology: &Topology) -> Option<usize> {
    topology.live_shards().next().map(|(i, _)| i)
}

fn default_shard(topology: &Topology, read: bool, blocking: bool) -> Route {
    match default_shard_index(topology) {
        Some(shard) => shard_route(shard, read, blocking, true),
        None => Route::Refuse(Refusal::NoShard),
    }
}

/// Routes by the command's keys: all on one shard, or CROSSSLOT.
fn keyed(
    request: &Request,
    spec: &CommandSpec,
    topology: &Topology,
    keys: &mut Vec<usize>,
) -> Route {
    let read = spec.is_readonly();
    let blocking = spec.is_blocking_call(request);
    spec.keys(request, keys);
    let mut shard = None;
    // A cluster node refuses keys of two slots even when it serves both
    // (computed from the second key on: one key needs no compare).
    let cluster = topology.is_cluster() && keys.len() > 1;
    let mut slot = None;
    for &index in keys.iter() {
        let key = request.arg(index).unwrap_or_default();
        if cluster {
            let this = keyspace::cluster_slot(key);
            if *slot.get_or_insert(this) != this {
                return Route::Refuse(Refusal::CrossSlot);
            }
        }
        match (topology.shard_of(key), shard) {
            (None, _) => return Route::Refuse(Refusal::NoShard),
            (Some(s), None) => shard = Some(s),
            (Some(s), Some(first)) if s != first => return Route::Refuse(Refusal::CrossSlot),
            _ => {}
        }
    }
    match shard {
        Some(shard) => shard_route(shard, read, blocking, false),
        None => default_shard(topology, read, blocking),
    }
}

#[cfg(test)]
mod tests;
