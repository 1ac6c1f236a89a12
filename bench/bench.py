#!/usr/bin/env python3
"""Benchmark shardgate against twemproxy (nutcracker) and direct Redis.

One run starts everything it measures, on free loopback ports in one temp
dir, and kills it all at exit (Ctrl-C, SIGTERM and exceptions included; the
children also get SIGKILL from the kernel if this script itself is killed):

* real redis-servers (persistence off) as backends;
* nutcracker and shardgate in front of the SAME backends, each reading the
  same twemproxy-format pool definition (only `listen:` differs, since two
  processes cannot listen on one port);
* predixy, when found (`<repo>/../shared/peers/predixy`, else `predixy` on
  PATH, else --predixy), in front of the same backends with 2 worker
  threads, beside a shardgate with `--workers 2` (`shardgate-2w`); its
  config places keys as the pool does (deploy.py), and for more than one
  shard the harness checks that every proxy puts sample keys on the same
  servers (placement.py);
* in some scenarios, several shardgate *variants* side by side over the same
  backends (extra pool keys such as `read_policy: any`, or extra arguments
  such as `--no-metrics`), and replicas (`--replicaof`, linked before any
  load, listed under `replicas:` for shardgate); the cluster scenario's
  servers form a Redis Cluster (deploy.form_cluster), loaded through a
  `cluster: true` pool and a static `slots` pool side by side;
* redis-benchmark as the load generator.

Every shardgate gets `--admin 127.0.0.1:<free port>` (the default admin
address is shared; a second instance could not start).

Method
------
* Medians of rounds: every measurement is repeated `--rounds` times
  (default 3; 7 for the reads, metrics and cluster scenarios, whose claims are about
  differences of a few percent) and the report shows the median, because
  requests/s moves ~10% from run to run on a shared 2-core machine. A
  claim (e.g. "read_policy any costs <= 5% more CPU per GET than master")
  is judged on the median of the per-round ratios of the two targets.
* Interleaving: within a round the targets (direct, twemproxy, shardgate,
  or a scenario's shardgate variants) run back to back for the same test and pipeline depth, in an order that
  rotates every round, so slow drift (thermal, noisy neighbours) spreads
  evenly over the targets instead of favouring whichever runs first.
* CPU per request: the CPU time of the proxy process, all its threads and
  any child processes, read right before and right after each
  redis-benchmark invocation; CPU us/request = delta / requests. The same
  for the redis-server(s), for reference. The CPU time is the sum of every
  thread's on-CPU nanoseconds (first field of /proc/PID/task/TID/schedstat);
  if a thread exited in between (its time would be missing) or schedstat
  is absent, it is utime+stime (fields 14 and 15 of /proc/PID/stat, in
  clock ticks of os.sysconf('SC_CLK_TCK'), usually 10 ms) instead, and the report
  says how often that happened. CPU per request is steadier than
  requests/s and does not depend on who won the 2 cores.
* One test per invocation (`-t set`, then `-t get`, then `-t mset`), so
  each CPU delta belongs to exactly one test. MSET in redis-benchmark sets
  10 keys per request. Before round 1, a short unmeasured run per target
  fills the keyspace and opens the proxies' backend connections.
* Where reads went: for the reads scenario, `cmdstat_get` calls of every
  node (INFO commandstats) right before and after each invocation.
* Idle connections: 10,000 TCP connections to a freshly started proxy, each
  sends one PING and reads +PONG (so each is a real session); VmRSS from
  /proc/PID/status before and with them open.
* Failover (bench/failover.py, after everything above is stopped): a master
  killed with SIGKILL under a steady write load, in Sentinel and managed
  mode; see that file.

Layout: scenarios.py (what to run: add scenarios there), processes.py
(children, ports, /proc), deploy.py (servers and proxies), load.py
(redis-benchmark, rounds), idle.py (idle connections), failover.py (the
failover benchmark; also runs alone: `make bench-failover`), report.py
(BENCHMARKS.md and the terminal table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import active
import failover
import live
from deploy import deploy
from placement import check_placement
from idle import CONNECTIONS, run_idle_test
from load import PIPELINE_SCALE, TEST_SCALE, run_rounds, warm_up
from processes import BenchError, Processes, raise_nofile
from report import REPO_ROOT, print_idle, print_summary, render
from scenarios import SCENARIOS

# Like scripts/demo.sh: SHARDGATE_BIN overrides the default binary.
DEFAULT_SHARDGATE = Path(os.environ.get("SHARDGATE_BIN", REPO_ROOT / "target/release/shardgate"))
INSTALL_HINT = "sudo apt-get install -y redis-server redis-tools nutcracker"
# predixy is not packaged anywhere reachable: a built binary beside the repo.
SHARED_PREDIXY = REPO_ROOT.parent / "shared/peers/predixy"
DEFAULT_REQUESTS = 300_000
QUICK_REQUESTS = 20_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    keys = [s.key for s in SCENARIOS]
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--rounds",
        type=int,
        help="rounds; medians are reported (default 3, 7 for the reads, metrics and "
        "cluster scenarios; --quick: 1; given: that many for every scenario)",
    )
    ap.add_argument(
        "--requests",
        type=int,
        help=f"requests per -P 1 SET/GET run (default {DEFAULT_REQUESTS:,}; --quick: "
        f"{QUICK_REQUESTS:,}); -P 16 runs use x{PIPELINE_SCALE[16]:g}, "
        f"MSET x{TEST_SCALE['mset']:g}",
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: few requests, one round")
    ap.add_argument(
        "--scenarios",
        default=",".join(keys),
        help=f"comma-separated subset of: {', '.join(keys)} (default: all)",
    )
    ap.add_argument("--tests", help="comma-separated subset of set,get,mset (default: all)")
    ap.add_argument("--pipelines", help="comma-separated pipeline depths (default: 1,16)")
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c (default 50)")
    ap.add_argument(
        "--out",
        help="report path, relative to the repo root unless absolute (default: "
        "BENCHMARKS.md; with --quick: target/bench/BENCHMARKS-quick.md)",
    )
    ap.add_argument("--json", type=Path, help="also write the raw per-round samples here")
    ap.add_argument(
        "--shardgate",
        type=Path,
        default=DEFAULT_SHARDGATE,
        help="the shardgate binary (default: $SHARDGATE_BIN, else target/release/shardgate)",
    )
    ap.add_argument(
        "--predixy",
        type=Path,
        help=f"the predixy binary (default: {SHARED_PREDIXY.parent}/predixy relative to "
        "the repo, i.e. <repo>/../shared/peers/predixy, else `predixy` on PATH; "
        "without one, predixy's columns are left out and the report says so)",
    )
    ap.add_argument("--no-predixy", action="store_true", help="leave predixy out even if found")
    ap.add_argument(
        "--no-shardgate",
        action="store_true",
        help="benchmark direct and twemproxy only (to test this harness)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="shardgate --workers (default 1, like twemproxy's single thread; "
        "0: don't pass it, shardgate's default of one per core)",
    )
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-connections test")
    ap.add_argument(
        "--no-active", action="store_true", help="skip the active-connections test (bench/active.py)"
    )
    ap.add_argument(
        "--no-failover", action="store_true", help="skip the failover benchmark (bench/failover.py)"
    )
    ap.add_argument(
        "--failover-runs", type=int, help="failover runs per mode (default 3; --quick: 1)"
    )
    ap.add_argument(
        "--no-live", action="store_true", help="skip the reload and reshard runs (bench/live.py)"
    )
    ap.add_argument("--timeout", type=int, default=300, help="seconds per redis-benchmark run")
    args = ap.parse_args(argv)

    args.live = None
    args.active = None
    args.rounds_given = args.rounds is not None or args.quick
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.requests = args.requests or (QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS)
    quick_out = "target/bench/BENCHMARKS-quick.md"
    args.out = REPO_ROOT / (args.out or (quick_out if args.quick else "BENCHMARKS.md"))
    args.workers = args.workers or None
    if args.no_shardgate:
        args.shardgate = None
    wanted = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    if not wanted or any(k not in keys for k in wanted):
        ap.error(f"--scenarios {args.scenarios!r}: choose from {', '.join(keys)}")
    args.scenario_list = [narrow(s, args) for s in SCENARIOS if s.key in wanted]
    if args.no_shardgate:
        args.no_failover = True  # it measures shardgate only
    args.failover = failover.settings_from(
        args.quick, args.failover_runs, ",".join(failover.MODES), 50, 5000, None, None, 30.0,
        args.workers,
    )  # fmt: skip
    return args


def narrow(scenario, args):
    """Applies --tests and --pipelines to a scenario."""
    if args.tests:
        scenario = replace(scenario, tests=tuple(t.strip() for t in args.tests.split(",")))
    if args.pipelines:
        scenario = replace(scenario, pipelines=tuple(int(p) for p in args.pipelines.split(",")))
    return scenario


def find_tools(args) -> dict[str, str]:
    tools = {}
    for name, usual in (
        ("redis-server", "/usr/bin/redis-server"),
        ("redis-benchmark", "/usr/bin/redis-benchmark"),
        ("nutcracker", "/usr/sbin/nutcracker"),  # /usr/sbin is not always on PATH
    ) + ((("redis-sentinel", "/usr/bin/redis-sentinel"),) if not args.no_failover else ()):
        path = shutil.which(name) or (usual if os.access(usual, os.X_OK) else None)
        if path is None:
            raise BenchError(f"{name} is missing; install it with: {INSTALL_HINT}")
        tools[name] = path
    predixy = find_predixy(args)
    if predixy is not None:
        tools["predixy"] = predixy
    if args.shardgate is not None and not os.access(args.shardgate, os.X_OK):
        raise BenchError(
            f"the shardgate binary is missing: {args.shardgate}\n"
            "  build it with `make release` (cargo build --release -p shardgate-bin),\n"
            "  or point --shardgate at a binary, or pass --no-shardgate to benchmark "
            "direct and twemproxy only"
        )
    return tools


def find_predixy(args) -> str | None:
    """--predixy, else <repo>/../shared/peers/predixy, else `predixy` on PATH.

    Sets args.predixy_status: what was used, or why nothing was.
    """
    if args.no_predixy:
        args.predixy_status = "left out (--no-predixy)"
        return None
    if args.predixy is not None:
        if not os.access(args.predixy, os.X_OK):
            raise BenchError(f"--predixy {args.predixy}: not an executable file")
        found = str(args.predixy)
    elif os.access(SHARED_PREDIXY, os.X_OK):
        found = str(SHARED_PREDIXY.resolve())
    else:
        found = shutil.which("predixy")
    if found is None:
        args.predixy_status = (
            f"not found (looked for {SHARED_PREDIXY} and `predixy` on PATH): "
            "the predixy columns are left out"
        )
        print(f"bench: predixy {args.predixy_status}", flush=True)
        return None
    args.predixy_status = found
    return found


def measure(procs: Processes, args, workdir: Path) -> tuple:
    print(f"starting servers and proxies in {workdir} ...", flush=True)
    deployments = [deploy(procs, args, workdir, sc) for sc in args.scenario_list]
    failures: list[str] = []
    for dep in deployments:
        proxies = [e for e in dep.endpoints.values() if e.proc is not None]
        # (A cluster scenario's placement is the cluster's: checked in deploy.)
        if dep.scenario.shards > 1 and len(proxies) > 1 and not dep.scenario.cluster:
            print(f"  {dep.scenario.key}: checking where each proxy puts sample keys ...", flush=True)
            dep.placement = check_placement(dep)
            for problem in dep.placement["problems"]:
                failures.append(f"{dep.scenario.key} key placement: {problem}")
                print(f"  FAILED placement: {problem}", flush=True)
            counts = "; ".join(
                f"{name}: " + " ".join(f"{lb}={n}" for lb, n in c.items())
                for name, c in dep.placement["targets"].items()
            )
            print(f"  placement of {dep.placement['keys']:,} keys: {counts}", flush=True)
    for dep in deployments:
        warm_up(args, dep)
    results = run_rounds(args, deployments, failures)
    idle = {} if args.no_idle else run_idle_test(procs, args, workdir, failures)
    procs.kill_all()  # each connection test starts its own fresh processes
    if not args.no_active:
        args.active = active.run_active_test(procs, args, workdir, failures)
    for dep in deployments:
        dep.commands = {k: v.replace(str(workdir), "$WORKDIR") for k, v in dep.commands.items()}
    # Every server and proxy of the throughput part stops first: the failover
    # runs get the machine to themselves.
    procs.kill_all()
    fo = None
    if not args.no_failover:
        print("failover benchmark (bench/failover.py) ...", flush=True)
        fo = failover.run_all(args.tools, args.shardgate, args.failover, workdir)
        failures += fo["failures"]
    if not args.no_live:
        print("reload and reshard under load (bench/live.py) ...", flush=True)
        runs = 1 if args.quick else 3
        try:
            args.live = live.run_all(args.tools, args.shardgate, workdir, runs=runs)
        except BenchError as e:
            failures.append(f"live changes: {e}")
    return deployments, results, failures, idle, fo


def write_json(path: Path, results: dict, idle: dict, fo: dict | None) -> None:
    samples = {"|".join(map(str, k)): [vars(s) for s in v] for k, v in results.items()}
    path.write_text(json.dumps({"samples": samples, "idle": idle, "failover": fo}, indent=1))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Even when started with SIGINT ignored (a background job), Ctrl-C and
    # SIGTERM must run the cleanup below.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    procs = Processes()
    started = time.monotonic()
    try:
        args.tools = find_tools(args)
        # Before spawning anything: nutcracker inherits the raised limit.
        raise_nofile(2 * CONNECTIONS + 1000)
        with tempfile.TemporaryDirectory(prefix="shardgate-bench-") as tmp:
            try:
                deployments, results, failures, idle, fo = measure(procs, args, Path(tmp))
            finally:
                procs.kill_all()  # before the temp dir goes away under them
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; every server and proxy was stopped", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    print_summary(deployments, results, args)
    print_idle(idle)
    if args.active:
        active.print_summary(args.active)
    if fo:
        failover.print_summary(fo)
    if args.live:
        print("\n".join(live.section(args.live)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args, deployments, results, failures, idle, elapsed, fo))
    if args.json:
        write_json(args.json, results, idle, fo)
    print(f"\nwrote {args.out} ({elapsed / 60:.1f} min)")
    if failures:
        print(f"bench: error: {len(failures)} measurement(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
