//! How each command is routed, decided once per command id: most commands
//! go to the shard of their keys; these are the exceptions.

use std::sync::OnceLock;

use crate::command::{id_of, CommandId};

/// Commands the client session answers or drives itself, because they
/// concern the client's connection rather than the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCommand {
    Auth,
    Hello,
    Select,
    Quit,
    Reset,
    Ping,
    Echo,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Subscribe(SubKind),
    Unsubscribe(SubKind),
    Monitor,
    /// CLIENT and its subcommands: about the proxy's clients.
    Client,
    /// SLOWLOG: the proxy's own slow log.
    Slowlog,
    /// ACL: about the proxy's own users (read-only subcommands).
    Acl,
    /// CLUSTER, READONLY, READWRITE, ASKING with `cluster_proxies`: the
    /// proxies answer as a cluster of their own.
    Cluster,
}

/// The three subscription families of Redis 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKind {
    /// SUBSCRIBE: a channel, on the shard its name hashes to.
    Channel,
    /// PSUBSCRIBE: a pattern, on every shard.
    Pattern,
    /// SSUBSCRIBE: a shard channel, on the shard its name hashes to.
    Shard,
}

/// Multi-key commands split per shard and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// MGET: values in key order.
    Mget,
    /// MSET: OK when every shard says OK.
    Mset,
    /// DEL, UNLINK, EXISTS, TOUCH: counts summed.
    Count,
}

/// How the replies of a command sent to every shard become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// `+OK` only if every shard says so; else the first error, naming its shard.
    AllOk,
    /// Every shard must give the same reply (SCRIPT LOAD's SHA, FUNCTION
    /// LOAD's library name); it is passed on.
    Same,
    /// Integers summed (DBSIZE).
    Sum,
    /// WAIT: run on every shard after the client's writes; the smallest
    /// count (replicas that acknowledged on every shard).
    Wait,
    /// Arrays concatenated (KEYS).
    Concat,
    /// Arrays of distinct strings, their union (PUBSUB CHANNELS).
    Union,
    /// Arrays of 0/1, element-wise AND (SCRIPT EXISTS: loaded everywhere).
    AndArrays,
    /// `[name, count, ...]` pairs with counts summed per name (PUBSUB NUMSUB).
    SumPairs,
    /// The largest integer (PUBSUB NUMPAT: patterns live on every shard).
    Max,
    /// The first success, else the first error (SCRIPT KILL: the busy shard).
    AnyOk,
    /// The smallest integer (LASTSAVE: the oldest last save).
    Min,
    /// RANDOMKEY: a key from any shard that has one.
    RandomKey,
    /// INFO: the first shard's sections with the keyspace summed over
    /// shards, after a `# Proxy` section.
    Info,
}

impl Merge {
    /// INFO (the proxy's section), WAIT (the proxy's way of waiting) and
    /// SCRIPT / FUNCTION KILL (over side connections, never queued behind
    /// the script) take the broadcast path even on a one-shard pool.
    pub fn even_on_one_shard(self) -> bool {
        matches!(self, Merge::Info | Merge::Wait | Merge::AnyOk)
    }
}

/// How a command is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// To the shard of its keys (all keys on one shard), or, without keys,
    /// to the pool's default shard.
    Keyed,
    /// To the shard that argument 1, a channel name, hashes to (PUBLISH).
    Channel,
    Session(SessionCommand),
    Split(SplitKind),
    /// To every shard, replies merged; on a one-shard pool, forwarded.
    Broadcast(Merge),
    /// SCAN: shard by shard, the cursor saying which.
    Scan,
    /// Meaningless across shards: refused unless the pool has one shard.
    SingleShard,
    /// Would change or stop the server under every client, or turn the
    /// connection into something else (DEBUG, SHUTDOWN, REPLICAOF,
    /// FAILOVER, SCRIPT DEBUG, MODULE LOAD): never through the proxy.
    ServerOnly,
    /// CONFIG SET: refused for the settings the proxy depends on.
    ConfigSet,
    /// CONFIG GET: forwarded, secrets redacted from the reply.
    ConfigGet,
    /// Turns the connection into a replication link (SYNC, PSYNC) or is
    /// answered with no reply at all (REPLCONF ACK): either would shift a
    /// shared connection's reply queue, so it is always refused.
    ReplicaLink,
}

const TABLE: &[(&str, Class)] = &[
    ("auth", Class::Session(SessionCommand::Auth)),
    ("hello", Class::Session(SessionCommand::Hello)),
    ("select", Class::Session(SessionCommand::Select)),
    ("quit", Class::Session(SessionCommand::Quit)),
    ("reset", Class::Session(SessionCommand::Reset)),
    ("ping", Class::Session(SessionCommand::Ping)),
    ("echo", Class::Session(SessionCommand::Echo)),
    ("multi", Class::Session(SessionCommand::Multi)),
    ("exec", Class::Session(SessionCommand::Exec)),
    ("discard", Class::Session(SessionCommand::Discard)),
    ("watch", Class::Session(SessionCommand::Watch)),
    ("unwatch", Class::Session(SessionCommand::Unwatch)),
    (
        "subscribe",
        Class::Session(SessionCommand::Subscribe(SubKind::Channel)),
    ),
    (
        "psubscribe",
        Class::Session(SessionCommand::Subscribe(SubKind::Pattern)),
    ),
    (
        "ssubscribe",
        Class::Session(SessionCommand::Subscribe(SubKind::Shard)),
    ),
    (
        "unsubscribe",
        Class::Session(SessionCommand::Unsubscribe(SubKind::Channel)),
    ),
    (
        "punsubscribe",
        Class::Session(SessionCommand::Unsubscribe(SubKind::Pattern)),
    ),
    (
        "sunsubscribe",
        Class::Session(SessionCommand::Unsubscribe(SubKind::Shard)),
    ),
    ("monitor", Class::Session(SessionCommand::Monitor)),
    ("client", Class::Session(SessionCommand::Client)),
    ("slowlog", Class::Session(SessionCommand::Slowlog)),
    ("acl", Class::Session(SessionCommand::Acl)),
    ("publish", Class::Channel),
    ("spublish", Class::Channel),
    ("mget", Class::Split(SplitKind::Mget)),
    ("mset", Class::Split(SplitKind::Mset)),
    ("del", Class::Split(SplitKind::Count)),
    ("unlink", Class::Split(SplitKind::Count)),
    ("exists", Class::Split(SplitKind::Count)),
    ("touch", Class::Split(SplitKind::Count)),
    ("scan", Class::Scan),
    ("flushall", Class::Broadcast(Merge::AllOk)),
    ("flushdb", Class::Broadcast(Merge::AllOk)),
    ("script|flush", Class::Broadcast(Merge::AllOk)),
    ("script|load", Class::Broadcast(Merge::Same)),
    ("script|exists", Class::Broadcast(Merge::AndArrays)),
    ("script|kill", Class::Broadcast(Merge::AnyOk)),
    ("function|load", Class::Broadcast(Merge::Same)),
    ("function|flush", Class::Broadcast(Merge::AllOk)),
    ("function|delete", Class::Broadcast(Merge::AllOk)),
    ("function|restore", Class::Broadcast(Merge::AllOk)),
    ("function|kill", Class::Broadcast(Merge::AnyOk)),
    ("config|set", Class::ConfigSet),
    ("config|get", Class::ConfigGet),
    ("config|resetstat", Class::Broadcast(Merge::AllOk)),
    ("config|rewrite", Class::Broadcast(Merge::AllOk)),
    ("memory|purge", Class::Broadcast(Merge::AllOk)),
    ("dbsize", Class::Broadcast(Merge::Sum)),
    ("keys", Class::Broadcast(Merge::Concat)),
    ("randomkey", Class::Broadcast(Merge::RandomKey)),
    ("wait", Class::Broadcast(Merge::Wait)),
    ("info", Class::Broadcast(Merge::Info)),
    ("pubsub|channels", Class::Broadcast(Merge::Union)),
    ("pubsub|shardchannels", Class::Broadcast(Merge::Union)),
    ("pubsub|numsub", Class::Broadcast(Merge::SumPairs)),
    ("pubsub|shardnumsub", Class::Broadcast(Merge::SumPairs)),
    ("pubsub|numpat", Class::Broadcast(Merge::Max)),
    ("bgsave", Class::Broadcast(Merge::AllOk)),
    ("bgrewriteaof", Class::Broadcast(Merge::AllOk)),
    ("lastsave", Class::Broadcast(Merge::Min)),
    ("module|list", Class::Broadcast(Merge::Union)),
    ("swapdb", Class::SingleShard),
    ("save", Class::SingleShard),
    ("module", Class::SingleShard),
    ("sync", Class::ReplicaLink),
    ("psync", Class::ReplicaLink),
    ("replconf", Class::ReplicaLink),
    ("debug", Class::ServerOnly),
    ("shutdown", Class::ServerOnly),
    ("replicaof", Class::ServerOnly),
    ("slaveof", Class::ServerOnly),
    ("failover", Class::ServerOnly),
    ("script|debug", Class::ServerOnly),
    ("module|load", Class::ServerOnly),
    ("module|loadex", Class::ServerOnly),
    ("module|unload", Class::ServerOnly),
];

fn classes() -> &'static [Class] {
    static CLASSES: OnceLock<Vec<Class>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let mut classes = vec![Class::Keyed; CommandId::COUNT];
        let mut set = |id: CommandId, class: Class| {
            if let Some(slot) = classes.get_mut(usize::from(id.0)) {
                *slot = class;
            }
        };
        // Every name is in the table (a unit test checks it).
        for (id, class) in TABLE
            .iter()
            .filter_map(|&(name, class)| Some((id_of(name)?, class)))
        {
            set(id, class);
            // A container's class covers its subcommands unless they have their own.
            if let Some(spec) = id.spec() {
                for sub in spec.subcommands() {
                    if let Some(sub_id) = id_of(sub.name()) {
                        if !TABLE.iter().any(|(n, _)| *n == sub.name()) {
                            set(sub_id, class);
                        }
                    }
                }
            }
        }
        classes
    })
}

/// The routing class of a command of the table.
#[inline]
pub fn class_of(id: CommandId) -> Class {
    classes()
        .get(usize::from(id.0))
        .copied()
        .unwrap_or(Class::Keyed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::resolve;
    use crate::command::Resolution;

    fn class(args: &[&str]) -> Class {
        match resolve(args) {
            Resolution::Known(id, _) | Resolution::UnknownSubcommand(id, _) => class_of(id),
            Resolution::Unknown => panic!("{args:?} unknown"),
        }
    }

    #[test]
    fn every_table_name_exists_and_subcommands_inherit() {
        assert_eq!(classes().len(), CommandId::COUNT);
        for (name, _) in TABLE {
            assert!(
                id_of(name).is_some(),
                "'{name}' is not in the command table"
            );
        }
        assert_eq!(
            class(&["CLIENT", "LIST"]),
            Class::Session(SessionCommand::Client)
        );
        assert_eq!(
            class(&["client", "setname", "x"]),
            Class::Session(SessionCommand::Client)
        );
        assert_eq!(
            class(&["SCRIPT", "LOAD", "return 1"]),
            Class::Broadcast(Merge::Same)
        );
        assert_eq!(class(&["CONFIG", "GET", "x"]), Class::ConfigGet);
        assert_eq!(class(&["GET", "k"]), Class::Keyed);
        assert_eq!(class(&["MGET", "a", "b"]), Class::Split(SplitKind::Mget));
    }
}
