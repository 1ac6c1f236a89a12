"""Do the proxies of a multi-shard scenario put every key on the same server?

The throughput comparison is fair only if the proxies split the work the
same way (an MSET of 10 keys becomes the same sub-commands on the same
servers). So before any load, for each proxy in turn: sample keys in
redis-benchmark's own format (`key:%012d`, from its `-r` keyspace) are
deleted on every server, written through the proxy with MSETs of 10 keys
(the command whose split matters), and then looked up with EXISTS on every
server directly. Each key must be on exactly one server, and on the same
one through every proxy. The sample keys are deleted again at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from deploy import Deployment, Endpoint, predixy_text, resp_command, start_proxy, start_redis
from load import KEYSPACE
from processes import BenchError, Processes, free_port, wait_for_port
from scenarios import BASE_POOL, Scenario, Target

SAMPLE = 3000  # keys, MSET 10 at a time
MSET_KEYS = 10


def sample_keys() -> list[str]:
    numbers = random.Random(20).sample(range(KEYSPACE), SAMPLE)
    return [f"key:{n:012d}" for n in numbers]


def pipeline(port: int, commands: list[tuple[str, ...]]) -> list[bytes]:
    """Sends every command on one connection; returns each reply's first line.

    Enough for the replies used here (+OK, :0, :1, -ERR ...): no bulk replies.
    """
    payload = b"".join(resp_command(*c) for c in commands)
    replies: list[bytes] = []
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        while len(replies) < len(commands):
            chunk = s.recv(1 << 16)
            if not chunk:
                raise BenchError(f"port {port} closed the connection after {len(replies)} replies")
            buf += chunk
            *lines, buf = buf.split(b"\r\n")
            replies += lines
    return replies


def locate(dep: Deployment, keys: list[str]) -> list[int | None]:
    """Per key, the index of the master holding it (None: nowhere; -1: several)."""
    where: list[int | None] = [None] * len(keys)
    for index, node in enumerate(dep.masters):
        replies = pipeline(node.port, [("EXISTS", k) for k in keys])
        for i, reply in enumerate(replies):
            if reply == b":1":
                where[i] = index if where[i] is None else -1
    return where


def delete_everywhere(dep: Deployment, keys: list[str]) -> None:
    for node in dep.masters:
        for start in range(0, len(keys), 500):
            pipeline(node.port, [("DEL", *keys[start : start + 500])])


def check_placement(dep: Deployment) -> dict:
    """{"keys": n, "servers": labels, "targets": {name: counts per server},
    "reference": first proxy, "mismatches": {name: keys placed elsewhere
    than by the reference}, "problems": [text]}."""
    keys = sample_keys()
    labels = [m.label for m in dep.masters]
    proxies = [name for name, e in dep.endpoints.items() if e.proc is not None]
    result = {"keys": len(keys), "servers": labels, "targets": {}, "mismatches": {},
              "reference": proxies[0] if proxies else None, "problems": []}  # fmt: skip
    placed: dict[str, list[int | None]] = {}
    try:
        for name in proxies:
            delete_everywhere(dep, keys)
            port = dep.endpoints[name].port
            commands = []
            for start in range(0, len(keys), MSET_KEYS):
                args = [a for k in keys[start : start + MSET_KEYS] for a in (k, "1")]
                commands.append(("MSET", *args))
            bad = [r for r in pipeline(port, commands) if r != b"+OK"]
            if bad:
                result["problems"].append(f"{name}: {len(bad)} MSETs failed, e.g. {bad[0]!r}")
            where = locate(dep, keys)
            placed[name] = where
            counts = {lb: sum(1 for w in where if w == i) for i, lb in enumerate(labels)}
            lost = sum(1 for w in where if w is None)
            twice = sum(1 for w in where if w == -1)
            if lost or twice:
                result["problems"].append(
                    f"{name}: {lost} keys on no server, {twice} on several"
                )
            result["targets"][name] = counts
    finally:
        delete_everywhere(dep, keys)
    ref = placed.get(result["reference"])
    for name, where in placed.items():
        if ref is not None and name != result["reference"]:
            n = sum(1 for a, b in zip(where, ref) if a != b)
            result["mismatches"][name] = n
            if n:
                result["problems"].append(
                    f"{name} put {n} of {len(keys)} keys on another server than "
                    f"{result['reference']} did"
                )
    return result


# (label, pool keys, weights) for shardgate/twemproxy; predixy group layouts.
CANDIDATES = [
    ("crc16 modula 1:1:1", {"hash": "crc16", "distribution": "modula"}, (1, 1, 1)),
    ("crc16 modula 2:1:1", {"hash": "crc16", "distribution": "modula"}, (2, 1, 1)),
    ("slots 1:1:1", {"hash": "crc16", "distribution": "slots"}, (1, 1, 1)),
]
PREDIXY_LAYOUTS = [("predixy 3 groups", (0, 1, 2)), ("predixy 4 groups", (0, 0, 1, 2))]


def pairings(args) -> list[list[str]]:
    """Starts 3 redis-servers and every candidate; returns table rows."""
    procs = Processes()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="shardgate-placement-") as tmp:
            workdir = Path(tmp)
            masters = [start_redis(procs, args, workdir, f"shard{i}", i) for i in range(3)]
            dep = Deployment(Scenario("pairings", "", 3, BASE_POOL, False), masters, {})
            for label, shards in PREDIXY_LAYOUTS:
                port = free_port()
                conf = workdir / f"{label.replace(' ', '-')}.conf"
                conf.write_text(predixy_text(f"127.0.0.1:{port}", [masters[i].port for i in shards]))
                log = conf.with_suffix(".log")
                proc = procs.spawn([args.tools["predixy"], str(conf)], log)
                wait_for_port(label, proc, port, log)
                dep.endpoints[label] = Endpoint(label, port, proc, log)
            for label, pool, weights in CANDIDATES:
                sc = Scenario(label.replace(" ", "-").replace(":", ""), label, 3,
                              {**BASE_POOL, **pool}, False, weights=weights)  # fmt: skip
                dep.scenario = sc
                kinds = ["shardgate"] + (["twemproxy"] if pool["distribution"] != "slots" else [])
                for kind in kinds:
                    endpoint, _ = start_proxy(procs, args, workdir, sc, Target(kind, kind), dep)
                    dep.endpoints[f"{kind} {label}"] = endpoint
            keys = sample_keys()
            placed = place_through_each(dep, keys)
            for name, where in placed.items():
                counts = [sum(1 for w in where if w == i) for i in range(len(masters))]
                unlike = [sum(1 for a, b in zip(where, placed[layout]) if a != b)
                          for layout, _ in PREDIXY_LAYOUTS]  # fmt: skip
                rows.append([name] + [f"{n:,}" for n in counts + unlike])
    finally:
        procs.kill_all()
    return rows


def place_through_each(dep: Deployment, keys: list[str]) -> dict[str, list[int | None]]:
    """Per proxy, the master index each key landed on (one MSET pass each)."""
    placed = {}
    try:
        for name, endpoint in dep.endpoints.items():
            delete_everywhere(dep, keys)
            commands = [("MSET", *[a for k in keys[i : i + MSET_KEYS] for a in (k, "1")])
                        for i in range(0, len(keys), MSET_KEYS)]  # fmt: skip
            bad = [r for r in pipeline(endpoint.port, commands) if r != b"+OK"]
            if bad:
                raise BenchError(f"{name}: {len(bad)} MSETs failed, e.g. {bad[0]!r}")
            placed[name] = locate(dep, keys)
    finally:
        delete_everywhere(dep, keys)
    return placed


def main(argv: list[str] | None = None) -> int:
    from bench import DEFAULT_SHARDGATE, SHARED_PREDIXY

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardgate", type=Path, default=DEFAULT_SHARDGATE)
    ap.add_argument("--predixy", type=Path, default=SHARED_PREDIXY)
    args = ap.parse_args(argv)
    if not os.access(args.predixy, os.X_OK):
        found = shutil.which("predixy")
        if found is None:
            print(f"placement: predixy not found (looked for {args.predixy} and `predixy` on "
                  "PATH): nothing to compare", file=sys.stderr)  # fmt: skip
            return 1
        args.predixy = Path(found)
    args.workers = 1
    args.tools = {
        "redis-server": shutil.which("redis-server") or "/usr/bin/redis-server",
        "nutcracker": shutil.which("nutcracker") or "/usr/sbin/nutcracker",
        "predixy": str(args.predixy),
    }
    try:
        rows = pairings(args)
    except BenchError as e:
        print(f"placement: error: {e}", file=sys.stderr)
        return 1
    from report import table

    header = ["proxy", "shard0", "shard1", "shard2"] + [f"unlike {l}" for l, _ in PREDIXY_LAYOUTS]
    print(f"{SAMPLE:,} keys `key:%012d` written through each proxy with MSETs of 10:\n")
    print("\n".join(table(header, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
