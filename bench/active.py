"""10,000 active client connections: Redis itself, twemproxy and shardgate.

Each connection sends one GET a second (`shardgate-conns`, a Rust load
generator on one thread, so the client costs little next to what it
measures), offset at random so requests spread evenly: 10,000 requests a
second in all. After a 5 s warm-up, 30 s are measured: latency percentiles
of every request, the target's CPU per request and its RSS. The targets
start fresh for this test and are measured one after the other.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from deploy import deploy
from processes import BenchError, Processes, cpu_reading, cpu_used, raise_nofile, rss_kib
from scenarios import ACTIVE

CONNECTIONS = 10_000
SECONDS = 30
WARMUP = 5
LOADGEN = Path(__file__).resolve().parent.parent / "target/release/shardgate-conns"


def run_active_test(procs: Processes, args, workdir: Path, failures: list[str]) -> dict:
    if not LOADGEN.exists():
        failures.append(f"active connections: {LOADGEN} is missing (make release builds it)")
        return {}
    dep = deploy(procs, args, workdir, ACTIVE)
    count = min(CONNECTIONS, raise_nofile(2 * CONNECTIONS + 1000) - 200)
    seconds = 10 if args.quick else SECONDS
    results = {}
    for name, endpoint in dep.endpoints.items():
        print(f"  active connections: {count:,} to {name}, {seconds} s ...", flush=True)
        pid = endpoint.pid or dep.nodes[0].pid
        try:
            results[name] = measure_active(endpoint.port, pid, count, seconds)
            endpoint.check_alive()
        except (BenchError, OSError, ValueError) as e:
            failures.append(f"active connections, {name}: {e}")
            print(f"  FAILED: {failures[-1]}", flush=True)
            continue
        r = results[name]
        if r["failed_connections"] or r["errors"] or r["connect_failures"]:
            failures.append(
                f"active connections, {name}: {r['connect_failures']} could not connect, "
                f"{r['failed_connections']} failed ({r['first_failure']}), {r['errors']} errors"
            )
    return results


def measure_active(port: int, pid: int, count: int, seconds: int) -> dict:
    argv = [
        str(LOADGEN), "--addr", f"127.0.0.1:{port}", "--connections", str(count),
        "--seconds", str(seconds), "--warmup", str(WARMUP),
    ]  # fmt: skip
    before = cpu_reading([pid])
    load = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + WARMUP + 120)
    after = cpu_reading([pid])
    if load.returncode != 0:
        raise BenchError(f"shardgate-conns exited {load.returncode}: {load.stderr.strip()}")
    result = json.loads(load.stdout.strip().splitlines()[-1])
    cpu, _ = cpu_used(before, after)
    # The CPU covers the warm-up too: per request over every request sent.
    sent = result["requests"] * (seconds + WARMUP) / seconds
    result["cpu_us_per_request"] = cpu * 1e6 / sent if sent else 0.0
    result["rss_kib"] = rss_kib(pid)
    return result


def section(results: dict) -> list[str]:
    from report import table  # here: report.py imports this module

    if not results:
        return []
    out = [
        "## Active client connections",
        "",
        f"`bench/active.py`: {CONNECTIONS:,} connections, each sending one GET a second "
        "(offset at random: 10,000 requests a second in all), through one proxy in front "
        "of one redis-server, or to that server directly. Latency from each request's send "
        f"to its reply, every request of the measured {SECONDS} s (after a {WARMUP} s "
        "warm-up); CPU per request from /proc (warm-up included); RSS at the end.",
        "",
    ]
    rows = [
        [name, f"{r['connections']:,}", f"{r['requests']:,}", f"{r['p50_us'] / 1000:.2f}",
         f"{r['p99_us'] / 1000:.2f}", f"{r['p999_us'] / 1000:.2f}", f"{r['max_us'] / 1000:.1f}",
         f"{r['cpu_us_per_request']:.1f}", f"{r['rss_kib'] / 1024:.1f}"]
        for name, r in results.items()
    ]  # fmt: skip
    out += table(
        ["target", "connections", "requests", "p50, ms", "p99, ms", "p99.9, ms", "max, ms",
         "CPU µs/request", "RSS, MB"],
        rows,
    )  # fmt: skip
    sg, redis = results.get("shardgate"), results.get("direct")
    if sg and redis:
        ok = sg["p999_us"] <= redis["p999_us"]
        out += [
            "",
            f'Claim "with {CONNECTIONS:,} active connections, p99.9 no worse than Redis\'s own": '
            f"shardgate {sg['p999_us'] / 1000:.2f} ms, Redis {redis['p999_us'] / 1000:.2f} ms: "
            f"**{'PASS' if ok else 'FAIL'}**.",
        ]
    return out + [""]


def print_summary(results: dict) -> None:
    for name, r in results.items():
        print(
            f"active: {name:9} {r['connections']:,} connections, {r['requests']:,} requests: "
            f"p50 {r['p50_us'] / 1000:.2f} p99 {r['p99_us'] / 1000:.2f} "
            f"p99.9 {r['p999_us'] / 1000:.2f} ms, {r['cpu_us_per_request']:.1f} µs CPU/request, "
            f"RSS {r['rss_kib'] / 1024:.1f} MB"
        )


def main(argv: list[str]) -> int:
    """`make bench-conns`: the idle and active connection tests alone;
    writes target/bench/CONNECTIONS.md."""
    import tempfile

    import bench
    from idle import run_idle_test
    from report import REPO_ROOT, idle_section, print_idle

    args = bench.parse_args(["--no-failover", *argv])
    procs = Processes()
    failures: list[str] = []
    try:
        args.tools = bench.find_tools(args)
        raise_nofile(2 * 100_000 + 1000)  # before spawning: children inherit it
        with tempfile.TemporaryDirectory(prefix="shardgate-conns-") as tmp:
            try:
                idle = {} if args.no_idle else run_idle_test(procs, args, Path(tmp), failures)
                procs.kill_all()
                active = {} if args.no_active else run_active_test(procs, args, Path(tmp), failures)
            finally:
                procs.kill_all()
    except BenchError as e:
        print(f"bench-conns: error: {e}")
        return 1
    print_idle(idle)
    print_summary(active)
    out = REPO_ROOT / "target/bench/CONNECTIONS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(["# Client connections", ""] + idle_section(idle) + section(active)))
    print(f"wrote {out}")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
