"""Driving redis-benchmark: rounds, interleaving, CPU per request.

One invocation runs one test (`-t set`) against one target, so the CPU read
from /proc before and after belongs to exactly that test. Within a round the
targets run back to back for the same (test, pipeline), in an order rotated
every round, so drift on the machine spreads evenly over them.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass

from deploy import Deployment, command_calls
from processes import BenchError, cpu_reading, cpu_used

# Requests per invocation, relative to --requests (the -P 1 SET/GET count):
# pipelined runs are ~6x faster and MSET (10 keys) ~2x slower than SET, so
# each invocation takes ~2-5 s on a 2-core machine (MSET -P 16 through a
# proxy over 3 shards, the slowest, ~10 s).
PIPELINE_SCALE = {1: 1.0, 16: 6.0}
TEST_SCALE = {"set": 1.0, "get": 1.0, "mset": 0.5}
KEYSPACE = 100_000  # redis-benchmark -r


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    proxy_cpu_us: float | None  # per request; None for direct
    redis_cpu_us: float  # per request, all the scenario's redis-servers
    # Calls of the test's command per node (INFO commandstats, after - before),
    # for scenarios that list the test in `commandstats`; else None.
    node_calls: dict[str, int] | None = None
    # True: CPU from per-thread schedstat (ns); False: from /proc/PID/stat ticks.
    cpu_precise: bool = True


def requests_for(args, test: str, pipeline: int) -> int:
    scale = PIPELINE_SCALE.get(pipeline, pipeline / 2) * TEST_SCALE.get(test, 1.0)
    return max(1000, int(args.requests * scale))


def benchmark_argv(args, port: int | str, test: str, pipeline: int, n: int) -> list[str]:
    return [
        args.tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-t", test,
        "-n", str(n), "-c", str(args.clients), "-P", str(pipeline),
        "-r", str(KEYSPACE), "--csv",
    ]  # fmt: skip


def parse_csv(text: str) -> dict[str, float]:
    """redis-benchmark 7.0 --csv: a header row, then one row per test.

    "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
    "SET","145560.41","0.199","0.056","0.183",...
    """
    rows = [line.replace('"', "").split(",") for line in text.splitlines() if line.startswith('"')]
    if len(rows) < 2 or rows[0][0] != "test":
        raise BenchError(f"unexpected redis-benchmark output:\n{text}")
    header, values = rows[0], rows[1]
    return {name: float(value) for name, value in zip(header[1:], values[1:])}


def run_one(args, dep: Deployment, target: str, test: str, pipeline: int) -> Sample:
    endpoint = dep.endpoints[target]
    endpoint.check_alive()
    n = requests_for(args, test, pipeline)
    argv = benchmark_argv(args, endpoint.port, test, pipeline, n)
    proxy = [endpoint.pid] if endpoint.pid else []
    # Read outside the CPU window, so INFO's own cost is not counted.
    counted = test in dep.scenario.commandstats
    calls_before = node_calls(dep, test) if counted else None
    proxy_before, redis_before = cpu_reading(proxy), cpu_reading(dep.redis_pids)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{target}: `{shlex.join(argv)}` took over {args.timeout} s") from None
    proxy_after, redis_after = cpu_reading(proxy), cpu_reading(dep.redis_pids)
    calls_after = node_calls(dep, test) if counted else None
    # redis-benchmark 7.0 exits 1 on the first error reply ("Error from server").
    if done.returncode != 0:
        stderr = "\n".join(done.stderr.splitlines()[-5:])
        raise BenchError(f"{target}: `{shlex.join(argv)}` exited {done.returncode}:\n{stderr}")
    row = parse_csv(done.stdout)
    proxy_cpu, proxy_precise = cpu_used(proxy_before, proxy_after)
    redis_cpu, redis_precise = cpu_used(redis_before, redis_after)
    return Sample(
        rps=row["rps"],
        p50_ms=row["p50_latency_ms"],
        p99_ms=row["p99_latency_ms"],
        proxy_cpu_us=proxy_cpu * 1e6 / n if proxy else None,
        redis_cpu_us=redis_cpu * 1e6 / n,
        cpu_precise=proxy_precise and redis_precise,
        node_calls={k: calls_after[k] - calls_before[k] for k in calls_after} if counted else None,
    )


def node_calls(dep: Deployment, test: str) -> dict[str, int]:
    try:
        return {node.label: command_calls(node.port, test) for node in dep.nodes}
    except OSError as e:
        raise BenchError(f"INFO commandstats: {e}") from None


def warm_up(args, dep: Deployment) -> None:
    """Fills the keyspace and opens backend connections; not measured."""
    n = max(2000, args.requests // 10)
    for endpoint in dep.endpoints.values():
        argv = benchmark_argv(args, endpoint.port, "set,get", 16, n)
        subprocess.run(argv, capture_output=True, timeout=args.timeout, check=False)


def rotated(items: list[str], by: int) -> list[str]:
    if not items:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def rounds_of(args, scenario) -> int:
    """--rounds, or the scenario's own minimum when --rounds and --quick are absent."""
    return args.rounds if args.rounds_given else max(args.rounds, scenario.min_rounds)


def run_rounds(args, deployments: list[Deployment], failures: list[str]) -> dict:
    """Returns {(scenario key, test, pipeline, target): [Sample per round]}.

    A failed invocation goes to `failures` and the run goes on, so one broken
    target does not throw away the other targets' numbers.
    """
    results: dict[tuple, list[Sample]] = {}
    plan = [
        (rnd, dep, pipeline, test, target)
        for rnd in range(max(rounds_of(args, dep.scenario) for dep in deployments))
        for dep in deployments
        if rnd < rounds_of(args, dep.scenario)
        for pipeline in dep.scenario.pipelines
        for test in dep.scenario.tests
        for target in rotated(list(dep.endpoints), rnd)
    ]
    started = time.monotonic()
    for done, (rnd, dep, pipeline, test, target) in enumerate(plan, 1):
        what = f"round {rnd + 1} {dep.scenario.key:8} {test:4} -P {pipeline:<2} {target:9}"
        try:
            sample = run_one(args, dep, target, test, pipeline)
        except BenchError as e:
            failures.append(f"{' '.join(what.split())}: {e}")
            print(f"  FAILED {what}: {e}", flush=True)
            continue
        results.setdefault((dep.scenario.key, test, pipeline, target), []).append(sample)
        eta = (time.monotonic() - started) / done * (len(plan) - done)
        print(f"  [{done:3}/{len(plan)} eta {eta:4.0f}s] {what} {describe(sample)}", flush=True)
    return results


def describe(s: Sample) -> str:
    cpu = f"{s.proxy_cpu_us:5.2f} us/req" if s.proxy_cpu_us is not None else "-"
    return f"{s.rps:11,.0f} rps  p50 {s.p50_ms:6.3f} ms  proxy cpu {cpu}"
