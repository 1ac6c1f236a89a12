//! The Redis 7 command table: for every command and subcommand, its arity,
//! flags, ACL categories, docs group and key specs, and the functions the
//! router runs on every request: [`lookup`] (name -> [`CommandSpec`]) and
//! [`CommandSpec::keys`] (which arguments are keys, exactly as Redis finds
//! them).
//!
//! The table is generated from a live `redis-server` by
//! `scripts/gen-command-table.py` and checked against one by
//! `tests/command_table.rs` (including `COMMAND GETKEYS` for thousands of
//! calls), so it cannot drift from the server it was made from.
//!
//! ```
//! use shardgate_core::command::lookup;
//!
//! let args: [&[u8]; 4] = [b"zunionstore", b"dest", b"1", b"src"];
//! let spec = lookup(&args).expect("a Redis command");
//! assert!(spec.is_write());
//! let mut keys = Vec::new();
//! spec.keys(&args, &mut keys);
//! assert_eq!(keys, [1, 3]);
//! ```
//!
//! # Layout
//! - `spec`: [`CommandSpec`] and its [`KeySpec`]s.
//! - `flags`: the flag sets ([`CommandFlags`], [`AclCategories`],
//!   [`KeySpecFlags`]) and [`Group`].
//! - `table`: the generated static table and its name index.
//! - `lookup`: case-insensitive, allocation-free name lookup, and a
//!   [`Resolver`] that remembers the last command a pipeline repeats.
//! - `args`: [`Args`], the argument view the codec's request implements.
//! - `keys`: key extraction from key specs (`getKeysUsingKeySpecs`).
//! - `procs`: Redis's per-command key finders, for incomplete specs.
//! - `sink`: where extracted keys go ([`KeyRef`]).
//! - `cstr`: Redis's argument parsing quirks (`string2ll`, `atoi`).
//! - `blocking`: whether one call blocks.

// Wire input reaches every function here: no panics outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod args;
mod blocking;
mod cstr;
mod flags;
mod keys;
mod lookup;
mod procs;
mod sink;
mod spec;
#[rustfmt::skip]
mod table;

pub use args::Args;
pub use lookup::{commands, id_of, lookup, lookup_name, resolve, CommandId, Resolution, Resolver};
pub use sink::KeyRef;
pub use spec::{
    AclCategories, BeginSearch, CommandFlags, CommandSpec, FindKeys, Group, KeySpec, KeySpecFlags,
};

/// The Redis version the table was generated from (`7.0.15`).
pub const REDIS_VERSION: &str = table::REDIS_VERSION;
