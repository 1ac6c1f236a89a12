"""What to benchmark: scenarios as data. Add a scenario here.

A scenario names its backends (how many shards, and how many replicas each
shard has), the pool the proxies read (twemproxy's nutcracker.yml keys; only
`listen:` differs between the proxies), which targets to load, which
redis-benchmark tests and pipeline depths to run, and whether "direct to
shard 0's master" is a fair peer.

A target is `direct` (shard 0's master, no proxy), `twemproxy`, `predixy`,
or a shardgate *variant*: shardgate with extra pool keys and/or extra
command-line arguments (e.g. `read_policy: any`, or `--no-metrics`) or its
own worker count. Several variants can load the same backends side by side.

predixy (a multi-threaded C++ proxy) runs with PEER_THREADS worker threads
and is compared with `shardgate-2w`, shardgate with as many workers; the
plain `shardgate` target keeps the harness's --workers (default 1, like
twemproxy's single thread). Both are left out when predixy is not found.

Two report layouts:

* "peers": direct / twemproxy / shardgate (/ shardgate-2w / predixy)
  columns, ratios of shardgate to direct and to twemproxy, and of
  shardgate-2w to predixy (the 1shard and 3shards scenarios);
* "variants": one row per target, with each target's CPU per request
  divided by the `baseline` target's, and optional claims checked on that
  ratio (the reads and metrics scenarios).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Target:
    name: str  # label in the report and on the terminal
    kind: str  # "direct" | "twemproxy" | "shardgate" | "predixy"
    pool: dict = field(default_factory=dict)  # extra pool keys (shardgate only)
    args: tuple = ()  # extra command-line arguments (shardgate only)
    workers: int | None = None  # shardgate only: --workers, instead of the harness's

    def describe(self) -> str:
        """What sets this target apart, for the report."""
        parts = [f"`{k}: {v}`" for k, v in self.pool.items()]
        parts += [f"`{a}`" for a in self.args]
        if self.workers is not None:
            parts.append(f"`--workers {self.workers}`")
        return ", ".join(parts) if parts else "defaults"


# predixy's `WorkerThreads`, and the --workers of the shardgate compared with it.
PEER_THREADS = 2

DIRECT = Target("direct", "direct")
TWEMPROXY = Target("twemproxy", "twemproxy")
SHARDGATE = Target("shardgate", "shardgate")
SHARDGATE_2W = Target("shardgate-2w", "shardgate", workers=PEER_THREADS)
PREDIXY = Target("predixy", "predixy")
PEERS = (DIRECT, TWEMPROXY, SHARDGATE, SHARDGATE_2W, PREDIXY)


@dataclass(frozen=True)
class Claim:
    """A target to meet: cpu(target) / cpu(baseline) <= max_ratio, per row."""

    text: str
    target: str
    baseline: str
    tests: tuple
    pipelines: tuple
    max_ratio: float


@dataclass(frozen=True)
class Scenario:
    key: str  # name on the command line (--scenarios)
    title: str  # heading in the report
    shards: int  # masters behind the pool, in config order
    pool: dict  # pool keys besides listen/servers, as in nutcracker.yml
    direct_comparable: bool  # is "direct to shard 0's master" an apples-to-apples peer?
    note: str = ""
    tests: tuple = ("set", "get", "mset")
    pipelines: tuple = (1, 16)
    targets: tuple = PEERS
    replicas: int = 0  # replicas per shard (--replicaof), listed under `replicas:` for shardgate
    report: str = "peers"  # "peers" or "variants" (see the module docstring)
    baseline: str = ""  # variants: CPU ratios are to this target
    commandstats: tuple = ()  # tests whose calls per node (INFO commandstats) are reported
    claims: tuple = ()
    # At least this many rounds unless --rounds or --quick says otherwise: the
    # claims look at differences of a few percent, and one invocation's CPU
    # per request moves by ~5% with how the 2 cores were shared.
    min_rounds: int = 0
    # Per shard, its weight in `servers:` (default 1 each). predixy has no
    # weights: a shard of weight w is listed as w groups (see deploy.py).
    weights: tuple = ()
    # Extra redis-server arguments (the connection tests need room for
    # 100,000 clients, from 127.0.0.x sources that protected mode refuses).
    redis_args: tuple = ()
    # The masters form a Redis Cluster (no replicas), each owning the slot
    # range shardgate's `distribution: slots` gives it (see deploy.py).
    cluster: bool = False

    def weight(self, shard: int) -> int:
        return self.weights[shard] if self.weights else 1

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)


BASE_POOL = {
    "hash": "fnv1a_64",
    "distribution": "ketama",
    "redis": "true",
    "timeout": 2000,
    "server_connections": 1,
    "auto_eject_hosts": "false",
}

# The 3-shard pool: one that predixy can reproduce key for key (see its note).
THREE_SHARD_POOL = {**BASE_POOL, "hash": "crc16", "distribution": "modula"}

READ_POLICIES = ("master", "prefer-replica", "any")

SCENARIOS = [
    Scenario(
        key="1shard",
        title="1 shard",
        shards=1,
        pool=BASE_POOL,
        direct_comparable=True,
        note="One redis-server behind each proxy: the proxy's own cost, "
        "compared with talking to that redis-server directly.",
    ),
    Scenario(
        key="3shards",
        title="3 shards",
        shards=3,
        pool=THREE_SHARD_POOL,
        weights=(2, 1, 1),
        direct_comparable=False,
        note="Three redis-servers, `hash: crc16`, `distribution: modula`, weights "
        "2:1:1 (shard0 owns half the keys). The proxies split MSET's 10 keys across "
        "the shards, so 'direct' (to one of the servers) is a reference only, not a "
        "peer. Why this distribution: it is the only one all three proxies share key "
        "for key. predixy shards only by `Hash crc16` (16-bit CRC16-XMODEM) modulo "
        "its group count; shardgate's and twemproxy's `crc16` is twemproxy's "
        "unmasked 32-bit accumulator, whose value modulo N equals the 16-bit CRC's "
        "only when N divides 65536; and shardgate's `distribution: slots` gives each "
        "node a contiguous range of slots, not `crc16 % N`. So the modulus is 4 "
        "(weights 2+1+1) and predixy lists shard0 as two groups (two connections "
        "per worker to it where the others open one). The placement check below "
        "routes sample keys through every proxy and finds each on the servers.",
    ),
    Scenario(
        key="reads",
        title="Reads over replicas (read policies)",
        shards=1,
        replicas=2,
        pool=BASE_POOL,
        direct_comparable=True,
        note="One shard: a master and two replicas (`--replicaof`, linked before "
        "any load), listed under `replicas:`. shardgate variants differ only in "
        "`read_policy` (balancing: the default round-robin); 'direct' is the "
        "master. What a read policy costs the proxy per GET, and where the GETs "
        "went (the `cmdstat_get` calls each node counted during the run).",
        tests=("get",),
        targets=(DIRECT,)
        + tuple(Target(f"sg-{p}", "shardgate", pool={"read_policy": p}) for p in READ_POLICIES),
        report="variants",
        baseline="sg-master",
        commandstats=("get",),
        min_rounds=7,
        claims=(
            Claim(
                "`read_policy: any` costs the proxy at most 5% more CPU per GET than "
                "`read_policy: master`",
                target="sg-any",
                baseline="sg-master",
                tests=("get",),
                pipelines=(1, 16),
                max_ratio=1.05,
            ),
        ),
    ),
    Scenario(
        key="metrics",
        title="Per-command metrics on vs off",
        shards=1,
        pool=BASE_POOL,
        direct_comparable=False,
        note="One redis-server; the same shardgate with its per-command metrics "
        "(the default) and with `--no-metrics`. The overhead is the extra proxy "
        "CPU per request with metrics on.",
        tests=("set", "get"),
        pipelines=(16, 1),
        targets=(
            Target("sg-metrics", "shardgate"),
            Target("sg-no-metrics", "shardgate", args=("--no-metrics",)),
        ),
        report="variants",
        baseline="sg-no-metrics",
        min_rounds=7,
        claims=(
            Claim(
                "per-command metrics cost at most 3% of the proxy's CPU per request at -P 16",
                target="sg-metrics",
                baseline="sg-no-metrics",
                tests=("set", "get"),
                pipelines=(16,),
                max_ratio=1.03,
            ),
        ),
    ),
]

# A Redis Cluster of 3 primaries, as a `cluster: true` pool and as a static
# `slots` pool over the same primaries (their slot ranges are the static
# pool's, so both send every key to the same node).
CLUSTER_POOL = {"redis": "true", "timeout": 2000, "server_connections": 1}

SCENARIOS.append(
    Scenario(
        key="cluster",
        title="Redis Cluster pool vs a static `slots` pool",
        shards=3,
        cluster=True,
        pool=CLUSTER_POOL,
        direct_comparable=False,
        note="Three redis-servers with `cluster-enabled yes` forming one Redis "
        "Cluster (no replicas; each owns the contiguous third of the slots that "
        "shardgate's `distribution: slots` gives it). **sg-cluster** reads the slot map "
        "from the cluster (`cluster: true`, and follows redirections); **sg-static** "
        "places the same keys on the same nodes by configuration. What the cluster pool "
        "costs per request in steady state (no redirection happens: checked before the "
        "load by writing sample keys through both, every reply `+OK`). SET and GET only "
        "(MSET's 10 keys span slots: a static pool splits per node, which a cluster node "
        "refuses).",
        tests=("set", "get"),
        targets=(
            Target("sg-static", "shardgate", pool={"distribution": "slots"}),
            Target("sg-cluster", "shardgate", pool={"cluster": "true"}),
        ),
        report="variants",
        baseline="sg-static",
        min_rounds=7,
        claims=(
            Claim(
                "a `cluster: true` pool costs at most 5% more CPU per request than a "
                "static `slots` pool over the same primaries",
                target="sg-cluster",
                baseline="sg-static",
                tests=("set", "get"),
                pipelines=(1, 16),
                max_ratio=1.05,
            ),
        ),
    )
)

# The connection tests (idle, active): fresh proxies over one
# redis-server, and that server directly.
MANY_CLIENTS = ("--maxclients", "120000", "--protected-mode", "no")
IDLE = Scenario(
    key="idle",
    title="idle connections",
    shards=1,
    pool=BASE_POOL,
    direct_comparable=True,
    targets=(DIRECT, TWEMPROXY, SHARDGATE),
    redis_args=MANY_CLIENTS,
)
ACTIVE = replace(IDLE, key="active", title="active connections")
