#!/usr/bin/env bash
# `make demo`: three real redis-servers in a temp dir, shardgate in front
# (ketama over the three, twemproxy's nutcracker.yml format), and how to
# connect. Ctrl-C stops everything and removes the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SHARDGATE_BIN:-target/release/shardgate}
PROXY_PORT=${PROXY_PORT:-22121}
BASE_PORT=${BASE_PORT:-7301}

for program in redis-server redis-cli; do
    command -v "$program" >/dev/null || {
        echo "error: $program is missing; install it with: sudo apt-get install -y redis-server redis-tools" >&2
        exit 1
    }
done
[[ -x $BIN ]] || { echo "error: $BIN not built; run: make release" >&2; exit 1; }

dir=$(mktemp -d -t shardgate-demo.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo; echo "stopping the demo..."
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
    echo "removed $dir"
}
trap cleanup EXIT INT TERM

ports=()
for i in 0 1 2; do
    port=$((BASE_PORT + i))
    ports+=("$port")
    mkdir -p "$dir/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir/redis-$port" --logfile "$dir/redis-$port/redis.log" --daemonize no &
    pids+=($!)
done

cat >"$dir/shardgate.yml" <<YAML
demo:
  listen: 127.0.0.1:$PROXY_PORT
  hash: fnv1a_64
  distribution: ketama
  hash_tag: "{}"
  timeout: 1000
  redis: true
  servers:
    - 127.0.0.1:${ports[0]}:1 shard-a
    - 127.0.0.1:${ports[1]}:1 shard-b
    - 127.0.0.1:${ports[2]}:1 shard-c
YAML

"$BIN" -c "$dir/shardgate.yml" 2>"$dir/shardgate.log" &
pids+=($!)

for _ in $(seq 100); do
    redis-cli -p "$PROXY_PORT" PING >/dev/null 2>&1 && break
    sleep 0.1
done

cat <<TEXT

shardgate is running in front of 3 redis-servers (config: $dir/shardgate.yml)

  connect:      redis-cli -p $PROXY_PORT
  try:          redis-cli -p $PROXY_PORT SET greeting hello
                redis-cli -p $PROXY_PORT GET greeting
                redis-cli -p $PROXY_PORT MSET {user:1}:name ada {user:1}:lang en
  see shards:   for p in ${ports[*]}; do redis-cli -p \$p DBSIZE; done
  proxy log:    $dir/shardgate.log

Ctrl-C stops everything.
TEXT
wait "${pids[-1]}"
