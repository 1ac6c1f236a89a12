#!/usr/bin/env python3
"""Where the proxy's CPU goes per request: shardgate versus predixy.

Everything runs in front of one redis-server (persistence off), on free
loopback ports, with redis-benchmark (`-r 100000`) as the load; every
process started here is stopped at the end (Ctrl-C and errors included).
Both proxies run with 2 worker threads (`--workers 2`, `WorkerThreads 2`),
as in `make bench`'s predixy comparison. Writes target/bench/PROFILE.md
(and, with --json, the raw figures).

Four measurements, each per test (GET, SET) and pipeline depth (-P 1, 16):

1. On-CPU time per request, user and system: utime and stime of the whole
   process (/proc/PID/stat, 1/CLK_TCK s ticks; every thread, exited ones
   included) before and after a normal run of `--requests` requests with
   `--clients` clients, plus the exact total from every thread's
   /proc/PID/task/TID/schedstat. Medians of `--rounds` rounds, the
   proxies back to back in an order rotated every round.
2. Syscalls per request, by type: `strace -c -f -p PID` attached to the
   running proxy (every thread) for one run of `--strace-requests`
   requests; the same attach over an idle stretch as long as the run is
   subtracted (per syscall, scaled by time). strace slows the proxy, and
   a slower proxy finds more requests waiting per wake-up, so the counts
   are an upper bound on batching's effect: compare the proxies with each
   other, not with the untraced run. Medians of the rounds.
3. Instructions per request (user space), from a fresh proxy under
   `valgrind --tool=callgrind`: after a warm-up, `callgrind_control -z`
   zeroes the counters, redis-benchmark runs `--callgrind-requests`
   requests with `--callgrind-clients` clients, `callgrind_control -d`
   dumps; then the same over an idle stretch as long as the run, which is
   subtracted (scaled by time). Medians of the rounds.
4. Where shardgate's instructions go: every cost line of its dumps (load
   minus idle), attributed to the function and source file it belongs to
   (inlined code keeps its own file), grouped into categories (see
   CATEGORIES); plus the top functions by self cost and, from
   callgrind_annotate --inclusive=yes, by inclusive cost. predixy is
   stripped: only its totals and what falls in libc (malloc, memcpy,
   syscall wrappers) are named.

shardgate `--no-metrics` also runs under callgrind (unless --no-variants):
the difference is what per-command metrics cost in instructions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from deploy import PING, info, predixy_text, redis_argv
from load import KEYSPACE, parse_csv
from processes import CLK_TCK, BenchError, Processes, cpu_reading, cpu_used, free_port, tail
from report import REPO_ROOT, first_line, git_commit, table

THREADS = 2
DEFAULT_SHARDGATE = Path(os.environ.get("SHARDGATE_BIN", REPO_ROOT / "target/release/shardgate"))
SHARED_PREDIXY = REPO_ROOT.parent / "shared/peers/predixy"


# ---------------------------------------------------------------- processes


@dataclass
class Proxy:
    name: str  # shardgate / shardgate --no-metrics / predixy
    kind: str  # "shardgate" | "predixy"
    extra: tuple = ()
    port: int = 0
    proc: subprocess.Popen | None = None
    log: Path | None = None
    argv: list = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid


def proxy_config(proxy: Proxy, workdir: Path, redis_port: int) -> tuple[list[str], Path]:
    """argv (without a wrapper) and the config file, on proxy.port."""
    slug = proxy.name.replace(" ", "").replace("--", "-")
    if proxy.kind == "predixy":
        conf = workdir / f"{slug}-{proxy.port}.conf"
        conf.write_text(predixy_text(f"127.0.0.1:{proxy.port}", [redis_port]))
        return [ARGS.tools["predixy"], str(conf)], conf
    conf = workdir / f"{slug}-{proxy.port}.yml"
    conf.write_text(
        "bench:\n"
        f"  listen: 127.0.0.1:{proxy.port}\n"
        "  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n  timeout: 2000\n"
        "  server_connections: 1\n  auto_eject_hosts: false\n"
        f"  servers:\n    - 127.0.0.1:{redis_port}:1 shard0\n"
    )
    argv = [str(ARGS.shardgate), "-c", str(conf), "--admin", f"127.0.0.1:{free_port()}",
            "--workers", str(THREADS), *proxy.extra]  # fmt: skip
    return argv, conf


def start_proxy(procs: Processes, proxy: Proxy, workdir: Path, redis_port: int,
                wrapper: list[str] = (), wait: float = 15.0) -> Proxy:  # fmt: skip
    proxy.port = free_port()
    argv, conf = proxy_config(proxy, workdir, redis_port)
    proxy.argv = list(wrapper) + argv
    proxy.log = conf.with_suffix(".log")
    proxy.proc = procs.spawn(proxy.argv, proxy.log)
    wait_answering(proxy, wait)
    return proxy


def wait_answering(proxy: Proxy, timeout: float) -> None:
    """Until the proxy answers PING (a proxy under valgrind starts slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.proc.poll() is not None:
            raise BenchError(f"{proxy.name} exited with {proxy.proc.returncode}:\n{tail(proxy.log)}")
        try:
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=1) as s:
                s.sendall(PING)
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{proxy.name} did not answer PING within {timeout:.0f} s:\n{tail(proxy.log)}")


def stop(proxy: Proxy, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL (callgrind writes its final dump on exit; unused)."""
    if proxy.proc is None or proxy.proc.poll() is not None:
        return
    proxy.proc.send_signal(signal.SIGTERM)
    try:
        proxy.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proxy.proc.kill()
        proxy.proc.wait(timeout=5)


def benchmark(port: int, test: str, pipeline: int, n: int, clients: int) -> tuple[dict, float]:
    argv = [ARGS.tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-t", test,
            "-n", str(n), "-c", str(clients), "-P", str(pipeline), "-r", str(KEYSPACE), "--csv"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ARGS.timeout)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"`{shlex.join(argv)}` exited {done.returncode}: {done.stderr[-500:]}")
    return parse_csv(done.stdout), elapsed


def warm_up(proxy: Proxy, clients: int, n: int = 2000) -> None:
    """Fills the keyspace a little and opens the backend connections."""
    for test in ("set", "get"):
        benchmark(proxy.port, test, 1, n, clients)


def ticks(pid: int) -> tuple[int, int]:
    """utime, stime of the whole process (all threads, exited ones too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def switches(pid: int) -> tuple[int, int]:
    """Voluntary and involuntary context switches, summed over live threads."""
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol += int(line.split()[1])
    return vol, invol


def rotated(items: list, by: int) -> list:
    by %= len(items)
    return items[by:] + items[:by]


# ---------------------------------------------------------------- 1. user/sys


def redis_io(port: int) -> tuple[int, int]:
    """redis-server's total_reads_processed / total_writes_processed (INFO stats):
    how many reads of the proxy's writes, and writes of replies, it made."""
    stats = info(port, "stats")
    return int(stats["total_reads_processed"]), int(stats["total_writes_processed"])


def measure_cpu(proxies: list[Proxy], redis_port: int) -> dict:
    """{(proxy, test, P): [{"user","sys","total","rps",...} per round]}, us per request."""
    out = defaultdict(list)
    for rnd in range(ARGS.rounds):
        for p in ARGS.pipelines:
            for test in ARGS.tests:
                for proxy in rotated(proxies, rnd):
                    n = ARGS.requests * (6 if p > 1 else 1)
                    r0 = redis_io(redis_port)
                    t0, c0, s0 = ticks(proxy.pid), cpu_reading([proxy.pid]), switches(proxy.pid)
                    row, _ = benchmark(proxy.port, test, p, n, ARGS.clients)
                    t1, c1, s1 = ticks(proxy.pid), cpu_reading([proxy.pid]), switches(proxy.pid)
                    r1 = redis_io(redis_port)
                    total, _ = cpu_used(c0, c1)
                    sample = {
                        "user": (t1[0] - t0[0]) / CLK_TCK * 1e6 / n,
                        "sys": (t1[1] - t0[1]) / CLK_TCK * 1e6 / n,
                        "total": total * 1e6 / n,
                        "rps": row["rps"],
                        "n": n,
                        "ticks": (t1[0] - t0[0]) + (t1[1] - t0[1]),
                        "vcsw": (s1[0] - s0[0]) / n,
                        "ivcsw": (s1[1] - s0[1]) / n,
                        "redis_reads": (r1[0] - r0[0]) / n,
                        "redis_writes": (r1[1] - r0[1]) / n,
                    }
                    out[(proxy.name, test, p)].append(sample)
                    print(f"  cpu   round {rnd + 1} {test} -P {p:<2} {proxy.name:10} "
                          f"{sample['rps']:9,.0f} rps  user {sample['user']:5.2f}  "
                          f"sys {sample['sys']:5.2f}  total {sample['total']:5.2f} us/req  "
                          f"cs {sample['vcsw']:.3f}/{sample['ivcsw']:.3f}", flush=True)  # fmt: skip
    return dict(out)


# ---------------------------------------------------------------- 2. strace

STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)\s*$")


def parse_strace(path: Path) -> dict[str, tuple[int, int]]:
    """strace -c's table: {syscall: (calls, errors)}."""
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        name = parts[-1]
        calls = int(parts[3])
        errors = int(parts[4]) if len(parts) == 6 else 0
        out[name] = (calls, errors)
    return out


def traced(procs: Processes, pid: int, out: Path, action) -> float:
    """Runs action() with strace -c -f attached to every thread of pid;
    returns action's wall time."""
    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    argv = [ARGS.tools["strace"], "-c", "-f", "-q", "-o", str(out)]
    for tid in tids:
        argv += ["-p", str(tid)]
    st = procs.spawn(argv, out.with_suffix(".err"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # attached: every thread has a tracer
        tracers = [tracer_of(pid, t) for t in tids]
        if all(t == st.pid for t in tracers):
            break
        if st.poll() is not None:
            raise BenchError(f"strace exited {st.returncode}: {tail(out.with_suffix('.err'))}")
        time.sleep(0.05)
    else:
        raise BenchError("strace did not attach within 10 s")
    try:
        started = time.monotonic()
        action()
        elapsed = time.monotonic() - started
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    return elapsed


def tracer_of(pid: int, tid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return 0


def measure_syscalls(procs: Processes, proxies: list[Proxy], workdir: Path) -> dict:
    """{(proxy, test, P): [{syscall: calls per request} per round]} (idle subtracted)."""
    out = defaultdict(list)
    n1 = ARGS.strace_requests
    for rnd in range(ARGS.rounds):
        for p in ARGS.pipelines:
            for test in ARGS.tests:
                for proxy in rotated(proxies, rnd):
                    n = n1 * (6 if p > 1 else 1)
                    stem = workdir / f"strace-{proxy.port}-{test}-{p}-{rnd}"
                    elapsed = traced(procs, proxy.pid, stem.with_suffix(".load"),
                                     lambda: benchmark(proxy.port, test, p, n, ARGS.clients))  # fmt: skip
                    traced(procs, proxy.pid, stem.with_suffix(".idle"), lambda: time.sleep(elapsed))
                    load = parse_strace(stem.with_suffix(".load"))
                    idle = parse_strace(stem.with_suffix(".idle"))
                    per = {}
                    for name, (calls, errors) in load.items():
                        base = idle.get(name, (0, 0))
                        per[name] = ((calls - base[0]) / n, (errors - base[1]) / n)
                    per["(idle, per s)"] = (sum(c for c, _ in idle.values()) / max(elapsed, 1e-9), 0)
                    out[(proxy.name, test, p)].append(per)
                    total = sum(c for k, (c, _) in per.items() if not k.startswith("("))
                    print(f"  strace round {rnd + 1} {test} -P {p:<2} {proxy.name:10} "
                          f"{total:6.3f} syscalls/req (load {elapsed:.1f} s)", flush=True)
    return dict(out)


# ------------------------------------------------- syscall entry/exit floor

FLOOR_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(void) {
    int sv[2]; char b[16]; const int n = 2000000; double t0, t1, t2;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv)) return 1;
    for (int r = 0; r < 3; r++) {
        t0 = now(); for (int i = 0; i < n; i++) syscall(SYS_getppid);
        t1 = now(); for (int i = 0; i < n; i++) recv(sv[0], b, sizeof b, 0);
        t2 = now();
        printf("%.1f %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
    }
    return 0;
}
"""


def syscall_floor(workdir: Path) -> dict | None:
    """ns per getppid() and per recv() that finds nothing (EAGAIN): what a
    syscall costs before it does any work, on this machine. None without cc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src, exe = workdir / "floor.c", workdir / "floor"
    src.write_text(FLOOR_C)
    built = subprocess.run([cc, "-O2", "-o", str(exe), str(src)], capture_output=True, text=True)
    if built.returncode != 0:
        print(f"  syscall floor: cc failed: {built.stderr[-300:]}", flush=True)
        return None
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    rows = [list(map(float, line.split())) for line in done.stdout.splitlines() if line.strip()]
    if not rows:
        return None
    return {"getppid_ns": med(r[0] for r in rows), "recv_eagain_ns": med(r[1] for r in rows),
            "runs": rows}  # fmt: skip


# ---------------------------------------------------------------- 3. callgrind


def callgrind_ctl(pid: int, flag: str) -> None:
    done = subprocess.run([ARGS.tools["callgrind_control"], flag, str(pid)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if done.returncode != 0 or "OK" not in done.stdout:
        raise BenchError(f"callgrind_control {flag} {pid}: {done.stdout} {done.stderr}")


def dump(pid: int, outdir: Path, prefix: str) -> Path:
    before = set(outdir.glob(f"{prefix}.*"))
    callgrind_ctl(pid, "-d")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = set(outdir.glob(f"{prefix}.*")) - before
        if new:
            path = max(new, key=lambda q: int(q.name.rsplit(".", 1)[1]))
            time.sleep(0.2)  # the file is written before the control call returns
            return path
        time.sleep(0.05)
    raise BenchError(f"no callgrind dump from {pid}")


def measure_instructions(procs: Processes, proxies: list[Proxy], workdir: Path, redis_port: int) -> dict:
    """{(proxy, test, P): [{"ir": per request, "idle_ir": per request, "load": path,
    "idle": path, "scale": idle scale} per round]}."""
    out = defaultdict(list)
    cgdir = workdir / "callgrind"
    cgdir.mkdir(exist_ok=True)
    for proxy in proxies:
        prefix = f"cg-{proxy.name.replace(' ', '').replace('--', '-')}"
        wrapper = [ARGS.tools["valgrind"], "--tool=callgrind", "--dump-instr=no",
                   f"--callgrind-out-file={cgdir}/{prefix}.%p"]  # fmt: skip
        start_proxy(procs, proxy, workdir, redis_port, wrapper, wait=120)
        try:
            warm_up(proxy, ARGS.callgrind_clients)
            prefix = f"{prefix}.{proxy.pid}"
            for rnd in range(ARGS.rounds):
                for p in ARGS.pipelines:
                    for test in ARGS.tests:
                        n = ARGS.callgrind_requests
                        callgrind_ctl(proxy.pid, "-z")
                        row, elapsed = benchmark(proxy.port, test, p, n, ARGS.callgrind_clients)
                        load = dump(proxy.pid, cgdir, prefix)
                        callgrind_ctl(proxy.pid, "-z")
                        t0 = time.monotonic()
                        time.sleep(elapsed)
                        idle_elapsed = time.monotonic() - t0
                        idle = dump(proxy.pid, cgdir, prefix)
                        scale = elapsed / idle_elapsed
                        ir_load, ir_idle = dump_total(load), dump_total(idle)
                        sample = {"ir": (ir_load - ir_idle * scale) / n,
                                  "idle_ir": ir_idle * scale / n, "rps": row["rps"], "n": n,
                                  "load": str(load), "idle": str(idle), "scale": scale}  # fmt: skip
                        out[(proxy.name, test, p)].append(sample)
                        print(f"  callgrind round {rnd + 1} {test} -P {p:<2} {proxy.name:22} "
                              f"{sample['ir']:9,.0f} Ir/req (idle {sample['idle_ir']:6,.0f}; "
                              f"{row['rps']:,.0f} rps under valgrind)", flush=True)  # fmt: skip
        finally:
            stop(proxy)
    return dict(out)


def dump_total(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise BenchError(f"{path}: no summary line")


# ---------------------------------------------------------------- 4. where


NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")


def parse_dump(path: Path) -> tuple[dict, dict, dict]:
    """Self cost (Ir) per (object, source file, function) of one callgrind
    dump, call counts per (caller, callee) function, and the callee's
    inclusive cost per (caller, callee).

    Cost lines right after a `calls=` line are the callee's inclusive cost
    and are skipped; inlined code keeps the file of its own source
    (fi=/fe=), so e.g. tokio's timer code inlined into a shardgate function
    is attributed to tokio's file.
    """
    names: dict[str, dict[str, str]] = {"ob": {}, "fl": {}, "fn": {}}
    space = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
             "cfl": "fl", "fn": "fn", "cfn": "fn"}  # fmt: skip
    cost: dict[tuple[str, str, str], int] = defaultdict(int)
    calls: dict[tuple[str, str], int] = defaultdict(int)
    call_cost: dict[tuple[str, str], int] = defaultdict(int)
    ob = fl = file = fn = cfn = "?"
    skip_next = False
    for line in path.read_text(errors="replace").splitlines():
        if not line:
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if skip_next:
                skip_next = False
                parts = line.split()
                if len(parts) >= 2:
                    call_cost[(fn, cfn)] += int(parts[1])
                continue
            parts = line.split()
            if len(parts) >= 2:
                cost[(ob, file, fn)] += int(parts[1])
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in space and key != "calls":
            continue
        if key == "calls":
            skip_next = True
            calls[(fn, cfn)] += int(value.split()[0])
            continue
        m = NAME.match(value)
        ns = names[space[key]]
        if m:
            ident, name = m.groups()
            if name is not None:
                ns[ident] = name
            name = ns.get(ident, value)
        else:
            name = value
        if key == "ob":
            ob = name
        elif key == "fl":
            fl = file = name
        elif key in ("fi", "fe"):
            file = name
        elif key == "fn":
            fn = name
            file = fl
        elif key == "cfn":
            cfn = name
    return dict(cost), dict(calls), dict(call_cost)


# Events counted from call edges: (label, callee pattern, callers to leave
# out: the allocator calling itself, a wrapper calling what it wraps).
COUNTED = [
    ("allocations (calls into the allocator)",
     r"^(mi_malloc\w*|mi_zalloc\w*|mi_calloc\w*|mi_realloc\w*|mi_theap_malloc\w*|mi_heap_malloc\w*|"
     r"_rjem_malloc|_rjem_calloc|_rjem_realloc|_rjem_mallocx|_rjem_rallocx|"
     r"malloc|calloc|realloc|operator new.*|__rust_alloc\w*|__rust_realloc)$",
     r"^(mi_|_mi_|_rjem_|tikv_jemallocator|__rust_alloc|__rust_realloc|malloc|calloc|realloc|operator new|alloc::alloc)"),
    ("frees",
     r"^(mi_free\w*|_rjem_free|_rjem_sdallocx|_rjem_dallocx|free|cfree|operator delete.*|__rust_dealloc)$",
     r"^(mi_|_mi_|_rjem_|tikv_jemallocator|__rust_dealloc|free|cfree|operator delete)"),
    ("tasks scheduled (tokio LocalSet::schedule)",
     r"^tokio::task::local::Shared::schedule$", r"^$"),
    ("task polls (tokio raw::poll)",
     r"^tokio::runtime::task::raw::poll$", r"^tokio::runtime::task::raw::poll$"),
    ("clock reads (Instant::now)",
     r"^<std::sys::pal::unix::time::Timespec>::now$|^_mi_prim_clock_now$", r"Timespec>::now$|_mi_prim_clock_now$"),
    ("clock_gettime calls", r"^clock_gettime", r"^clock_gettime"),
    ("timer resets (tokio Sleep::reset)",
     r"^tokio::time::sleep::Sleep::reset$", r"^tokio::time::sleep::Sleep::reset$"),
    ("epoll_wait calls", r"^epoll_wait$", r"^epoll_wait$"),
    ("writev calls", r"^writev$", r"^writev$"),
    ("read/recv calls", r"^(read|__libc_read|recv|recvfrom|__libc_recv|__recv)$",
     r"^(read|__libc_read|recv|recvfrom|__libc_recv|__recv)$"),
]


# The events whose calling sites the report lists.
SITE_EVENTS = [COUNTED[i][0] for i in (0, 1, 4, 6)]


def count_events(calls: dict, call_cost: dict) -> tuple[dict[str, int], dict]:
    """Per event: its count, and per (event, calling function): [calls, Ir]."""
    out, sites = {}, defaultdict(lambda: [0, 0])
    for label, callee_re, caller_re in COUNTED:
        total = 0
        for (caller, callee), n in calls.items():
            if re.search(callee_re, callee) and not re.search(caller_re, caller):
                total += n
                sites[(label, caller)][0] += n
                sites[(label, caller)][1] += call_cost.get((caller, callee), 0)
        out[label] = total
    return out, sites


# (category, pattern on the source file, pattern on the function name); the
# first rule whose file pattern matches wins, else the first whose function
# pattern does. Generic library files (core, alloc, std) match no file
# pattern on purpose: the function decides. The function patterns also name
# predixy's C++ functions (its binary keeps dynamic symbols, not debug info).
CATEGORIES = [
    ("timers and clock reads",
     r"tokio-[\d.]+/src/(runtime/time|time)/|/std/src/time\.rs|sys/pal/unix/time\.rs|clock_gettime",
     r"Timespec|clock_gettime|Instant|tokio::time|tokio::runtime::time|Sleep|steady_clock|"
     r"chrono|checkServerTimeout|TimerPoint|^Timer"),
    ("metrics",
     r"shardgate/src/metrics/|shardgate/src/backend/stats\.rs",
     r"shardgate::metrics|NodeStats|record_latency|Histogram|LatencyMonitor|Stats::|::stats\("),
    ("allocations",
     r"mimalloc|jemalloc|alloc/src/alloc\.rs|alloc/src/raw_vec|malloc\.c|/malloc/",
     r"^mi_|^_mi_|^_rjem_|tikv_jemallocator|__rust_alloc|__rust_dealloc|__rust_realloc|^malloc$|^free$|^realloc$|^calloc$|"
     r"_int_malloc|_int_free|cfree|operator new|operator delete|reserve_inner|finish_grow|"
     r"Alloc<|::create<|BufferAlloc"),
    ("memcpy/copies",
     r"memcpy|memmove|memset",
     r"memcpy|memmove|memset|copy_from_slice"),
    ("RESP parsing/scanning",
     r"/crates/resp/|memchr-",
     r"^resp::|memchr|RequestParser::|ResponseParser::"),
    ("hashing/routing",
     r"/crates/keyspace/|shardgate/src/route/|shardgate/src/command/|shardgate/src/worker/|shardgate/src/topology/",
     r"keyspace::|shardgate::route|shardgate::command|node_for|dispatch_route|PoolWorker|shardgate::topology|"
     r"getServer|getReadServer|ServerGroup::|ServerPool|Hash::|Command::|permission|"
     r"getConnectConnection|getShareConnection"),
    ("writev/readv bookkeeping",
     r"shardgate/src/io\.rs|tokio-[\d.]+/src/(io|net)/|/mio-|sysv/linux/(writev|readv|read|write|recv|send|epoll_wait)|cancellation\.c",
     r"shardgate::io::|conn::flush|conn::written|IoSlice|^writev$|^readv$|^read$|^write$|^recv|^send|"
     r"epoll_wait|asynccancel|^__libc_|^syscall$|Socket::|IOVec|::fill\(|::write\(Handler"),
    ("tokio I/O readiness",
     r"tokio-[\d.]+/src/runtime/io/",
     r"tokio::runtime::io|Registration|ScheduledIo|Readiness"),
    ("task wakeups/scheduling",
     r"tokio-[\d.]+/src/|backend/wake\.rs|backend/slot\.rs|std/src/thread/local\.rs|future/poll_fn\.rs",
     r"tokio::|LocalSet|Waker|wake|ReplySlot|SlotSender|TaskWake|LocalKey|PollFn|"
     r"Handler::run|Handler::post|addPostEvent|Event\(|Multiplexor|Deque<"),
    ("buffers and refcounts",
     r"bytes-[\d.]+/src/",
     r"^bytes::|<bytes::|Segment::|Buffer::|getBuffer|RefCntObj|SharePtr"),
    ("session and connection logic",
     r"/crates/shardgate/src/",
     r"shardgate::|Handler::|Request::|Response::|Connection::|AcceptConnection|ConnectConnection"),
]
# What each category holds, for the report.
LEGEND = {
    "timers and clock reads": "tokio's timer wheel (sleep reset/poll, time driver), Instant::now / "
    "clock_gettime; predixy: steady_clock::now, server timeout checks",
    "metrics": "shardgate's counters, histograms and node stats; predixy's stats and latency monitors",
    "allocations": "jemalloc (mimalloc before), malloc/free, Vec/BytesMut growth; predixy's pooled Alloc<T>::create",
    "memcpy/copies": "memcpy, memmove, memset",
    "RESP parsing/scanning": "resp crate (request parser, reply scanner, numbers), memchr; predixy's "
    "RequestParser/ResponseParser",
    "hashing/routing": "command lookup, key extraction, route, node/connection choice, ACL check; "
    "predixy's getServer, Hash, permission",
    "writev/readv bookkeeping": "output queues, iovec building, tokio's PollEvented/TcpStream read "
    "and write glue, libc syscall wrappers; predixy's Socket, fill(IOVec), write",
    "tokio I/O readiness": "tokio's I/O driver: Registration, ScheduledIo readiness, dispatching "
    "epoll events to wakers",
    "task wakeups/scheduling": "tokio LocalSet/task polling, wakers, select! and poll_fn glue, "
    "shardgate's reply slots; predixy's event posting (Handler::post*, Deque)",
    "buffers and refcounts": "bytes crate (split_to, freeze, drop); predixy's Segment/Buffer and "
    "reference counts",
    "session and connection logic": "everything else in shardgate's frontend/backend code; "
    "predixy's Handler/Request/Response/Connection methods",
}
OTHER = "other"


def categorize(file: str, fn: str, ob: str = "") -> str:
    if re.match(r"0x[0-9a-f]+$", fn):  # a stripped binary: no name to go by
        return f"{os.path.basename(ob) or '?'} code (stripped: unnamed)"
    for name, file_re, _ in CATEGORIES:
        if re.search(file_re, file):
            return name
    for name, _, fn_re in CATEGORIES:
        if re.search(fn_re, fn):
            return name
    return OTHER


def where(samples: list[dict], requests: int) -> tuple[dict, list]:
    """Per category and per function: Ir per request (load minus scaled idle),
    summed over the rounds' dumps and divided by their requests."""
    funcs: dict[tuple[str, str, str], float] = defaultdict(float)
    events: dict[str, float] = defaultdict(float)
    sites: dict[tuple[str, str], list] = defaultdict(lambda: [0.0, 0.0])
    total_requests = 0
    for s in samples:
        for path, sign in ((s["load"], 1.0), (s["idle"], -s["scale"])):
            cost, calls, call_cost = parse_dump(Path(path))
            for key, ir in cost.items():
                funcs[key] += sign * ir
            counts, at = count_events(calls, call_cost)
            for label, n in counts.items():
                events[label] += sign * n
            for key, (n, ir) in at.items():
                sites[key][0] += sign * n
                sites[key][1] += sign * ir
        total_requests += s["n"]
    events = {label: n / total_requests for label, n in events.items()}
    sites = {key: (n / total_requests, ir / total_requests) for key, (n, ir) in sites.items()}
    cats: dict[str, float] = defaultdict(float)
    by_fn: dict[tuple[str, str], float] = defaultdict(float)
    fn_cats: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (ob, file, fn), ir in funcs.items():
        cat = categorize(file, fn, ob)
        key = (fn, os.path.basename(ob))
        cats[cat] += ir / total_requests
        by_fn[key] += ir / total_requests
        fn_cats[key][cat] += ir
    top = sorted(by_fn.items(), key=lambda kv: -kv[1])[: ARGS.top]
    # A function's category: where most of its own cost went (inlined code
    # of other files is attributed to their categories above).
    top = [(key, ir, max(fn_cats[key].items(), key=lambda kv: kv[1])[0]) for key, ir in top]
    return dict(cats), top, events, sites


ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.+?)(?: \[(.+)\])?$")


def inclusive(samples: list[dict]) -> list[tuple[str, float]]:
    """callgrind_annotate --inclusive=yes over the first round's load dump:
    (function, Ir per request), top entries below the thread entry points."""
    s = samples[0]
    done = subprocess.run([ARGS.tools["callgrind_annotate"], "--inclusive=yes", "--threshold=100",
                           s["load"]], capture_output=True, text=True, timeout=300)  # fmt: skip
    merged: dict[str, float] = defaultdict(float)
    started = False
    for line in done.stdout.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started:
            continue
        m = ANNOTATE_LINE.match(line)
        if not m:
            if started and merged and line.startswith("---"):
                break
            continue
        ir, what = int(m.group(1).replace(",", "")), m.group(2)
        fn = what.split(":", 1)[1] if ":" in what else what
        merged[fn] = max(merged[fn], ir / s["n"])  # the same function under several files
    # Thread entry points and the runtime's own frames hold ~everything: skip
    # what covers more than 95% of the whole.
    whole = max(merged.values(), default=0)
    kept = [(fn, ir) for fn, ir in merged.items() if ir < 0.95 * whole]
    return sorted(kept, key=lambda kv: -kv[1])[: ARGS.top]


# ---------------------------------------------------------------- report


def med(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def f(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def render(cpu, sys_calls, instr, wheres, incl, names, elapsed, workdir, floor=None) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sg, px = names[0], ("predixy" if "predixy" in names else None)
    lines = ["# Where the CPU goes: shardgate vs predixy", "",
             f"Generated by `bench/profile.py` (`make profile`) on {now} in {elapsed / 60:.1f} min; "
             f"shardgate commit {git_commit()}. Medians of {ARGS.rounds} round(s). "
             f"Both proxies run {THREADS} worker threads in front of one redis-server; "
             "redis-benchmark `-r 100000`. How each figure is taken: see the docstring of "
             "bench/profile.py.", ""]  # fmt: skip
    machine = [["date", now], ["nproc", str(len(os.sched_getaffinity(0)))],
               ["kernel", f"{platform.system()} {platform.release()}"],
               ["shardgate", f"`{ARGS.shardgate}` ({first_line([str(ARGS.shardgate), '--version'])})"],
               ["predixy", f"`{ARGS.tools['predixy']}`" if px else ARGS.predixy_status],
               ["valgrind", first_line([ARGS.tools["valgrind"], "--version"]) if "valgrind" in ARGS.tools else "not used"],
               ["strace", first_line([ARGS.tools["strace"], "-V"]) if "strace" in ARGS.tools else "not used"],
               ["redis-benchmark", first_line([ARGS.tools["redis-benchmark"], "--version"])]]  # fmt: skip
    lines += table(["", ""], machine) + [""]
    rows_tp = [(t, p) for p in ARGS.pipelines for t in ARGS.tests]

    if cpu:
        lines += ["## On-CPU time per request (normal run)", "",
                  f"{ARGS.requests:,} requests at -P 1 (x6 at -P 16), {ARGS.clients} clients. "
                  "user/sys from /proc/PID/stat (1/100 s units; where the kernel accounts CPU "
                  "time per scheduler tick, as most do, the split is a sample of the ticks a run "
                  "spans: 'utime+stime' gives its length in 1/100 s); total from schedstat (ns); "
                  "context switches from /proc/PID/task/*/status (a voluntary one is a "
                  "thread going to sleep in epoll_wait: a wake-up), per request; redis reads/writes: "
                  "redis-server's total_reads_processed / total_writes_processed (INFO stats) per "
                  "request, i.e. how many batches the proxy's backend writes arrived in and how "
                  "many writes redis made back, untraced.", ""]  # fmt: skip
        rows = []
        for t, p in rows_tp:
            for name in names:
                if name not in [k[0] for k in cpu]:
                    continue
                ss = cpu.get((name, t, p), [])
                u, s_, tot = (med(x[k] for x in ss) for k in ("user", "sys", "total"))
                share = None if not u or not s_ else u / (u + s_) * 100
                rows.append([t.upper(), str(p), name, f(med(x["rps"] for x in ss), 0), f(u), f(s_),
                             f(tot), f(share, 0) + "%", f(med(x.get("ticks") for x in ss), 0),
                             f(med(x["vcsw"] for x in ss), 3),
                             f(med(x["ivcsw"] for x in ss), 3),
                             f(med(x.get("redis_reads") for x in ss), 4),
                             f(med(x.get("redis_writes") for x in ss), 4)])  # fmt: skip
        lines += table(["test", "-P", "proxy", "requests/s", "user µs/req", "sys µs/req",
                        "total µs/req", "user share", "utime+stime (1/100 s)", "voluntary cs/req", "involuntary cs/req",
                        "redis reads/req", "redis writes/req"],
                       rows) + [""]  # fmt: skip

    if instr:
        lines += ["## Instructions per request (user space, callgrind)", "",
                  f"{ARGS.callgrind_requests:,} requests per run, {ARGS.callgrind_clients} clients, "
                  "the proxy under valgrind (so it batches more per wake-up than untraced); "
                  "idle instructions over an equally long stretch subtracted.", ""]  # fmt: skip
        rows = []
        for t, p in rows_tp:
            base = med(x["ir"] for x in instr.get((px, t, p), [])) if px else None
            for name in [n for n in names if (n, t, p) in instr]:
                ss = instr[(name, t, p)]
                ir = med(x["ir"] for x in ss)
                rows.append([t.upper(), str(p), name, f(ir, 0), f(med(x["idle_ir"] for x in ss), 0),
                             f"{ir / base:.2f}x" if base and ir else "—",
                             ", ".join(f"{x['ir']:,.0f}" for x in ss)])  # fmt: skip
        lines += table(["test", "-P", "proxy", "Ir/req (median)", "idle Ir/req subtracted",
                        "÷ predixy", "rounds"], rows) + [""]  # fmt: skip

    if floor:
        lines += ["## What a syscall costs before it does anything", "",
                  "A C loop (compiled here) times 2,000,000 `syscall(SYS_getppid)` and 2,000,000 "
                  "`recv()` on an empty non-blocking socket (EAGAIN); median of 3: "
                  f"**{floor['getppid_ns']:.0f} ns** per getppid, **{floor['recv_eagain_ns']:.0f} ns** "
                  "per empty recv. That is the entry/exit cost an io_uring runtime could save per "
                  "syscall it folds into a batch; the work a syscall does (the TCP stack) stays.", ""]  # fmt: skip

    if sys_calls:
        lines += ["## Syscalls per request, by type (strace -c -f)", "",
                  f"{ARGS.strace_requests:,} requests at -P 1 (x6 at -P 16), {ARGS.clients} clients, "
                  "strace attached to every thread; an idle stretch as long subtracted. "
                  "Errors (EAGAIN) in brackets.", ""]  # fmt: skip
        for t, p in rows_tp:
            present = [n for n in names if (n, t, p) in sys_calls]
            kinds = set()
            for n in present:
                for per in sys_calls[(n, t, p)]:
                    kinds |= {k for k, (c, _) in per.items() if not k.startswith("(") and abs(c) >= 0.001}
            rows = []
            totals = {}
            for k in sorted(kinds, key=lambda k: -max(med(per.get(k, (0, 0))[0] for per in sys_calls[(n, t, p)]) for n in present)):
                row = [k]
                for n in present:
                    c = med(per.get(k, (0, 0))[0] for per in sys_calls[(n, t, p)])
                    e = med(per.get(k, (0, 0))[1] for per in sys_calls[(n, t, p)])
                    row.append(f"{c:.3f}" + (f" ({e:.3f})" if e and e >= 0.0005 else ""))
                rows.append(row)
            for n in present:
                totals[n] = med(sum(c for k, (c, _) in per.items() if not k.startswith("("))
                                for per in sys_calls[(n, t, p)])  # fmt: skip
            rows.append(["**total**"] + [f"**{totals[n]:.3f}**" for n in present])
            rows.append(["(idle syscalls/s, subtracted)"]
                        + [f(med(per["(idle, per s)"][0] for per in sys_calls[(n, t, p)]), 0) for n in present])  # fmt: skip
            lines += [f"### {t.upper()} -P {p}", ""] + table(["syscall"] + present, rows) + [""]

    if wheres:
        lines += ["## Events per request (callgrind call counts)", "",
                  "Counted from the call edges of the same dumps (idle subtracted): how often "
                  "each thing happens per request, under valgrind (so with its batching; see "
                  "above). An allocator or wrapper calling itself is not counted twice.", ""]  # fmt: skip
        for t, p in rows_tp:
            present = [n for n in names if (n, t, p) in wheres]
            if not present:
                continue
            rows = [[label] + [f"{wheres[(n, t, p)][2].get(label, 0):.2f}" for n in present]
                    for label, _, _ in COUNTED]  # fmt: skip
            lines += [f"### {t.upper()} -P {p}", ""] + table(["event"] + present, rows) + [""]

    for (name, t, p), (cats, top, _events, sites) in wheres.items():
        if name not in ("shardgate", "predixy"):
            continue  # variants: their totals and events above are the point
        total = sum(cats.values())
        lines += [f"## Where {name}'s instructions go: {t.upper()} -P {p}", "",
                  f"Self cost of every function over the {ARGS.rounds} round(s), idle subtracted, "
                  f"per request: {total:,.0f} Ir/req in all.", ""]  # fmt: skip
        rows = [[c, f(ir, 0), f"{ir / total * 100:.1f}%", LEGEND.get(c, "")]
                for c, ir in sorted(cats.items(), key=lambda kv: -kv[1])]  # fmt: skip
        lines += table(["category", "Ir/req", "share", "holds"], rows) + [""]
        lines += [f"Top {len(top)} functions by self cost:", ""]
        lines += table(["function", "object", "Ir/req", "share", "category (most of its cost)"],
                       [[f"`{fn[:110]}`", ob, f(ir, 0), f"{ir / total * 100:.1f}%", cat]
                        for (fn, ob), ir, cat in top]) + [""]  # fmt: skip
        rows = []
        for label in SITE_EVENTS:
            at = sorted(((caller, v) for (lb, caller), v in sites.items()
                         if lb == label and v[0] >= 0.005), key=lambda kv: -kv[1][0])[:6]  # fmt: skip
            rows += [[label, f"`{caller[:100]}`", f"{n:.2f}", f(ir, 0)] for caller, (n, ir) in at]
        if rows:
            lines += ["Where those events come from (the calling function; its calls per request "
                      "and the Ir/req they cost, callees included):", ""]  # fmt: skip
            lines += table(["event", "called from", "calls/req", "Ir/req"], rows) + [""]
        if (name, t, p) in incl:
            lines += ["Top by inclusive cost (callgrind_annotate --inclusive=yes, round 1):", ""]
            lines += table(["function", "Ir/req"],
                           [[f"`{fn[:120]}`", f(ir, 0)] for fn, ir in incl[(name, t, p)]]) + [""]  # fmt: skip

    lines += ["## Commands", "", "```sh", shlex.join(["python3", *sys.argv]), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

ARGS: argparse.Namespace


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds; medians reported (default 3)")
    ap.add_argument("--tests", default="get,set")
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--clients", type=int, default=50, help="clients for the untraced and strace runs")
    # Many requests: utime/stime are sampled at the scheduler tick where the
    # kernel has CONFIG_TICK_CPU_ACCOUNTING (most do), so the user/sys split
    # is only as good as the number of ticks a run spans.
    ap.add_argument("--requests", type=int, default=1_000_000, help="untraced run, -P 1 (x6 at -P 16)")
    ap.add_argument("--strace-requests", type=int, default=50_000, help="strace run, -P 1 (x6 at -P 16)")
    ap.add_argument("--callgrind-requests", type=int, default=20_000)
    ap.add_argument("--callgrind-clients", type=int, default=10)
    ap.add_argument("--only", default="cpu,strace,callgrind", help="subset of cpu,strace,callgrind")
    ap.add_argument("--no-variants", dest="variants", action="store_false",
                    help="skip shardgate --no-metrics under callgrind (what metrics cost)")
    ap.add_argument("--top", type=int, default=25, help="functions listed per profile")
    ap.add_argument("--shardgate", type=Path, default=DEFAULT_SHARDGATE)
    ap.add_argument("--predixy", type=Path, help="default: <repo>/../shared/peers/predixy, else PATH")
    ap.add_argument("--out", default="target/bench/PROFILE.md", help="relative to the repo root")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--keep", type=Path, help="copy the callgrind dumps into this directory")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per redis-benchmark run")
    args = ap.parse_args(argv)
    args.tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    args.pipelines = [int(p) for p in args.pipelines.split(",")]
    args.only = {o.strip() for o in args.only.split(",")}
    args.out = REPO_ROOT / args.out
    return args


def find_tools(args) -> dict[str, str]:
    tools = {}
    wanted = {"redis-server": "redis-server", "redis-benchmark": "redis-tools"}
    if "strace" in args.only:
        wanted["strace"] = "strace"
    if "callgrind" in args.only:
        wanted |= {"valgrind": "valgrind", "callgrind_control": "valgrind",
                   "callgrind_annotate": "valgrind"}  # fmt: skip
    for tool, package in wanted.items():
        path = shutil.which(tool)
        if path is None:
            raise BenchError(f"{tool} is missing; install it with: sudo apt-get install -y {package}")
        tools[tool] = path
    if not os.access(args.shardgate, os.X_OK):
        raise BenchError(f"{args.shardgate} is missing: build it with `make release`")
    predixy = args.predixy or (SHARED_PREDIXY if os.access(SHARED_PREDIXY, os.X_OK) else None)
    predixy = str(predixy) if predixy else shutil.which("predixy")
    if predixy:
        tools["predixy"] = predixy
        args.predixy_status = predixy
    else:
        args.predixy_status = f"not found (looked for {SHARED_PREDIXY} and `predixy` on PATH)"
        print(f"profile: predixy {args.predixy_status}: shardgate only", flush=True)
    return tools


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    global ARGS
    ARGS = parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    procs = Processes()
    started = time.monotonic()
    try:
        ARGS.tools = find_tools(ARGS)
        with tempfile.TemporaryDirectory(prefix="shardgate-profile-") as tmp:
            workdir = Path(tmp)
            try:
                result = run(procs, workdir)
            finally:
                procs.kill_all()
    except BenchError as e:
        print(f"profile: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nprofile: interrupted; every process was stopped", file=sys.stderr)
        return 130
    ARGS.out.parent.mkdir(parents=True, exist_ok=True)
    ARGS.out.write_text(result["markdown"])
    if ARGS.json:
        ARGS.json.write_text(json.dumps(result["raw"], indent=1))
    print(f"\nwrote {ARGS.out} ({(time.monotonic() - started) / 60:.1f} min)")
    return 0


def run(procs: Processes, workdir: Path) -> dict:
    started = time.monotonic()
    redis_port = free_port()
    data = workdir / "redis"
    data.mkdir()
    ARGS.tools.setdefault("redis-server", "redis-server")
    redis = procs.spawn(redis_argv(ARGS, redis_port, data), data / "redis.log")
    wait_answering(Proxy("redis-server", "redis", port=redis_port, proc=redis, log=data / "redis.log"), 10)
    with_px = "predixy" in ARGS.tools
    names = ["shardgate"] + (["predixy"] if with_px else [])
    cpu = sys_calls = instr = {}
    floor = None
    if {"cpu", "strace"} & ARGS.only:
        proxies = [start_proxy(procs, Proxy(n, n), workdir, redis_port) for n in names]
        for proxy in proxies:
            warm_up(proxy, ARGS.clients)
        if "cpu" in ARGS.only:
            print("on-CPU time per request (user/sys) ...", flush=True)
            cpu = measure_cpu(proxies, redis_port)
        if "strace" in ARGS.only:
            print("syscalls per request (strace -c -f) ...", flush=True)
            sys_calls = measure_syscalls(procs, proxies, workdir)
            floor = syscall_floor(workdir)
        for proxy in proxies:
            stop(proxy)
    wheres, incl = {}, {}
    cg_names = list(names)
    if "callgrind" in ARGS.only:
        print("instructions per request (callgrind) ...", flush=True)
        cg = [Proxy("shardgate", "shardgate")]
        if ARGS.variants:
            cg.append(Proxy("shardgate --no-metrics", "shardgate", extra=("--no-metrics",)))
            cg_names.insert(1, "shardgate --no-metrics")
        if with_px:
            cg.append(Proxy("predixy", "predixy"))
        instr = measure_instructions(procs, cg, workdir, redis_port)
        if ARGS.keep:
            ARGS.keep.mkdir(parents=True, exist_ok=True)
            for dumped in (workdir / "callgrind").iterdir():
                shutil.copy2(dumped, ARGS.keep / dumped.name)
        for (name, t, p), samples in instr.items():
            if name in ("shardgate", "shardgate --no-metrics", "predixy"):
                wheres[(name, t, p)] = where(samples, ARGS.callgrind_requests)
                if name == "shardgate":
                    incl[(name, t, p)] = inclusive(samples)
    elapsed = time.monotonic() - started
    md = render(cpu, sys_calls, instr, wheres, incl, cg_names, elapsed, workdir, floor)
    raw = {
        "cpu": {"|".join(map(str, k)): v for k, v in cpu.items()},
        "syscalls": {"|".join(map(str, k)): v for k, v in sys_calls.items()},
        "instructions": {"|".join(map(str, k)): [{kk: vv for kk, vv in s.items() if kk not in ("load", "idle")}
                                                 for s in v] for k, v in instr.items()},  # fmt: skip
        "where": {"|".join(map(str, k)): {"categories": c, "events": ev,
                                          "top": [[fn, ob, ir, cat] for (fn, ob), ir, cat in top],
                                          "sites": [[lb, caller, n, ir] for (lb, caller), (n, ir) in st.items()]}
                  for k, (c, top, ev, st) in wheres.items()},  # fmt: skip
        "inclusive": {"|".join(map(str, k)): v for k, v in incl.items()},
        "syscall_floor": floor,
    }
    return {"markdown": md, "raw": raw}


if __name__ == "__main__":
    sys.exit(main())
