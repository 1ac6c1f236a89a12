//! Name -> [`CommandSpec`], case-insensitively and without allocating.
//!
//! The name is lowercased into a stack buffer and hashed (FNV-1a) as it is
//! read, then found in the generated open-addressing table (`table::INDEX`,
//! at most `table::MAX_PROBE` extra probes) and compared with the table's
//! lowercase name as it is. Subcommands live in the same table as
//! `parent|sub`, so `CONFIG GET` costs a second probe (compared ASCII
//! case-insensitively in place), nothing more.

use super::args::Args;
use super::spec::CommandSpec;
use super::table::{ALL, COMMANDS, INDEX, MAX_NAME_LEN, MAX_PROBE};

/// Must match `fnv1a` in scripts/gen-command-table.py.
const FNV_OFFSET: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// One FNV-1a step over an already lowercased byte.
#[inline]
fn fnv_step(hash: u32, lower: u8) -> u32 {
    (hash ^ u32::from(lower)).wrapping_mul(FNV_PRIME)
}

/// Continues an FNV-1a hash over `bytes`, lowercased.
fn hash_lowercase(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |hash, b| fnv_step(hash, b.to_ascii_lowercase()))
}

/// The entry named `name` (a command, or a `parent|sub` subcommand), ASCII
/// case-insensitively, and its position in `ALL`. The name is lowercased
/// once, into a stack buffer, as it is hashed; table names are lowercase,
/// so it is then compared as it is.
#[inline]
fn find_name(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    let mut buf = [0; MAX_NAME_LEN];
    let lower = buf.get_mut(..name.len())?;
    let mut hash = FNV_OFFSET;
    for (to, &b) in lower.iter_mut().zip(name) {
        *to = b.to_ascii_lowercase();
        hash = fnv_step(hash, *to);
    }
    find(hash, |candidate| candidate == &*lower)
}

/// The entry with this hash for which `is_it` holds, and its position in
/// `ALL` (top-level commands come first).
fn find(hash: u32, is_it: impl Fn(&[u8]) -> bool) -> Option<(usize, &'static CommandSpec)> {
    let mask = INDEX.len() - 1;
    let mut slot = hash as usize & mask;
    for _ in 0..=MAX_PROBE {
        let entry = usize::from(*INDEX.get(slot)?);
        let spec: &'static CommandSpec = ALL.get(entry)?;
        if is_it(spec.name.as_bytes()) {
            return Some((entry, spec));
        }
        slot = (slot + 1) & mask;
    }
    None
}

/// The command (or `parent|sub` subcommand) with this exact name, ASCII
/// case-insensitively.
pub fn lookup_name(name: &[u8]) -> Option<&'static CommandSpec> {
    find_name(name).map(|(_, spec)| spec)
}

/// A command's position in the table: a dense index for per-command
/// arrays (metrics, routing classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandId(pub u16);

impl CommandId {
    /// How many ids exist (commands and subcommands).
    pub const COUNT: usize = ALL.len();

    pub fn spec(self) -> Option<&'static CommandSpec> {
        ALL.get(usize::from(self.0)).copied()
    }
}

/// How a request's command name resolved.
#[derive(Debug, Clone, Copy)]
pub enum Resolution {
    /// A command or subcommand of the table.
    Known(CommandId, &'static CommandSpec),
    /// A container command (CONFIG, CLIENT, ...) with a subcommand the
    /// table does not know.
    UnknownSubcommand(CommandId, &'static CommandSpec),
    /// Not a command of the table (unknown, or renamed on the server).
    Unknown,
}

impl Resolution {
    /// The spec of a known command.
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        match self {
            Resolution::Known(_, spec) => Some(spec),
            _ => None,
        }
    }
}

/// Resolves a request's command as Redis does: `args[0]` names the
/// command; for a container command (CONFIG, CLIENT, OBJECT, ...) `args[1]`
/// names the subcommand. A container with no subcommand argument resolves
/// to the container itself (whose arity then rejects the call, as in Redis).
pub fn resolve<A: Args + ?Sized>(args: &A) -> Resolution {
    let Some(name) = args.arg(0) else {
        return Resolution::Unknown;
    };
    let Some((entry, command)) = find_name(name) else {
        return Resolution::Unknown;
    };
    if entry >= COMMANDS.len() {
        // `config|get` is no command name: Redis looks args[0] up among
        // top-level commands only.
        return Resolution::Unknown;
    }
    let id = CommandId(entry as u16);
    if !command.is_container() {
        return Resolution::Known(id, command);
    }
    let Some(sub) = args.arg(1) else {
        return Resolution::Known(id, command);
    };
    let parent = command.name.as_bytes();
    if parent.len() + 1 + sub.len() > MAX_NAME_LEN {
        return Resolution::UnknownSubcommand(id, command);
    }
    let hash = hash_lowercase(hash_lowercase(FNV_OFFSET, parent), b"|");
    let hash = hash_lowercase(hash, sub);
    let found = find(hash, |candidate| {
        candidate.len() == parent.len() + 1 + sub.len()
            && candidate.starts_with(parent)
            && candidate.get(parent.len()) == Some(&b'|')
            && candidate
                .get(parent.len() + 1..)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(sub))
    });
    match found {
        Some((entry, spec)) => Resolution::Known(CommandId(entry as u16), spec),
        None => Resolution::UnknownSubcommand(id, command),
    }
}

/// Longest command name a [`Resolver`] remembers (`georadiusbymember_ro`
/// is 20 bytes; the commands pipelines repeat are shorter).
const REMEMBERED_NAME_LEN: usize = 16;

/// [`resolve`] with a memory of the last command it found: a pipeline
/// repeats one command, and a name equal byte for byte to the last one
/// resolves the same way without hashing or probing the table. Containers
/// are not remembered (their subcommand decides), nor unknown names.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver {
    last: Option<Remembered>,
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    name: [u8; REMEMBERED_NAME_LEN],
    len: usize,
    id: CommandId,
    spec: &'static CommandSpec,
}

impl Resolver {
    /// What [`resolve`] would answer for `args`.
    #[inline]
    pub fn resolve<A: Args + ?Sized>(&mut self, args: &A) -> Resolution {
        let Some(name) = args.arg(0) else {
            return Resolution::Unknown;
        };
        if let Some(last) = &self.last {
            if last.name.get(..last.len) == Some(name) {
                return Resolution::Known(last.id, last.spec);
            }
        }
        let resolution = resolve(args);
        // A subcommand's spec is no answer to its container's name alone.
        let top_level = |id: CommandId, spec: &CommandSpec| {
            usize::from(id.0) < COMMANDS.len() && !spec.is_container()
        };
        if let Resolution::Known(id, spec) = resolution {
            let mut remembered = [0; REMEMBERED_NAME_LEN];
            if let Some(to) = remembered
                .get_mut(..name.len())
                .filter(|_| top_level(id, spec))
            {
                to.copy_from_slice(name);
                self.last = Some(Remembered {
                    name: remembered,
                    len: name.len(),
                    id,
                    spec,
                });
            }
        }
        resolution
    }
}

/// The command a request runs (see [`resolve`]); None when unknown.
pub fn lookup<A: Args + ?Sized>(args: &A) -> Option<&'static CommandSpec> {
    resolve(args).spec()
}

/// The id of a command or `parent|sub` subcommand by its exact name.
pub fn id_of(name: &str) -> Option<CommandId> {
    find_name(name.as_bytes()).map(|(entry, _)| CommandId(entry as u16))
}

/// All top-level commands, sorted by name (subcommands hang off their
/// container: [`CommandSpec::subcommands`]).
pub fn commands() -> &'static [CommandSpec] {
    &COMMANDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_in_any_case() {
        for spec in ALL {
            assert_eq!(
                lookup_name(spec.name.as_bytes()).map(|s| s.name),
                Some(spec.name)
            );
            let upper = spec.name.to_ascii_uppercase();
            assert_eq!(
                lookup_name(upper.as_bytes()).map(|s| s.name),
                Some(spec.name)
            );
        }
    }

    #[test]
    fn commands_resolve_case_insensitively() {
        for name in ["get", "GET", "Get", "gEt"] {
            assert_eq!(lookup(&[name, "k"]).map(CommandSpec::name), Some("get"));
        }
        assert_eq!(
            lookup(&["GEORADIUS_RO"]).map(CommandSpec::name),
            Some("georadius_ro")
        );
    }

    #[test]
    fn a_resolver_answers_as_resolve_does_whatever_came_before() {
        let calls: [&[&str]; 10] = [
            &["GET", "k"],
            &["GET", "k"],
            &["get", "k"],
            &["CONFIG", "GET", "maxmemory"],
            &["CONFIG", "SET", "a", "b"],
            &["CONFIG", "SET", "a", "b"],
            &["nosuchcommand"],
            &["GE"],
            &["GETSET", "k", "v"],
            &["georadiusbymember_ro", "k", "m", "1", "km"],
        ];
        let name = |r: Resolution| r.spec().map(CommandSpec::name);
        let mut resolver = Resolver::default();
        for round in 0..2 {
            for args in calls.iter().chain(calls.iter().rev()) {
                let expected = resolve(*args);
                let got = resolver.resolve(*args);
                assert_eq!(name(got), name(expected), "{args:?}, round {round}");
                assert_eq!(
                    matches!(got, Resolution::UnknownSubcommand(..)),
                    matches!(expected, Resolution::UnknownSubcommand(..)),
                    "{args:?}"
                );
            }
        }
    }

    #[test]
    fn subcommands_resolve_from_the_second_argument() {
        let name = |args: &[&str]| lookup(args).map(CommandSpec::name);
        assert_eq!(name(&["CONFIG", "GET", "maxmemory"]), Some("config|get"));
        assert_eq!(name(&["config", "Set", "a", "b"]), Some("config|set"));
        assert_eq!(name(&["object", "ENCODING", "k"]), Some("object|encoding"));
        assert_eq!(name(&["CLIENT", "NO-EVICT", "on"]), Some("client|no-evict"));
        assert_eq!(name(&["xinfo", "stream", "s"]), Some("xinfo|stream"));
        // Redis resolves a lone container to itself; its arity (-2) then fails.
        assert_eq!(name(&["CONFIG"]), Some("config"));
        assert_eq!(name(&["CONFIG", "NOPE"]), None);
        // Only containers look at args[1].
        assert_eq!(name(&["GET", "GET"]), Some("get"));
    }

    #[test]
    fn unknown_and_malformed_names_are_none() {
        let none = |args: &[&[u8]]| assert!(lookup(args).is_none(), "{args:?}");
        none(&[]);
        none(&[b""]);
        none(&[b"nosuchcommand"]);
        none(&[b"GET\0"]);
        none(&[b"config|get"]); // only through args[1]
        none(&[&[0xff, 0xfe]]);
        none(&[&[b'a'; 4096]]);
        none(&[b"CONFIG", &[b'g'; 4096]]);
        // Longer than any name by one byte.
        none(&[&[b'x'; MAX_NAME_LEN + 1]]);
        // `config|get` by name is fine through lookup_name.
        assert!(lookup_name(b"CONFIG|GET").is_some());
    }

    #[test]
    fn the_table_is_sorted_and_complete() {
        let top = commands();
        assert!(top
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.name < b.name)));
        let subs: usize = top.iter().map(|c| c.subcommands.len()).sum();
        assert_eq!(ALL.len(), top.len() + subs);
        for command in top {
            for sub in command.subcommands {
                assert_eq!(sub.name.split_once('|').map(|p| p.0), Some(command.name));
            }
        }
    }
}
