#!/usr/bin/env python3
"""Record golden vectors for crates/keyspace from the real programs.

- twemproxy placement: for every hash (12) x distribution (ketama, modula), plus pools
  with an ejected server, start redis-servers and one nutcracker with all pools, SET keys
  through each pool and ask every redis-server which keys it holds.
- MurmurHash2-64: libstdc++'s std::hash<std::string>, from a tiny C++ program (g++).
- Redis Cluster slots: CLUSTER KEYSLOT on a cluster-enabled redis-server.

Needs nutcracker, redis-server and g++ on PATH, and 127.0.0.2 / 127.0.0.3 port 11211
free (twemproxy names a port-11211 server by its host alone). Deterministic keys (fixed
seed); ports differ per run, and are recorded in the files.

Usage: scripts/golden-keyspace.py [OUT_DIR]   (default crates/keyspace/tests/golden)
"""

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HASHES = [
    "one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64", "fnv1a_64",
    "fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins",
]
DISTS = ["ketama", "modula"]
TAGS = ["", "{}", "ab"]
KEYS_PER_POOL = 300
NORMAL_SERVERS = 5
MEMCACHED_HOSTS = ["127.0.0.2", "127.0.0.3"]


# ---------------------------------------------------------------- RESP over a socket

def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad reply line %r" % line)

    def cmd(self, *args):
        self.sock.sendall(encode(*args))
        return self.read()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(encode(*c) for c in commands))
        return [self.read() for _ in commands]


def wait_port(host, port, proc=None, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process for %s:%d exited" % (host, port))
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("%s:%d never listened" % (host, port))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="golden-keyspace-")
        self.procs = []

    def redis(self, host, port, *extra):
        d = os.path.join(self.dir, "%s-%d" % (host, port))
        os.makedirs(d)
        p = subprocess.Popen(
            ["redis-server", "--bind", host, "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", d, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(host, port, p)
        return p

    def nutcracker(self, yaml_text, ports):
        conf = os.path.join(self.dir, "nutcracker.yml")
        with open(conf, "w") as f:
            f.write(yaml_text)
        subprocess.run(["nutcracker", "-t", "-c", conf], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = subprocess.Popen(
            ["nutcracker", "-c", conf, "-o", os.path.join(self.dir, "nutcracker.log"),
             "-s", str(free_port())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        for port in ports:
            wait_port("127.0.0.1", port, p)
        return p

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- keys

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-."


def make_keys(rng, n):
    keys = {b""}  # twemproxy hashes the empty key to 0
    # Short keys hit every tail length of the 4/8/12-byte block hashes.
    for length in range(1, 13):
        keys.add(bytes(rng.randrange(256) for _ in range(length)))
        keys.add("".join(rng.choice(ALNUM) for _ in range(length)).encode())
    for b in (0x7f, 0x80, 0xc3, 0xff):
        keys.add(bytes([b]))
        keys.add(b"k" + bytes([b]) * 3)
    # Hash tags, both styles, including empty and unclosed ones.
    for _ in range(20):
        ident = "".join(rng.choice("0123456789xyz") for _ in range(rng.randrange(1, 8)))
        keys.add(("user:{%s}:name" % ident).encode())
        keys.add(("zzz%s%sb:x" % ("a", ident)).encode())
    keys.update([b"{}x", b"x{}", b"{x", b"x}", b"foo{}{bar}", b"foo{{bar}}zap",
                 b"ab", b"abx", b"xab", b"axb", b"a", b"b", b"{\xff\x80}rest",
                 b"a\xfe\xffb-bin"])
    while len(keys) < n * 2 // 3:
        length = rng.randrange(1, 40)
        keys.add(("key:" + "".join(rng.choice(ALNUM) for _ in range(length))).encode())
    while len(keys) < n:
        length = rng.randrange(1, 24)
        keys.add(bytes(rng.randrange(256) for _ in range(length)))
    return sorted(keys)


# ---------------------------------------------------------------- pools

def server_line(host, port, weight, name):
    line = "%s:%d:%d" % (host, port, weight)
    return line + (" " + name if name else "")


def flavors(normal, memcached):
    """Server lists: (host, port, weight, name-or-None, live)."""
    p = normal
    return [
        [("127.0.0.1", p[0], 1, None, True), ("127.0.0.1", p[1], 1, None, True),
         ("127.0.0.1", p[2], 1, None, True)],
        [("127.0.0.1", p[0], 1, "alpha", True), ("127.0.0.1", p[1], 1, "beta", True),
         ("127.0.0.1", p[2], 1, "gamma", True), ("127.0.0.1", p[3], 1, "delta", True)],
        [("127.0.0.1", p[0], 1, None, True), ("127.0.0.1", p[1], 2, None, True),
         ("127.0.0.1", p[2], 3, None, True)],
        [("127.0.0.1", p[0], 1, "redis-a", True), ("127.0.0.1", p[1], 2, "redis-b", True),
         ("127.0.0.1", p[2], 3, "redis-c", True), ("127.0.0.1", p[3], 1, "redis-d", True),
         ("127.0.0.1", p[4], 2, "redis-e", True)],
        [(memcached[0], 11211, 1, None, True), (memcached[1], 11211, 1, None, True),
         ("127.0.0.1", p[0], 1, None, True), ("127.0.0.1", p[1], 2, "named", True)],
    ]


def build_pools(normal, memcached, dead_port):
    pools = []
    fl = flavors(normal, memcached)
    for hi, h in enumerate(HASHES):
        for di, d in enumerate(DISTS):
            pools.append({
                "name": "%s_%s" % (d, h), "hash": h, "dist": d,
                "tag": TAGS[(hi + di) % 3],
                "servers": fl[(hi * 2 + di) % len(fl)], "eject": False,
            })
    # Ejected servers: only live ones count, and the ring is rebuilt without them.
    p = normal
    for d, h in (("ketama", "fnv1a_64"), ("modula", "md5"), ("ketama", "murmur")):
        pools.append({
            "name": "ejected_%s_%s" % (d, h), "hash": h, "dist": d, "tag": "",
            "servers": [("127.0.0.1", p[0], 1, None, True),
                        ("127.0.0.1", dead_port, 1, None, False),
                        ("127.0.0.1", p[1], 2, None, True),
                        ("127.0.0.1", p[2], 1, "third", True)],
            "eject": True,
        })
    return pools


def nutcracker_yaml(pools):
    out = []
    for pool in pools:
        out.append("%s:\n" % pool["name"])
        out.append("  listen: 127.0.0.1:%d\n" % pool["listen"])
        out.append("  hash: %s\n" % pool["hash"])
        out.append("  distribution: %s\n" % pool["dist"])
        if pool["tag"]:
            out.append('  hash_tag: "%s"\n' % pool["tag"])
        out.append("  redis: true\n")
        out.append("  timeout: 2000\n")
        if pool["eject"]:
            out.append("  auto_eject_hosts: true\n")
            out.append("  server_retry_timeout: 600000\n")
            out.append("  server_failure_limit: 1\n")
        else:
            out.append("  auto_eject_hosts: false\n")
        out.append("  servers:\n")
        for host, port, weight, name, _ in pool["servers"]:
            out.append("   - %s\n" % server_line(host, port, weight, name))
    return "".join(out)


def set_all(pool, keys):
    """SET every key through the pool; the keys whose reply is not +OK."""
    proxy = Conn("127.0.0.1", pool["listen"])
    try:
        replies = proxy.pipeline([("SET", k, "v") for k in keys])
    finally:
        proxy.close()
    return [k for k, r in zip(keys, replies) if r != "OK"]


def record_pool(pool, keys, direct):
    """SET every key through the pool, then find each key on exactly one server."""
    if pool["eject"]:
        # The first requests to the dead server fail and eject it; keys placed before
        # that went by the old ring, so wait until a full round succeeds, then start over.
        for _ in range(50):
            if not set_all(pool, keys):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("pool %s: dead server never ejected" % pool["name"])
    for conn in direct.values():
        conn.cmd("FLUSHALL")
    failed = set_all(pool, keys)
    if failed:
        raise RuntimeError("pool %s: SET failed for %r" % (pool["name"], failed[0]))
    owner = {}
    for index, (host, port, _, _, live) in enumerate(pool["servers"]):
        if not live:
            continue
        for k in direct[(host, port)].cmd("KEYS", "*"):
            if k in owner:
                raise RuntimeError("key %r on two servers" % k)
            owner[k] = index
    missing = [k for k in keys if k not in owner]
    if missing:
        raise RuntimeError("pool %s: %d keys not found, e.g. %r" % (pool["name"], len(missing), missing[0]))
    return owner


def write_pool(out_dir, number, pool, keys, owner):
    path = os.path.join(out_dir, "twemproxy-%02d-%s.txt" % (number, pool["name"]))
    with open(path, "w") as f:
        f.write("# nutcracker 0.5.0 placement, recorded by scripts/golden-keyspace.py\n")
        f.write("distribution %s\n" % pool["dist"])
        f.write("hash %s\n" % pool["hash"])
        f.write("hash_tag %s\n" % (pool["tag"] or "-"))
        for host, port, weight, name, live in pool["servers"]:
            f.write("server %s %d %d %s %s\n" % (host, port, weight, name or "-",
                                                 "live" if live else "dead"))
        for k in keys:
            f.write("key %s %d\n" % (k.hex() or "-", owner[k]))


def record_twemproxy(procs, out_dir):
    normal = [free_port() for _ in range(NORMAL_SERVERS)]
    direct = {}
    for port in normal:
        procs.redis("127.0.0.1", port)
        direct[("127.0.0.1", port)] = Conn("127.0.0.1", port)
    for host in MEMCACHED_HOSTS:
        procs.redis(host, 11211)
        direct[(host, 11211)] = Conn(host, 11211)
    dead_port = free_port()  # nothing listens there
    pools = build_pools(normal, MEMCACHED_HOSTS, dead_port)
    for pool in pools:
        pool["listen"] = free_port()
    procs.nutcracker(nutcracker_yaml(pools), [p["listen"] for p in pools])
    rng = random.Random(20261122)
    for number, pool in enumerate(pools):
        keys = make_keys(rng, KEYS_PER_POOL)
        owner = record_pool(pool, keys, direct)
        write_pool(out_dir, number, pool, keys, owner)
        print("pool %-24s %d keys" % (pool["name"], len(keys)))


# ---------------------------------------------------------------- std::hash, KEYSLOT

STD_HASH_CPP = r"""
#include <functional>
#include <iostream>
#include <string>
int main() {
    std::string hex;
    while (std::cin >> hex) {
        std::string key;
        if (hex != "-")
            for (size_t i = 0; i < hex.size(); i += 2)
                key.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
        std::cout << hex << ' ' << std::hash<std::string>{}(key) << '\n';
    }
}
"""


def record_std_hash(procs, out_dir):
    src = os.path.join(procs.dir, "std_hash.cpp")
    exe = os.path.join(procs.dir, "std_hash")
    with open(src, "w") as f:
        f.write(STD_HASH_CPP)
    subprocess.run(["g++", "-O2", "-o", exe, src], check=True)
    keys = make_keys(random.Random(64), 400)
    out = subprocess.run([exe], input="".join((k.hex() or "-") + "\n" for k in keys),
                         capture_output=True, text=True, check=True).stdout
    version = subprocess.run(["g++", "-dumpfullversion"], capture_output=True,
                             text=True).stdout.strip()
    with open(os.path.join(out_dir, "murmur2_64.txt"), "w") as f:
        f.write("# libstdc++ std::hash<std::string> (g++ %s, x86-64): hexkey decimal\n" % version)
        f.write(out)
    print("std::hash %d keys" % len(keys))


def record_keyslot(procs, out_dir):
    port = free_port()
    procs.redis("127.0.0.1", port, "--cluster-enabled", "yes", "--cluster-config-file",
                os.path.join(procs.dir, "nodes-%d.conf" % port))
    conn = Conn("127.0.0.1", port)
    keys = make_keys(random.Random(16384), 600)
    replies = conn.pipeline([("CLUSTER", "KEYSLOT", k) for k in keys])
    conn.close()
    with open(os.path.join(out_dir, "cluster_slot.txt"), "w") as f:
        f.write("# redis-server %s CLUSTER KEYSLOT: hexkey slot\n" % redis_version())
        for k, slot in zip(keys, replies):
            if not isinstance(slot, int):
                raise RuntimeError("KEYSLOT %r: %r" % (k, slot))
            f.write("%s %d\n" % (k.hex() or "-", slot))
    print("keyslot %d keys" % len(keys))


def redis_version():
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return out.split("v=")[1].split()[0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "crates", "keyspace", "tests", "golden")
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(out_dir):
        if name.endswith(".txt"):
            os.remove(os.path.join(out_dir, name))
    procs = Procs()
    try:
        record_twemproxy(procs, out_dir)
        record_std_hash(procs, out_dir)
        record_keyslot(procs, out_dir)
    finally:
        procs.close()


if __name__ == "__main__":
    main()
