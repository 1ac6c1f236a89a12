#!/usr/bin/env python3
"""Syscalls per request via perf stat tracepoint counters (separate runs)."""
import json, os, signal, subprocess, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import *

def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    out = open(os.environ.get("OUT", os.path.join(HERE, "syscalls.jsonl")), "a")
    N = {1: 100000, 16: 500000}
    ev = ",".join(f"syscalls:sys_enter_{s}" for s in SYSCALLS) + ",raw_syscalls:sys_enter"
    for r in range(rounds):
        for w in (1, 2):
            for v in VARIANTS:
                p = start(v, w)
                bench(PORTS[v], 1, 20000)
                for P in (1, 16):
                    rb = redis_info()
                    pf = subprocess.Popen(["perf", "stat", "-x,", "-o", os.path.join(HERE, "perf.tmp"), "-e", ev, "-p", str(p.pid)])
                    time.sleep(0.5)
                    rps, errs, el = bench(PORTS[v], P, N[P])
                    pf.send_signal(signal.SIGINT); pf.wait()
                    ra = redis_info()
                    req = 2 * N[P]
                    d = dict(round=r, variant=v, workers=w, P=P, rps_get=rps.get("GET"),
                             reads=(ra["total_reads_processed"] - rb["total_reads_processed"]) / req)
                    for line in open(os.path.join(HERE, "perf.tmp")):
                        c = line.strip().split(",")
                        if len(c) > 3 and c[0].isdigit():
                            d[c[2].split(":")[1].replace("sys_enter_", "")] = int(c[0]) / req
                    out.write(json.dumps(d) + "\n"); out.flush(); print(d, flush=True)
                stop(p)

if __name__ == "__main__":
    main()
