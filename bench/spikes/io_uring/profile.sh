#!/bin/bash
# cpu-clock profile of each forwarder (w=1, P=1), kernel+user symbols
cd "$(dirname "$0")"
T=target/release
for v in epoll uring uringms; do
  case $v in epoll) B=fwd_epoll; E="";; uring) B=fwd_uring; E="";; uringms) B=fwd_uring; E="URING_RECV=multi";; esac
  env $E $T/$B 17011 16379 1 & PID=$!
  sleep 0.5
  redis-benchmark -p 17011 -c 50 -n 5000 -t get -P 1 -q >/dev/null 2>&1
  perf record -F 4999 -e cpu-clock -p $PID -o perf_$v.data 2>/dev/null & RP=$!
  sleep 0.5
  redis-benchmark -p 17011 -c 50 -n 150000 -r 100000 -t get,set -P 1 -q 2>&1 | tr '\r' '\n' | grep "per sec" | sed "s/^/$v /"
  kill -INT $RP; wait $RP
  kill $PID; wait $PID 2>/dev/null
  perf report -i perf_$v.data --no-children --sort sym --percent-limit 1.2 --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -40 > prof_$v.txt
done
