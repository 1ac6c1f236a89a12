"""redis-py's RedisCluster against proxies that present themselves as a
cluster (`cluster_proxies`), driven by tests/cluster_face.rs.

argv: the proxies' ports. Phase 1 writes and reads through every proxy
(the client spreads by slot), then prints "phase 1 done" and waits for a
line on stdin: the test has killed a proxy. Phase 2 runs every operation
until it succeeds (within a deadline each) and checks every value, then
checks the map a live proxy gives now leaves the dead one out.
"""
import sys
import time

from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError, TimeoutError, ClusterDownError, RedisClusterException

ports = [int(p) for p in sys.argv[1:]]
rc = RedisCluster(
    startup_nodes=[ClusterNode("127.0.0.1", ports[0])],
    decode_responses=True,
    socket_timeout=2,
    socket_connect_timeout=1,
)
nodes = sorted(node.port for node in rc.get_nodes())
assert nodes == sorted(ports), f"the client found {nodes}, not {sorted(ports)}"

N = 3000
for i in range(N):
    assert rc.set(f"face:{i}", str(i)) is True
for i in range(N):
    assert rc.get(f"face:{i}") == str(i), i
assert rc.mget_nonatomic([f"face:{i}" for i in range(100)]) == [str(i) for i in range(100)]
print("phase 1 done", flush=True)
sys.stdin.readline()

retries = 0
slowest = 0.0


def eventually(operation):
    """Runs `operation` until it succeeds: a killed proxy costs retries,
    never a wrong answer."""
    global retries, slowest
    started = time.monotonic()
    while True:
        try:
            result = operation()
            slowest = max(slowest, time.monotonic() - started)
            return result
        except (ConnectionError, TimeoutError, ClusterDownError, RedisClusterException) as error:
            retries += 1
            if time.monotonic() - started > 20:
                raise AssertionError(f"still failing after 20 s: {error!r}")
            time.sleep(0.05)


for i in range(N):
    assert eventually(lambda: rc.set(f"face:{i}", f"v{i}")) is True
for i in range(N):
    value = eventually(lambda: rc.get(f"face:{i}"))
    assert value == f"v{i}", (i, value)

alive = sorted(ports[:1] + ports[2:])
shown = sorted({node.port for node in rc.get_nodes() if node.server_type == "primary"})
slots = rc.get_node("127.0.0.1", ports[0]).redis_connection.execute_command("CLUSTER", "SLOTS")
served = sorted(int(entry[2][1]) for entry in slots)
assert served == alive, f"CLUSTER SLOTS serves {served}, not {alive}"
assert sum(int(entry[1]) - int(entry[0]) + 1 for entry in slots) == 16384
print(f"retries {retries}, slowest operation {slowest:.2f} s, client's primaries {shown}")
print("all cluster-face checks passed", flush=True)
