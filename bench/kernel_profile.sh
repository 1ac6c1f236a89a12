#!/bin/bash
# Where the CPU goes, kernel included (docs/performance.md): perf record
# (cpu-clock, kernel and user samples) of shardgate with 2 workers and of
# predixy with 2 threads, each in front of the same redis-server, for
# redis-benchmark GET -P 1 with 50 clients; one run each. Then the samples
# are grouped (bench/kernel_profile.py) into µs per request.
#
#   bench/kernel_profile.sh [shardgate binary]
#
# Needs perf, redis-server, redis-benchmark and predixy ($PREDIXY, default
# ../shared/peers/predixy). Writes into $OUT (target/bench/kernel-profile).
set -eu
HERE=$(dirname "$(realpath "$0")")
BIN=$(realpath "${1:-target/release/shardgate}")
PREDIXY=$(realpath "${PREDIXY:-../shared/peers/predixy}")
OUT=${OUT:-target/bench/kernel-profile}
REQUESTS=300000
mkdir -p "$OUT" && cd "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RP=$(free_port); SP=$(free_port); PP=$(free_port); AP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null' EXIT
sleep 0.5
printf 'p:\n  listen: 127.0.0.1:%s\n  servers:\n    - 127.0.0.1:%s:1\n' "$SP" "$RP" > shardgate.yml
cat > predixy.conf <<EOC
Name bench
Bind 127.0.0.1:$PP
WorkerThreads 2
ClientTimeout 300
LogVerbSample 0
LogDebugSample 0
LogInfoSample 0
LogNoticeSample 0
Authority {
  Auth {
    Mode write
  }
}
StandaloneServerPool {
  Hash crc16
  Distribution modula
  RefreshMethod fixed
  ServerTimeout 2
  Group g1 {
    + 127.0.0.1:$RP
  }
}
EOC
for proxy in shardgate predixy; do
  case $proxy in
    shardgate) "$BIN" -c shardgate.yml --admin "127.0.0.1:$AP" --workers 2 >/dev/null 2>&1 & PID=$!; PORT=$SP ;;
    predixy) "$PREDIXY" predixy.conf >/dev/null 2>&1 & PID=$!; PORT=$PP ;;
  esac
  sleep 1
  redis-benchmark -p "$PORT" -c 50 -n 20000 -t get -P 1 -q >/dev/null 2>&1
  perf record -F 4999 -e cpu-clock -p "$PID" -o "perf_$proxy.data" 2>/dev/null &
  RECORDER=$!
  sleep 0.5
  redis-benchmark -p "$PORT" -c 50 -n "$REQUESTS" -r 100000 -t get -P 1 -q 2>&1 | tr '\r' '\n' | grep "per sec" | sed "s/^/$proxy /"
  kill -INT "$RECORDER"; wait "$RECORDER" || true
  kill "$PID"; wait "$PID" 2>/dev/null || true
  perf report -i "perf_$proxy.data" --no-children --sort dso,sym --stdio 2>/dev/null > "report_$proxy.txt"
done
python3 "$HERE/kernel_profile.py" "$REQUESTS" report_shardgate.txt report_predixy.txt
