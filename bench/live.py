#!/usr/bin/env python3
"""Changing a running proxy under load: a reload and an online reshard.

Each part starts its own redis-servers and one shardgate (release build,
default workers) on free loopback ports, and drives redis-benchmark
(`-P 16`, 50 clients, GET of `-r` keys) through the proxy for the whole
run (one test: its 50 connections stay open throughout). The proxy's own counters (`/metrics`: `shardgate_requests_total`,
`shardgate_request_errors_total`, `shardgate_clients_accepted_total`) are
read every 100 ms, so the requests/s of every moment is known without
touching the load.

* reload: after 3 s of load, `POST /reload` of a file that changes a
  setting every request reads (`timeout`); requests/s in the second before,
  the second that contains the reload, and the second after; errors and
  client connections accepted during the run (redis-benchmark keeps its 50
  connections: any new one means one was closed).
* reshard: 3 servers hold `--keys` keys; after 3 s of load, `shardgate
  reshard start` to 4 servers (ketama: about a quarter of the keys move) at
  the default pace, then again from scratch with no pace limit. Keys moved
  per second (the mover's own counter), client requests/s before, during
  and after the move, errors.

`make bench-live` runs it alone; `make bench` runs it after the failover
part and puts its tables in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from processes import BenchError, Processes, free_port, wait_for_port


def metrics(admin: int) -> dict[str, float]:
    """Sums of the counters this benchmark reads, over pools and commands."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = (
        "shardgate_requests_total",
        "shardgate_request_errors_total",
        "shardgate_clients_accepted_total",
        "shardgate_reshard_keys_moved_total",
    )
    sums = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
        elif name == "shardgate_request_duration_seconds_bucket":
            # Cumulative latency buckets, summed over pools and commands.
            le = "le:" + line.split('le="', 1)[1].split('"', 1)[0]
            sums[le] = sums.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


class Sampler:
    """Reads the proxy's counters every 100 ms in a thread."""

    def __init__(self, admin: int) -> None:
        self.admin = admin
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.samples.append((time.monotonic(), metrics(self.admin)))
            except OSError:
                pass
            time.sleep(0.1)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def at(self, t: float) -> tuple[float, dict[str, float]]:
        return min(self.samples, key=lambda s: abs(s[0] - t))

    def rate(self, counter: str, start: float, end: float) -> float:
        (t0, a), (t1, b) = self.at(start), self.at(end)
        return (b[counter] - a[counter]) / (t1 - t0) if t1 > t0 else 0.0

    def delta(self, counter: str, start: float, end: float) -> float:
        return self.at(end)[1][counter] - self.at(start)[1][counter]

    def p99_ms(self, start: float, end: float) -> float:
        """The 99th percentile of the requests answered between `start` and
        `end`: the upper bound of its latency bucket, in milliseconds."""
        a, b = self.at(start)[1], self.at(end)[1]
        bounds = sorted(
            (float(k[3:]), k) for k in b if k.startswith("le:") and k != "le:+Inf"
        )
        total = b.get("le:+Inf", 0.0) - a.get("le:+Inf", 0.0)
        for bound, key in bounds:
            if b[key] - a.get(key, 0.0) >= 0.99 * total:
                return bound * 1000
        return float("inf")


class Probe:
    """One client beside the load: GETs of random keys one at a time, paced,
    each one's latency recorded with its key and send time, so the
    requests on keys that moved can be told apart afterwards (they are
    the keys the new server holds once the migration is done)."""

    def __init__(self, port: int, keys: int) -> None:
        self.port, self.keys = port, keys
        self.samples: list[tuple[float, bytes, float]] = []  # (sent, key, seconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        import random
        import socket

        rng = random.Random(7)
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = s.makefile("rb")
            while not self.stop.is_set():
                # redis-benchmark's names for -r: key: and 12 digits.
                key = b"key:%012d" % rng.randrange(self.keys)
                sent = time.monotonic()
                s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
                header = reader.readline()
                if header.startswith(b"$") and not header.startswith(b"$-1"):
                    reader.read(int(header[1:]) + 2)
                self.samples.append((sent, key, time.monotonic() - sent))
                # About 500 a second: a sample, not a second load (a
                # Python loop flat out would take a core from the rest).
                time.sleep(0.002)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def p99_ms(self, start: float, end: float, keys: set[bytes] | None = None) -> float | None:
        """The 99th percentile of the probe's requests sent in [start, end)
        (only those on `keys`, if given), in milliseconds; None if fewer
        than 100."""
        picked = sorted(
            t for sent, key, t in self.samples
            if start <= sent < end and (keys is None or key in keys)
        )  # fmt: skip
        if len(picked) < 100:
            return None
        return picked[int(len(picked) * 0.99) - 1] * 1000


def keys_on(port: int) -> set[bytes]:
    """Every key of the server at `port` (SCAN)."""
    import socket

    found: set[bytes] = set()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        reader = s.makefile("rb")
        cursor = b"0"
        while True:
            s.sendall(b"*4\r\n$4\r\nSCAN\r\n$%d\r\n%s\r\n$5\r\nCOUNT\r\n$4\r\n1000\r\n"
                      % (len(cursor), cursor))  # fmt: skip
            reader.readline()  # *2
            reader.readline()  # $n
            cursor = reader.readline().strip()
            count = int(reader.readline()[1:])
            for _ in range(count):
                size = int(reader.readline()[1:])
                found.add(reader.read(size + 2)[:-2])
            if cursor == b"0":
                return found


def start_redis(procs: Processes, tools: dict, workdir: Path) -> int:
    port = free_port()
    data = workdir / f"redis-{port}"
    data.mkdir()
    argv = [tools["redis-server"], "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--logfile", "", "--daemonize", "no"]  # fmt: skip
    log = data / "redis.log"
    wait_for_port("redis-server", procs.spawn(argv, log), port, log)
    return port


def pool_yaml(port: int, servers: list[int], extra: str = "") -> str:
    lines = [f"bench:\n  listen: 127.0.0.1:{port}\n{extra}  servers:"]
    lines += [f"    - 127.0.0.1:{p}:1 s{i}" for i, p in enumerate(servers)]
    return "\n".join(lines) + "\n"


def start_proxy(procs: Processes, shardgate: str, workdir: Path, yaml: str) -> tuple[int, int, Path]:
    port, admin = int(yaml.split("listen: 127.0.0.1:", 1)[1].split("\n", 1)[0]), free_port()
    conf = workdir / f"shardgate-{port}.yml"
    conf.write_text(yaml)
    log = workdir / f"shardgate-{port}.log"
    proc = procs.spawn([shardgate, "-c", str(conf), "--admin", f"127.0.0.1:{admin}"], log)
    wait_for_port("shardgate", proc, port, log)
    wait_for_port("shardgate admin", proc, admin, log)
    return port, admin, conf


def benchmark(tools: dict, port: int, seconds: float, keys: int, tests: str) -> subprocess.Popen:
    """`tests` at -P 16 for at least `seconds` (requests sized for 1.5
    million a second, more than this machine serves; the caller kills it
    when done). One test keeps its 50 connections throughout; several
    reconnect between tests."""
    argv = [tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-P", "16",
            "-r", str(keys), "-t", tests, "-n", str(int(1_500_000 * seconds)), "-q", "--csv"]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def post(admin: int, path: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def reload_run(tools: dict, shardgate: str, workdir: Path) -> dict:
    procs = Processes()
    try:
        server = start_redis(procs, tools, workdir)
        port = free_port()
        yaml = pool_yaml(port, [server])
        _, admin, conf = start_proxy(procs, shardgate, workdir, yaml)
        sampler = Sampler(admin)
        load = benchmark(tools, port, 8, 100_000, "get")
        time.sleep(3)
        conf.write_text(pool_yaml(port, [server], "  timeout: 4000\n"))
        at = time.monotonic()
        status, body = post(admin, "/reload")
        took = time.monotonic() - at
        if status != 200:
            raise BenchError(f"reload answered {status}: {body}")
        time.sleep(2)
        end = time.monotonic()
        sampler.finish()
        load.kill()
        load.wait()
        start = sampler.samples[0][0]
        return {
            "before": sampler.rate("shardgate_requests_total", at - 1, at),
            "during": sampler.rate("shardgate_requests_total", at, at + 1),
            "after": sampler.rate("shardgate_requests_total", at + 1, at + 2),
            "errors": sampler.delta("shardgate_request_errors_total", start, end),
            "accepted_during": sampler.delta("shardgate_clients_accepted_total", at - 1, end),
            "reload_ms": took * 1000,
        }
    finally:
        procs.kill_all()


def reshard_run(tools: dict, shardgate: str, workdir: Path, keys: int, pace: str) -> dict:
    procs = Processes()
    try:
        servers = [start_redis(procs, tools, workdir) for _ in range(4)]
        port = free_port()
        extra = f"  reshard_keys_per_second: {pace}\n" if pace else ""
        _, admin, conf = start_proxy(procs, shardgate, workdir, pool_yaml(port, servers[:3], extra))
        fill = [tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-P", "64",
                "-r", str(keys), "-t", "set", "-n", str(keys * 3), "-q"]  # fmt: skip
        subprocess.run(fill, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sampler = Sampler(admin)
        load = benchmark(tools, port, 60, keys, "get")
        probe = Probe(port, keys)
        time.sleep(3)
        conf.write_text(pool_yaml(port, servers, extra))
        started = time.monotonic()
        status, body = post(admin, "/reshard/start")
        if status != 200:
            raise BenchError(f"reshard start answered {status}: {body}")
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/reshard", timeout=5) as r:
                phase = json.loads(r.read())[0]["phase"]
            if phase == "done":
                break
            if time.monotonic() - started > 300:
                raise BenchError("the reshard did not finish in 5 minutes")
            time.sleep(0.1)
        done = time.monotonic()
        time.sleep(2)
        end = time.monotonic()
        sampler.finish()
        probe.finish()
        load.kill()
        load.wait()
        moved = sampler.delta("shardgate_reshard_keys_moved_total", started, done)
        moving = keys_on(servers[3])
        return {
            "pace": pace or "default",
            "keys_moved": moved,
            "seconds": done - started,
            "keys_per_second": moved / (done - started),
            "before": sampler.rate("shardgate_requests_total", started - 2, started),
            "during": sampler.rate("shardgate_requests_total", started, done),
            "after": sampler.rate("shardgate_requests_total", done, end),
            "p99_before_ms": sampler.p99_ms(started - 2, started),
            "p99_during_ms": sampler.p99_ms(started, done),
            # The probe's own requests: all before the move, and those on
            # keys that moved while they moved.
            "probe_p99_before_ms": probe.p99_ms(started - 3, started),
            "probe_p99_moving_ms": probe.p99_ms(started, done, moving),
            "probe_moving_requests": sum(
                1 for sent, key, _ in probe.samples if started <= sent < done and key in moving
            ),
            "errors": sampler.delta("shardgate_request_errors_total", sampler.samples[0][0], end),
        }
    finally:
        procs.kill_all()


def run_all(tools: dict, shardgate: str, workdir: Path, keys: int = 200_000, runs: int = 3) -> dict:
    reloads = [reload_run(tools, shardgate, workdir) for _ in range(runs)]
    reshards = [reshard_run(tools, shardgate, workdir, keys, pace) for pace in ("", "0")]
    return {"reload": reloads, "reshard": reshards, "keys": keys}


def median(runs: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def section(results: dict) -> list[str]:
    reloads = results["reload"]
    lines = [
        "## Live changes under load",
        "",
        f"redis-benchmark -P 16, 50 clients, GET through shardgate (bench/live.py). "
        f"Requests/s from the proxy's own counters, every 100 ms. Reload: medians of {len(reloads)} runs.",
        "",
        "| | second before | second of the change | second after | dip | errors | connections closed |",
        "|---|---|---|---|---|---|---|",
    ]
    before, during, after = (median(reloads, f) for f in ("before", "during", "after"))
    lines.append(
        f"| reload (`timeout` changed, {median(reloads, 'reload_ms'):.0f} ms) | {before:,.0f} | {during:,.0f} "
        f"| {after:,.0f} | {100 * (1 - during / before):.1f}% | {max(r['errors'] for r in reloads):.0f} "
        f"| {max(r['accepted_during'] for r in reloads):.0f} |"
    )
    lines += [
        "",
        f"Reshard 3 -> 4 servers (ketama), {results['keys']:,} keys, under the same load (p99: the upper "
        f"bound of the proxy's latency bucket holding the 99th percentile of all requests, a quarter of "
        f"whose keys move; -P 16, so a request's time includes its batch):",
        "",
        "| pace | keys moved | took | keys/s | client req/s before | during | after | during / before | p99 before | p99 during | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["reshard"]:
        lines.append(
            f"| {'no limit' if r['pace'] == '0' else r['pace']} | {r['keys_moved']:,.0f} | {r['seconds']:.1f} s "
            f"| {r['keys_per_second']:,.0f} | {r['before']:,.0f} | {r['during']:,.0f} | {r['after']:,.0f} "
            f"| {r['during'] / r['before']:.2f}x | {r['p99_before_ms']:.2f} ms | {r['p99_during_ms']:.2f} ms "
            f"| {r['errors']:.0f} |"
        )
    ms = lambda v: "-" if v is None else f"{v:.2f} ms"  # noqa: E731
    lines += [
        "",
        "The moving keys alone: a probe client beside the load sends one GET at a time on random "
        "keys and records each latency; the keys that moved are the new server's once the move is "
        "done. Extra p99 = p99 of the probe's requests on moving keys during the move, less the "
        "p99 of all its requests in the 3 s before (target: under 5 ms):",
        "",
        "| pace | probe requests on moving keys | p99 before (all keys) | p99 on moving keys, during | extra p99 |",
        "|---|---|---|---|---|",
    ]
    for r in results["reshard"]:
        before, moving = r["probe_p99_before_ms"], r["probe_p99_moving_ms"]
        extra = ms(moving - before) if before is not None and moving is not None else "-"
        lines.append(
            f"| {'no limit' if r['pace'] == '0' else r['pace']} | {r['probe_moving_requests']:,} "
            f"| {ms(before)} | {ms(moving)} | {extra} |"
        )
    return lines + [""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shardgate", default="target/release/shardgate")
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tools = {"redis-server": "/usr/bin/redis-server", "redis-benchmark": "/usr/bin/redis-benchmark"}
    with tempfile.TemporaryDirectory(prefix="shardgate-live-") as tmp:
        try:
            results = run_all(tools, args.shardgate, Path(tmp), args.keys, args.runs)
        except BenchError as e:
            print(f"bench-live: error: {e}", file=sys.stderr)
            return 1
    print("\n".join(section(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
