"""What idle client connections cost: VmRSS before and with 10,000 sessions.

Each connection sends one PING and reads +PONG, so the proxy has accepted
it and set up a real session, then stays open and idle. Proxies are fresh
(started for this test), so no buffers are left over from the load runs.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from deploy import PING, Endpoint, deploy
from processes import BenchError, Processes, raise_nofile, rss_kib
from scenarios import IDLE

CONNECTIONS = 10_000
BUDGET_MB = 200  # the claim: 10,000 idle client connections cost <= 200 MB RSS
# Close with RST (SO_LINGER, timeout 0): no 10,000 ports left in TIME_WAIT.
LINGER_RESET = struct.pack("ii", 1, 0)


def run_idle_test(procs: Processes, args, workdir: Path, failures: list[str]) -> dict:
    dep = deploy(procs, args, workdir, IDLE)
    count = min(CONNECTIONS, raise_nofile(CONNECTIONS + 1000) - 200)
    results = {}
    for name, endpoint in dep.endpoints.items():
        print(f"  idle connections: {count:,} to {name} ...", flush=True)
        try:
            results[name] = measure_idle(endpoint, count)
        except (BenchError, OSError) as e:
            failures.append(f"idle connections, {name}: {e}")
            print(f"  FAILED: {failures[-1]}", flush=True)
    return results


def measure_idle(endpoint: Endpoint, count: int) -> dict:
    time.sleep(0.5)
    before = rss_kib(endpoint.pid)
    socks = open_sessions(endpoint.port, count)
    try:
        time.sleep(1.0)  # let the proxy settle
        during = rss_kib(endpoint.pid)
        endpoint.check_alive()
    finally:
        close_all(socks)
    time.sleep(1.0)
    after = rss_kib(endpoint.pid)
    return {
        "connections": count,
        "before_kib": before,
        "during_kib": during,
        "after_close_kib": after,
    }


def open_sessions(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with one PING answered by +PONG."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
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
