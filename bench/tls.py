#!/usr/bin/env python3
"""TLS versus plaintext through shardgate, in the same run (issue 17's targets).

One redis-server (a plaintext port and a TLS port) and one shardgate
(`--workers 1`, the per-worker figures the issue asks for) with three
endpoints over it:

* plaintext: `listen`, to the plaintext port;
* tls-client: `tls_listen` (ECDSA P-256 certificate), to the plaintext port;
* tls-both: `tls_listen`, and `backend_tls` to the TLS port.

redis-benchmark (`--tls` where it applies) runs SET and GET at -P 1 and
-P 16 against each, in rounds whose order rotates; each cell is the median
over rounds of requests/s and of the proxy's CPU per request. Then full
handshakes: redis-benchmark `-k 0` (a new connection, so a full TLS 1.3
handshake, per PING) against the TLS and the plaintext endpoint; the
proxy's CPU per connection gives the handshakes one worker can complete per
second of CPU. Certificates are made here with the openssl CLI, in a temp
dir. Writes target/bench/TLS.md (and .json).

    python3 bench/tls.py [--rounds 3] [--requests 100000] [--clients 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import KEYSPACE, parse_csv  # noqa: E402
from processes import (  # noqa: E402
    BenchError,
    Processes,
    cpu_reading,
    cpu_used,
    free_port,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("plaintext", "tls-client", "tls-both")
TESTS = ("set", "get")
PIPELINES = (1, 16)
# Issue 17's targets: (what, target, baseline, pipeline, min ratio of requests/s).
CLAIMS = (
    ("client-side TLS >= 0.80x plaintext at -P 16", "tls-client", 16, 0.80),
    ("client-side TLS >= 0.75x plaintext at -P 1", "tls-client", 1, 0.75),
    ("TLS on both sides >= 0.65x plaintext at -P 16", "tls-both", 16, 0.65),
)
HANDSHAKE_TARGET = 5000  # full TLS 1.3 handshakes per second per worker


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise BenchError(f"`{name}` is not installed: sudo apt-get install -y {package}")
    return path


def openssl(*args: str) -> None:
    done = subprocess.run([tool("openssl", "openssl"), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def make_certificates(dir: Path) -> dict[str, Path]:
    """A CA and one ECDSA P-256 server certificate for 127.0.0.1."""
    ca_key, ca = dir / "ca.key", dir / "ca.crt"
    key, csr, cert, ext = dir / "server.key", dir / "server.csr", dir / "server.crt", dir / "ext"
    for k in (ca_key, key):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(k))
    openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=bench-ca", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(ca))  # fmt: skip
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=bench", "-out", str(csr))
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n"
    )
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}


def start(procs: Processes, work: Path, certs: dict[str, Path], shardgate: Path):
    redis_port, redis_tls = free_port(), free_port()
    redis = procs.spawn(
        [tool("redis-server", "redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(work),
         "--tls-port", str(redis_tls), "--tls-cert-file", str(certs["cert"]),
         "--tls-key-file", str(certs["key"]), "--tls-ca-cert-file", str(certs["ca"]),
         "--tls-auth-clients", "no"],
        work / "redis.log",
    )  # fmt: skip
    wait_for_port("redis-server", redis, redis_port, work / "redis.log")
    ports = {t: free_port() for t in TARGETS}
    tls = f"  tls: {{cert: {certs['cert']}, key: {certs['key']}, max_handshakes: 256}}\n"
    common = "  hash: fnv1a_64\n  distribution: ketama\n  timeout: 2000\n"
    conf = work / "shardgate.yml"
    conf.write_text(
        f"plain:\n  listen: 127.0.0.1:{ports['plaintext']}\n"
        f"  tls_listen: 127.0.0.1:{ports['tls-client']}\n{tls}{common}"
        f"  servers:\n    - 127.0.0.1:{redis_port}:1\n"
        f"both:\n  tls_listen: 127.0.0.1:{ports['tls-both']}\n{tls}{common}"
        f"  backend_tls: {{ca: {certs['ca']}}}\n"
        f"  servers:\n    - 127.0.0.1:{redis_tls}:1\n"
    )
    log = work / "shardgate.log"
    proxy = procs.spawn(
        [str(shardgate), "-c", str(conf), "--workers", "1", "--admin", f"127.0.0.1:{free_port()}"],
        log,
    )
    for port in ports.values():
        wait_for_port("shardgate", proxy, port, log)
    time.sleep(0.5)  # the pools' first health checks
    return proxy, redis, ports


def benchmark(args, port: int, tls: bool, ca: Path, extra: list[str]) -> dict[str, float]:
    argv = [tool("redis-benchmark", "redis-tools"), "-h", "127.0.0.1", "-p", str(port), "--csv"]
    if tls:
        argv += ["--tls", "--cacert", str(ca)]
    done = subprocess.run(argv + extra, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(argv + extra)}` exited {done.returncode}:\n{done.stderr}")
    return parse_csv(done.stdout)


def measured(proxy, run) -> tuple[dict[str, float], float]:
    """Runs `run`; returns its figures and the proxy's CPU seconds meanwhile."""
    before = cpu_reading([proxy.pid])
    figures = run()
    cpu, _ = cpu_used(before, cpu_reading([proxy.pid]))
    return figures, cpu


def throughput(args, proxy, ports, ca) -> dict:
    cells: dict[tuple, list[tuple[float, float]]] = {}
    for rnd in range(args.rounds):
        for test in TESTS:
            for pipeline in PIPELINES:
                n = args.requests * (6 if pipeline > 1 else 1)
                order = TARGETS[rnd % 3:] + TARGETS[: rnd % 3]
                for target in order:
                    extra = ["-t", test, "-n", str(n), "-c", str(args.clients),
                             "-P", str(pipeline), "-r", str(KEYSPACE)]  # fmt: skip
                    figures, cpu = measured(
                        proxy, lambda: benchmark(args, ports[target], target != "plaintext", ca, extra)
                    )
                    rps = figures["rps"]
                    cells.setdefault((test, pipeline, target), []).append((rps, cpu / n * 1e6))
                    print(f"round {rnd + 1} {test:3} -P {pipeline:<2} {target:10} "
                          f"{rps:>10.0f} req/s  {cpu / n * 1e6:6.2f} µs/req", flush=True)  # fmt: skip
    return {
        key: {
            "rps": statistics.median(r for r, _ in samples),
            "cpu_us": statistics.median(c for _, c in samples),
        }
        for key, samples in cells.items()
    }


def handshakes(args, proxy, ports, ca) -> dict:
    out = {}
    for target, tls in (("tls-client", True), ("plaintext", False)):
        rates, cpus = [], []
        for _ in range(args.rounds):
            n = args.connections
            extra = ["-n", str(n), "-c", "8", "-k", "0", "PING"]
            figures, cpu = measured(proxy, lambda: benchmark(args, ports[target], tls, ca, extra))
            rates.append(figures["rps"])
            cpus.append(cpu / n * 1e6)
            print(f"connections {target:10} {figures['rps']:>8.0f}/s  "
                  f"{cpu / n * 1e6:7.1f} µs proxy CPU each", flush=True)  # fmt: skip
        out[target] = {"rate": statistics.median(rates), "cpu_us": statistics.median(cpus)}
    return out


def report(args, cells, hs, version: str) -> str:
    lines = [
        "# TLS versus plaintext through shardgate",
        "",
        f"`python3 bench/tls.py{' --quick' if args.quick else ''}` ({version}; "
        f"{args.rounds} round{'s, medians' if args.rounds != 1 else ''}; "
        f"{args.requests:,} requests per -P 1 run, {args.requests * 6:,} at -P 16, "
        f"{args.connections:,} connections per handshake run; shardgate "
        f"`--workers 1`; redis-benchmark -c {args.clients}, -r {KEYSPACE}; everything on "
        "this machine's loopback, so client, proxy and redis-server share its cores). "
        "ECDSA P-256 certificate, TLS 1.3 (rustls, ring). tls-client: TLS from "
        "redis-benchmark to the proxy, plaintext to redis-server; tls-both: TLS on both "
        "hops (`backend_tls`).",
        "",
        "| test | -P | plaintext req/s | tls-client req/s | ratio | tls-both req/s | ratio "
        "| proxy µs/req plaintext | tls-client | tls-both |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for test in TESTS:
        for p in PIPELINES:
            base = cells[(test, p, "plaintext")]
            c = cells[(test, p, "tls-client")]
            b = cells[(test, p, "tls-both")]
            lines.append(
                f"| {test.upper()} | {p} | {base['rps']:,.0f} | {c['rps']:,.0f} | "
                f"{c['rps'] / base['rps']:.2f}x | {b['rps']:,.0f} | {b['rps'] / base['rps']:.2f}x | "
                f"{base['cpu_us']:.2f} | {c['cpu_us']:.2f} | {b['cpu_us']:.2f} |"
            )
    lines += ["", "Issue 17's targets (requests/s, the lower of SET and GET):", ""]
    for what, target, p, ratio in CLAIMS:
        worst = min(
            cells[(t, p, target)]["rps"] / cells[(t, p, "plaintext")]["rps"] for t in TESTS
        )
        lines.append(f"- {what}: {worst:.2f}x, {'met' if worst >= ratio else 'NOT met'}")
    tls, plain = hs["tls-client"], hs["plaintext"]
    per_worker = 1e6 / tls["cpu_us"] if tls["cpu_us"] > 0 else float("inf")
    lines += [
        "",
        "New connections (redis-benchmark `-k 0`: one connection per PING, 8 at a time; "
        "no session resumption, so each TLS one is a full handshake):",
        "",
        "| endpoint | connections/s (client-bound) | proxy CPU per connection |",
        "|---|---|---|",
        f"| tls-client | {tls['rate']:,.0f} | {tls['cpu_us']:.0f} µs |",
        f"| plaintext | {plain['rate']:,.0f} | {plain['cpu_us']:.0f} µs |",
        "",
        f"Full TLS 1.3 handshakes one worker completes per second of its CPU: "
        f"{per_worker:,.0f} (target {HANDSHAKE_TARGET:,}: "
        f"{'met' if per_worker >= HANDSHAKE_TARGET else 'NOT met'}). The connections/s "
        "column is what redis-benchmark (OpenSSL, one thread, sharing the machine) drove; "
        "the per-CPU figure is the proxy's own capacity.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100_000, help="per -P 1 run (x6 at -P 16)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--connections", type=int, default=20_000, help="per handshake run")
    parser.add_argument("--quick", action="store_true", help="1 round, 1/10 the requests")
    parser.add_argument("--shardgate", type=Path, default=ROOT / "target/release/shardgate")
    parser.add_argument("--out", type=Path, default=ROOT / "target/bench/TLS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests, args.connections = 1, args.requests // 10, args.connections // 10
    if not args.shardgate.exists():
        raise BenchError(f"{args.shardgate} is missing: cargo build --release -p shardgate-bin")
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="shardgate-tls-bench-") as tmp:
            work = Path(tmp)
            certs = make_certificates(work)
            proxy, _redis, ports = start(procs, work, certs, args.shardgate)
            version = subprocess.run([str(args.shardgate), "--version"], capture_output=True,
                                     text=True).stdout.strip()  # fmt: skip
            cells = throughput(args, proxy, ports, certs["ca"])
            hs = handshakes(args, proxy, ports, certs["ca"])
    finally:
        procs.kill_all()
    text = report(args, cells, hs, version)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"cells": {f"{t} -P {p} {g}": v for (t, p, g), v in cells.items()}, "handshakes": hs},
            indent=2,
        )
    )
    print(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench/tls.py: {e}", file=sys.stderr)
        sys.exit(1)
