# shardgate: the two commands a fresh Debian/Ubuntu machine needs are
# `make demo` and `make test`; both install what they need first.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build release install deb container test lint fmt demo bench bench-tls bench-quick bench-conns bench-failover bench-live bench-placement profile kernel-profile fuzz chaos chaos-short clean module-graph

deps:
	@bash scripts/install-deps.sh

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p shardgate-bin -p shardgate-conns

# The binary into ~/.cargo/bin.
install:
	$(CARGO) install --locked --path crates/shardgate-bin

# target/debian/shardgate_<version>_<arch>.deb: the binary, /etc/shardgate/
# shardgate.yml, the systemd unit, a `shardgate` system user (docs/operations.md).
deb: deps
	$(CARGO) deb -p shardgate-bin

# localhost/shardgate:latest, a static musl binary on `scratch` (podman;
# CONTAINER_TOOL=buildah or docker works too).
container: deps
	bash scripts/build-container.sh $(ARGS)

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint
	$(CARGO) test --workspace
	$(MAKE) chaos-short

# A chaos run (docs/chaos.md): 2 proxies, 3 shards, 3 Sentinels, a checked
# mixed load and random faults for 10 minutes; prints a table, exits 1 on
# a violation. `make chaos ARGS="--minutes 30 --seed 7"` passes options.
chaos: deps
	$(CARGO) build -p shardgate-bin -p shardgate-chaos
	$(CARGO) run -q -p shardgate-chaos -- $(ARGS)

# The 2-minute chaos run `make test` ends with: a fixed seed, every fault
# kind at least once.
chaos-short: deps
	$(CARGO) build -p shardgate-bin -p shardgate-chaos
	$(CARGO) run -q -p shardgate-chaos -- --minutes 2 --seed 1 $(ARGS)

fmt:
	$(CARGO) fmt --all

# docs/architecture.md's module graph, regenerated from the code.
module-graph:
	python3 scripts/update-module-graph.py

# `make demo ARGS="--chaos 20"` kills a random master every 20 s.
demo: deps release
	./target/release/shardgate demo $(ARGS)

# Throughput scenarios, idle connections, then the failover benchmark;
# writes BENCHMARKS.md. `make bench ARGS="--rounds 5"` passes options.
# predixy joins as a third peer when ../shared/peers/predixy (beside the
# repo) or a `predixy` on PATH exists; the report says when it does not.
bench: deps release
	python3 bench/bench.py $(ARGS)
	python3 bench/tls.py

# TLS versus plaintext through the proxy (issue 17's targets): client-side
# TLS at -P 1 and -P 16, TLS on both hops, full handshakes per worker;
# writes target/bench/TLS.md.
bench-tls: deps release
	python3 bench/tls.py $(ARGS)

# A few minutes' smoke run; writes target/bench/BENCHMARKS-quick.md.
bench-quick: deps release
	python3 bench/bench.py --quick $(ARGS)

# Which shardgate/twemproxy pools place keys exactly as predixy does (the
# 3-shard scenario's choice); prints a table, writes nothing.
bench-placement: deps release
	python3 bench/placement.py $(ARGS)

# Where the CPU goes per request, shardgate vs predixy: user/sys time,
# syscalls by type (strace), instructions (callgrind) and their breakdown;
# writes target/bench/PROFILE.md. Needs valgrind and strace.
profile: deps release
	@command -v valgrind >/dev/null && command -v strace >/dev/null || bash scripts/install-deps.sh valgrind strace
	python3 bench/profile.py $(ARGS)

# Where the CPU goes with the kernel included, shardgate-2w vs predixy at
# GET -P 1 (PIPELINE=16 REQUESTS=3000000 for -P 16; SHARDS=3 TEST=set for
# SET over 3 redis-servers): perf samples grouped
# into TCP/IP, context switches, wake-ups, syscalls and user space, µs per
# request, then the syscalls per request by type (docs/performance.md).
kernel-profile: deps release
	@command -v perf >/dev/null || bash scripts/install-deps.sh linux-perf
	bash bench/kernel_profile.sh $(ARGS)

# The idle (100,000) and active (10,000) connection tests alone; writes
# target/bench/CONNECTIONS.md.
bench-conns: deps release
	python3 bench/active.py $(ARGS)

# The failover benchmark alone; writes target/bench/FAILOVER.md.
bench-failover: deps release
	python3 bench/failover.py $(ARGS)

# A reload and an online reshard under load, alone (make bench runs them too).
bench-live: deps release
	cd bench && python3 live.py --shardgate ../target/release/shardgate $(ARGS)

fuzz:
	cd fuzz && $(CARGO) +nightly fuzz run request_parser -- -max_total_time=60
	cd fuzz && $(CARGO) +nightly fuzz run reply_scanner -- -max_total_time=60
	# Random input to a live session, random reply streams from a server:
	# the proxy in process, 60 s each from a fresh seed (printed).
	LIVE_FUZZ_SECONDS=60 $(CARGO) test --release -p shardgate --test live_fuzz -- --nocapture --test-threads 1

clean:
	$(CARGO) clean
