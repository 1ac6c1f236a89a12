//! What the table knows about one command: [`CommandSpec`] and its
//! [`KeySpec`]s, exactly as `COMMAND INFO` reports them.

pub use super::flags::{AclCategories, CommandFlags, Group, KeySpecFlags};

/// One Redis command or subcommand (`config|get`), from the static table.
#[derive(Debug)]
pub struct CommandSpec {
    pub(super) name: &'static str,
    pub(super) arity: i32,
    pub(super) group: Group,
    pub(super) first_key: i32,
    pub(super) last_key: i32,
    pub(super) key_step: i32,
    pub(super) flags: CommandFlags,
    pub(super) acl: AclCategories,
    pub(super) tips: &'static [&'static str],
    pub(super) key_specs: &'static [KeySpec],
    pub(super) keys_proc: Option<KeysProc>,
    pub(super) subcommands: &'static [CommandSpec],
}

/// Where a key spec starts looking for keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index (0 is the command name).
    Index(i32),
    /// Just after the first argument equal (ASCII case-insensitively) to
    /// `keyword`, searching from `start_from` (negative: from the end,
    /// backwards).
    Keyword {
        keyword: &'static str,
        start_from: i32,
    },
    /// Redis cannot say; the command's own code finds these keys.
    Unknown,
}

/// Which arguments are keys, counted from where [`BeginSearch`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// Keys from the start to `last_key` (relative; negative counts from the
    /// end of the arguments), every `key_step`. With a negative `last_key`
    /// and a non-zero `limit`, only `1/limit` of the remaining arguments are
    /// keys (XREAD's STREAMS: keys, then as many IDs).
    Range {
        last_key: i32,
        key_step: i32,
        limit: i32,
    },
    /// The argument at `key_num_idx` (relative) says how many keys follow,
    /// starting at `first_key` (relative), every `key_step`.
    KeyNum {
        key_num_idx: i32,
        first_key: i32,
        key_step: i32,
    },
    /// Redis cannot say; the command's own code finds these keys.
    Unknown,
}

/// One key spec: where some of a command's keys are and how it uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: KeySpecFlags,
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
}

/// The command-specific key finder (`getkeys_proc`) Redis falls back to when
/// a command's key specs are incomplete, do not fit the arguments, or have
/// variable flags. COMMAND does not report these; the generator lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeysProc {
    /// Redis's `genericGetKeys`: an optional destination key at `store`
    /// (0: none), a key count at `count`, keys from `first`.
    NumKeys {
        store: u8,
        count: u8,
        first: u8,
    },
    Sort,
    SortRo,
    Migrate,
    GeoRadius,
    XRead,
    Set,
    Bitfield,
}

impl CommandSpec {
    /// The lowercase name; subcommands as `parent|sub` (`config|get`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// For a subcommand, the subcommand part (`get` of `config|get`); for a
    /// command, its name.
    pub fn subcommand_name(&self) -> &'static str {
        match self.name.split_once('|') {
            Some((_, sub)) => sub,
            None => self.name,
        }
    }

    /// True for `parent|sub` entries.
    pub fn is_subcommand(&self) -> bool {
        self.name.contains('|')
    }

    /// Redis arity: `n` means exactly n arguments (the name included), `-n`
    /// at least n.
    pub fn arity(&self) -> i32 {
        self.arity
    }

    /// Whether `argc` arguments (the name included) fit the arity, as
    /// Redis checks before running the command.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn group(&self) -> Group {
        self.group
    }

    pub fn flags(&self) -> CommandFlags {
        self.flags
    }

    pub fn acl_categories(&self) -> AclCategories {
        self.acl
    }

    /// Hints for clients and proxies (`request_policy:all_shards`,
    /// `nondeterministic_output`, ...).
    pub fn tips(&self) -> &'static [&'static str] {
        self.tips
    }

    /// The legacy (first key, last key, step) triple of `COMMAND INFO`.
    pub fn legacy_key_range(&self) -> (i32, i32, i32) {
        (self.first_key, self.last_key, self.key_step)
    }

    pub fn key_specs(&self) -> &'static [KeySpec] {
        self.key_specs
    }

    /// Subcommands of a container command (CONFIG, CLIENT, ...), sorted by name.
    pub fn subcommands(&self) -> &'static [CommandSpec] {
        self.subcommands
    }

    /// A container command needs a subcommand in `args[1]`.
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    pub fn is_readonly(&self) -> bool {
        self.flags.contains(CommandFlags::READONLY)
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(CommandFlags::WRITE)
    }

    pub fn is_admin(&self) -> bool {
        self.flags.contains(CommandFlags::ADMIN)
    }

    pub fn is_pubsub(&self) -> bool {
        self.flags.contains(CommandFlags::PUBSUB)
    }

    /// The command may block (BLPOP, XREAD, ...); see
    /// [`CommandSpec::is_blocking_call`] for whether one call does.
    pub fn is_blocking(&self) -> bool {
        self.flags.contains(CommandFlags::BLOCKING)
    }

    pub fn is_fast(&self) -> bool {
        self.flags.contains(CommandFlags::FAST)
    }

    pub fn is_movablekeys(&self) -> bool {
        self.flags.contains(CommandFlags::MOVABLEKEYS)
    }

    /// The command never takes keys (PING, CONFIG GET, PUBLISH, ...): no
    /// key spec names a real key and there is no key finder.
    pub fn has_no_keys(&self) -> bool {
        self.keys_proc.is_none()
            && self
                .key_specs
                .iter()
                .all(|spec| spec.flags.contains(KeySpecFlags::NOT_KEY))
    }

    /// The union of the flags of all key specs.
    pub fn key_spec_flags(&self) -> KeySpecFlags {
        self.key_specs
            .iter()
            .fold(KeySpecFlags::EMPTY, |acc, spec| acc.union(spec.flags))
    }
}
