//! The checked-in command table against a real redis-server:
//!
//! - `table_matches_live_command_info`: every command and subcommand with
//!   its arity, flags, legacy key range, ACL categories, tips and key specs
//!   equals what `COMMAND` reports, and the docs group what `COMMAND DOCS`
//!   reports. A Redis upgrade that changes any of it fails here; rerun
//!   `scripts/gen-command-table.py`.
//! - `keys_match_command_getkeys`: for hand-picked tricky calls and for
//!   thousands of generated ones (every command, arities from the minimum
//!   up, arguments drawn from keys, numbers and the keywords that steer key
//!   finding), `CommandSpec::keys` returns exactly the keys `COMMAND
//!   GETKEYSANDFLAGS` returns, in order, with the same read/write flags;
//!   where Redis refuses (no keys, bad arity, bad arguments) we return none.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};

use shardgate_core::command::{self, BeginSearch, CommandSpec, FindKeys, KeySpec, KeySpecFlags};
use test_support::resp::Reply;
use test_support::{RedisServer, RespClient};

// ---------------------------------------------------------------------------
// Reading replies

fn text(reply: &Reply) -> String {
    match reply {
        Reply::Simple(s) => s.clone(),
        Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Reply::Integer(n) => n.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(reply: &Reply) -> i64 {
    match reply {
        Reply::Integer(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn items(reply: &Reply) -> &[Reply] {
    match reply {
        Reply::Array(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A RESP2 map (a flat key, value, key, value array) by key.
fn map(reply: &Reply) -> BTreeMap<String, &Reply> {
    items(reply)
        .chunks(2)
        .map(|pair| (text(&pair[0]), &pair[1]))
        .collect()
}

fn strings(reply: &Reply) -> Vec<String> {
    items(reply).iter().map(text).collect()
}

// ---------------------------------------------------------------------------
// One canonical text per command, built from either side

fn describe_live_key_spec(reply: &Reply) -> String {
    let spec = map(reply);
    let flags = strings(spec["flags"]).join(",");
    let begin = map(spec["begin_search"]);
    let begin = match text(begin["type"]).as_str() {
        "index" => format!("index({})", int(map(begin["spec"])["index"])),
        "keyword" => {
            let s = map(begin["spec"]);
            format!("keyword({},{})", text(s["keyword"]), int(s["startfrom"]))
        }
        other => other.to_string(),
    };
    let find = map(spec["find_keys"]);
    let find = match text(find["type"]).as_str() {
        "range" => {
            let s = map(find["spec"]);
            format!(
                "range({},{},{})",
                int(s["lastkey"]),
                int(s["keystep"]),
                int(s["limit"])
            )
        }
        "keynum" => {
            let s = map(find["spec"]);
            let (idx, first, step) = (int(s["keynumidx"]), int(s["firstkey"]), int(s["keystep"]));
            format!("keynum({idx},{first},{step})")
        }
        other => other.to_string(),
    };
    format!("[{flags}] {begin} {find}")
}

fn describe_key_spec(spec: &KeySpec) -> String {
    let flags = spec.flags.names().collect::<Vec<_>>().join(",");
    let begin = match spec.begin_search {
        BeginSearch::Index(i) => format!("index({i})"),
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => format!("keyword({keyword},{start_from})"),
        BeginSearch::Unknown => "unknown".into(),
    };
    let find = match spec.find_keys {
        FindKeys::Range {
            last_key,
            key_step,
            limit,
        } => format!("range({last_key},{key_step},{limit})"),
        FindKeys::KeyNum {
            key_num_idx,
            first_key,
            key_step,
        } => format!("keynum({key_num_idx},{first_key},{key_step})"),
        FindKeys::Unknown => "unknown".into(),
    };
    format!("[{flags}] {begin} {find}")
}

/// `COMMAND` entries (subcommands flattened) as name -> description.
fn describe_live(reply: &Reply, out: &mut BTreeMap<String, String>) {
    for command in items(reply) {
        let f = items(command);
        let name = text(&f[0]);
        let mut flags = strings(&f[2]);
        flags.sort();
        let mut acl = strings(&f[6]);
        acl.sort();
        let specs: Vec<String> = items(&f[8]).iter().map(describe_live_key_spec).collect();
        let description = format!(
            "arity={} flags={:?} keys=({},{},{}) acl={:?} tips={:?} specs={:?}",
            int(&f[1]),
            flags,
            int(&f[3]),
            int(&f[4]),
            int(&f[5]),
            acl,
            strings(&f[7]),
            specs
        );
        out.insert(name, description);
        describe_live(&f[9], out);
    }
}

fn describe_table(commands: &[CommandSpec], out: &mut BTreeMap<String, String>) {
    for spec in commands {
        let mut flags: Vec<_> = spec.flags().names().collect();
        flags.sort();
        let mut acl: Vec<_> = spec
            .acl_categories()
            .names()
            .map(|c| format!("@{c}"))
            .collect();
        acl.sort();
        let (first, last, step) = spec.legacy_key_range();
        let specs: Vec<String> = spec.key_specs().iter().map(describe_key_spec).collect();
        let description = format!(
            "arity={} flags={:?} keys=({first},{last},{step}) acl={:?} tips={:?} specs={:?}",
            spec.arity(),
            flags,
            acl,
            spec.tips(),
            specs
        );
        out.insert(spec.name().to_string(), description);
        describe_table(spec.subcommands(), out);
    }
}

/// Every command and subcommand of the table.
fn all_specs() -> Vec<&'static CommandSpec> {
    command::commands()
        .iter()
        .flat_map(|c| std::iter::once(c).chain(c.subcommands()))
        .collect()
}

#[test]
fn table_matches_live_command_info() {
    let server = RedisServer::start();
    let version = server
        .cmd(&["INFO", "server"])
        .bulk_str()
        .unwrap_or_default();
    assert!(
        version.contains(&format!("redis_version:{}\r\n", command::REDIS_VERSION)),
        "the table is for Redis {}; regenerate it for this server:\n{version}",
        command::REDIS_VERSION
    );

    let mut live = BTreeMap::new();
    describe_live(&server.cmd(&["COMMAND"]), &mut live);
    let mut ours = BTreeMap::new();
    describe_table(command::commands(), &mut ours);

    let live_names: BTreeSet<_> = live.keys().collect();
    let our_names: BTreeSet<_> = ours.keys().collect();
    assert_eq!(our_names, live_names, "command names differ");
    assert!(
        live.len() > 300,
        "only {} commands and subcommands",
        live.len()
    );
    for (name, description) in &live {
        assert_eq!(&ours[name], description, "{name} differs from COMMAND INFO");
    }

    // Groups from COMMAND DOCS, subcommands included.
    let docs = server.cmd(&["COMMAND", "DOCS"]);
    let mut groups = BTreeMap::new();
    for (name, doc) in map(&docs) {
        let doc = map(doc);
        groups.insert(name, text(doc["group"]));
        if let Some(subs) = doc.get("subcommands") {
            for (sub, sub_doc) in map(subs) {
                groups.insert(sub, text(map(sub_doc)["group"]));
            }
        }
    }
    for spec in all_specs() {
        assert_eq!(
            Some(&spec.group().as_str().to_string()),
            groups.get(spec.name()),
            "group of {}",
            spec.name()
        );
        // Every entry is reachable through lookup, name in any case.
        let upper: Vec<String> = spec.name().split('|').map(str::to_uppercase).collect();
        assert_eq!(
            command::lookup(&upper).map(CommandSpec::name),
            Some(spec.name())
        );
    }
}

// ---------------------------------------------------------------------------
// Key extraction against COMMAND GETKEYS

/// Calls whose keys are easy to get wrong: numkeys, keyword searches,
/// Redis's own key finders, and malformed variants of each.
const TRICKY: &[&[&str]] = &[
    &["GET", "a"],
    &["MSET", "a", "1", "b", "2", "c", "3"],
    &["MGET", "a", "b", "c"],
    &["DEL", "a", "b", "c"],
    &["EVAL", "return 1", "3", "a", "b", "c", "x", "y"],
    &["EVAL", "return 1", "0"],
    &["EVAL", "return 1", "0", "x"],
    &["EVAL", "return 1", "4", "a", "b"],
    &["EVAL", "return 1", "-1", "a"],
    &["EVAL", "return 1", "1x", "a"],
    &["EVAL", "return 1", " 1", "a"],
    &["EVALSHA", "abc", "2", "a", "b"],
    &["EVAL_RO", "return 1", "1", "a", "x"],
    &["EVALSHA_RO", "abc", "1", "a"],
    &["FCALL", "f", "2", "a", "b", "x"],
    &["FCALL_RO", "f", "1", "a"],
    &[
        "ZUNIONSTORE",
        "d",
        "3",
        "a",
        "b",
        "c",
        "WEIGHTS",
        "1",
        "2",
        "3",
    ],
    &["ZINTERSTORE", "d", "2", "a", "b", "AGGREGATE", "MAX"],
    &["ZDIFFSTORE", "d", "1", "a"],
    &["ZUNIONSTORE", "d", "0", "a"],
    &["ZUNIONSTORE", "d", "5", "a", "b"],
    &["ZUNION", "2", "a", "b", "WITHSCORES"],
    &["ZINTER", "3", "a", "b", "c"],
    &["ZDIFF", "2", "a", "b"],
    &["ZINTERCARD", "2", "a", "b", "LIMIT", "5"],
    &["SINTERCARD", "3", "a", "b", "c"],
    &["SINTERCARD", "4", "a", "b", "c"],
    &["LMPOP", "2", "a", "b", "LEFT", "COUNT", "2"],
    &["BLMPOP", "0", "3", "a", "b", "c", "RIGHT"],
    &["ZMPOP", "1", "a", "MIN"],
    &["BZMPOP", "1.5", "2", "a", "b", "MAX", "COUNT", "3"],
    &["XREAD", "STREAMS", "a", "b", "0", "0"],
    &[
        "XREAD", "COUNT", "5", "BLOCK", "100", "STREAMS", "a", "b", "c", "1", "2", "3",
    ],
    &["XREAD", "COUNT", "5", "a", "b"],
    &["XREAD", "STREAMS", "a", "b", "0"],
    &["XREAD", "STREAMS", "STREAMS", "a", "0", "0"],
    &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", ">"],
    &[
        "XREADGROUP",
        "GROUP",
        "STREAMS",
        "c",
        "COUNT",
        "1",
        "NOACK",
        "STREAMS",
        "a",
        "b",
        ">",
        ">",
    ],
    &[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "0",
        "STREAMS",
        "a",
    ],
    &["SORT", "a"],
    &["SORT", "a", "BY", "w_*", "GET", "o_*", "STORE", "d"],
    &["SORT", "a", "STORE", "d1", "STORE", "d2"],
    &["SORT", "a", "LIMIT", "0", "STORE", "STORE", "d"],
    &["SORT", "a", "GET", "STORE", "x"],
    &["SORT", "a", "STORE"],
    &["SORT", "a", "STORE", "GET", "STORE", "d"],
    &["SORT", "a", "STORE", "LIMIT", "STORE", "d", "e"],
    &["SORT_RO", "a", "BY", "w_*", "GET", "#"],
    &["MIGRATE", "h", "6379", "a", "0", "5000"],
    &[
        "MIGRATE", "h", "6379", "", "0", "5000", "KEYS", "a", "b", "c",
    ],
    &[
        "MIGRATE", "h", "6379", "", "0", "5000", "COPY", "REPLACE", "AUTH", "KEYS", "KEYS", "a",
    ],
    &[
        "MIGRATE", "h", "6379", "", "0", "5000", "AUTH2", "u", "KEYS", "KEYS", "a",
    ],
    &["MIGRATE", "h", "6379", "x", "0", "5000", "KEYS", "a"],
    &["MIGRATE", "h", "6379", "", "0", "5000", "KEYS"],
    &["OBJECT", "ENCODING", "a"],
    &["object", "freq", "a"],
    &["MEMORY", "USAGE", "a", "SAMPLES", "0"],
    &["XINFO", "STREAM", "a", "FULL", "COUNT", "10"],
    &["XGROUP", "CREATE", "a", "g", "$", "MKSTREAM"],
    &["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "d"],
    &[
        "GEORADIUS",
        "g",
        "0",
        "0",
        "1",
        "km",
        "STOREDIST",
        "d",
        "STORE",
        "e",
    ],
    &["GEORADIUS", "g", "0", "0", "1", "km", "WITHDIST", "STORE"],
    &["GEORADIUSBYMEMBER", "g", "m", "1", "km", "STOREDIST", "d"],
    &["GEORADIUS_RO", "g", "0", "0", "1", "km"],
    &[
        "GEOSEARCHSTORE",
        "d",
        "s",
        "FROMMEMBER",
        "m",
        "BYRADIUS",
        "1",
        "km",
    ],
    &["BITFIELD", "a", "GET", "u8", "0"],
    &["BITFIELD", "a", "GET", "u8", "0", "SET", "u8", "0", "1"],
    &["BITFIELD", "a", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "1"],
    &["BITFIELD", "a", "OVERFLOW", "SAT"],
    &["BITFIELD", "a", "GET", "u8", "0", "OVERFLOW", "WRAP"],
    &["BITFIELD", "a", "GET", "u8"],
    &["BITFIELD", "a"],
    &["BITFIELD_RO", "a", "GET", "u8", "0"],
    &["SET", "a", "v", "GET"],
    &["SET", "a", "v", "EX", "10"],
    &["SET", "a", "v", "get"],
    &["SET", "a", "v", "GETX"],
    &["BLPOP", "a", "b", "c", "0"],
    &["BRPOPLPUSH", "a", "b", "0"],
    &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
    &["RENAME", "a", "b"],
    &["COPY", "a", "b", "DB", "1"],
    &["SMOVE", "a", "b", "m"],
    &["LCS", "a", "b"],
    &["PFMERGE", "d", "a", "b"],
    &["PFCOUNT", "a", "b"],
    &["BITOP", "AND", "d", "a", "b"],
    &["SUNIONSTORE", "d", "a", "b"],
    &["WATCH", "a", "b"],
    &["TOUCH", "a", "b"],
    &["EXISTS", "a", "b"],
    &["PUBLISH", "ch", "msg"],
    &["SUBSCRIBE", "ch"],
    &["CONFIG", "GET", "maxmemory"],
    &["CLIENT", "LIST"],
    &["PING"],
];

/// A deterministic xorshift generator: the same calls on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Words that steer key finding somewhere in Redis.
const KEYWORDS: &[&str] = &[
    "STORE",
    "STOREDIST",
    "STREAMS",
    "KEYS",
    "BLOCK",
    "COUNT",
    "GROUP",
    "NOACK",
    "GET",
    "SET",
    "INCRBY",
    "OVERFLOW",
    "LIMIT",
    "BY",
    "AUTH",
    "AUTH2",
    "COPY",
    "REPLACE",
    "",
    "get",
];
const NUMBERS: &[&str] = &["0", "1", "2", "3", "4", "-1", "1x", "01"];

/// Generated calls of `spec`: arities from the minimum up (for variadic
/// commands), each argument a fresh key, a number or a keyword.
fn generated_calls(spec: &CommandSpec, rng: &mut Rng, out: &mut Vec<Vec<String>>) {
    if spec.is_container() {
        // Only its subcommands run; they get their own calls.
        return;
    }
    let prefix: Vec<String> = spec.name().split('|').map(str::to_uppercase).collect();
    let min = spec.arity().unsigned_abs() as usize;
    let variable_len = spec.arity() < 0;
    let unusual = KeySpecFlags::VARIABLE_FLAGS.union(KeySpecFlags::INCOMPLETE);
    let tricky = spec.is_movablekeys()
        || spec.key_specs().len() > 1
        || spec.key_spec_flags().intersects(unusual);
    let rounds = match (spec.has_no_keys(), tricky) {
        (true, _) => 2,
        (false, false) => 30,
        (false, true) => 300,
    };
    for round in 0..rounds {
        let len = if variable_len {
            min + rng.below(9)
        } else {
            min
        };
        let mut call = prefix.clone();
        for i in call.len()..len.max(prefix.len()) {
            let word = if round == 0 {
                format!("k{i}")
            } else {
                match rng.below(10) {
                    0..=4 => format!("k{i}"),
                    5..=6 => NUMBERS[rng.below(NUMBERS.len())].to_string(),
                    _ => {
                        let own: Vec<&str> = spec
                            .key_specs()
                            .iter()
                            .filter_map(|ks| match ks.begin_search {
                                BeginSearch::Keyword { keyword, .. } => Some(keyword),
                                _ => None,
                            })
                            .collect();
                        if !own.is_empty() && rng.below(2) == 0 {
                            own[rng.below(own.len())].to_string()
                        } else {
                            KEYWORDS[rng.below(KEYWORDS.len())].to_string()
                        }
                    }
                }
            };
            call.push(word);
        }
        out.push(call);
    }
}

/// Runs `COMMAND GETKEYSANDFLAGS` for every call, pipelined in batches.
fn getkeys_all(client: &mut RespClient, calls: &[Vec<String>]) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(calls.len());
    for batch in calls.chunks(500) {
        for call in batch {
            let mut args = vec!["COMMAND", "GETKEYSANDFLAGS"];
            args.extend(call.iter().map(String::as_str));
            client.send(&args).expect("send COMMAND GETKEYSANDFLAGS");
        }
        for _ in batch {
            replies.push(client.read_reply().expect("read COMMAND GETKEYSANDFLAGS"));
        }
    }
    replies
}

#[test]
fn keys_match_command_getkeys() {
    let server = RedisServer::start();
    let mut client = server.client();

    let mut calls: Vec<Vec<String>> = TRICKY
        .iter()
        .map(|call| call.iter().map(|s| s.to_string()).collect())
        .collect();
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for spec in all_specs() {
        generated_calls(spec, &mut rng, &mut calls);
    }

    let replies = getkeys_all(&mut client, &calls);
    let mut with_keys = 0;
    let mut commands_with_keys = BTreeSet::new();
    let (mut indexes, mut keys) = (Vec::new(), Vec::new());
    for (call, reply) in calls.iter().zip(&replies) {
        let spec = command::lookup(call).unwrap_or_else(|| panic!("{call:?} not in the table"));
        indexes.clear();
        keys.clear();
        let n = spec.keys_with_flags(call, &mut keys);
        assert_eq!(n, keys.len());
        spec.keys(call, &mut indexes);
        assert!(indexes.iter().eq(keys.iter().map(|k| &k.index)), "{call:?}");
        let ours: Vec<&str> = keys.iter().map(|k| call[k.index].as_str()).collect();
        match reply {
            Reply::Array(entries) => {
                let expected: Vec<String> = entries.iter().map(|e| text(&items(e)[0])).collect();
                assert_eq!(ours, expected, "keys of {call:?}");
                for (key, entry) in keys.iter().zip(entries) {
                    let mut redis_flags = strings(&items(entry)[1]);
                    let mut our_flags: Vec<_> = key.flags.names().collect();
                    redis_flags.sort();
                    our_flags.sort();
                    // Some of Redis's key finders report no flags; we fill
                    // those in from the key specs.
                    if !redis_flags.is_empty() {
                        assert_eq!(our_flags, redis_flags, "flags of {call:?}");
                    }
                }
                if !expected.is_empty() {
                    with_keys += 1;
                    commands_with_keys.insert(spec.name());
                }
            }
            Reply::Error(e) => {
                assert!(ours.is_empty(), "{call:?}: Redis says {e}, we say {ours:?}")
            }
            other => panic!("{call:?}: unexpected reply {other:?}"),
        }
    }

    // The comparison must have covered real ground: every command that can
    // have keys produced some, in many calls.
    let keyed: BTreeSet<_> = all_specs()
        .into_iter()
        .filter(|s| !s.has_no_keys())
        .map(CommandSpec::name)
        .collect();
    let missing: Vec<_> = keyed.difference(&commands_with_keys).collect();
    assert!(
        missing.is_empty(),
        "no call of these found keys: {missing:?}"
    );
    assert!(
        with_keys > 5_000,
        "only {with_keys} calls with keys of {}",
        calls.len()
    );
    assert_eq!(
        server.cmd(&["PING"]),
        Reply::Simple("PONG".into()),
        "server survived"
    );
}

#[test]
fn flag_helpers_agree_with_the_flags() {
    for spec in all_specs() {
        let flags: Vec<_> = spec.flags().names().collect();
        assert_eq!(
            spec.is_readonly(),
            flags.contains(&"readonly"),
            "{}",
            spec.name()
        );
        assert_eq!(spec.is_write(), flags.contains(&"write"), "{}", spec.name());
        assert_eq!(spec.is_admin(), flags.contains(&"admin"), "{}", spec.name());
        assert_eq!(
            spec.is_pubsub(),
            flags.contains(&"pubsub"),
            "{}",
            spec.name()
        );
        assert_eq!(
            spec.is_blocking(),
            flags.contains(&"blocking"),
            "{}",
            spec.name()
        );
        assert!(!(spec.is_readonly() && spec.is_write()), "{}", spec.name());
    }
    let get = command::lookup(&["get"]).expect("GET");
    assert!(get.is_readonly() && get.is_fast() && !get.has_no_keys());
    assert!(command::lookup(&["PING"]).is_some_and(CommandSpec::has_no_keys));
    assert!(command::lookup(&["FLUSHALL"]).is_some_and(|s| s.is_write() && !s.is_readonly()));
    assert!(command::lookup(&["CONFIG", "SET"]).is_some_and(CommandSpec::is_admin));
}
