//! Redis 7.0's command-specific key finders (`*GetKeys` in src/db.c), used
//! when key specs cannot answer (see [`super::keys`]). Each mirrors the C
//! code's parsing, including how it treats malformed calls, so that keys
//! match what the server would compute.
//!
//! Where Redis reports no flags for a key (`genericGetKeys`,
//! `georadiusGetKeys`, `xreadGetKeys`) we take them from the matching key
//! spec, so read/write routing still works.

use super::args::Args;
use super::cstr::{atoi, strcasecmp_eq};
use super::sink::KeySink;
use super::spec::{CommandSpec, FindKeys, KeySpecFlags, KeysProc};

const RO_ACCESS: KeySpecFlags = KeySpecFlags::RO.union(KeySpecFlags::ACCESS);
const RW_ACCESS_UPDATE: KeySpecFlags = KeySpecFlags::RW
    .union(KeySpecFlags::ACCESS)
    .union(KeySpecFlags::UPDATE);
const OW_UPDATE: KeySpecFlags = KeySpecFlags::OW.union(KeySpecFlags::UPDATE);

pub(super) fn run<A: Args + ?Sized, S: KeySink>(
    proc: KeysProc,
    spec: &CommandSpec,
    args: &A,
    out: &mut S,
) {
    let argc = args.argc();
    let spec_flags = |i: usize| {
        spec.key_specs
            .get(i)
            .map_or(RW_ACCESS_UPDATE, |key_spec| key_spec.flags)
    };
    match proc {
        KeysProc::NumKeys {
            store,
            count,
            first,
        } => {
            let keynum_flags = spec
                .key_specs
                .iter()
                .find(|ks| matches!(ks.find_keys, FindKeys::KeyNum { .. }))
                .map_or(RW_ACCESS_UPDATE, |ks| ks.flags);
            num_keys(
                args,
                store.into(),
                count.into(),
                first.into(),
                keynum_flags,
                spec_flags(0),
                out,
            );
        }
        KeysProc::SortRo => out.push_key(1, RO_ACCESS),
        KeysProc::Sort => sort(args, out),
        KeysProc::Migrate => migrate(args, out),
        KeysProc::GeoRadius => {
            out.push_key(1, spec_flags(0));
            let mut stored = None;
            let mut i = 5;
            while i < argc {
                let arg = args.arg(i).unwrap_or_default();
                if (strcasecmp_eq(arg, b"store") || strcasecmp_eq(arg, b"storedist"))
                    && i + 1 < argc
                {
                    stored = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            if let Some(stored) = stored {
                out.push_key(stored, spec_flags(1));
            }
        }
        KeysProc::XRead => {
            if let Some((from, to)) = xread_keys(args) {
                for i in from..to {
                    out.push_key(i, spec_flags(0));
                }
            }
        }
        KeysProc::Set => {
            let get = (3..argc).any(|i| args.arg(i).is_some_and(|a| strcasecmp_eq(a, b"get")));
            out.push_key(1, if get { RW_ACCESS_UPDATE } else { OW_UPDATE });
        }
        KeysProc::Bitfield => {
            let flags = if bitfield_is_readonly(args) {
                RO_ACCESS
            } else {
                RW_ACCESS_UPDATE
            };
            out.push_key(1, flags);
        }
    }
}

/// `genericGetKeys`: the key count at `count`, keys from `first`, then the
/// destination at `store` (0: none). A count that does not fit: no keys.
fn num_keys<A: Args + ?Sized, S: KeySink>(
    args: &A,
    store: usize,
    count: usize,
    first: usize,
    key_flags: KeySpecFlags,
    store_flags: KeySpecFlags,
    out: &mut S,
) {
    let Some(count_arg) = args.arg(count) else {
        return;
    };
    let num = i64::from(atoi(count_arg));
    let available = i64::try_from(args.argc().saturating_sub(first)).unwrap_or(i64::MAX);
    if num < 1 || num > available {
        return;
    }
    // 1 <= num <= argc - first: every index below is in range.
    let num = usize::try_from(num).unwrap_or(0);
    for i in 0..num {
        out.push_key(first + i, key_flags);
    }
    if store != 0 {
        out.push_key(store, store_flags);
    }
}

/// `sortGetKeys`: the sorted key, plus the last `STORE dest`. Options with
/// arguments (LIMIT, GET, BY) are skipped so that their values are not
/// mistaken for STORE.
fn sort<A: Args + ?Sized, S: KeySink>(args: &A, out: &mut S) {
    let argc = args.argc();
    out.push_key(1, RO_ACCESS);
    let mut store = None;
    let mut i = 2;
    while i < argc {
        let arg = args.arg(i).unwrap_or_default();
        if strcasecmp_eq(arg, b"limit") {
            i += 2;
        } else if strcasecmp_eq(arg, b"get") || strcasecmp_eq(arg, b"by") {
            i += 1;
        } else if strcasecmp_eq(arg, b"store") && i + 1 < argc {
            // Not skipped, like Redis: the last STORE wins.
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(store) = store {
        out.push_key(store, OW_UPDATE);
    }
}

/// `migrateGetKeys`: `MIGRATE host port key db timeout`, or with an empty
/// key, every argument after `KEYS`.
fn migrate<A: Args + ?Sized, S: KeySink>(args: &A, out: &mut S) {
    const FLAGS: KeySpecFlags = KeySpecFlags::RW
        .union(KeySpecFlags::ACCESS)
        .union(KeySpecFlags::DELETE);
    let argc = args.argc();
    let (mut first, mut num) = (3, 1);
    let mut i = 6;
    while i < argc {
        let arg = args.arg(i).unwrap_or_default();
        if strcasecmp_eq(arg, b"keys") {
            if args.arg(3).is_some_and(|key| !key.is_empty()) {
                // A syntax error MIGRATE itself reports.
                num = 0;
            } else {
                first = i + 1;
                num = argc - first;
            }
            break;
        }
        if strcasecmp_eq(arg, b"auth") {
            i += 1;
        } else if strcasecmp_eq(arg, b"auth2") {
            i += 2;
        }
        i += 1;
    }
    for index in first..first + num {
        if index < argc {
            out.push_key(index, FLAGS);
        }
    }
}

/// `xreadGetKeys`: the key range `[from, to)` after the `STREAMS` option
/// (half of the remaining arguments; the other half are IDs), or None when
/// the call is malformed.
pub(super) fn xread_keys<A: Args + ?Sized>(args: &A) -> Option<(usize, usize)> {
    let argc = args.argc();
    let mut streams = None;
    let mut i = 1;
    while i < argc {
        let arg = args.arg(i).unwrap_or_default();
        if strcasecmp_eq(arg, b"block") || strcasecmp_eq(arg, b"count") {
            i += 1;
        } else if strcasecmp_eq(arg, b"group") {
            i += 2;
        } else if strcasecmp_eq(arg, b"noack") {
        } else if strcasecmp_eq(arg, b"streams") {
            streams = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let streams = streams?;
    let num = argc - streams - 1;
    if num == 0 || num & 1 == 1 {
        return None;
    }
    Some((streams + 1, streams + 1 + num / 2))
}

/// `bitfieldGetKeys`: read-only when every operation is a well-formed GET
/// (OVERFLOW allowed); anything else, malformed included, may write.
fn bitfield_is_readonly<A: Args + ?Sized>(args: &A) -> bool {
    let argc = args.argc();
    let mut i = 2;
    while i < argc {
        let remaining = argc - i - 1;
        let arg = args.arg(i).unwrap_or_default();
        if strcasecmp_eq(arg, b"get") && remaining >= 2 {
            i += 2;
        } else if strcasecmp_eq(arg, b"overflow") && remaining >= 1 {
            i += 1;
        } else {
            // SET, INCRBY, or a syntax error: assume a write.
            return false;
        }
        i += 1;
    }
    true
}
