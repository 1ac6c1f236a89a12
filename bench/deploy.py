"""Starting a scenario: its redis-servers (masters, then replicas), then
each target (twemproxy, shardgate variants, predixy) in front of them.

Every proxy reads a pool definition written by pool_yaml(): the scenario's
pool keys and servers, plus, for shardgate only, `replicas:` (when the
scenario has replicas) and the variant's own extra keys; `listen:` differs
per process, since two processes cannot listen on one port. Before any load,
every target must answer SET/GET/MSET/DEL correctly: a proxy that answered
errors quickly would otherwise look fast.

Every shardgate gets `--admin 127.0.0.1:<free port>`: the default admin
address (127.0.0.1:8001) is shared, so a second instance would fail to
start. The admin server is also how the harness sees that shardgate counts
every replica as linked before the load starts.

predixy reads its own format (predixy_conf): the same servers as
`StandaloneServerPool` groups, `Hash crc16` + `Distribution modula`, with
PEER_THREADS worker threads. It can only reproduce a pool whose placement
is `crc16 % groups` (one shard, or `hash: crc16` + `distribution: modula`
with a power-of-two total weight); anything else is refused here rather
than benchmarked with keys on different servers.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from processes import BenchError, Processes, free_port, tail, wait_for_port
from scenarios import PEER_THREADS, Scenario, Target

READY_TIMEOUT = 20.0  # s: replica links, shardgate's view of its replicas


@dataclass
class Node:
    """One redis-server of a deployment."""

    label: str  # shard0, shard0-replica1, ...
    shard: int
    role: str  # "master" | "replica"
    port: int
    proc: subprocess.Popen
    command: str

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Endpoint:
    name: str  # the target's name: direct / twemproxy / shardgate / sg-any ...
    port: int
    proc: subprocess.Popen | None = None  # the proxy process; None for direct
    log: Path | None = None
    admin_port: int | None = None  # shardgate's admin server

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} is not running (exited with {self.proc.returncode}); "
                f"its log ends:\n{tail(self.log)}"
            )


@dataclass
class Deployment:
    scenario: Scenario
    nodes: list[Node]  # masters in shard order, then replicas
    endpoints: dict[str, Endpoint]  # in scenario.targets order
    pools: dict[str, str] = field(default_factory=dict)  # target -> its YAML (LISTEN for the port)
    commands: dict[str, str] = field(default_factory=dict)  # how each was started
    predixy_conf: str | None = None  # predixy's config (LISTEN for the port), when it ran
    # The shardgate target compared with predixy: shardgate-2w, or shardgate
    # itself when the harness's --workers already is PEER_THREADS.
    predixy_peer: str | None = None
    # Where sample keys landed through each proxy (placement.py), multi-shard only.
    placement: dict | None = None

    @property
    def redis_pids(self) -> list[int]:
        return [n.pid for n in self.nodes]

    @property
    def masters(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "master"]


def deploy(procs: Processes, args, workdir: Path, scenario: Scenario) -> Deployment:
    """Starts the scenario's redis-servers and targets; checks each target."""
    cluster_args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
    masters = [
        start_redis(
            procs, args, workdir, f"shard{i}", i,
            extra=scenario.redis_args + (cluster_args if scenario.cluster else ()),
        )
        for i in range(scenario.shards)
    ]  # fmt: skip
    if scenario.cluster:
        form_cluster(masters)
    replicas = [
        start_redis(procs, args, workdir, f"shard{m.shard}-replica{r + 1}", m.shard, master=m)
        for m in masters
        for r in range(scenario.replicas)
    ]
    for replica in replicas:
        wait_replica_linked(replica)
    dep = Deployment(scenario, nodes=masters + replicas, endpoints={})
    dep.commands["redis-server"] = masters[0].command
    if replicas:
        dep.commands["redis-server (replica)"] = replicas[0].command
    for target in scenario.targets:
        if target.kind == "direct":
            dep.endpoints[target.name] = Endpoint(target.name, masters[0].port)
        elif target.kind == "shardgate" and args.shardgate is None:
            continue  # --no-shardgate
        elif target.kind == "predixy" and "predixy" not in args.tools:
            continue  # not found: the report says so
        elif target.kind == "shardgate" and target.workers is not None and (
            "predixy" not in args.tools or target.workers == args.workers
        ):
            # Only there to be compared with predixy; redundant when the
            # plain shardgate target already runs with as many workers.
            continue
        elif target.kind == "predixy":
            endpoint, conf = start_predixy(procs, args, workdir, scenario, dep)
            dep.endpoints[target.name] = endpoint
            dep.predixy_conf = conf
            dep.commands[target.name] = shlex.join(endpoint.proc.args)
        else:
            endpoint, yaml = start_proxy(procs, args, workdir, scenario, target, dep)
            dep.endpoints[target.name] = endpoint
            dep.pools[target.name] = yaml
            dep.commands[target.name] = shlex.join(endpoint.proc.args)
    for endpoint in dep.endpoints.values():
        if endpoint.admin_port is not None and replicas:
            wait_replicas_serving(endpoint, len(replicas))
        check_endpoint(endpoint)
        if scenario.cluster:
            check_no_redirection(endpoint)
    if "predixy" in dep.endpoints:
        twin = next((t.name for t in scenario.targets if t.kind == "shardgate"
                     and t.workers == PEER_THREADS and t.name in dep.endpoints), None)
        dep.predixy_peer = twin or ("shardgate" if "shardgate" in dep.endpoints else None)
    return dep


def redis_argv(args, port: int, data: Path, extra: list[str] = ()) -> list[str]:
    """A redis-server without persistence, on loopback, in the foreground."""
    return [
        args.tools["redis-server"], "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(data),
        "--logfile", "", "--daemonize", "no", *extra,
    ]  # fmt: skip


def start_redis(
    procs: Processes,
    args,
    workdir: Path,
    label: str,
    shard: int,
    master: Node | None = None,
    extra: tuple = (),
) -> Node:
    # A cluster node's bus listens on its port + 10000.
    port = free_port(highest=55535 if "--cluster-enabled" in extra else 65535)
    data = workdir / f"redis-{port}"
    data.mkdir()
    replica_of = ["--replicaof", "127.0.0.1", str(master.port)] if master else []
    argv = redis_argv(args, port, data, [*replica_of, *extra])
    log = data / "redis.log"
    proc = procs.spawn(argv, log)
    wait_for_port("redis-server", proc, port, log)
    role = "replica" if master else "master"
    return Node(label, shard, role, port, proc, shlex.join(argv))


def form_cluster(masters: list[Node], timeout: float = READY_TIMEOUT) -> None:
    """Makes the masters one Redis Cluster: master i of n owns slots
    [i * 16384 / n, (i + 1) * 16384 / n), as shardgate's `distribution:
    slots` places them (`redis-cli --cluster create` rounds the other way
    at one boundary); then waits until every node says `cluster_state:ok`."""
    n = len(masters)
    for i, node in enumerate(masters):
        lo, hi = i * 16384 // n, (i + 1) * 16384 // n - 1
        reply = resp_call(node.port, "CLUSTER", "ADDSLOTSRANGE", str(lo), str(hi))
        if reply != b"+OK\r\n":
            raise BenchError(f"CLUSTER ADDSLOTSRANGE {lo} {hi} on {node.label}: {reply!r}")
    for node in masters[1:]:
        resp_call(masters[0].port, "CLUSTER", "MEET", "127.0.0.1", str(node.port))
    deadline = time.monotonic() + timeout
    states: list[bool] = []
    while time.monotonic() < deadline:
        replies = [resp_call(m.port, "CLUSTER", "INFO") for m in masters]
        states = [b"cluster_state:ok" in r for r in replies]
        if all(states) and all(f"cluster_known_nodes:{n}\r\n".encode() in r for r in replies):
            return
        time.sleep(0.1)
    raise BenchError(f"the cluster did not form within {timeout:.0f} s: state ok {states}")


def check_no_redirection(endpoint: Endpoint) -> None:
    """Writes sample keys through the target: a key sent to a node that does
    not own its slot would be answered MOVED (a static pool passes it on),
    so every reply must be +OK."""
    commands = [("SET", f"key:{n:012d}", "x") for n in range(0, 100_000, 37)]
    payload = b"".join(resp_command(*c) for c in commands)
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as s:
        s.sendall(payload)
        buf = b""
        while buf.count(b"\r\n") < len(commands):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    replies = buf.split(b"\r\n")[: len(commands)]
    bad = [r for r in replies if r != b"+OK"]
    if bad or len(replies) < len(commands):
        raise BenchError(
            f"{endpoint.name}: {len(bad)} of {len(commands)} SETs not +OK "
            f"(e.g. {bad[:1]!r}): keys would not go where the cluster has them"
        )


def info(port: int, section: str) -> dict[str, str]:
    """INFO <section> as a dict of its `field:value` lines."""
    reply = resp_call(port, "INFO", section)
    if not reply.startswith(b"$"):
        raise BenchError(f"INFO {section} on port {port} replied {reply[:100]!r}")
    text = reply.split(b"\r\n", 1)[1].decode(errors="replace")
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name] = value.strip()
    return fields


def command_calls(port: int, command: str) -> int:
    """`calls` of one command from INFO commandstats (0 if never called)."""
    stat = info(port, "commandstats").get(f"cmdstat_{command.lower()}", "")
    for part in stat.split(","):
        if part.startswith("calls="):
            return int(part[len("calls=") :])
    return 0


def wait_replica_linked(node: Node, timeout: float = READY_TIMEOUT) -> None:
    """Until the replica's INFO replication says master_link_status:up."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise BenchError(f"replica {node.label} exited with {node.proc.returncode}")
        try:
            status = info(node.port, "replication").get("master_link_status")
        except OSError:
            status = None
        if status == "up":
            return
        time.sleep(0.05)
    raise BenchError(f"replica {node.label} (port {node.port}): master link {status} after {timeout:.0f} s")


def admin_get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def wait_replicas_serving(endpoint: Endpoint, count: int, timeout: float = READY_TIMEOUT) -> None:
    """Until shardgate's /topology shows `count` replicas linked and not excluded.

    shardgate serves before its replicas have passed `rise` health checks;
    a read-policy benchmark that started then would measure the fallback.
    """
    deadline = time.monotonic() + timeout
    fit = -1
    while time.monotonic() < deadline:
        endpoint.check_alive()
        try:
            pools = admin_get(endpoint.admin_port, "/topology")
        except (OSError, ValueError):
            time.sleep(0.1)
            continue
        nodes = [n for p in pools for s in p["shards"] for n in s["nodes"] if not n["is_master"]]
        fit = sum(1 for n in nodes if n.get("link_up") and not n.get("excluded"))
        if fit >= count:
            return
        time.sleep(0.1)
    raise BenchError(f"{endpoint.name}: {fit} of {count} replicas fit after {timeout:.0f} s")


def yaml_value(value) -> str:
    # JSON is YAML's flow style: lists and maps on one line.
    return json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)


def pool_yaml(scenario: Scenario, dep: Deployment, listen: str, target: Target) -> str:
    keys = dict(scenario.pool)
    if target.kind == "shardgate":
        replicas = {}
        for node in dep.nodes:
            if node.role == "replica":
                replicas.setdefault(f"shard{node.shard}", []).append(f"127.0.0.1:{node.port}")
        if replicas:
            keys["replicas"] = replicas
        keys.update(target.pool)
    lines = ["bench:", f"  listen: {listen}"]
    lines += [f"  {key}: {yaml_value(value)}" for key, value in keys.items()]
    lines.append("  servers:")
    lines += [
        f"    - 127.0.0.1:{m.port}:{scenario.weight(m.shard)} shard{m.shard}" for m in dep.masters
    ]
    return "\n".join(lines) + "\n"


def predixy_conf(scenario: Scenario, dep: Deployment, listen: str) -> str:
    """predixy's config for the scenario's masters (see the module docstring)."""
    masters = dep.masters
    total = sum(scenario.weight(m.shard) for m in masters)
    if len(masters) > 1:
        pool = scenario.pool
        if (pool.get("hash"), pool.get("distribution")) != ("crc16", "modula"):
            raise BenchError(
                f"{scenario.key}: predixy cannot place keys as `hash: {pool.get('hash')}`, "
                f"`distribution: {pool.get('distribution')}` does (it has only crc16 modulo "
                "its group count)"
            )
        if total & (total - 1):
            raise BenchError(
                f"{scenario.key}: total weight {total} is not a power of two: twemproxy's "
                "unmasked crc16 modulo it differs from predixy's 16-bit crc16 modulo it"
            )
    # Modula's order: by server name, shorter first, then bytewise (as
    # twemproxy sorts its servers); each server `weight` times.
    ordered = sorted(masters, key=lambda m: (len(f"shard{m.shard}"), f"shard{m.shard}"))
    return predixy_text(listen, [m.port for m in ordered for _ in range(scenario.weight(m.shard))])


def predixy_text(listen: str, group_ports: list[int]) -> str:
    """A StandaloneServerPool with one group per port, in order (a port may repeat)."""
    lines = [
        "Name bench",
        f"Bind {listen}",
        f"WorkerThreads {PEER_THREADS}",
        "ClientTimeout 300",
    ]
    lines += [f"Log{level}Sample 0" for level in ("Verb", "Debug", "Info", "Notice")]
    lines += [
        "Authority {", "  Auth {", "    Mode write", "  }", "}",
        "StandaloneServerPool {",
        "  Hash crc16",
        "  Distribution modula",
        "  RefreshMethod fixed",
        "  ServerTimeout 2",
    ]  # fmt: skip
    for i, port in enumerate(group_ports, 1):
        lines += [f"  Group g{i} {{", f"    + 127.0.0.1:{port}", "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def start_predixy(procs, args, workdir: Path, scenario: Scenario, dep: Deployment):
    port = free_port()
    conf = workdir / f"{scenario.key}-predixy.conf"
    log = workdir / f"{scenario.key}-predixy.log"
    conf.write_text(predixy_conf(scenario, dep, f"127.0.0.1:{port}"))
    proc = procs.spawn([args.tools["predixy"], str(conf)], log)
    wait_for_port("predixy", proc, port, log)
    endpoint = Endpoint("predixy", port, proc, log)
    return endpoint, predixy_conf(scenario, dep, "127.0.0.1:LISTEN")


def start_proxy(
    procs, args, workdir: Path, scenario: Scenario, target: Target, dep: Deployment
) -> tuple[Endpoint, str]:
    port = free_port()
    conf = workdir / f"{scenario.key}-{target.name}.yml"
    conf.write_text(pool_yaml(scenario, dep, f"127.0.0.1:{port}", target))
    log = workdir / f"{scenario.key}-{target.name}.log"
    admin = free_port() if target.kind == "shardgate" else None
    argv = proxy_argv(target, args, conf, log, admin)
    # nutcracker writes its own log (-o); its stdout/stderr go next to it.
    proc = procs.spawn(argv, log if target.kind == "shardgate" else log.with_suffix(".out"))
    wait_for_port(target.name, proc, port, log)
    endpoint = Endpoint(target.name, port, proc, log, admin)
    return endpoint, pool_yaml(scenario, dep, "127.0.0.1:LISTEN", target)


def proxy_argv(target: Target, args, conf: Path, log: Path, admin: int | None) -> list[str]:
    if target.kind == "twemproxy":
        # Not daemonized (no -d), so it stays our child; stats on a free port.
        return [
            args.tools["nutcracker"], "-c", str(conf), "-a", "127.0.0.1",
            "-s", str(free_port()), "-o", str(log),
        ]  # fmt: skip
    argv = [str(args.shardgate), "-c", str(conf), "--admin", f"127.0.0.1:{admin}"]
    workers = target.workers if target.workers is not None else args.workers
    if workers is not None:
        argv += ["--workers", str(workers)]
    return argv + list(target.args)


def check_endpoint(endpoint: Endpoint) -> None:
    # One hash tag: the MSET stays in one slot (a cluster node refuses more).
    key = f"{{bench:check:{endpoint.name}}}"
    checks = [
        (("SET", key, "v1"), b"+OK\r\n"),
        (("GET", key), b"$2\r\nv1\r\n"),
        (("MSET", key + ":a", "1", key + ":b", "2", key + ":c", "3"), b"+OK\r\n"),
        (("DEL", key), b":1\r\n"),
    ]
    for command, expected in checks:
        reply = resp_call(endpoint.port, *command)
        # A GET served by a replica may run before the SET reached it.
        for _ in range(50):
            if reply != b"$-1\r\n" or command[0] != "GET":
                break
            time.sleep(0.01)
            reply = resp_call(endpoint.port, *command)
        if reply != expected:
            raise BenchError(
                f"{endpoint.name} on port {endpoint.port}: {' '.join(command)} "
                f"replied {reply!r}, expected {expected!r}"
            )


def resp_command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


PING = resp_command("PING")  # nutcracker does not accept inline commands


def resp_call(port: int, *args: str) -> bytes:
    """Sends one command; returns its raw reply (a simple type or a bulk string)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(resp_command(*args))
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(65536)
            if not chunk:
                return reply
            reply += chunk
        if reply.startswith(b"$"):
            header_end = reply.index(b"\r\n") + 2
            length = int(reply[1 : header_end - 2])
            wanted = header_end + length + 2 if length >= 0 else header_end
            while len(reply) < wanted:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply
