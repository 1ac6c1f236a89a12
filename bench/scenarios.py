"""What to benchmark: scenarios as data. Add a scenario here.

A scenario names its backends (how many redis-servers), the pool both
proxies read (twemproxy's nutcracker.yml keys; only `listen:` differs between
the two proxies), which targets to load, which redis-benchmark tests and
pipeline depths to run, and whether "direct to server 0" is a fair peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TARGETS = ("direct", "twemproxy", "shardgate")


@dataclass(frozen=True)
class Scenario:
    key: str  # name on the command line (--scenarios)
    title: str  # heading in the report
    shards: int  # redis-servers behind the pool, in config order
    pool: dict  # pool keys besides listen/servers, as in nutcracker.yml
    direct_comparable: bool  # is "direct to server 0" an apples-to-apples peer?
    note: str = ""
    tests: tuple = ("set", "get", "mset")
    pipelines: tuple = (1, 16)
    targets: tuple = TARGETS
    shardgate_args: tuple = ()  # extra command-line arguments for shardgate
    shardgate_pool: dict = field(default_factory=dict)  # extra pool keys, shardgate only


BASE_POOL = {
    "hash": "fnv1a_64",
    "distribution": "ketama",
    "redis": "true",
    "timeout": 2000,
    "server_connections": 1,
    "auto_eject_hosts": "false",
}

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
        pool=BASE_POOL,
        direct_comparable=False,
        note="Three redis-servers, ketama + fnv1a_64. The proxies split MSET's "
        "10 keys across the shards, so 'direct' (to one of the servers) is a "
        "reference only, not a peer.",
    ),
]

# The idle-connections test: fresh proxies over one redis-server.
IDLE = Scenario(
    key="idle",
    title="idle connections",
    shards=1,
    pool=BASE_POOL,
    direct_comparable=False,
    targets=("twemproxy", "shardgate"),
)
