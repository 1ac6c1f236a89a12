#!/usr/bin/env python3
"""Measurement harness: alternates epoll/uring forwarders, records CPU per
request (schedstat), user/sys ticks, req/s, voluntary ctx switches, redis
total_reads_processed and (separately) syscall counts via perf stat."""
import glob, json, os, signal, subprocess, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))

REDIS = 16379
BIN = os.path.join(HERE, "target/release")
PORTS = {"epoll": 17001, "uring": 17002, "uringms": 17003, "uringplain": 17004, "uringpf": 17005}
VARIANTS = os.environ.get("VARIANTS", "epoll,uring").split(",")
ENVS = {"uringms": {"URING_RECV": "multi"}, "uringplain": {"URING_MODE": "plain"}, "uringpf": {"URING_POLLFIRST": "1"}}
BINS = {"epoll": "fwd_epoll", "uring": "fwd_uring", "uringms": "fwd_uring", "uringplain": "fwd_uring", "uringpf": "fwd_uring"}
HZ = os.sysconf("SC_CLK_TCK")
SYSCALLS = ["read", "write", "writev", "readv", "recvfrom", "sendto", "sendmsg", "recvmsg",
            "epoll_wait", "epoll_pwait", "epoll_pwait2", "io_uring_enter", "epoll_ctl",
            "accept4", "close", "setsockopt", "futex", "sched_yield"]

def proc_stats(pid):
    ns = 0; vol = 0; invol = 0
    for t in glob.glob(f"/proc/{pid}/task/*"):
        try:
            ns += int(open(t + "/schedstat").read().split()[0])
            for line in open(t + "/status"):
                if line.startswith("voluntary_ctxt_switches"): vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"): invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return dict(ns=ns, utime=int(f[11]), stime=int(f[12]), vol=vol, invol=invol)

def redis_info():
    out = subprocess.run(["redis-cli", "-p", str(REDIS), "info", "stats"], capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.strip().split(":", 1)
            if k in ("total_reads_processed", "total_commands_processed", "total_error_replies"):
                d[k] = int(v)
    return d

def redis_pid():
    return int(open(os.path.join(HERE, "redis/redis.pid")).read())

def bench(port, P, n):
    cmd = ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(n), "-r", "100000",
           "-t", "get,set", "-P", str(P), "--csv"]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    el = time.time() - t0
    rps = {}
    errs = 0
    for line in (r.stdout + r.stderr).splitlines():
        if line.startswith('"') and not line.startswith('"test"'):
            c = [x.strip('"') for x in line.split(",")]
            rps[c[0]] = float(c[1])
        elif "rror" in line:
            errs += 1
    return rps, errs, el

def start(variant, workers):
    port = PORTS[variant]
    env = dict(os.environ); env.update(ENVS.get(variant, {}))
    p = subprocess.Popen([f"{BIN}/{BINS[variant]}", str(port), str(REDIS), str(workers)], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(HERE, f"{variant}.err"), "a"))
    for _ in range(100):
        time.sleep(0.05)
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
    return p

def stop(p):
    p.send_signal(signal.SIGTERM); p.wait(timeout=10)

def measure(pid, port, P, n, rpid):
    b = proc_stats(pid); rb = redis_info(); rsb = proc_stats(rpid)
    rps, errs, el = bench(port, P, n)
    a = proc_stats(pid); ra = redis_info(); rsa = proc_stats(rpid)
    req = 2 * n
    cmds = ra["total_commands_processed"] - rb["total_commands_processed"]
    return dict(
        cpu_us=(a["ns"] - b["ns"]) / req / 1000,
        user_us=(a["utime"] - b["utime"]) / HZ / req * 1e6,
        sys_us=(a["stime"] - b["stime"]) / HZ / req * 1e6,
        vcs=(a["vol"] - b["vol"]) / req, ivcs=(a["invol"] - b["invol"]) / req,
        reads=(ra["total_reads_processed"] - rb["total_reads_processed"]) / req,
        redis_cpu_us=(rsa["ns"] - rsb["ns"]) / req / 1000,
        cmds_ratio=cmds / req, redis_errs=ra["total_error_replies"] - rb["total_error_replies"],
        rps_set=rps.get("SET"), rps_get=rps.get("GET"), bench_errs=errs, elapsed=el)

def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    out = open(os.environ.get("OUT", os.path.join(HERE, "results.jsonl")), "a")
    N = {1: 300000, 16: 2000000}
    rpid = redis_pid()
    for r in range(rounds):
        # direct reference
        for P in ((1, 16) if os.environ.get("DIRECT", "1") == "1" else ()):
            m = measure(rpid, REDIS, P, N[P], rpid)
            m.update(round=r, variant="direct", workers=0, P=P)
            out.write(json.dumps(m) + "\n"); out.flush(); print(m, flush=True)
        for w in [int(x) for x in os.environ.get('WORKERS', '1,2').split(',')]:
            for v in VARIANTS:
                p = start(v, w)
                bench(PORTS[v], 1, 20000)  # warm-up
                for P in [int(x) for x in os.environ.get('PS', '1,16').split(',')]:
                    m = measure(p.pid, PORTS[v], P, N[P], rpid)
                    m.update(round=r, variant=v, workers=w, P=P)
                    out.write(json.dumps(m) + "\n"); out.flush(); print(m, flush=True)
                stop(p)

if __name__ == "__main__":
    main()
