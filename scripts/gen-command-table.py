#!/usr/bin/env python3
"""Generates crates/shardgate/src/command/table.rs from a live redis-server.

Starts a temporary `redis-server` (default /usr/bin/redis-server, Redis
7.0.15), reads `COMMAND` (arity, flags, ACL categories, tips, key specs,
subcommands) and `COMMAND DOCS` (the docs group), and writes the static
command table that `shardgate::command` serves. The table is checked in; the
test crates/shardgate/tests/command_table.rs compares it with a live server,
so rerun this script whenever the Redis version changes:

    python3 scripts/gen-command-table.py [--redis-server PATH] [--out PATH]

No third-party Python packages: a tiny RESP2 client is included.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "crates", "shardgate", "src", "command", "table.rs")

# Every name Redis may print, in the order of the Rust constants. A name the
# server prints that is missing here stops the generator: the Rust side would
# silently lose it otherwise.
COMMAND_FLAGS = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
    "blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
    "fast", "no_auth", "may_replicate", "no_mandatory_keys", "no_multi",
    "movablekeys", "allow_busy", "module_no_cluster", "no_async_loading",
]
ACL_CATEGORIES = [
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
    "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast",
    "slow", "blocking", "dangerous", "connection", "transaction", "scripting",
]
KEY_SPEC_FLAGS = [
    "RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key",
    "incomplete", "variable_flags",
]
GROUPS = {
    "generic": "Generic", "string": "String", "list": "List", "set": "Set",
    "sorted-set": "SortedSet", "hash": "Hash", "pubsub": "Pubsub",
    "transactions": "Transactions", "connection": "Connection",
    "server": "Server", "scripting": "Scripting",
    "hyperloglog": "Hyperloglog", "cluster": "Cluster",
    "sentinel": "Sentinel", "geo": "Geo", "stream": "Stream",
    "bitmap": "Bitmap", "module": "Module",
}

# Redis's `getkeys_proc`s (the "get_keys_function" of src/commands/*.json in
# Redis 7.0). COMMAND does not report them, so they are listed here; Redis
# falls back to them when a command's key specs are incomplete, invalid for
# the given arguments, or have variable flags.
KEYS_PROCS = {
    "zunionstore": "NumKeys { store: 1, count: 2, first: 3 }",
    "zinterstore": "NumKeys { store: 1, count: 2, first: 3 }",
    "zdiffstore": "NumKeys { store: 1, count: 2, first: 3 }",
    "zunion": "NumKeys { store: 0, count: 1, first: 2 }",
    "zinter": "NumKeys { store: 0, count: 1, first: 2 }",
    "zdiff": "NumKeys { store: 0, count: 1, first: 2 }",
    "zintercard": "NumKeys { store: 0, count: 1, first: 2 }",
    "sintercard": "NumKeys { store: 0, count: 1, first: 2 }",
    "eval": "NumKeys { store: 0, count: 2, first: 3 }",
    "evalsha": "NumKeys { store: 0, count: 2, first: 3 }",
    "eval_ro": "NumKeys { store: 0, count: 2, first: 3 }",
    "evalsha_ro": "NumKeys { store: 0, count: 2, first: 3 }",
    "fcall": "NumKeys { store: 0, count: 2, first: 3 }",
    "fcall_ro": "NumKeys { store: 0, count: 2, first: 3 }",
    "lmpop": "NumKeys { store: 0, count: 1, first: 2 }",
    "blmpop": "NumKeys { store: 0, count: 2, first: 3 }",
    "zmpop": "NumKeys { store: 0, count: 1, first: 2 }",
    "bzmpop": "NumKeys { store: 0, count: 2, first: 3 }",
    "sort": "Sort",
    "sort_ro": "SortRo",
    "migrate": "Migrate",
    "georadius": "GeoRadius",
    "georadiusbymember": "GeoRadius",
    "xread": "XRead",
    "xreadgroup": "XRead",
    "set": "Set",
    "bitfield": "Bitfield",
}

# Must match `command::index::slot_hash` in Rust (FNV-1a, 32 bit).
FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193


def fnv1a(data):
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


class Resp:
    """A minimal blocking RESP2 client."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("unexpected reply line %r" % line)


def pairs(flat):
    """A RESP2 map (flat [k, v, k, v, ...]) as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(redis_server):
    """(version, COMMAND reply, COMMAND DOCS as a dict) from a temporary server."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    client = Resp(port)
                    client.cmd("PING")
                    break
                except (OSError, EOFError):
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            info = client.cmd("INFO", "server")
            version = next(l.split(":", 1)[1].strip() for l in info.splitlines()
                           if l.startswith("redis_version:"))
            commands = client.cmd("COMMAND")
            docs = pairs(client.cmd("COMMAND", "DOCS"))
        finally:
            proc.terminate()
            proc.wait(10)
    return version, commands, docs


def bitset(type_name, names, known, what, command):
    for n in names:
        if n not in known:
            sys.exit("unknown %s %r on %s: add it to the generator and the Rust type"
                     % (what, n, command))
    consts = ["%s::%s" % (type_name, const_name(n)) for n in known if n in names]
    if not consts:
        return "%s::EMPTY" % type_name
    return consts[0] + "".join(".union(%s)" % c for c in consts[1:])


def const_name(name):
    return name.lstrip("@").upper()


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_spec(raw, command):
    spec = pairs(raw)
    flags = bitset("KF", spec["flags"], KEY_SPEC_FLAGS, "key spec flag", command)
    bs = pairs(spec["begin_search"])
    bs_spec = pairs(bs["spec"]) if bs["spec"] else {}
    if bs["type"] == "index":
        begin = "BeginSearch::Index(%d)" % bs_spec["index"]
    elif bs["type"] == "keyword":
        begin = "BeginSearch::Keyword { keyword: %s, start_from: %d }" % (
            rust_str(bs_spec["keyword"]), bs_spec["startfrom"])
    elif bs["type"] == "unknown":
        begin = "BeginSearch::Unknown"
    else:
        sys.exit("unknown begin_search type %r on %s" % (bs["type"], command))
    fk = pairs(spec["find_keys"])
    fk_spec = pairs(fk["spec"]) if fk["spec"] else {}
    if fk["type"] == "range":
        find = "FindKeys::Range { last_key: %d, key_step: %d, limit: %d }" % (
            fk_spec["lastkey"], fk_spec["keystep"], fk_spec["limit"])
    elif fk["type"] == "keynum":
        find = "FindKeys::KeyNum { key_num_idx: %d, first_key: %d, key_step: %d }" % (
            fk_spec["keynumidx"], fk_spec["firstkey"], fk_spec["keystep"])
    elif fk["type"] == "unknown":
        find = "FindKeys::Unknown"
    else:
        sys.exit("unknown find_keys type %r on %s" % (fk["type"], command))
    return "KeySpec { flags: %s, begin_search: %s, find_keys: %s }" % (flags, begin, find)


def static_name(parent):
    return "".join(c if c.isalnum() else "_" for c in parent.upper()) + "_SUBCOMMANDS"


def entry(raw, docs, indent):
    """One `CommandSpec { .. }` literal (subcommands refer to their own static)."""
    name, arity, flags, first, last, step, acl, tips, specs, subs = raw
    doc = docs.get(name)
    if doc is None:
        sys.exit("no COMMAND DOCS for %s" % name)
    group = pairs(doc)["group"]
    if group not in GROUPS:
        sys.exit("unknown group %r on %s" % (group, name))
    pad = " " * indent
    lines = [
        "CommandSpec {",
        "    name: %s, arity: %d, group: Group::%s," % (rust_str(name), arity, GROUPS[group]),
        "    first_key: %d, last_key: %d, key_step: %d," % (first, last, step),
        "    flags: %s," % bitset("CF", flags, COMMAND_FLAGS, "command flag", name),
        "    acl: %s," % bitset("ACL", acl, ["@" + c for c in ACL_CATEGORIES],
                                 "ACL category", name),
        "    tips: &[%s]," % ", ".join(rust_str(t) for t in tips),
    ]
    if specs:
        lines.append("    key_specs: &[")
        lines += ["        %s," % key_spec(s, name) for s in specs]
        lines.append("    ],")
    else:
        lines.append("    key_specs: &[],")
    proc = KEYS_PROCS.get(name)
    lines.append("    keys_proc: %s," % ("Some(KeysProc::%s)" % proc if proc else "None"))
    lines.append("    subcommands: %s," % ("&%s" % static_name(name) if subs else "&[]"))
    lines.append("},")
    return "\n".join(pad + l for l in lines)


def index_table(names):
    """Open addressing with linear probing over the FNV-1a hash of the name."""
    size = 64
    while size < 3 * len(names):
        size *= 2
    slots = [None] * size
    longest_probe = 0
    for i, n in enumerate(names):
        pos = fnv1a(n.encode()) & (size - 1)
        probe = 0
        while slots[pos] is not None:
            pos = (pos + 1) & (size - 1)
            probe += 1
        slots[pos] = i
        longest_probe = max(longest_probe, probe)
    return slots, longest_probe


def render(version, commands, docs):
    commands = sorted(commands, key=lambda c: c[0])
    sub_docs = {}
    for name, doc in docs.items():
        d = pairs(doc)
        if "subcommands" in d:
            sub_docs.update(pairs(d["subcommands"]))
    all_docs = dict(docs)
    all_docs.update(sub_docs)

    out = [
        "// @generated by scripts/gen-command-table.py from redis-server %s" % version,
        "// (`COMMAND` and `COMMAND DOCS`). Do not edit: rerun the script, then",
        "// `cargo test -p shardgate --test command_table` checks it against a live server.",
        "",
        "use super::spec::{",
        "    AclCategories as ACL, BeginSearch, CommandFlags as CF, CommandSpec, FindKeys, Group,",
        "    KeySpec, KeySpecFlags as KF, KeysProc,",
        "};",
        "",
        "/// The Redis version this table was generated from.",
        "pub(super) const REDIS_VERSION: &str = %s;" % rust_str(version),
        "",
        "/// Top-level commands, sorted by name.",
        "pub(super) static COMMANDS: [CommandSpec; %d] = [" % len(commands),
    ]
    out += [entry(c, all_docs, 4) for c in commands]
    out.append("];")

    flat = [(c[0], "COMMANDS[%d]" % i) for i, c in enumerate(commands)]
    for c in commands:
        subs = sorted(c[9], key=lambda s: s[0])
        if not subs:
            continue
        static = static_name(c[0])
        out += ["", "static %s: [CommandSpec; %d] = [" % (static, len(subs))]
        out += [entry(s, all_docs, 4) for s in subs]
        out.append("];")
        flat += [(s[0], "%s[%d]" % (static, i)) for i, s in enumerate(subs)]

    names = [n for n, _ in flat]
    slots, longest_probe = index_table(names)
    out += [
        "",
        "/// Every command, then every subcommand (`parent|sub`); `INDEX` points here.",
        "pub(super) static ALL: [&CommandSpec; %d] = [" % len(flat),
    ]
    out += ["    &%s," % ref for _, ref in flat]
    out += [
        "];",
        "",
        "/// The longest name in `ALL`, in bytes.",
        "pub(super) const MAX_NAME_LEN: usize = %d;" % max(len(n) for n in names),
        "",
        "/// The longest run of occupied slots a lookup may probe past (%d here)." % longest_probe,
        "pub(super) const MAX_PROBE: usize = %d;" % longest_probe,
        "",
        "/// Open-addressing hash table: slot `fnv1a(lowercase name) & (len - 1)`,",
        "/// then linear probing; `u16::MAX` marks an empty slot.",
        "pub(super) static INDEX: [u16; %d] = [" % len(slots),
    ]
    row = []
    for s in slots:
        row.append("u16::MAX" if s is None else str(s))
        if len(row) == 16:
            out.append("    " + ", ".join(row) + ",")
            row = []
    if row:
        out.append("    " + ", ".join(row) + ",")
    out.append("];")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-server", default="/usr/bin/redis-server")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    version, commands, docs = fetch(args.redis_server)
    text = render(version, commands, docs)
    with open(args.out, "w") as f:
        f.write(text)
    print("wrote %s: %d commands from redis %s" % (args.out, len(commands), version))


if __name__ == "__main__":
    main()
