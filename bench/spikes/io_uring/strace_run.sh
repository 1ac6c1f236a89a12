#!/bin/bash
# strace -c cross-check (ptrace slows the forwarder a lot: counts only, not timing)
cd "$(dirname "$0")"
T=target/release
for v in epoll uring uringms; do
  case $v in epoll) B=fwd_epoll; E="";; uring) B=fwd_uring; E="";; uringms) B=fwd_uring; E="URING_RECV=multi";; esac
  env $E $T/$B 17010 16379 1 & PID=$!
  sleep 0.5
  redis-benchmark -p 17010 -c 50 -n 5000 -t get -P 1 -q >/dev/null 2>&1
  strace -c -f -p $PID -o strace_$v.txt & SP=$!
  sleep 1
  redis-benchmark -p 17010 -c 50 -n 30000 -r 100000 -t get,set -P 1 -q 2>&1 | tr '\r' '\n' | grep "per sec" | sed "s/^/$v /"
  sleep 0.5
  kill -INT $SP; wait $SP
  kill $PID; wait $PID 2>/dev/null
  echo "== $v (60000 requests)"; head -12 strace_$v.txt
done
