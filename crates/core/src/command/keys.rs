//! Which arguments of a call are keys, exactly as Redis 7.0 finds them
//! (`getKeysFromCommandWithSpecs` in src/db.c, which both `COMMAND GETKEYS`
//! and cluster routing use):
//!
//! 1. If some key spec names real keys and none has variable flags, walk the
//!    key specs (`getKeysUsingKeySpecs`). A spec that does not fit the
//!    arguments, is of unknown type, or is marked incomplete voids the walk.
//! 2. Otherwise, or when the walk was void, run the command's own key
//!    finder ([`super::procs`]) if it has one; else there are no keys.
//!
//! Every index is checked against `argc`: no input can make this panic, and
//! where Redis would assert (a spec that overruns a fixed arity) we skip.

use super::args::Args;
use super::cstr::{parse_ll, strcasecmp_eq};
use super::procs;
use super::sink::KeyRef;
use super::sink::KeySink;
use super::spec::{BeginSearch, CommandSpec, FindKeys, KeySpec, KeySpecFlags};

/// The outcome of walking the key specs.
#[derive(PartialEq, Eq)]
enum Walk {
    Done,
    /// A spec did not fit; the keys pushed so far were dropped.
    Void,
}

impl CommandSpec {
    /// Appends the indexes of the key arguments of this call to `out` (it is
    /// not cleared) and returns how many were appended. A call whose argument
    /// count does not fit the arity has no keys (Redis rejects it before
    /// looking at keys). Allocates only if `out` must grow.
    pub fn keys<A: Args + ?Sized>(&self, args: &A, out: &mut Vec<usize>) -> usize {
        extract(self, args, out)
    }

    /// Like [`CommandSpec::keys`], with how each key is used (read or
    /// written), for read/write splitting.
    pub fn keys_with_flags<A: Args + ?Sized>(&self, args: &A, out: &mut Vec<KeyRef>) -> usize {
        extract(self, args, out)
    }
}

fn extract<A: Args + ?Sized, S: KeySink>(spec: &CommandSpec, args: &A, out: &mut S) -> usize {
    let start = out.len();
    let argc = args.argc();
    if !spec.arity_ok(argc) {
        return 0;
    }
    if let Some(flags) = only_key_at_1(spec, S::FLAGS) {
        if argc > 1 {
            out.push_key(1, flags);
            return 1;
        }
    }
    let all = spec.key_spec_flags();
    let names_keys = spec
        .key_specs
        .iter()
        .any(|ks| !ks.flags.contains(KeySpecFlags::NOT_KEY));
    if names_keys
        && !all.contains(KeySpecFlags::VARIABLE_FLAGS)
        && walk_specs(spec, args, out) == Walk::Done
    {
        return out.len() - start;
    }
    if let Some(proc) = spec.keys_proc {
        procs::run(proc, spec, args, out);
    }
    out.len() - start
}

/// The commonest shape (GET, SET, INCR, HGET, LPUSH...): one key spec, for
/// argument 1 alone, and complete. For it the walk below (or, with
/// variable flags, the command's own key finder) finds argument 1 whenever
/// it exists; checked first because it is most requests. Returns the
/// spec's flags; with variable flags (SET ... GET), only when the caller
/// keeps no flags (`with_flags` false): the finder words those.
#[inline]
fn only_key_at_1(spec: &CommandSpec, with_flags: bool) -> Option<KeySpecFlags> {
    let [only] = spec.key_specs else {
        return None;
    };
    let mut not_plain = KeySpecFlags::NOT_KEY.union(KeySpecFlags::INCOMPLETE);
    if with_flags {
        not_plain = not_plain.union(KeySpecFlags::VARIABLE_FLAGS);
    }
    let plain = only.begin_search == BeginSearch::Index(1)
        && matches!(only.find_keys, FindKeys::Range { last_key: 0, .. })
        && !only.flags.intersects(not_plain);
    plain.then_some(only.flags)
}

/// Redis's `getKeysUsingKeySpecs` without `GET_KEYSPEC_RETURN_PARTIAL`.
fn walk_specs<A: Args + ?Sized, S: KeySink>(spec: &CommandSpec, args: &A, out: &mut S) -> Walk {
    let start = out.len();
    // Arguments are counted in i64 so that no spec value can overflow.
    let argc = i64::try_from(args.argc()).unwrap_or(i64::MAX);
    for key_spec in spec.key_specs {
        if key_spec.flags.contains(KeySpecFlags::NOT_KEY) {
            continue;
        }
        let first = match begin(key_spec, args, argc) {
            Begin::At(first) => first,
            Begin::NotFound => continue,
            Begin::Invalid => {
                out.truncate(start);
                return Walk::Void;
            }
        };
        let Some((first, last, step)) = bounds(key_spec, args, argc, first) else {
            out.truncate(start);
            return Walk::Void;
        };
        if last >= argc || last < first || first >= argc {
            out.truncate(start);
            return Walk::Void;
        }
        let mut i = first;
        while i <= last {
            // `i < argc` holds: last < argc. The conversion cannot fail.
            if let Ok(index) = usize::try_from(i) {
                out.push_key(index, key_spec.flags);
            }
            i += step;
        }
        if key_spec.flags.contains(KeySpecFlags::INCOMPLETE) {
            out.truncate(start);
            return Walk::Void;
        }
    }
    Walk::Done
}

enum Begin {
    At(i64),
    /// The keyword is absent: this spec has no keys in this call.
    NotFound,
    Invalid,
}

fn begin<A: Args + ?Sized>(key_spec: &KeySpec, args: &A, argc: i64) -> Begin {
    match key_spec.begin_search {
        BeginSearch::Index(index) => Begin::At(i64::from(index)),
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => {
            // Searches [start, argc-1) forwards, or (1, argc+start] backwards:
            // the last argument is never a keyword since a key must follow.
            let from = i64::from(start_from);
            let (start, end) = if from > 0 {
                (from, argc - 1)
            } else {
                (argc + from, 1)
            };
            let forward = start <= end;
            let mut i = start;
            while i != end {
                if i >= argc || i < 1 {
                    break;
                }
                let arg = usize::try_from(i).ok().and_then(|i| args.arg(i));
                if arg.is_some_and(|arg| strcasecmp_eq(arg, keyword.as_bytes())) {
                    return Begin::At(i + 1);
                }
                i = if forward { i + 1 } else { i - 1 };
            }
            Begin::NotFound
        }
        BeginSearch::Unknown => Begin::Invalid,
    }
}

/// (first, last, step) of the keys of one spec, or None when the spec does
/// not fit the arguments.
fn bounds<A: Args + ?Sized>(
    key_spec: &KeySpec,
    args: &A,
    argc: i64,
    first: i64,
) -> Option<(i64, i64, i64)> {
    match key_spec.find_keys {
        FindKeys::Range {
            last_key,
            key_step,
            limit,
        } => {
            let last_key = i64::from(last_key);
            let limit = i64::from(limit);
            let last = if last_key >= 0 {
                first + last_key
            } else if limit == 0 {
                argc + last_key
            } else {
                first + ((argc - first) / limit + last_key)
            };
            Some((first, last, i64::from(key_step).max(1)))
        }
        FindKeys::KeyNum {
            key_num_idx,
            first_key,
            key_step,
        } => {
            let at = usize::try_from(first + i64::from(key_num_idx)).ok()?;
            let numkeys = parse_ll(args.arg(at)?).filter(|n| *n >= 0)?;
            let first = first + i64::from(first_key);
            // Redis adds `(int)numkeys`: keep its truncation.
            let last = first + i64::from(numkeys as i32) - 1;
            Some((first, last, i64::from(key_step).max(1)))
        }
        FindKeys::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::lookup;

    fn keys(args: &[&str]) -> Vec<String> {
        let Some(spec) = lookup(args) else {
            return vec!["<unknown>".into()];
        };
        let mut out = Vec::new();
        let n = spec.keys(args, &mut out);
        assert_eq!(n, out.len());
        out.iter().map(|&i| args[i].to_string()).collect()
    }

    #[test]
    fn fixed_positions() {
        assert_eq!(keys(&["GET", "a"]), ["a"]);
        assert_eq!(keys(&["set", "a", "v", "GET"]), ["a"]);
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys(&["rename", "a", "b"]), ["a", "b"]);
        assert_eq!(keys(&["OBJECT", "ENCODING", "a"]), ["a"]);
        assert_eq!(keys(&["MEMORY", "USAGE", "a", "SAMPLES", "5"]), ["a"]);
        assert!(keys(&["PING"]).is_empty());
        assert!(keys(&["CONFIG", "GET", "maxmemory"]).is_empty());
    }

    #[test]
    fn numkeys_forms() {
        assert_eq!(keys(&["EVAL", "s", "2", "a", "b", "x"]), ["a", "b"]);
        assert!(keys(&["EVAL", "s", "0", "x"]).is_empty());
        assert_eq!(
            keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
            ["d", "a", "b"]
        );
        assert_eq!(keys(&["lmpop", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(keys(&["BZMPOP", "0", "1", "a", "MIN"]), ["a"]);
    }

    #[test]
    fn bad_numkeys_never_panic_and_find_nothing() {
        for n in [
            "3",
            "-1",
            "x",
            "",
            "99999999999999999999",
            "2147483647",
            "-2147483648",
        ] {
            assert!(keys(&["EVAL", "s", n, "a"]).is_empty(), "numkeys {n}");
            assert!(
                keys(&["ZUNIONSTORE", "d", n, "a"]).is_empty(),
                "numkeys {n}"
            );
        }
        // `(int)4294967297 == 1` in Redis's key-spec walk.
        assert_eq!(keys(&["EVAL", "s", "4294967297", "a"]), ["a"]);
        // The spec rejects "1x"; Redis's fallback reads it with atoi().
        assert_eq!(keys(&["EVAL", "s", "1x", "a"]), ["a"]);
    }

    #[test]
    fn streams() {
        assert_eq!(keys(&["XREAD", "STREAMS", "a", "b", "0", "0"]), ["a", "b"]);
        assert_eq!(
            keys(&["XREAD", "COUNT", "2", "BLOCK", "0", "streams", "a", "0"]),
            ["a"]
        );
        assert!(keys(&["XREAD", "COUNT", "2", "a", "0"]).is_empty());
        // An odd count: the spec takes floor(3 / 2) keys, as Redis does.
        assert_eq!(keys(&["XREAD", "STREAMS", "a", "b", "0"]), ["a"]);
        assert_eq!(
            keys(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", ">"]),
            ["a"]
        );
    }

    #[test]
    fn procs_for_incomplete_specs() {
        assert_eq!(keys(&["SORT", "a", "BY", "w_*", "STORE", "d"]), ["a", "d"]);
        assert_eq!(keys(&["SORT", "a", "LIMIT", "0", "1", "GET", "#"]), ["a"]);
        assert_eq!(keys(&["MIGRATE", "h", "1", "a", "0", "5"]), ["a"]);
        assert_eq!(
            keys(&["MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b"]),
            ["a", "b"]
        );
        assert!(keys(&["MIGRATE", "h", "1", "x", "0", "5", "KEYS", "a"]).is_empty());
        assert_eq!(
            keys(&["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "d"]),
            ["g", "d"]
        );
    }

    #[test]
    fn arity_mismatch_has_no_keys() {
        assert!(keys(&["GET"]).is_empty());
        assert!(keys(&["GET", "a", "b"]).is_empty());
        assert!(keys(&["OBJECT", "ENCODING"]).is_empty());
    }

    #[test]
    fn flags_say_read_or_write() {
        let flags = |args: &[&str]| {
            let mut out = Vec::new();
            if let Some(spec) = lookup(args) {
                spec.keys_with_flags(args, &mut out);
            }
            out.iter()
                .map(|k| (k.index, k.flags.is_write()))
                .collect::<Vec<_>>()
        };
        assert_eq!(flags(&["GET", "a"]), [(1, false)]);
        assert_eq!(flags(&["SET", "a", "v"]), [(1, true)]);
        assert_eq!(
            flags(&["ZUNIONSTORE", "d", "1", "a"]),
            [(1, true), (3, false)]
        );
        assert_eq!(flags(&["SORT", "a", "STORE", "d"]), [(1, false), (3, true)]);
        assert_eq!(flags(&["BITFIELD", "a", "GET", "u8", "0"]), [(1, false)]);
        assert_eq!(
            flags(&["BITFIELD", "a", "SET", "u8", "0", "1"]),
            [(1, true)]
        );
    }

    /// Every command with garbage of every length: no panic, every index in
    /// range, and `keys` agrees with `keys_with_flags`.
    #[test]
    fn garbage_never_panics() {
        let pool: &[&[u8]] = &[
            b"",
            b"0",
            b"1",
            b"2",
            b"-1",
            b"-2147483649",
            b"4294967297",
            b"99999999999999999999999",
            b"1x",
            b"\0",
            b"STREAMS\0",
            b"STREAMS",
            b"KEYS",
            b"STORE",
            b"GET",
            b"SET",
            b"BLOCK",
            b"GROUP",
            b"LIMIT",
            b"k",
            &[0xff; 40],
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut indexes, mut refs) = (Vec::new(), Vec::new());
        for spec in super::super::table::ALL {
            let mut args: Vec<&[u8]> = spec.name.split('|').map(str::as_bytes).collect();
            for _ in 0..12 {
                for _ in 0..8 {
                    let mut call = args.clone();
                    for slot in call.iter_mut().skip(1) {
                        if next(3) == 0 {
                            *slot = pool[next(pool.len())];
                        }
                    }
                    indexes.clear();
                    refs.clear();
                    spec.keys(&call, &mut indexes);
                    spec.keys_with_flags(&call, &mut refs);
                    assert!(indexes.iter().eq(refs.iter().map(|k| &k.index)));
                    assert!(indexes.iter().all(|&i| i < call.len()), "{call:?}");
                    let _ = spec.is_blocking_call(&call);
                    let _ = lookup(&call);
                }
                args.push(pool[next(pool.len())]);
            }
        }
    }

    #[test]
    fn appends_without_clearing() {
        let mut out = vec![7];
        let get = lookup(&["GET"]).map(|s| s.keys(&["GET", "a"], &mut out));
        assert_eq!(get, Some(1));
        assert_eq!(out, [7, 1]);
    }
}
