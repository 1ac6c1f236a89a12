"""Where the floor is (docs/performance.md): this spike's plain tokio forwarder,
shardgate with 2 workers and predixy with 2 threads in front of one redis-server,
GET and SET at -P 1 and -P 16, 50 clients, ROUNDS rounds in rotated order; CPU
microseconds per request from schedstat and requests/s from redis-benchmark, medians. Usage: floor.py SHARDGATE_BINARY
(build this spike first: cargo build --release)."""
import glob, os, re, statistics, subprocess, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../.."))  # bench/: the proxies' configs, free ports
from deploy import predixy_text  # noqa: E402
from processes import free_port  # noqa: E402
PREDIXY = os.environ.get("PREDIXY", os.path.join(HERE, "../../../../shared/peers/predixy"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
SG = sys.argv[1]
d = tempfile.mkdtemp()
rp = free_port()
ports = [free_port() for _ in range(4)]  # shardgate, predixy, forwarder, admin
r = subprocess.Popen(["redis-server", "--port", str(rp), "--save", "", "--dir", d], stdout=subprocess.DEVNULL)
time.sleep(0.5)
def cpu(pid):
    return sum(int(open(t + "/schedstat").read().split()[0]) for t in glob.glob(f"/proc/{pid}/task/*"))
open(f"{d}/sg.yml", "w").write(f"p:\n  listen: 127.0.0.1:{ports[0]}\n  servers:\n    - 127.0.0.1:{rp}:1\n")
open(f"{d}/px.conf", "w").write(predixy_text(f"127.0.0.1:{ports[1]}", [rp]))
targets = {
    "plain-forwarder": ([os.path.join(HERE, "target/release/fwd_epoll"), str(ports[2]), str(rp), "2"], ports[2]),
    "shardgate-2w": ([SG, "-c", f"{d}/sg.yml", "--admin", f"127.0.0.1:{ports[3]}", "--workers", "2"], ports[0]),
    "predixy": ([PREDIXY, f"{d}/px.conf"], ports[1]),
}
tests = [("get", 1, 200000), ("set", 1, 200000), ("get", 16, 1500000), ("set", 16, 1500000)]
res = {}
rate = {}
try:
    names = list(targets)
    for rnd in range(ROUNDS):
        order = names[rnd % 3:] + names[:rnd % 3]
        for name in order:
            argv, port = targets[name]
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            for t, P, n in tests:
                c0 = cpu(p.pid)
                out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", t, "-P", str(P), "-n", str(n), "-c", "50", "-r", "100000", "-q"], capture_output=True, text=True).stdout
                res.setdefault((name, t, P), []).append((cpu(p.pid) - c0) / 1000 / n)
                found = re.findall(r"([0-9.]+) requests per second", out.replace("\r", "\n"))
                rate.setdefault((name, t, P), []).append(float(found[-1]) if found else 0.0)
            p.terminate(); p.wait()
    print("| test | -P | " + " | ".join(names) + " | plain ÷ predixy | shardgate-2w ÷ predixy |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for t, P, n in tests:
        m = {k: statistics.median(res[(k, t, P)]) for k in names}
        print(f"| {t.upper()} | {P} | " + " | ".join(f"{m[k]:.2f}" for k in names) + f" | {m['plain-forwarder']/m['predixy']:.2f}x | {m['shardgate-2w']/m['predixy']:.2f}x |")
    print("\nrequests/s:\n")
    print("| test | -P | " + " | ".join(names) + " | plain ÷ predixy | shardgate-2w ÷ predixy |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for t, P, n in tests:
        m = {k: statistics.median(rate[(k, t, P)]) for k in names}
        print(f"| {t.upper()} | {P} | " + " | ".join(f"{m[k]:,.0f}" for k in names) + f" | {m['plain-forwarder']/m['predixy']:.2f}x | {m['shardgate-2w']/m['predixy']:.2f}x |")
    for k, v in sorted(res.items()):
        print(k, [round(x, 2) for x in v], file=sys.stderr)
finally:
    r.terminate()
