#!/usr/bin/env python3
"""What a client sees when a master dies: shardgate in Sentinel and managed mode.

One run, from scratch each time (fresh processes on free loopback ports):

* one shard: a master and one replica (`--replicaof`, linked before
  anything else starts);
* Sentinel mode: 3 redis-sentinels (quorum 2, down-after-milliseconds 1000,
  failover-timeout 10000, parallel-syncs 1) monitoring the master as
  `shard0`, and shardgate with `sentinels:`; the run waits until every
  sentinel sees the 2 others and the replica (linked) before any load;
* managed mode: shardgate with `failover: managed` and the replica under
  `replicas:` (default health_check: 500 ms interval, 300 ms timeout, rise
  2, fall 3); the run waits until shardgate counts the replica as linked;
* a steady write load through shardgate: `--clients` connections, each with
  one SET of a unique key in flight at a time, paced so that together they
  issue `--rate` writes/s; every write's send time, reply time and outcome
  (+OK, an error reply, or the connection dropped) is recorded;
* after `--before` seconds of load, the master gets SIGKILL; the load goes
  on until `--after` seconds after the first write acknowledged after the
  kill (or `--max-wait` seconds without one: no recovery);
* then every acknowledged key is looked up (EXISTS, pipelined) on the new
  master, which must be the old replica (ROLE says master).

Measured per run:

* unavailability window: from the last write acknowledged before the kill
  to the first write sent after the kill that was acknowledged;
* kill -> first ack: from the SIGKILL to that first acknowledged write;
* errors seen by clients: error replies, by message;
* client connections dropped: connections the proxy closed (or reset);
  the client reconnects at once;
* acknowledged writes lost: acked keys missing on the new master, split into
  those acked before the kill and those acked after it;
* Sentinel mode: times of +sdown, +odown and +switch-master (PSUBSCRIBE on
  the first sentinel) after the kill, and from +switch-master to the first
  acknowledged write (negative: shardgate took writes before the event
  reached the subscriber).

`--runs` runs per mode (default 3); the report gives the median and the
min-max of each figure. Run as `make bench-failover` or `python3
bench/failover.py`; `make bench` (bench/bench.py) runs it after the
throughput part and puts its tables in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy import (
    Endpoint,
    admin_get,
    check_endpoint,
    resp_command,
    start_redis,
    wait_replica_linked,
    wait_replicas_serving,
    yaml_value,
)
from processes import BenchError, Processes, free_port, wait_for_port
from scenarios import BASE_POOL

MODES = ("sentinel", "managed")
MASTER_NAME = "shard0"
SENTINELS = 3
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
CLIENT_TIMEOUT = 10.0  # s without a reply: the client gives up on the connection

OK, ERROR, DROPPED, TIMEOUT, UNSENT = 0, 1, 2, 3, 4


@dataclass
class Settings:
    runs: int = 3
    modes: tuple = MODES
    clients: int = 50
    rate: int = 5000  # writes/s, all connections together
    before: float = 3.0  # s of load before the kill
    after: float = 3.0  # s of load after the first ack after the kill
    max_wait: float = 30.0  # s after the kill without an ack: no recovery
    workers: int | None = 1


# ---------------------------------------------------------------- RESP


class RespError(str):
    pass


class Resp:
    """A blocking RESP2 connection (arrays, bulk strings, integers, errors)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def call(self, *args: str):
        self.sock.sendall(resp_command(*args))
        return self.read()

    def pipeline(self, commands: list[tuple]) -> list:
        self.sock.sendall(b"".join(resp_command(*c) for c in commands))
        return [self.read() for _ in commands]

    def _fill(self) -> None:
        if not self.sock.getblocking():
            raise Incomplete()
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise BenchError(f"unexpected RESP line {line[:80]!r}")


def call(port: int, *args: str):
    conn = Resp(port)
    try:
        return conn.call(*args)
    finally:
        conn.close()


def pairs(reply) -> dict:
    return dict(zip(reply[::2], reply[1::2])) if isinstance(reply, list) else {}


# ---------------------------------------------------------------- deployment


@dataclass
class Setup:
    mode: str
    master: object  # deploy.Node
    replica: object
    sentinels: list = field(default_factory=list)  # [(port, proc)]
    proxy: Endpoint | None = None
    yaml: str = ""
    commands: dict = field(default_factory=dict)


def sentinel_conf(port: int, directory: Path, master_port: int) -> str:
    return (
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
    )


def start_sentinel(procs: Processes, tools: dict, workdir: Path, master_port: int):
    port = free_port()
    directory = workdir / f"sentinel-{port}"
    directory.mkdir()
    conf = directory / "sentinel.conf"  # sentinel rewrites it: must be writable
    conf.write_text(sentinel_conf(port, directory, master_port))
    log = directory / "sentinel.log"
    proc = procs.spawn([tools["redis-sentinel"], str(conf)], log)
    wait_for_port("redis-sentinel", proc, port, log)
    return port, proc


def wait_sentinels_ready(sentinels: list, replica_port: int, timeout: float = 30.0) -> None:
    """Until every sentinel knows the other sentinels and the (linked) replica."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        ready = 0
        for port, proc in sentinels:
            if proc.poll() is not None:
                raise BenchError(f"redis-sentinel on {port} exited with {proc.returncode}")
            try:
                master = pairs(call(port, "SENTINEL", "MASTER", MASTER_NAME))
                replicas = [pairs(r) for r in call(port, "SENTINEL", "REPLICAS", MASTER_NAME)]
            except (OSError, ConnectionError, TypeError):
                continue
            linked = [
                r for r in replicas
                if r.get("port") == str(replica_port) and r.get("flags") == "slave"
                and r.get("master-link-status") == "ok"
            ]  # fmt: skip
            others = int(master.get("num-other-sentinels", 0))
            state = f"sentinel {port}: {others} other sentinels, {len(linked)} linked replica"
            if others == SENTINELS - 1 and linked and master.get("flags") == "master":
                ready += 1
        if ready == len(sentinels):
            return
        time.sleep(0.2)
    raise BenchError(f"sentinels not ready after {timeout:.0f} s: {state}")


def pool_yaml(mode: str, listen: str, master_port: int, replica_port: int, sentinels: list) -> str:
    keys = dict(BASE_POOL)
    if mode == "sentinel":
        keys["sentinels"] = [f"127.0.0.1:{port}:1" for port, _ in sentinels]
    else:
        keys["failover"] = "managed"
        keys["replicas"] = {MASTER_NAME: [f"127.0.0.1:{replica_port}"]}
    lines = ["bench:", f"  listen: {listen}"]
    lines += [f"  {k}: {yaml_value(v)}" for k, v in keys.items()]
    lines += ["  servers:", f"    - 127.0.0.1:{master_port}:1 {MASTER_NAME}"]
    return "\n".join(lines) + "\n"


def set_up(procs: Processes, ctx, workdir: Path, mode: str) -> Setup:
    master = start_redis(procs, ctx, workdir, MASTER_NAME, 0)
    replica = start_redis(procs, ctx, workdir, f"{MASTER_NAME}-replica1", 0, master=master)
    wait_replica_linked(replica)
    setup = Setup(mode, master, replica)
    setup.commands["redis-server (master)"] = master.command
    setup.commands["redis-server (replica)"] = replica.command
    if mode == "sentinel":
        setup.sentinels = [
            start_sentinel(procs, ctx.tools, workdir, master.port) for _ in range(SENTINELS)
        ]
        setup.commands["redis-sentinel (x3)"] = f"{ctx.tools['redis-sentinel']} $DIR/sentinel.conf"
        wait_sentinels_ready(setup.sentinels, replica.port)
    port, admin = free_port(), free_port()
    conf = workdir / f"failover-{mode}.yml"
    conf.write_text(pool_yaml(mode, f"127.0.0.1:{port}", master.port, replica.port, setup.sentinels))
    setup.yaml = pool_yaml(mode, "127.0.0.1:LISTEN", master.port, replica.port, setup.sentinels)
    argv = [str(ctx.shardgate), "-c", str(conf), "--admin", f"127.0.0.1:{admin}"]
    if ctx.settings.workers is not None:
        argv += ["--workers", str(ctx.settings.workers)]
    log = workdir / f"failover-{mode}.log"
    proc = procs.spawn(argv, log)
    wait_for_port("shardgate", proc, port, log)
    setup.proxy = Endpoint("shardgate", port, proc, log, admin)
    setup.commands["shardgate"] = shlex.join(argv)
    if mode == "managed":
        wait_replicas_serving(setup.proxy, 1)
    check_endpoint(setup.proxy)
    return setup


# ---------------------------------------------------------------- load


class Incomplete(Exception):
    pass


class SentinelEvents:
    """PSUBSCRIBE * on one sentinel; (monotonic time, channel, message) per event.

    Its socket is polled by the write load's own selector loop, so an event
    is timestamped on the same clock, in the same loop, as the writes.
    """

    def __init__(self, port: int) -> None:
        self.conn = Resp(port)
        self.conn.call("PSUBSCRIBE", "*")  # the first reply confirms the subscription
        self.conn.sock.setblocking(False)
        self.events: list[tuple[float, str, str]] = []

    def on_readable(self, now: float) -> None:
        try:
            chunk = self.conn.sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            raise BenchError("the sentinel closed the event subscription")
        self.conn.buf += chunk
        while self.conn.buf:
            saved = self.conn.buf
            try:
                msg = self.conn.read()
            except Incomplete:
                self.conn.buf = saved
                return
            if isinstance(msg, list) and len(msg) == 4 and msg[0] == "pmessage":
                self.events.append((now, msg[2], msg[3]))

    def stop(self) -> None:
        self.conn.close()

    def first(self, channel: str, after: float, contains: str = "") -> float | None:
        for at, ch, msg in self.events:
            if ch == channel and at >= after and contains in msg:
                return at
        return None


class Client:
    def __init__(self, index: int, next_at: float) -> None:
        self.index = index
        self.sock: socket.socket | None = None
        self.buf = b""
        self.inflight: int | None = None  # the write's sequence number
        self.next_at = next_at


class WriteLoad:
    """Paced SETs of unique keys over `clients` connections, one in flight each."""

    def __init__(self, port: int, prefix: str, clients: int, rate: int) -> None:
        self.port, self.prefix = port, prefix
        self.period = clients / rate  # s between one connection's writes
        self.sel = selectors.DefaultSelector()
        now = time.monotonic()
        self.clients = [Client(i, now + i * self.period / clients) for i in range(clients)]
        self.sent = array("d")  # per write: send time (monotonic)
        self.done = array("d")  # reply time, or when it failed
        self.status = array("b")  # OK / ERROR / DROPPED / TIMEOUT / UNSENT
        self.error_kinds: collections.Counter = collections.Counter()
        self.drops = self.timeouts = self.connect_failures = 0
        # Set at the kill: the first acknowledgement of a write sent after it.
        self.watch_from: float | None = None
        self.first_ok_after: float | None = None
        for client in self.clients:
            self.connect(client)

    def key(self, seq: int) -> str:
        return f"{self.prefix}:{seq}"

    def connect(self, client: Client) -> bool:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
        except OSError:
            self.connect_failures += 1
            client.next_at = time.monotonic() + 0.05
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.sock, client.buf = sock, b""
        self.sel.register(sock, selectors.EVENT_READ, client)
        return True

    def fail(self, client: Client, status: int, now: float) -> None:
        """The connection is gone: its write failed; reconnect."""
        if client.inflight is not None:
            self.done[client.inflight], self.status[client.inflight] = now, status
            client.inflight = None
        if client.sock is not None:
            self.sel.unregister(client.sock)
            client.sock.close()
            client.sock = None
        self.connect(client)

    def send(self, client: Client, now: float) -> None:
        seq = len(self.sent)
        self.sent.append(now)
        self.done.append(0.0)
        self.status.append(UNSENT)
        client.inflight = seq
        client.next_at = max(client.next_at + self.period, now)
        try:
            client.sock.send(resp_command("SET", self.key(seq), "1"))
        except OSError:
            self.drops += 1
            self.fail(client, DROPPED, now)

    def receive(self, client: Client, now: float) -> None:
        try:
            chunk = client.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.drops += 1
            self.fail(client, DROPPED, now)
            return
        client.buf += chunk
        while b"\r\n" in client.buf:
            line, client.buf = client.buf.split(b"\r\n", 1)
            seq, client.inflight = client.inflight, None
            if seq is None:
                continue  # a reply to nothing: cannot happen with one in flight
            self.done[seq] = now
            if line == b"+OK":
                self.status[seq] = OK
                if (
                    self.first_ok_after is None
                    and self.watch_from is not None
                    and self.sent[seq] > self.watch_from
                ):
                    self.first_ok_after = now
            else:
                self.status[seq] = ERROR
                self.error_kinds[line.decode(errors="replace")[:120]] += 1

    def step(self, now: float) -> None:
        wake = now + 0.01
        for client in self.clients:
            if client.sock is None:
                if now >= client.next_at:
                    self.connect(client)
                continue
            if client.inflight is None:
                if client.next_at <= now:
                    self.send(client, now)
                if client.inflight is None:
                    wake = min(wake, client.next_at)
            elif now - self.sent[client.inflight] > CLIENT_TIMEOUT:
                self.timeouts += 1
                self.fail(client, TIMEOUT, now)
        for key, _ in self.sel.select(max(0.0, wake - time.monotonic())):
            if isinstance(key.data, Client):
                self.receive(key.data, time.monotonic())
            else:
                key.data(time.monotonic())  # another source of events (a sentinel)

    def close(self) -> None:
        for client in self.clients:
            if client.sock is not None:
                client.sock.close()
        self.sel.close()


# ---------------------------------------------------------------- one run


def one_run(ctx, mode: str, run: int, workdir: Path) -> dict:
    settings = ctx.settings
    procs = Processes()
    subscriber = None
    try:
        setup = set_up(procs, ctx, workdir, mode)
        if mode == "sentinel":
            subscriber = SentinelEvents(setup.sentinels[0][0])
        load = WriteLoad(setup.proxy.port, f"fo:{mode}:{run}", settings.clients, settings.rate)
        if subscriber is not None:
            load.sel.register(subscriber.conn.sock, selectors.EVENT_READ, subscriber.on_readable)
        kill_at = time.monotonic() + settings.before
        t_kill = wall_kill = None
        stop_at = kill_at + settings.max_wait
        while True:
            now = time.monotonic()
            if t_kill is None and now >= kill_at:
                t_kill, wall_kill = time.monotonic(), time.time()
                load.watch_from = t_kill
                os.kill(setup.master.pid, signal.SIGKILL)
                setup.master.proc.wait()
            if load.first_ok_after is not None:
                stop_at = min(stop_at, load.first_ok_after + settings.after)
            if now >= stop_at:
                break
            load.step(now)
            setup.proxy.check_alive()
        load.close()
        result = analyse(load, mode, run, t_kill, subscriber, setup)
        result["proxy_events"] = proxy_events(setup.proxy, wall_kill)
        result["commands"], result["yaml"] = setup.commands, setup.yaml
        return result
    finally:
        if subscriber is not None:
            subscriber.stop()
        procs.kill_all()


def proxy_events(proxy: Endpoint, wall_kill: float) -> list[str]:
    """shardgate's /events from the kill on, as 'ms after the kill: kind: message'."""
    try:
        events = admin_get(proxy.admin_port, "/events")
    except (OSError, ValueError):
        return []
    return [
        f"+{e['at_ms'] - wall_kill * 1000:.0f} ms {e['kind']}: {e['message']}"
        for e in events
        if e["at_ms"] >= wall_kill * 1000 - 5
    ]


def analyse(load, mode, run, t_kill, subscriber, setup) -> dict:
    n = len(load.sent)
    acked = [i for i in range(n) if load.status[i] == OK]
    before = [i for i in acked if load.done[i] <= t_kill]
    after = [i for i in acked if load.done[i] > t_kill]
    last_before = max((load.done[i] for i in before), default=None)
    first_after = min((load.done[i] for i in after if load.sent[i] > t_kill), default=None)
    r = {
        "mode": mode,
        "run": run,
        "writes": n,
        "acked_before": len(before),
        "acked_after": len(after),
        "recovered": first_after is not None,
        "window_ms": ms(first_after, last_before),
        "kill_to_ack_ms": ms(first_after, t_kill),
        "errors": sum(1 for i in range(n) if load.status[i] == ERROR),
        "error_kinds": dict(load.error_kinds.most_common(3)),
        "drops": load.drops,
        "timeouts": load.timeouts,
        "connect_failures": load.connect_failures,
    }
    # The new master: the old replica, which must now say it is a master.
    role = call(setup.replica.port, "ROLE")
    r["new_master_role"] = role[0] if isinstance(role, list) and role else str(role)
    if mode == "sentinel":
        addr = call(setup.sentinels[0][0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        r["sentinel_master"] = ":".join(addr) if isinstance(addr, list) else str(addr)
    lost_before, lost_after = missing(setup.replica.port, load, before), missing(
        setup.replica.port, load, after
    )
    r["lost_before"], r["lost_after"] = lost_before, lost_after
    r["lost"] = lost_before + lost_after
    if subscriber is not None:
        sdown = subscriber.first("+sdown", t_kill, "master")
        odown = subscriber.first("+odown", t_kill)
        switch = subscriber.first("+switch-master", t_kill)
        r["sdown_ms"], r["odown_ms"], r["switch_ms"] = (
            ms(sdown, t_kill), ms(odown, t_kill), ms(switch, t_kill)
        )  # fmt: skip
        r["switch_to_ack_ms"] = ms(first_after, switch)
    return r


def missing(port: int, load: WriteLoad, seqs: list[int]) -> int:
    conn = Resp(port, timeout=30)
    try:
        lost = 0
        for start in range(0, len(seqs), 1000):
            batch = seqs[start : start + 1000]
            replies = conn.pipeline([("EXISTS", load.key(i)) for i in batch])
            bad = [x for x in replies if not isinstance(x, int)]
            if bad:
                raise BenchError(f"EXISTS on the new master replied {bad[0]!r}")
            lost += sum(1 for x in replies if x == 0)
        return lost
    finally:
        conn.close()


def ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a - b) * 1000


# ---------------------------------------------------------------- all runs


class Context:
    def __init__(self, tools: dict, shardgate: Path, settings: Settings) -> None:
        self.tools, self.shardgate, self.settings = tools, shardgate, settings


def run_all(tools: dict, shardgate: Path, settings: Settings, workdir: Path) -> dict:
    ctx = Context(tools, shardgate, settings)
    runs, failures, commands = [], [], {}
    for run in range(1, settings.runs + 1):
        for mode in settings.modes:  # alternate the modes, like the rounds elsewhere
            what = f"failover {mode} run {run}/{settings.runs}"
            print(f"  {what} ...", flush=True)
            directory = workdir / f"failover-{mode}-{run}"
            directory.mkdir()
            try:
                r = one_run(ctx, mode, run, directory)
            except (BenchError, OSError, ConnectionError) as e:
                failures.append(f"{what}: {e}")
                print(f"  FAILED {what}: {e}", flush=True)
                continue
            setup = (r.pop("commands"), r.pop("yaml"))
            commands.setdefault(mode, setup)
            runs.append(r)
            print(f"    {describe(r)}", flush=True)
    return {"settings": asdict(settings), "runs": runs, "failures": failures,
            "commands": {m: {"commands": {k: v.replace(str(workdir), "$WORKDIR") for k, v in c.items()},
                             "yaml": y} for m, (c, y) in commands.items()}}  # fmt: skip


def describe(r: dict) -> str:
    if not r["recovered"]:
        return f"NO RECOVERY; errors {r['errors']}, drops {r['drops']}"
    s = (
        f"window {r['window_ms']:.0f} ms, kill->ack {r['kill_to_ack_ms']:.0f} ms, "
        f"errors {r['errors']}, drops {r['drops']}, acked {r['acked_before']}+{r['acked_after']}, "
        f"lost {r['lost_before']}+{r['lost_after']}, new master role {r['new_master_role']}"
    )
    if r["mode"] == "sentinel":
        s += (
            f"; sdown {fmt(r['sdown_ms'])} odown {fmt(r['odown_ms'])} switch "
            f"{fmt(r['switch_ms'])} ms after the kill, switch->ack {fmt(r['switch_to_ack_ms'], 1)} ms"
        )
    return s


# ---------------------------------------------------------------- report

NONE = "—"


def fmt(value, digits: int = 0) -> str:
    return NONE if value is None else f"{value:,.{digits}f}"


def stat(values: list, digits: int = 0) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return NONE
    med = fmt(statistics.median(values), digits)
    if len(values) == 1:
        return med
    return f"{med} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_rows(result: dict) -> list[list[str]]:
    rows = []
    for mode in result["settings"]["modes"]:
        runs = [r for r in result["runs"] if r["mode"] == mode]
        if not runs:
            continue
        ok = [r for r in runs if r["recovered"]]
        rows.append([
            mode, f"{len(ok)}/{len(runs)}",
            stat([r["window_ms"] for r in ok]), stat([r["kill_to_ack_ms"] for r in ok]),
            stat([r["errors"] for r in runs]), stat([r["drops"] for r in runs]),
            stat([r["lost"] for r in runs]),
            stat([r.get("switch_to_ack_ms") for r in ok], 1) if mode == "sentinel" else NONE,
        ])  # fmt: skip
    return rows


SUMMARY_HEADER = [
    "mode", "recovered", "unavailability window, ms", "kill → first ack, ms",
    "errors seen by clients", "client connections dropped", "acked writes lost",
    "+switch-master → first ack, ms",
]  # fmt: skip


def section(result: dict) -> list[str]:
    from report import table  # report imports this module lazily

    s = result["settings"]
    out = [
        "## Failover: a master killed under write load",
        "",
        f"`bench/failover.py`: one shard (a master and one replica), shardgate "
        f"(--workers {s['workers'] or 'default'}) in front; {s['clients']} client "
        f"connections each keep one `SET <unique key> 1` in flight, paced to "
        f"{s['rate']:,} writes/s in all; after {s['before']:g} s the master gets "
        f"SIGKILL; the load goes on until {s['after']:g} s after the first write "
        f"acknowledged after the kill (at most {s['max_wait']:g} s). Every run starts "
        "from fresh processes. **Sentinel**: 3 sentinels, quorum "
        f"{QUORUM}, down-after-milliseconds {DOWN_AFTER_MS}, failover-timeout "
        f"{FAILOVER_TIMEOUT_MS}; the kill waits until every sentinel sees the 2 others "
        "and the linked replica. **Managed**: `failover: managed`, default "
        "health_check (interval 500 ms, timeout 300 ms, rise 2, fall 3); the kill "
        "waits until shardgate counts the replica as linked.",
        "",
        "Unavailability window: last write acknowledged before the kill → first write "
        "sent after the kill that was acknowledged. Acked writes lost: acknowledged "
        "keys (before or after the kill) missing on the new master (EXISTS on the "
        "promoted replica once the load stopped). Errors: error replies the clients "
        "got; dropped: client connections the proxy closed. +switch-master → first "
        "ack: from the event (PSUBSCRIBE on one sentinel) to the first acknowledged "
        "write after the kill; negative when shardgate (which listens to every "
        "sentinel) took writes before that one sentinel's event arrived. "
        f"Median (min–max) over {s['runs']} run(s) per mode.",
        "",
    ]
    out += table(SUMMARY_HEADER, summary_rows(result))
    out += ["", "Each run:", ""]
    rows = []
    for r in result["runs"]:
        timeline = NONE
        if r["mode"] == "sentinel":
            timeline = (
                f"+sdown {fmt(r.get('sdown_ms'))}, +odown {fmt(r.get('odown_ms'))}, "
                f"+switch-master {fmt(r.get('switch_ms'))}"
            )
        errors = "; ".join(f"{n:,}× `{shorten(k)}`" for k, n in r["error_kinds"].items()) or NONE
        rows.append([
            r["mode"], str(r["run"]), fmt(r["window_ms"]), fmt(r["kill_to_ack_ms"]),
            f"{r['acked_before']:,} / {r['acked_after']:,}",
            f"{r['lost_before']} / {r['lost_after']}", f"{r['errors']:,}", f"{r['drops']:,}",
            timeline, errors,
        ])  # fmt: skip
    out += table(
        ["mode", "run", "window, ms", "kill → ack, ms", "acked before / after kill",
         "lost before / after", "errors", "dropped", "Sentinel events, ms after the kill",
         "error replies"],
        rows,
    )  # fmt: skip
    for mode in s["modes"]:
        first = next((r for r in result["runs"] if r["mode"] == mode), None)
        if first and first["proxy_events"]:
            out += ["", f"shardgate's events (`/events`) in {mode} run {first['run']}, "
                    "from the kill on:", "", "```"] + first["proxy_events"] + ["```"]  # fmt: skip
    if result["failures"]:
        out += ["", "Failed runs:", ""] + [f"- {f}" for f in result["failures"]]
    return out + [""]


def commands_section(result: dict) -> list[str]:
    out = ["### Failover benchmark: exact setup", ""]
    for mode, c in result["commands"].items():
        out += [f"{mode} mode: the pool shardgate reads:", "", "```yaml", c["yaml"].rstrip(), "```", ""]
        out += ["```sh"] + [f"# {name}\n{cmd}" for name, cmd in c["commands"].items()] + ["```", ""]
    out += [
        "sentinel.conf (each sentinel; PORT, DIR and MASTER_PORT are its own):",
        "",
        "```",
        sentinel_conf(0, Path("DIR"), 0).replace("port 0", "port PORT").replace(
            "127.0.0.1 0 ", "127.0.0.1 MASTER_PORT "
        ).rstrip(),
        "```",
        "",
    ]
    return out


def print_summary(result: dict) -> None:
    rows = [SUMMARY_HEADER] + summary_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_HEADER))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


# ---------------------------------------------------------------- command line


def find_tools(shardgate: Path) -> dict:
    tools = {}
    for name, usual in (
        ("redis-server", "/usr/bin/redis-server"),
        ("redis-sentinel", "/usr/bin/redis-sentinel"),
    ):
        path = shutil.which(name) or (usual if os.access(usual, os.X_OK) else None)
        if path is None:
            raise BenchError(f"{name} is missing; install it with: sudo apt-get install -y {name}")
        tools[name] = path
    if not os.access(shardgate, os.X_OK):
        raise BenchError(f"the shardgate binary is missing: {shardgate} (build it: make release)")
    return tools


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from report import REPO_ROOT, machine_info, table

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, help="runs per mode (default 3; --quick: 1)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: sentinel,managed")
    ap.add_argument("--clients", type=int, default=50, help="client connections (default 50)")
    ap.add_argument("--rate", type=int, default=5000, help="writes/s in all (default 5000)")
    ap.add_argument("--before", type=float, help="s of load before the kill (default 3; --quick 2)")
    ap.add_argument("--after", type=float, help="s of load after recovery (default 3; --quick 2)")
    ap.add_argument("--max-wait", type=float, default=30.0, help="s to wait for recovery")
    ap.add_argument("--workers", type=int, default=1, help="shardgate --workers (0: its default)")
    ap.add_argument("--quick", action="store_true", help="one run per mode, shorter phases")
    ap.add_argument("--shardgate", type=Path,
                    default=Path(os.environ.get("SHARDGATE_BIN", REPO_ROOT / "target/release/shardgate")))  # fmt: skip
    ap.add_argument("--out", help="report path, relative to the repo root (default "
                    "target/bench/FAILOVER.md; --quick: target/bench/FAILOVER-quick.md)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write every run's figures here")
    args = ap.parse_args(argv)
    settings = settings_from(args.quick, args.runs, args.modes, args.clients, args.rate,
                             args.before, args.after, args.max_wait, args.workers)  # fmt: skip
    out = REPO_ROOT / (args.out or f"target/bench/FAILOVER{'-quick' if args.quick else ''}.md")
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        tools = find_tools(args.shardgate)
        with tempfile.TemporaryDirectory(prefix="shardgate-failover-") as tmp:
            result = run_all(tools, args.shardgate, settings, Path(tmp))
    except BenchError as e:
        print(f"failover: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfailover: interrupted; every process was stopped", file=sys.stderr)
        return 130
    print_summary(result)
    args.tools, args.workers = tools, settings.workers
    lines = ["# shardgate failover benchmark", ""]
    if args.quick:
        lines += ["> **Quick smoke run** (`--quick`): not representative.", ""]
    lines += [f"Generated by `bench/failover.py` in {(time.monotonic() - started) / 60:.1f} min.", ""]
    lines += ["## Machine", ""] + table(["", ""], machine_info(args)) + [""]
    lines += section(result) + commands_section(result)
    lines += ["```sh", shlex.join(["python3", *sys.argv]), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")
    return 1 if result["failures"] else 0


def settings_from(quick, runs, modes, clients, rate, before, after, max_wait, workers) -> Settings:
    wanted = tuple(m.strip() for m in modes.split(",") if m.strip())
    bad = [m for m in wanted if m not in MODES]
    if not wanted or bad:
        raise SystemExit(f"--modes {modes!r}: choose from {', '.join(MODES)}")
    return Settings(
        runs=runs or (1 if quick else 3),
        modes=wanted,
        clients=clients,
        rate=rate,
        before=before if before is not None else (2.0 if quick else 3.0),
        after=after if after is not None else (2.0 if quick else 3.0),
        max_wait=max_wait,
        workers=workers or None,
    )


if __name__ == "__main__":
    sys.exit(main())
