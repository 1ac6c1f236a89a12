//! shardgate places every key on the server twemproxy places it on.
//!
//! One real `nutcracker` (twemproxy 0.5.0) and one shardgate run side by side
//! over the same redis-servers, each from one YAML file with a pool per
//! combination of the 12 twemproxy hashes x {ketama, modula} (plus two
//! `random` pools). A pool's definition is the same in both files; only
//! `listen:` differs. Pools vary the server count, weights, named and
//! unnamed servers, config order against twemproxy's sorted order, and
//! `hash_tag: "{}"`.
//!
//! Method, per pool: SET every key to "n" through nutcracker, then to "s"
//! through shardgate, then GET every key from every redis-server directly.
//! The proxies agree on a key iff exactly one server holds it, with "s",
//! and no server still holds "n". Keys are unique across the whole run, so
//! no FLUSHALL is needed. Keys are ASCII and raw bytes (many >= 0x80, which
//! twemproxy's signed `char` hashes differently), sent as RESP bulk strings.
//!
//! The run is random but reproducible: the seed is printed, and
//! `SHARDGATE_TEST_SEED=<n>` replays it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use test_support::ports::free_port;
use test_support::resp::Reply;
use test_support::{Nutcracker, RedisServer, RespClient, Shardgate};

const HASHES: [&str; 12] = [
    "one_at_a_time",
    "md5",
    "crc16",
    "crc32",
    "crc32a",
    "fnv1_64",
    "fnv1a_64",
    "fnv1_32",
    "fnv1a_32",
    "hsieh",
    "murmur",
    "jenkins",
];

/// redis-servers shared by every pool (a pool uses 2 to 4 of them).
const BACKENDS: usize = 4;
/// Keys checked per ketama/modula pool.
const KEYS_PER_POOL: usize = 1000;
/// Keys written through each proxy per random pool.
const RANDOM_KEYS: usize = 600;
/// Server names, in an order that twemproxy's sort (length, then bytes)
/// changes: b, alpha, mid-1, shard-zeta.
const NAMES: [&str; 4] = ["shard-zeta", "b", "alpha", "mid-1"];

/// One server line of a pool.
#[derive(Debug, Clone)]
struct Server {
    backend: usize,
    weight: u32,
    name: Option<String>,
}

#[derive(Debug, Clone)]
struct Pool {
    name: String,
    hash: &'static str,
    distribution: &'static str,
    hash_tag: bool,
    servers: Vec<Server>,
    nutcracker_port: u16,
    shardgate_port: u16,
}

impl Pool {
    /// The pool's YAML; `listen` is the only thing that differs between the
    /// two proxies.
    fn yaml(&self, listen: u16, backends: &[RedisServer]) -> String {
        let mut yaml = format!(
            "{}:\n  listen: 127.0.0.1:{listen}\n  hash: {}\n  distribution: {}\n  redis: true\n  timeout: 5000\n",
            self.name, self.hash, self.distribution
        );
        if self.hash_tag {
            yaml.push_str("  hash_tag: \"{}\"\n");
        }
        yaml.push_str("  servers:\n");
        for server in &self.servers {
            let addr = backends[server.backend].addr();
            match &server.name {
                Some(name) => writeln!(yaml, "    - {addr}:{} {name}", server.weight),
                None => writeln!(yaml, "    - {addr}:{}", server.weight),
            }
            .unwrap();
        }
        yaml
    }

    /// Whether the pool's key placement cannot spread keys: one server, or
    /// crc32 (15 bits) on a ketama ring of 32-bit points, where twemproxy
    /// puts every key on one server.
    fn single_owner(&self) -> bool {
        self.servers.len() == 1 || (self.hash == "crc32" && self.distribution == "ketama")
    }

    fn describe_backend(&self, backend: usize, backends: &[RedisServer]) -> String {
        match self.servers.iter().find(|s| s.backend == backend) {
            Some(s) => format!(
                "{} (weight {}, name {})",
                backends[backend].addr(),
                s.weight,
                s.name.as_deref().unwrap_or("-")
            ),
            None => format!("{} (NOT IN THIS POOL)", backends[backend].addr()),
        }
    }
}

/// The ketama/modula pools: every hash x both distributions, with varied
/// servers, weights, names, order and hash tags.
fn placement_pools(backends: &[RedisServer]) -> Vec<Pool> {
    let mut pools = Vec::new();
    for (h, hash) in HASHES.iter().enumerate() {
        for (d, distribution) in ["ketama", "modula"].into_iter().enumerate() {
            let count = 2 + (h + d) % 3;
            let start = (h * 3 + d) % BACKENDS;
            let mut chosen: Vec<usize> = (0..count).map(|i| (start + i) % BACKENDS).collect();
            // Config order: by port ascending or descending, so modula's list
            // (twemproxy sorts servers by name) is sometimes not config order.
            chosen.sort_by_key(|&b| backends[b].port());
            if h % 2 == 1 {
                chosen.reverse();
            }
            let weights: &[u32] = match (h + 2 * d) % 3 {
                0 => &[1, 1, 1, 1],
                1 => &[1, 2, 1, 2],
                _ => &[3, 1, 2, 1],
            };
            let named = (h / 2 + d) % 2 == 0;
            let servers = chosen
                .iter()
                .enumerate()
                .map(|(i, &backend)| Server {
                    backend,
                    weight: weights[i],
                    name: named.then(|| NAMES[i].to_string()),
                })
                .collect();
            pools.push(Pool {
                name: format!("p_{hash}_{distribution}"),
                hash,
                distribution,
                hash_tag: h % 3 == 2,
                servers,
                nutcracker_port: free_port(),
                shardgate_port: free_port(),
            });
        }
    }
    pools
}

/// Two random pools: three weighted, named servers, and a single server.
fn random_pools() -> Vec<Pool> {
    let three = (0..3)
        .map(|i| Server {
            backend: i,
            weight: [1, 2, 1][i],
            name: Some(NAMES[i].to_string()),
        })
        .collect();
    let one = vec![Server {
        backend: 3,
        weight: 1,
        name: None,
    }];
    [("r_three", three), ("r_one", one)]
        .into_iter()
        .map(|(name, servers)| Pool {
            name: name.to_string(),
            hash: "fnv1a_64",
            distribution: "random",
            hash_tag: false,
            servers,
            nutcracker_port: free_port(),
            shardgate_port: free_port(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Raw RESP with binary arguments.

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends every command on one connection (written from another thread, so
/// full socket buffers cannot deadlock) and returns the replies in order.
fn pipeline(port: u16, what: &str, commands: &[Vec<u8>]) -> Vec<Reply> {
    let mut client =
        RespClient::connect(port).unwrap_or_else(|e| panic!("connect to {what} on {port}: {e}"));
    let bytes = commands.concat();
    let mut writer = client.stream().try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || writer.write_all(&bytes));
    let replies = (0..commands.len())
        .map(|i| {
            client.read_reply().unwrap_or_else(|e| {
                panic!("{what} on {port}: reply {i} of {}: {e}", commands.len())
            })
        })
        .collect();
    sender
        .join()
        .expect("writer thread")
        .unwrap_or_else(|e| panic!("writing to {what} on {port}: {e}"));
    replies
}

fn set_all(port: u16, what: &str, keys: &[Vec<u8>], value: &[u8]) {
    let commands: Vec<Vec<u8>> = keys.iter().map(|k| encode(&[b"SET", k, value])).collect();
    for (key, reply) in keys.iter().zip(pipeline(port, what, &commands)) {
        assert_eq!(
            reply,
            Reply::Simple("OK".into()),
            "SET key {} through {what}",
            hex(key)
        );
    }
}

fn get_all(port: u16, what: &str, keys: &[Vec<u8>]) -> Vec<Reply> {
    let commands: Vec<Vec<u8>> = keys.iter().map(|k| encode(&[b"GET", k])).collect();
    pipeline(port, what, &commands)
}

/// For every key, the value each backend holds (`None` if absent).
fn scan_backends(backends: &[RedisServer], keys: &[Vec<u8>]) -> Vec<Vec<Option<Vec<u8>>>> {
    let per_backend: Vec<Vec<Reply>> = backends
        .iter()
        .map(|b| get_all(b.port(), &format!("redis-server {}", b.addr()), keys))
        .collect();
    (0..keys.len())
        .map(|i| {
            per_backend
                .iter()
                .zip(backends)
                .map(|(replies, b)| match &replies[i] {
                    Reply::Bulk(v) => Some(v.clone()),
                    Reply::Nil => None,
                    other => panic!("GET {} on {}: {other:?}", hex(&keys[i]), b.addr()),
                })
                .collect()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Keys.

/// Keys unique across the whole run.
struct KeyGen {
    rng: fastrand::Rng,
    seen: HashSet<Vec<u8>>,
}

impl KeyGen {
    /// Random bytes from `range`, of a length in `len`.
    fn bytes(
        &mut self,
        len: std::ops::Range<usize>,
        range: std::ops::RangeInclusive<u8>,
    ) -> Vec<u8> {
        let len = self.rng.usize(len);
        (0..len).map(|_| self.rng.u8(range.clone())).collect()
    }

    /// Random bytes other than `except`, of a length in `len`.
    fn bytes_except(&mut self, len: std::ops::Range<usize>, except: u8) -> Vec<u8> {
        let len = self.rng.usize(len);
        (0..len)
            .map(|_| loop {
                let b = self.rng.u8(..);
                if b != except {
                    break b;
                }
            })
            .collect()
    }

    fn plain(&mut self, pool: usize, i: usize) -> Vec<u8> {
        match i % 6 {
            0 => {
                let word: String = (0..self.rng.usize(0..20))
                    .map(|_| self.rng.alphanumeric())
                    .collect();
                format!("k{pool}:{i}:{word}").into_bytes()
            }
            1 => self.bytes(1..40, 0x20..=0x7e),
            2 => self.bytes(1..24, 0x80..=0xff),
            3 => self.bytes(1..40, 0..=0xff),
            4 => [b"u:".to_vec(), self.bytes(1..16, 0x80..=0xff)].concat(),
            _ => self.bytes(1..5, 0..=0xff),
        }
    }

    /// A key for a `hash_tag: "{}"` pool; `Some(tag)` when the key's
    /// hashed part is that tag.
    fn tagged(&mut self, tags: &[Vec<u8>], i: usize) -> (Vec<u8>, Option<Vec<u8>>) {
        let tag = tags[self.rng.usize(..tags.len())].clone();
        match i % 8 {
            0..=3 => {
                let key = [
                    self.bytes_except(0..10, b'{'),
                    b"{".to_vec(),
                    tag.clone(),
                    b"}".to_vec(),
                    self.bytes(0..12, 0..=0xff),
                ]
                .concat();
                (key, Some(tag))
            }
            // An empty tag: the whole key is hashed.
            4 => {
                let key = [
                    self.bytes_except(0..6, b'{'),
                    b"{}".to_vec(),
                    self.bytes(1..12, 0x80..=0xff),
                ]
                .concat();
                (key, None)
            }
            // An opening brace without a closing one: the whole key.
            5 => (
                [b"open{".to_vec(), self.bytes_except(1..16, b'}')].concat(),
                None,
            ),
            // A closing brace first, then a real tag.
            6 => {
                let key = [
                    b"a}b{".to_vec(),
                    tag.clone(),
                    b"}".to_vec(),
                    self.bytes(1..8, 0..=0xff),
                ]
                .concat();
                (key, Some(tag))
            }
            // Nested braces: the hashed part is "{" + inner.
            _ => (
                [
                    b"x{{".to_vec(),
                    self.bytes_except(1..8, b'}'),
                    b"}}".to_vec(),
                ]
                .concat(),
                None,
            ),
        }
    }

    /// Tags for one pool: ASCII and high bytes, never `}`, never empty.
    fn tags(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|t| {
                if t % 2 == 0 {
                    let len = self.rng.usize(1..10);
                    (0..len).map(|_| self.rng.alphanumeric() as u8).collect()
                } else {
                    self.bytes(1..10, 0x80..=0xff)
                }
            })
            .collect()
    }

    /// A fresh key: regenerates until it was never used in this run.
    fn unique<T>(&mut self, mut make: impl FnMut(&mut Self) -> (Vec<u8>, T)) -> (Vec<u8>, T) {
        for _ in 0..1000 {
            let (key, extra) = make(self);
            if self.seen.insert(key.clone()) {
                return (key, extra);
            }
        }
        panic!("the key generator keeps repeating itself");
    }
}

// ---------------------------------------------------------------------------

struct Fixture {
    backends: Vec<RedisServer>,
    pools: Vec<Pool>,
    _nutcracker: Nutcracker,
    _shardgate: Shardgate,
}

fn start(pools: Vec<Pool>, backends: Vec<RedisServer>) -> Fixture {
    let nutcracker_yaml: String = pools
        .iter()
        .map(|p| p.yaml(p.nutcracker_port, &backends))
        .collect();
    let shardgate_yaml: String = pools
        .iter()
        .map(|p| p.yaml(p.shardgate_port, &backends))
        .collect();
    let nutcracker_ports: Vec<u16> = pools.iter().map(|p| p.nutcracker_port).collect();
    let nutcracker = Nutcracker::start(&nutcracker_yaml, &nutcracker_ports);
    let mut builder = Shardgate::builder(common::BIN, &shardgate_yaml);
    for pool in &pools {
        builder = builder.wait_port(pool.shardgate_port);
    }
    let shardgate = builder.start();
    Fixture {
        backends,
        pools,
        _nutcracker: nutcracker,
        _shardgate: shardgate,
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("SHARDGATE_TEST_SEED") {
        Ok(s) => s.parse().expect("SHARDGATE_TEST_SEED must be a u64"),
        Err(_) => fastrand::u64(..),
    };
    eprintln!("seed {seed} (replay with SHARDGATE_TEST_SEED={seed})");
    seed
}

/// Every key of every ketama and modula pool lands on the same server
/// through shardgate as through nutcracker.
#[test]
fn every_key_lands_where_twemproxy_puts_it() {
    let began = Instant::now();
    let seed = seed();
    let mut keygen = KeyGen {
        rng: fastrand::Rng::with_seed(seed),
        seen: HashSet::new(),
    };
    let backends: Vec<RedisServer> = (0..BACKENDS).map(|_| RedisServer::start()).collect();
    let pools = placement_pools(&backends);
    let fixture = start(pools, backends);
    let backends = &fixture.backends;

    // shardgate's own view of each pool, only to print a key's hash.
    let shardgate_yaml: String = fixture
        .pools
        .iter()
        .map(|p| p.yaml(p.shardgate_port, backends))
        .collect();
    let parsed = shardgate::config::parse(&shardgate_yaml).expect("the test's YAML is valid");

    let mut mismatches: Vec<String> = Vec::new();
    let mut mismatched_pools: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems: Vec<String> = Vec::new();
    let mut checked = 0;
    for (p, pool) in fixture.pools.iter().enumerate() {
        let tags = keygen.tags(12);
        let (keys, key_tags): (Vec<Vec<u8>>, Vec<Option<Vec<u8>>>) = (0..KEYS_PER_POOL)
            .map(|i| {
                if pool.hash_tag && i % 2 == 0 {
                    keygen.unique(|g| g.tagged(&tags, i / 2))
                } else {
                    keygen.unique(|g| (g.plain(p, if pool.hash_tag { i / 2 } else { i }), None))
                }
            })
            .unzip();

        set_all(
            pool.nutcracker_port,
            &format!("nutcracker {}", pool.name),
            &keys,
            b"n",
        );
        set_all(
            pool.shardgate_port,
            &format!("shardgate {}", pool.name),
            &keys,
            b"s",
        );
        let held = scan_backends(backends, &keys);

        let hash_of = |key: &[u8]| {
            let config = parsed
                .pools
                .iter()
                .find(|c| c.name == pool.name)
                .expect("pool parsed");
            config.hash.hash(config.hash_tag.apply(key)) as u32
        };
        let mut owners: Vec<usize> = Vec::with_capacity(keys.len());
        for (key, values) in keys.iter().zip(&held) {
            let with = |v: &[u8]| -> Vec<usize> {
                (0..BACKENDS)
                    .filter(|&b| values[b].as_deref() == Some(v))
                    .collect()
            };
            let (n_on, s_on) = (with(b"n"), with(b"s"));
            let stray = values.iter().filter(|v| v.is_some()).count() - n_on.len() - s_on.len();
            checked += 1;
            // Where shardgate put the key (for the checks below).
            owners.push(if s_on.len() == 1 { s_on[0] } else { usize::MAX });
            if n_on.is_empty() && s_on.len() == 1 && stray == 0 {
                continue;
            }
            *mismatched_pools.entry(pool.name.clone()).or_default() += 1;
            let describe = |on: &[usize]| -> String {
                if on.is_empty() {
                    return "nowhere".into();
                }
                on.iter()
                    .map(|&b| pool.describe_backend(b, backends))
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            let nutcracker_on = if n_on.is_empty() { &s_on } else { &n_on };
            mismatches.push(format!(
                "pool {}: hash {} distribution {} hash_tag {} key {} (hash 0x{:08x}): \
                 nutcracker -> {}, shardgate -> {}{}",
                pool.name,
                pool.hash,
                pool.distribution,
                if pool.hash_tag { "{}" } else { "none" },
                hex(key),
                hash_of(key),
                describe(nutcracker_on),
                describe(&s_on),
                if stray > 0 {
                    format!(" ({stray} other value(s) found)")
                } else {
                    String::new()
                },
            ));
        }

        // Reading back through shardgate finds what it wrote.
        let replies = get_all(
            pool.shardgate_port,
            &format!("shardgate {}", pool.name),
            &keys,
        );
        for (key, reply) in keys.iter().zip(&replies) {
            if reply != &Reply::Bulk(b"s".to_vec()) {
                problems.push(format!(
                    "pool {}: GET {} through shardgate -> {reply:?}",
                    pool.name,
                    hex(key)
                ));
            }
        }

        // Keys sharing a tag share a server (the tags were really honoured).
        if pool.hash_tag {
            let mut by_tag: HashMap<&[u8], HashSet<usize>> = HashMap::new();
            for (tag, &owner) in key_tags.iter().zip(&owners) {
                if let (Some(tag), true) = (tag, owner != usize::MAX) {
                    by_tag.entry(tag).or_default().insert(owner);
                }
            }
            if by_tag.len() < 6 {
                problems.push(format!(
                    "pool {}: only {} tags exercised",
                    pool.name,
                    by_tag.len()
                ));
            }
            for (tag, on) in &by_tag {
                if on.len() != 1 {
                    problems.push(format!(
                        "pool {}: keys with tag {} on backends {on:?}",
                        pool.name,
                        hex(tag)
                    ));
                }
            }
        }

        // The comparison has power: keys spread over the pool (except where
        // twemproxy itself puts every key on one server).
        let used: HashSet<usize> = owners
            .iter()
            .copied()
            .filter(|&o| o != usize::MAX)
            .collect();
        if pool.single_owner() && used.len() > 1 {
            problems.push(format!(
                "pool {}: keys on backends {used:?}, expected one server",
                pool.name
            ));
        } else if !pool.single_owner() && used.len() < 2 {
            problems.push(format!(
                "pool {}: every key on backends {used:?}; the comparison would prove little",
                pool.name
            ));
        }
    }

    eprintln!(
        "{checked} keys checked over {} pools in {:?}",
        fixture.pools.len(),
        began.elapsed()
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} of {checked} keys placed differently from twemproxy; per pool: {:?}\n{}",
        mismatches.len(),
        mismatched_pools,
        mismatches
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problem(s):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `random` cannot be compared key by key: twemproxy sends each request to
/// any live server. Through both proxies, every key written lands on exactly
/// one server of the pool, servers are picked uniformly (weights ignored),
/// and a read finds the key about once per server count.
#[test]
fn random_pools_spread_every_write_over_the_pool() {
    let seed = seed();
    let mut keygen = KeyGen {
        rng: fastrand::Rng::with_seed(seed),
        seen: HashSet::new(),
    };
    let backends: Vec<RedisServer> = (0..BACKENDS).map(|_| RedisServer::start()).collect();
    let fixture = start(random_pools(), backends);
    let backends = &fixture.backends;

    for pool in &fixture.pools {
        for (proxy, port) in [
            ("nutcracker", pool.nutcracker_port),
            ("shardgate", pool.shardgate_port),
        ] {
            let what = format!("{proxy} {}", pool.name);
            let keys: Vec<Vec<u8>> = (0..RANDOM_KEYS)
                .map(|i| keygen.unique(|g| (g.plain(i % 7, i), ())).0)
                .collect();
            let value = proxy.as_bytes();
            set_all(port, &what, &keys, value);

            let held = scan_backends(backends, &keys);
            let mut per_backend = [0usize; BACKENDS];
            for (key, values) in keys.iter().zip(&held) {
                let on: Vec<usize> = (0..BACKENDS).filter(|&b| values[b].is_some()).collect();
                assert!(
                    on.len() == 1 && values[on[0]].as_deref() == Some(value),
                    "{what}: key {} held as {values:?}",
                    hex(key)
                );
                assert!(
                    pool.servers.iter().any(|s| s.backend == on[0]),
                    "{what}: key {} on {}",
                    hex(key),
                    pool.describe_backend(on[0], backends)
                );
                per_backend[on[0]] += 1;
            }
            // Uniform over the servers: with n servers each gets RANDOM_KEYS/n,
            // give or take ~6 standard deviations; a weighted pick (1,2,1)
            // would put ~300 of 600 on one server and fail.
            let n = pool.servers.len();
            let expected = RANDOM_KEYS / n;
            let slack = if n == 1 { 0 } else { 70 };
            for server in &pool.servers {
                let got = per_backend[server.backend];
                assert!(
                    got.abs_diff(expected) <= slack,
                    "{what}: {got} of {RANDOM_KEYS} keys on {}, expected {expected} +- {slack} ({per_backend:?})",
                    pool.describe_backend(server.backend, backends)
                );
            }

            // Reads go to any server too: each finds the key or nothing.
            let replies = get_all(port, &what, &keys);
            let mut hits = 0usize;
            for (key, reply) in keys.iter().zip(&replies) {
                match reply {
                    Reply::Bulk(v) if v.as_slice() == value => hits += 1,
                    Reply::Nil if n > 1 => {}
                    other => panic!("{what}: GET {} -> {other:?}", hex(key)),
                }
            }
            let slack = if n == 1 { 0 } else { 100 };
            assert!(
                hits.abs_diff(expected) <= slack,
                "{what}: {hits} of {RANDOM_KEYS} reads found their key, expected {expected} +- {slack}"
            );
        }
    }
}
