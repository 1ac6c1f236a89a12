//! Small bit sets for the flags Redis reports: command flags, ACL
//! categories and key-spec flags, each with the exact names `COMMAND` prints.
//!
//! A hand-rolled macro instead of the `bitflags` crate: the sets need only
//! `const` construction (for the static table), `contains`, and their names
//! (to compare with a live server and to show to operators).

macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident : $repr:ty {
            $( $(#[$fmeta:meta])* const $flag:ident = $bit:expr, $text:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        $vis struct $name($repr);

        impl $name {
            /// No flag set.
            pub const EMPTY: $name = $name(0);
            $( $(#[$fmeta])* pub const $flag: $name = $name(1 << $bit); )*

            /// Every flag with the name Redis uses for it, in bit order.
            const NAMES: &'static [($name, &'static str)] = &[ $( ($name::$flag, $text), )* ];

            /// Both sets together.
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            /// True when every flag of `other` is set in `self`.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// True when at least one flag of `other` is set in `self`.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The raw bits (stable within one build only).
            pub const fn bits(self) -> $repr {
                self.0
            }

            /// The names of the set flags, as Redis prints them, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES
                    .iter()
                    .filter(move |(flag, _)| self.contains(*flag))
                    .map(|(_, text)| *text)
            }

            /// Every flag's name, in bit order.
            pub fn all_names() -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().map(|(_, text)| *text)
            }

            /// The flag Redis calls `text` (exact spelling, case-sensitive).
            pub fn from_name(text: &str) -> Option<$name> {
                Self::NAMES.iter().find(|(_, t)| *t == text).map(|(flag, _)| *flag)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
    };
}

flag_set! {
    /// Command flags (the third field of `COMMAND INFO`).
    pub struct CommandFlags: u32 {
        const WRITE = 0, "write";
        const READONLY = 1, "readonly";
        const DENYOOM = 2, "denyoom";
        const MODULE = 3, "module";
        const ADMIN = 4, "admin";
        const PUBSUB = 5, "pubsub";
        const NOSCRIPT = 6, "noscript";
        const BLOCKING = 7, "blocking";
        const LOADING = 8, "loading";
        const STALE = 9, "stale";
        const SKIP_MONITOR = 10, "skip_monitor";
        const SKIP_SLOWLOG = 11, "skip_slowlog";
        const ASKING = 12, "asking";
        const FAST = 13, "fast";
        const NO_AUTH = 14, "no_auth";
        const MAY_REPLICATE = 15, "may_replicate";
        const NO_MANDATORY_KEYS = 16, "no_mandatory_keys";
        const NO_MULTI = 17, "no_multi";
        const MOVABLEKEYS = 18, "movablekeys";
        const ALLOW_BUSY = 19, "allow_busy";
        const MODULE_NO_CLUSTER = 20, "module_no_cluster";
        const NO_ASYNC_LOADING = 21, "no_async_loading";
    }
}

flag_set! {
    /// ACL categories (the seventh field of `COMMAND INFO`, without the `@`).
    pub struct AclCategories: u32 {
        const KEYSPACE = 0, "keyspace";
        const READ = 1, "read";
        const WRITE = 2, "write";
        const SET = 3, "set";
        const SORTEDSET = 4, "sortedset";
        const LIST = 5, "list";
        const HASH = 6, "hash";
        const STRING = 7, "string";
        const BITMAP = 8, "bitmap";
        const HYPERLOGLOG = 9, "hyperloglog";
        const GEO = 10, "geo";
        const STREAM = 11, "stream";
        const PUBSUB = 12, "pubsub";
        const ADMIN = 13, "admin";
        const FAST = 14, "fast";
        const SLOW = 15, "slow";
        const BLOCKING = 16, "blocking";
        const DANGEROUS = 17, "dangerous";
        const CONNECTION = 18, "connection";
        const TRANSACTION = 19, "transaction";
        const SCRIPTING = 20, "scripting";
    }
}

flag_set! {
    /// Key-spec flags: how a command uses the keys one key spec finds.
    pub struct KeySpecFlags: u16 {
        /// Read-only: reads the value, never changes it.
        const RO = 0, "RO";
        /// Read-write: reads and changes the value.
        const RW = 1, "RW";
        /// Overwrite: replaces the value without reading it.
        const OW = 2, "OW";
        /// Remove: deletes the key.
        const RM = 3, "RM";
        const ACCESS = 4, "access";
        const UPDATE = 5, "update";
        const INSERT = 6, "insert";
        const DELETE = 7, "delete";
        /// Not a real key (e.g. a channel); never returned by key extraction.
        const NOT_KEY = 8, "not_key";
        /// The spec may miss keys; Redis then asks the command's own code.
        const INCOMPLETE = 9, "incomplete";
        /// The flags depend on the arguments (SET ... GET, BITFIELD).
        const VARIABLE_FLAGS = 10, "variable_flags";
    }
}

impl KeySpecFlags {
    /// True when the command may change or delete the key: anything but a
    /// plain read. A key with no access flag at all (possible only for a
    /// malformed spec) counts as written, the safe side for read routing.
    pub const fn is_write(self) -> bool {
        self.intersects(
            KeySpecFlags::RW
                .union(KeySpecFlags::OW)
                .union(KeySpecFlags::RM),
        ) || !self.contains(KeySpecFlags::RO)
    }
}

/// The group a command belongs to in the Redis docs (`COMMAND DOCS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    Generic,
    String,
    List,
    Set,
    SortedSet,
    Hash,
    Pubsub,
    Transactions,
    Connection,
    Server,
    Scripting,
    Hyperloglog,
    Cluster,
    Sentinel,
    Geo,
    Stream,
    Bitmap,
    Module,
}

impl Group {
    /// The name `COMMAND DOCS` uses (`sorted-set`, `generic`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Group::Generic => "generic",
            Group::String => "string",
            Group::List => "list",
            Group::Set => "set",
            Group::SortedSet => "sorted-set",
            Group::Hash => "hash",
            Group::Pubsub => "pubsub",
            Group::Transactions => "transactions",
            Group::Connection => "connection",
            Group::Server => "server",
            Group::Scripting => "scripting",
            Group::Hyperloglog => "hyperloglog",
            Group::Cluster => "cluster",
            Group::Sentinel => "sentinel",
            Group::Geo => "geo",
            Group::Stream => "stream",
            Group::Bitmap => "bitmap",
            Group::Module => "module",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_bit_order() {
        let flags = CommandFlags::FAST.union(CommandFlags::WRITE);
        assert_eq!(flags.names().collect::<Vec<_>>(), ["write", "fast"]);
        assert_eq!(CommandFlags::from_name("fast"), Some(CommandFlags::FAST));
        assert_eq!(CommandFlags::from_name("FAST"), None);
        assert_eq!(format!("{flags:?}"), r#"{"write", "fast"}"#);
    }

    #[test]
    fn key_spec_write_means_anything_but_a_plain_read() {
        assert!(!KeySpecFlags::RO.union(KeySpecFlags::ACCESS).is_write());
        assert!(KeySpecFlags::RW.union(KeySpecFlags::ACCESS).is_write());
        assert!(KeySpecFlags::OW.union(KeySpecFlags::UPDATE).is_write());
        assert!(KeySpecFlags::RM.union(KeySpecFlags::DELETE).is_write());
        assert!(KeySpecFlags::EMPTY.is_write());
    }
}
