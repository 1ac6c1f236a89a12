import os
#!/usr/bin/env python3
import json, statistics as st, sys
from collections import defaultdict
HERE = os.path.dirname(os.path.abspath(__file__))
rows = [json.loads(l) for l in open(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.jsonl"))]
sc = [json.loads(l) for l in open(os.path.join(HERE, "syscalls.jsonl"))] if len(sys.argv) < 3 else [json.loads(l) for l in open(sys.argv[2])]
g = defaultdict(list)
for r in rows:
    g[(r["variant"], r["workers"], r["P"])].append(r)
gs = defaultdict(list)
for r in sc:
    gs[(r["variant"], r["workers"], r["P"])].append(r)
def med(xs): return st.median(xs)
def fmt(xs, d=2):
    return f"{med(xs):.{d}f} [{min(xs):.{d}f}-{max(xs):.{d}f}]"
variants = sorted({k[0] for k in g} - {"direct"})
base = "epoll"
print("| P | workers | variant | n | CPU µs/req med [min-max] | user µs | sys µs | GET+SET req/s (med of mean) | vol cs/req | redis reads/req | redis CPU µs/req | syscalls/req (perf) | ratio CPU vs epoll |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for P in (1, 16):
    for w in (0, 1, 2):
        for v in (["direct"] if w == 0 else variants):
            rs = g.get((v, w, P))
            if not rs: continue
            cpu = [r["cpu_us"] for r in rs]
            rps = [(r["rps_get"] + r["rps_set"]) / 2 for r in rs]
            s = gs.get((v, w, P), [])
            if s:
                keys = [k for k in s[0] if k not in ("round", "variant", "workers", "P", "rps_get", "reads", "sys_enter")]
                parts = []
                for k in keys:
                    m = med([x.get(k, 0) for x in s])
                    if m >= 0.002: parts.append(f"{k} {m:.3f}")
                sysc = f"**{med([x['sys_enter'] for x in s]):.3f}**: " + ", ".join(parts)
            else:
                sysc = ""
            ratio = ""
            if v != "direct" and (base, w, P) in g:
                ratio = f"{med(cpu) / med([r['cpu_us'] for r in g[(base, w, P)]]):.3f}"
            if v == "direct": sysc = "(redis-server itself)"
            print(f"| {P} | {w or '-'} | {v} | {len(rs)} | {fmt(cpu)} | {med([r['user_us'] for r in rs]):.2f} | {med([r['sys_us'] for r in rs]):.2f} | {med(rps):,.0f} [{min(rps):,.0f}-{max(rps):,.0f}] | {med([r['vcs'] for r in rs]):.3f} | {med([r['reads'] for r in rs]):.3f} | {med([r['redis_cpu_us'] for r in rs]):.2f} | {sysc} | {ratio} |")
# paired ratios per round
print()
print("Paired per-round CPU ratio (variant/epoll, same round, same workers, same P):")
for v in variants:
    if v == base: continue
    for P in (1, 16):
        for w in (1, 2):
            a = {r["round"]: r["cpu_us"] for r in g.get((base, w, P), [])}
            b = {r["round"]: r["cpu_us"] for r in g.get((v, w, P), [])}
            rat = [b[k] / a[k] for k in a if k in b]
            if rat:
                print(f"  {v} P={P} w={w}: median {med(rat):.3f}, range {min(rat):.3f}-{max(rat):.3f}, n={len(rat)}")
errs = sum(r["bench_errs"] + r["redis_errs"] for r in rows)
cmds = [r["cmds_ratio"] for r in rows]
print(f"\nerrors (benchmark error lines + redis total_error_replies delta): {errs}; redis commands/request min {min(cmds):.5f} max {max(cmds):.5f}")
