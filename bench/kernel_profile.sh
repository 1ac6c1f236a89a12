#!/bin/bash
# Where the CPU goes, kernel included (docs/performance.md): perf record
# (cpu-clock, kernel and user samples) of shardgate with 2 workers and of
# predixy with 2 threads, each in front of the same redis-servers ($SHARDS,
# default 1; keys spread by each proxy's default hashing), for
# redis-benchmark $TEST (default get) -P $PIPELINE (default 1) with 50
# clients; one run each. Then the samples are grouped
# (bench/kernel_profile.py) into µs per request, and the syscalls counted
# in the same run are listed per request.
#
#   bench/kernel_profile.sh [shardgate binary]
#   PIPELINE=16 REQUESTS=3000000 bench/kernel_profile.sh
#   SHARDS=3 TEST=set bench/kernel_profile.sh
#
# Needs perf, redis-server, redis-benchmark and predixy ($PREDIXY, default
# ../shared/peers/predixy). Writes into $OUT (target/bench/kernel-profile).
set -eu
HERE=$(dirname "$(realpath "$0")")
BIN=$(realpath "${1:-target/release/shardgate}")
PREDIXY=$(realpath "${PREDIXY:-../shared/peers/predixy}")
OUT=${OUT:-target/bench/kernel-profile}
PIPELINE=${PIPELINE:-1}
REQUESTS=${REQUESTS:-300000}
SHARDS=${SHARDS:-1}
TEST=${TEST:-get}
mkdir -p "$OUT" && cd "$OUT"
read -r SP PP AP < <(python3 -c "import sys; sys.path.insert(0, '$HERE'); from processes import free_port; print(*(free_port() for _ in range(3)))")
read -r -a RPS < <(python3 -c "import sys; sys.path.insert(0, '$HERE'); from processes import free_port; print(*(free_port() for _ in range($SHARDS)))")
RPIDS=()
trap 'kill "${RPIDS[@]}" 2>/dev/null' EXIT
printf 'p:\n  listen: 127.0.0.1:%s\n  servers:\n' "$SP" > shardgate.yml
for RP in "${RPS[@]}"; do
  redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
  RPIDS+=($!)
  printf '    - 127.0.0.1:%s:1\n' "$RP" >> shardgate.yml
done
sleep 0.5
# predixy's configuration as make bench writes it (bench/deploy.py).
python3 -c "import sys; sys.path.insert(0, '$HERE'); from deploy import predixy_text; print(predixy_text('127.0.0.1:$PP', [$(IFS=,; echo "${RPS[*]}")]), end='')" > predixy.conf
for proxy in shardgate predixy; do
  case $proxy in
    shardgate) "$BIN" -c shardgate.yml --admin "127.0.0.1:$AP" --workers 2 >/dev/null 2>&1 & PID=$!; PORT=$SP ;;
    predixy) "$PREDIXY" predixy.conf >/dev/null 2>&1 & PID=$!; PORT=$PP ;;
  esac
  sleep 1
  redis-benchmark -p "$PORT" -c 50 -n 20000 -t "$TEST" -P "$PIPELINE" -q >/dev/null 2>&1
  perf record -F 4999 -e cpu-clock -p "$PID" -o "perf_$proxy.data" 2>/dev/null &
  RECORDER=$!
  # Syscalls counted by tracepoint: unlike strace, this does not slow the
  # proxy down and so leaves its batching as it is.
  perf stat -e 'syscalls:sys_enter_*' -p "$PID" -o "syscalls_$proxy.txt" 2>/dev/null &
  COUNTER=$!
  sleep 0.5
  redis-benchmark -p "$PORT" -c 50 -n "$REQUESTS" -r 100000 -t "$TEST" -P "$PIPELINE" -q 2>&1 | tr '\r' '\n' | grep "per sec" | sed "s/^/$proxy /"
  kill -INT "$RECORDER" "$COUNTER"; wait "$RECORDER" "$COUNTER" || true
  kill "$PID"; wait "$PID" 2>/dev/null || true
  perf report -i "perf_$proxy.data" --no-children --sort dso,sym --stdio 2>/dev/null > "report_$proxy.txt"
done
python3 "$HERE/kernel_profile.py" "$REQUESTS" report_shardgate.txt report_predixy.txt
echo
echo "syscalls per request (perf stat; those above 0.001):"
for proxy in shardgate predixy; do
  awk -v n="$REQUESTS" -v p="$proxy" '$1 ~ /^[0-9,]+$/ && $2 ~ /sys_enter_/ {
    c = $1; gsub(",", "", c); name = $2; sub(".*sys_enter_", "", name)
    if (c / n >= 0.001) printf "  %-10s %-14s %.4f\n", p, name, c / n
  }' "syscalls_$proxy.txt" | sort -k3 -nr
done
