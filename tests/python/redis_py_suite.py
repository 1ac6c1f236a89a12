#!/usr/bin/env python3
"""redis-py (from PyPI) against shardgate: a real client library's own
behaviour through a 3-shard pool. Run by crates/shardgate-bin/tests/redis_py.rs
with the proxy's ports; exits non-zero with the failing check's name.

usage: redis_py_suite.py DATA_PORT AUTH_PORT
"""

import sys
import threading
import time

import redis


def check(name, condition, detail=""):
    if not condition:
        print(f"FAILED: {name} {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {name}")


def keys_on_different_shards(r, prefix, count):
    """Names the proxy routes to different shards (CROSSSLOT tells)."""
    def same_shard(a, b):
        try:
            r.execute_command("MSETNX", a, "1", b, "1")
            r.delete(a, b)
            return True
        except redis.exceptions.ClusterCrossSlotError:
            # redis-py knows the proxy's CROSSSLOT: it is Redis Cluster's.
            return False

    found = [f"{prefix}0"]
    for i in range(1, 500):
        name = f"{prefix}{i}"
        if not any(same_shard(other, name) for other in found):
            found.append(name)
            if len(found) == count:
                return found
    raise SystemExit(f"FAILED: could not find {count} keys on different shards")


def main():
    port, auth_port = int(sys.argv[1]), int(sys.argv[2])
    r = redis.Redis(port=port, decode_responses=True)
    check("ping", r.ping() is True)

    # Pipelines, and multi-key commands split across shards.
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"k{i}", i)
    pipe.execute()
    check("mget across shards", r.mget([f"k{i}" for i in range(200)]) == [str(i) for i in range(200)])
    check("delete across shards", r.delete(*[f"k{i}" for i in range(200)]) == 200)

    # Transactions with a WATCH conflict (redis-py retries on WatchError).
    r.set("{acct}balance", 100)
    attempts = []

    def spend(pipe):
        attempts.append(1)
        balance = int(pipe.get("{acct}balance"))
        if len(attempts) == 1:
            # Another client changes the watched key before EXEC.
            redis.Redis(port=port).incrby("{acct}balance", 50)
        pipe.multi()
        pipe.set("{acct}balance", balance - 30)

    r.transaction(spend, "{acct}balance")
    check("watch conflict retried", len(attempts) == 2, attempts)
    check("transaction result", r.get("{acct}balance") == "120")

    # A blocking pop woken by another client's push.
    def push_later():
        time.sleep(0.2)
        redis.Redis(port=port).rpush("queue", "job")

    threading.Thread(target=push_later).start()
    started = time.time()
    check("blpop woken", r.blpop("queue", timeout=5) == ("queue", "job"))
    check("blpop waited for the push", time.time() - started >= 0.15)
    check("blpop timeout", r.blpop("nothing", timeout=1) is None)

    # Pattern subscriptions receive from every shard.
    channels = keys_on_different_shards(r, "chan.", 3)
    pubsub = r.pubsub()
    pubsub.psubscribe("chan.*")
    check("psubscribe confirmation", pubsub.get_message(timeout=2)["type"] == "psubscribe")
    for channel in channels:
        r.publish(channel, f"to {channel}")
    received = set()
    deadline = time.time() + 5
    while len(received) < 3 and time.time() < deadline:
        message = pubsub.get_message(timeout=1)
        if message and message["type"] == "pmessage":
            received.add(message["channel"])
    check("pmessage from every shard", received == set(channels), received)
    pubsub.close()

    # SELECT isolation.
    db3 = redis.Redis(port=port, db=3, decode_responses=True)
    db3.set("isolated", "db3")
    check("select isolation", r.get("isolated") is None and db3.get("isolated") == "db3")

    # CLIENT LIST shows the proxy's clients.
    r.client_setname("suite")
    names = [c.get("name") for c in r.client_list()]
    check("client list", "suite" in names, names)

    # RESP3.
    r3 = redis.Redis(port=port, protocol=3, decode_responses=True)
    r3.hset("h", mapping={"a": "1"})
    check("resp3 map", r3.hgetall("h") == {"a": "1"})

    # A user denied a category, on the pool with users.
    reader = redis.Redis(port=auth_port, username="reader", password="r", decode_responses=True)
    check("reader may read", reader.get("anything") is None)
    try:
        reader.set("x", "1")
        check("reader denied writes", False)
    except redis.exceptions.NoPermissionError as e:
        check("reader denied writes", "no permissions to run the 'set' command" in str(e), e)
    try:
        redis.Redis(port=auth_port, username="reader", password="wrong").ping()
        check("wrong password refused", False)
    except redis.exceptions.AuthenticationError:
        check("wrong password refused", True)
    print("all redis-py checks passed")


if __name__ == "__main__":
    main()
