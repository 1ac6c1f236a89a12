"""Child processes, loopback ports and /proc readings.

Every process the benchmark starts goes through Processes.spawn, so that
kill_all() can stop them all (newest first), and each child also asks the
kernel for SIGKILL when this script dies (PR_SET_PDEATHSIG), so a killed
harness leaves no redis-server behind.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


class BenchError(Exception):
    """A failure with a message fit for the user; exits non-zero."""


def _die_with_parent() -> None:
    """Runs in the child before exec."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Processes:
    """Owns every child process; kill_all() stops them, newest first."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self.children.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in reversed(self.children):
            if proc.poll() is None:
                proc.kill()
        for proc in reversed(self.children):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.children.clear()


_handed_out: set[int] = set()


def free_port(highest: int = 65535) -> int:
    """A loopback port free right now, not handed out before in this run,
    and at most `highest` (a cluster node's bus is its port + 10000)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out and port <= highest:
            _handed_out.add(port)
            return port


def wait_for_port(name: str, proc: subprocess.Popen, port: int, log: Path) -> None:
    """Polls until `port` accepts; fails early, with the log, if `proc` exits."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{name} did not listen on port {port} within 10 s:\n{tail(log)}")


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None:
        return "(no log)"
    try:
        text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
    return text or "(empty log)"


def raise_nofile(wanted: int) -> int:
    """Raises RLIMIT_NOFILE towards `wanted` (the hard limit too, if allowed).

    Returns the soft limit now in force. Children started afterwards
    (nutcracker, which does not raise its own) inherit it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    if hard != infinity and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard  # not privileged: settle for the hard limit
    if soft == infinity or soft >= wanted:
        return wanted if soft == infinity else soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (so a proxy that forks workers is counted whole)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


@dataclass(frozen=True)
class CpuReading:
    """CPU used so far by some processes (and their descendants), two ways.

    ticks: utime+stime from /proc/PID/stat (whole thread groups, exited
    threads included), in seconds, with a resolution of 1/CLK_TCK s.
    runtime: the sum of every live thread's on-CPU time from
    /proc/PID/task/TID/schedstat (nanoseconds), in seconds; None where the
    kernel has no schedstat. threads: the (pid, tid)s that sum covers.
    """

    ticks: float
    runtime: float | None
    threads: frozenset


def cpu_reading(pids: list[int]) -> CpuReading:
    runtime, threads, precise = 0, set(), True
    for pid in pids:
        for p in process_tree(pid):
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    runtime += int(Path(f"/proc/{p}/task/{tid}/schedstat").read_text().split()[0])
                    threads.add((p, tid))
                except (OSError, ValueError, IndexError):
                    precise = False
    return CpuReading(cpu_seconds(pids), runtime / 1e9 if precise else None, frozenset(threads))


def cpu_used(before: CpuReading, after: CpuReading) -> tuple[float, bool]:
    """CPU seconds between two readings, and whether it is the precise figure.

    The schedstat sum is exact to the nanosecond, but misses a thread that
    exited in between; then (or without schedstat) the tick count is used.
    """
    if before.runtime is not None and after.runtime is not None and before.threads <= after.threads:
        return after.runtime - before.runtime, True
    return after.ticks - before.ticks, False


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of these processes and their descendants, all threads, in s."""
    ticks = 0
    for pid in pids:
        for p in process_tree(pid):
            try:
                stat = Path(f"/proc/{p}/stat").read_text()
            except OSError:
                continue
            # Split after the last ')': the command name may hold spaces.
            # fields[0] is field 3 (state), so utime (14) and stime (15) are 11, 12.
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` and its descendants, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
