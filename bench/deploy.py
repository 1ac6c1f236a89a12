"""Starting a scenario: its redis-servers, then each proxy in front of them.

Both proxies read the same pool definition, written by pool_yaml(); only
`listen:` differs, since two processes cannot listen on one port. Before
any load, every target must answer SET/GET/MSET/DEL correctly: a proxy that
answered errors quickly would otherwise look fast.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from processes import BenchError, Processes, free_port, tail, wait_for_port
from scenarios import Scenario


@dataclass
class Endpoint:
    name: str  # direct / twemproxy / shardgate
    port: int
    proc: subprocess.Popen | None = None  # the proxy process; None for direct
    log: Path | None = None

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
    redis_pids: list[int]
    endpoints: dict[str, Endpoint]  # in scenario.targets order
    yaml: str  # the pool definition, LISTEN standing for each proxy's port
    commands: dict[str, str] = field(default_factory=dict)  # how each was started


def deploy(procs: Processes, args, workdir: Path, scenario: Scenario) -> Deployment:
    """Starts the scenario's redis-servers and proxies; checks each target."""
    redis = [start_redis(procs, args, workdir) for _ in range(scenario.shards)]
    ports = [port for port, _, _ in redis]
    dep = Deployment(
        scenario,
        redis_pids=[pid for _, pid, _ in redis],
        endpoints={},
        yaml=pool_yaml(scenario, ports, "127.0.0.1:LISTEN", {}),
        commands={"redis-server": redis[0][2]},
    )
    for name in scenario.targets:
        if name == "direct":
            dep.endpoints[name] = Endpoint(name, ports[0])
        elif name == "shardgate" and args.shardgate is None:
            continue  # --no-shardgate
        else:
            endpoint = start_proxy(procs, args, workdir, scenario, name, ports)
            dep.endpoints[name] = endpoint
            dep.commands[name] = shlex.join(endpoint.proc.args)
    for endpoint in dep.endpoints.values():
        check_endpoint(endpoint)
    return dep


def start_redis(procs: Processes, args, workdir: Path) -> tuple[int, int, str]:
    """A redis-server without persistence; returns (port, pid, command line)."""
    port = free_port()
    data = workdir / f"redis-{port}"
    data.mkdir()
    argv = [
        args.tools["redis-server"], "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(data),
        "--logfile", "", "--daemonize", "no",
    ]  # fmt: skip
    log = data / "redis.log"
    proc = procs.spawn(argv, log)
    wait_for_port("redis-server", proc, port, log)
    return port, proc.pid, shlex.join(argv)


def pool_yaml(scenario: Scenario, redis_ports: list[int], listen: str, extra: dict) -> str:
    lines = ["bench:", f"  listen: {listen}"]
    lines += [f"  {key}: {value}" for key, value in {**scenario.pool, **extra}.items()]
    lines.append("  servers:")
    lines += [f"    - 127.0.0.1:{port}:1 shard{i}" for i, port in enumerate(redis_ports)]
    return "\n".join(lines) + "\n"


def start_proxy(procs, args, workdir: Path, scenario: Scenario, name: str, ports) -> Endpoint:
    port = free_port()
    extra = scenario.shardgate_pool if name == "shardgate" else {}
    conf = workdir / f"{scenario.key}-{name}.yml"
    conf.write_text(pool_yaml(scenario, ports, f"127.0.0.1:{port}", extra))
    log = workdir / f"{scenario.key}-{name}.log"
    argv = proxy_argv(name, args, scenario, conf, log)
    # nutcracker writes its own log (-o); its stdout/stderr go next to it.
    proc = procs.spawn(argv, log if name == "shardgate" else log.with_suffix(".out"))
    wait_for_port(name, proc, port, log)
    return Endpoint(name, port, proc, log)


def proxy_argv(name: str, args, scenario: Scenario, conf: Path, log: Path) -> list[str]:
    if name == "twemproxy":
        # Not daemonized (no -d), so it stays our child; stats on a free port.
        return [
            args.tools["nutcracker"], "-c", str(conf), "-a", "127.0.0.1",
            "-s", str(free_port()), "-o", str(log),
        ]  # fmt: skip
    argv = [str(args.shardgate), "-c", str(conf)]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    return argv + list(scenario.shardgate_args)


def check_endpoint(endpoint: Endpoint) -> None:
    key = f"bench:check:{endpoint.name}"
    checks = [
        (("SET", key, "v1"), b"+OK\r\n"),
        (("GET", key), b"$2\r\nv1\r\n"),
        (("MSET", key + ":a", "1", key + ":b", "2", key + ":c", "3"), b"+OK\r\n"),
        (("DEL", key), b":1\r\n"),
    ]
    for command, expected in checks:
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
