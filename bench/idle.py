"""What idle client connections cost: VmRSS before and with 100,000
sessions (or as many as the descriptor limit allows: the report says how
many), for Redis itself, twemproxy and shardgate.

Each connection sends one PING and reads +PONG, so the proxy has accepted
it and set up a real session, then stays open and idle. Proxies are fresh
(started for this test), so no buffers are left over from the load runs.
Past 25,000 connections they come from 127.0.0.2, .3, ... in turn: one
source address has about 28,000 ports to one destination.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from deploy import PING, Endpoint, deploy
from processes import BenchError, Processes, raise_nofile, rss_kib
from scenarios import IDLE

CONNECTIONS = 100_000
PER_SOURCE = 25_000
# The claim: at most this much RSS per idle client connection (issue 18).
TARGET_KIB = 1.0
# Close with RST (SO_LINGER, timeout 0): no ports left in TIME_WAIT.
LINGER_RESET = struct.pack("ii", 1, 0)


def run_idle_test(procs: Processes, args, workdir: Path, failures: list[str]) -> dict:
    dep = deploy(procs, args, workdir, IDLE)
    count = min(CONNECTIONS, raise_nofile(2 * CONNECTIONS + 1000) - 200)
    results = {}
    for name, endpoint in dep.endpoints.items():
        print(f"  idle connections: {count:,} to {name} ...", flush=True)
        # Redis itself: its own process is the one to measure.
        pid = endpoint.pid or dep.nodes[0].pid
        try:
            results[name] = measure_idle(endpoint, pid, count)
        except (BenchError, OSError) as e:
            failures.append(f"idle connections, {name}: {e}")
            print(f"  FAILED: {failures[-1]}", flush=True)
    return results


def measure_idle(endpoint: Endpoint, pid: int, count: int) -> dict:
    time.sleep(0.5)
    before = rss_kib(pid)
    socks = open_sessions(endpoint.port, count)
    try:
        time.sleep(1.0)  # let the proxy settle
        during = rss_kib(pid)
        endpoint.check_alive()
    finally:
        close_all(socks)
    time.sleep(1.0)
    after = rss_kib(pid)
    return {
        "connections": count,
        "before_kib": before,
        "during_kib": during,
        "after_close_kib": after,
    }


def open_sessions(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with one PING answered by +PONG."""
    socks: list[socket.socket] = []
    sources = -(-count // PER_SOURCE)
    try:
        for i in range(count):
            source = (f"127.0.0.{1 + i % sources}", 0) if sources > 1 else None
            s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=source)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            socks.append(s)
            s.sendall(PING)
        for i, s in enumerate(socks):
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
            if reply != b"+PONG\r\n":
                raise BenchError(f"PING on connection {i + 1} of {count} replied {reply!r}")
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()
