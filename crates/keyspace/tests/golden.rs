//! Golden vectors recorded from the real programs by `scripts/golden-keyspace.py`:
//! nutcracker 0.5.0 placements, libstdc++'s `std::hash<std::string>`, and Redis's
//! `CLUSTER KEYSLOT`. Every recorded key must agree.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use keyspace::{
    cluster_slot, ring_name, Distribution, DistributionKind, HashFunction, HashTag, Node,
};
use std::fs;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden_files(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    let pairs = s.as_bytes().chunks_exact(2);
    assert!(pairs.remainder().is_empty(), "odd hex {s:?}");
    pairs
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Data lines (comments dropped), split on single spaces.
fn records(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .expect("readable golden file")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

struct Pool {
    kind: DistributionKind,
    hash: HashFunction,
    tag: HashTag,
    nodes: Vec<Node>,
    keys: Vec<(Vec<u8>, usize)>,
}

fn parse_pool(path: &Path) -> Pool {
    let mut pool = Pool {
        kind: DistributionKind::Ketama,
        hash: HashFunction::Fnv1a_64,
        tag: HashTag::None,
        nodes: Vec::new(),
        keys: Vec::new(),
    };
    for rec in records(path) {
        let f: Vec<&str> = rec.iter().map(String::as_str).collect();
        match f.as_slice() {
            ["distribution", d] => pool.kind = DistributionKind::from_name(d).expect("dist"),
            ["hash", h] => pool.hash = HashFunction::from_name(h).expect("hash"),
            ["hash_tag", "-"] => pool.tag = HashTag::None,
            ["hash_tag", t] => pool.tag = HashTag::from_config(t).expect("tag"),
            ["server", host, port, weight, name, live] => {
                let name = (*name != "-").then_some(*name);
                pool.nodes.push(Node {
                    name: ring_name(host, port.parse().expect("port"), name),
                    weight: weight.parse().expect("weight"),
                    live: *live == "live",
                });
            }
            ["key", hex, index] => pool.keys.push((unhex(hex), index.parse().expect("index"))),
            other => panic!("{}: bad line {other:?}", path.display()),
        }
    }
    pool
}

#[test]
fn twemproxy_placement_matches_nutcracker() {
    let files = golden_files("twemproxy-");
    assert!(
        files.len() >= 24,
        "expected 24+ pools, found {}",
        files.len()
    );
    let mut seen = std::collections::HashSet::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in &files {
        let pool = parse_pool(path);
        seen.insert((pool.kind, pool.hash));
        assert!(pool.keys.len() >= 250, "{}: too few keys", path.display());
        let dist = Distribution::build(pool.kind, pool.hash, &pool.nodes);
        let wrong: Vec<_> = pool
            .keys
            .iter()
            .filter(|(key, want)| dist.locate(pool.tag.apply(key)) != Some(*want))
            .collect();
        checked += pool.keys.len();
        if let Some((key, want)) = wrong.first() {
            failures.push(format!(
                "{}: {} of {} keys differ, e.g. {:?} -> {:?}, nutcracker {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                wrong.len(),
                pool.keys.len(),
                String::from_utf8_lossy(key),
                dist.locate(pool.tag.apply(key)),
                want
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every twemproxy hash with both hashing distributions.
    for hash in HashFunction::ALL.into_iter().filter(|h| h.is_twemproxy()) {
        for kind in [DistributionKind::Ketama, DistributionKind::Modula] {
            assert!(
                seen.contains(&(kind, hash)),
                "no golden pool for {kind} {hash}"
            );
        }
    }
    assert!(checked > 7000, "only {checked} keys checked");
}

#[test]
fn murmur2_64_matches_libstdcxx_std_hash() {
    let recs = records(&golden_dir().join("murmur2_64.txt"));
    assert!(recs.len() >= 300);
    for rec in recs {
        let key = unhex(&rec[0]);
        let want: u64 = rec[1].parse().expect("decimal hash");
        assert_eq!(
            HashFunction::Murmur2_64.hash(&key),
            want,
            "key {:?}",
            rec[0]
        );
    }
}

#[test]
fn cluster_slot_matches_cluster_keyslot() {
    let recs = records(&golden_dir().join("cluster_slot.txt"));
    assert!(recs.len() >= 500);
    for rec in recs {
        let key = unhex(&rec[0]);
        let want: u16 = rec[1].parse().expect("slot");
        assert_eq!(cluster_slot(&key), want, "key {:?}", rec[0]);
    }
}
