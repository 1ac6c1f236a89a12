//! Distribution properties: balance, minimal movement, and that `locate` always answers
//! with a live node. Keys come from a fixed-seed generator, so the measured figures (and
//! so the assertions) are the same on every run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use keyspace::{cluster_slot, Distribution, DistributionKind, HashFunction, HashTag, Node};
use proptest::prelude::*;

const KEYS: usize = 100_000;

fn keys(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| {
            let len = rng.usize(4..24);
            (0..len).map(|_| rng.u8(..)).collect()
        })
        .collect()
}

fn nodes(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| Node::new(format!("10.0.0.{}:6379", i + 1), 1))
        .collect()
}

/// The pool hash each kind is used with in practice.
fn hash_for(kind: DistributionKind) -> HashFunction {
    match kind {
        DistributionKind::Maglev => HashFunction::Murmur2_64,
        _ => HashFunction::Fnv1a_64,
    }
}

/// Largest relative deviation of any node's share from 1/n.
fn worst_deviation(dist: &Distribution, n: usize, keys: &[Vec<u8>]) -> f64 {
    let mut counts = vec![0usize; n];
    for k in keys {
        counts[dist.locate(k).expect("live node")] += 1;
    }
    let fair = keys.len() as f64 / n as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - fair).abs() / fair)
        .fold(0.0, f64::max)
}

#[test]
fn equal_weights_balance() {
    // Tolerances, as the largest relative deviation of any node from 1/N over 100k keys:
    // modula, maglev and slots split the key space evenly (65537 maglev entries, 16384
    // slots), so only sampling noise (~1% at N=8) remains: 5%. Ketama's 160 random points
    // per server give each server's share a ~8% standard deviation: 25%.
    let keys = keys(1, KEYS);
    for n in [3, 5, 8] {
        let pool = nodes(n);
        for (kind, tolerance) in [
            (DistributionKind::Modula, 0.05),
            (DistributionKind::Maglev, 0.05),
            (DistributionKind::Slots, 0.05),
            (DistributionKind::Ketama, 0.25),
            (DistributionKind::Random, 0.05),
        ] {
            let dist = Distribution::build(kind, hash_for(kind), &pool);
            let worst = worst_deviation(&dist, n, &keys);
            eprintln!(
                "balance {kind} n={n}: worst deviation {:.1}%",
                worst * 100.0
            );
            assert!(
                worst < tolerance,
                "{kind} n={n}: worst deviation {worst:.3}"
            );
        }
    }
}

#[test]
fn weights_are_honoured() {
    // Weights 1,2,3: shares 1/6, 2/6, 3/6 within 10% (relative) for the weighted kinds.
    let keys = keys(2, KEYS);
    let pool = [
        Node::new("a:1", 1),
        Node::new("b:1", 2),
        Node::new("c:1", 3),
    ];
    for kind in [
        DistributionKind::Ketama,
        DistributionKind::Modula,
        DistributionKind::Maglev,
    ] {
        let dist = Distribution::build(kind, hash_for(kind), &pool);
        let mut counts = [0usize; 3];
        for k in &keys {
            counts[dist.locate(k).expect("live")] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let want = KEYS as f64 * (i + 1) as f64 / 6.0;
            let dev = (c as f64 - want).abs() / want;
            assert!(dev < 0.10, "{kind}: node {i} got {c}, want ~{want:.0}");
        }
    }
}

/// Fraction of keys whose owner (by name) differs between two builds.
fn moved(
    before: &Distribution,
    bn: &[Node],
    after: &Distribution,
    an: &[Node],
    keys: &[Vec<u8>],
) -> (f64, usize) {
    let mut moved = 0;
    let mut to_new = 0;
    let new_name = &an[an.len() - 1].name;
    for k in keys {
        let b = &bn[before.locate(k).expect("live")].name;
        let a = &an[after.locate(k).expect("live")].name;
        if a != b {
            moved += 1;
            if a == new_name {
                to_new += 1;
            }
        }
    }
    (moved as f64 / keys.len() as f64, moved - to_new)
}

#[test]
fn adding_a_server_moves_about_one_over_n_plus_one() {
    // Adding server n+1 should move ~1/(n+1) of the keys. Ketama moves keys only to the
    // new server, within +/-35% of 1/(n+1) (its point variance). Maglev moves within
    // +/-15% of 1/(n+1), and a little extra churn between old servers (<= 2% of keys).
    let keys = keys(3, KEYS);
    for n in [3, 5, 9] {
        let before_nodes = nodes(n);
        let after_nodes = nodes(n + 1);
        let ideal = 1.0 / (n + 1) as f64;
        for (kind, tolerance, max_churn) in [
            (DistributionKind::Ketama, 0.35, 0.0),
            (DistributionKind::Maglev, 0.15, 0.02),
        ] {
            let before = Distribution::build(kind, hash_for(kind), &before_nodes);
            let after = Distribution::build(kind, hash_for(kind), &after_nodes);
            let (fraction, between_old) =
                moved(&before, &before_nodes, &after, &after_nodes, &keys);
            eprintln!(
                "movement {kind} {n}->{}: {:.2}% moved (ideal {:.2}%), {between_old} between old",
                n + 1,
                fraction * 100.0,
                ideal * 100.0
            );
            assert!(
                (fraction - ideal).abs() / ideal < tolerance,
                "{kind} {n}->{}: moved {fraction:.3}, ideal {ideal:.3}",
                n + 1
            );
            let churn = between_old as f64 / keys.len() as f64;
            assert!(
                churn <= max_churn,
                "{kind} {n}->{}: churn {churn:.4}",
                n + 1
            );
        }
    }
}

#[test]
fn a_dead_server_only_loses_its_own_keys_on_ketama() {
    let keys = keys(4, 20_000);
    let all = nodes(5);
    let mut one_dead = all.clone();
    one_dead[2].live = false;
    let before = Distribution::build(DistributionKind::Ketama, HashFunction::Md5, &all);
    let after = Distribution::build(DistributionKind::Ketama, HashFunction::Md5, &one_dead);
    for k in &keys {
        let (b, a) = (before.locate(k).unwrap(), after.locate(k).unwrap());
        assert_ne!(a, 2);
        if b != 2 {
            assert_eq!(a, b, "a key of a live server moved");
        }
    }
}

#[test]
fn single_and_empty_pools() {
    for kind in DistributionKind::ALL {
        let one = [Node::new("only", 3)];
        let d = Distribution::build(kind, HashFunction::Fnv1a_64, &one);
        for k in keys(5, 100) {
            assert_eq!(d.locate(&k), Some(0), "{kind}");
        }
        assert_eq!(d.locate(b""), Some(0), "{kind}");
        let dead = [Node {
            live: false,
            ..Node::new("only", 1)
        }];
        let d = Distribution::build(kind, HashFunction::Fnv1a_64, &dead);
        assert_eq!(d.locate(b"k"), None, "{kind}");
        assert_eq!(d.live_count(), 0);
        assert_eq!(
            Distribution::build(kind, HashFunction::Md5, &[]).locate(b"k"),
            None
        );
    }
}

#[test]
fn slots_agree_with_cluster_slot() {
    let pool = nodes(3);
    let d = Distribution::build(DistributionKind::Slots, HashFunction::Md5, &pool);
    for k in keys(6, 5_000) {
        let slot = cluster_slot(&k);
        assert_eq!(d.locate(HashTag::Cluster.apply(&k)), d.slot_owner(slot));
    }
    // redis-cli style contiguous ranges: [0, 5461), [5461, 10922), [10922, 16384).
    assert_eq!(d.slot_owner(0), Some(0));
    assert_eq!(d.slot_owner(5460), Some(0));
    assert_eq!(d.slot_owner(5461), Some(1));
    assert_eq!(d.slot_owner(10922), Some(2));
    assert_eq!(d.slot_owner(16383), Some(2));
    assert_eq!(d.slot_owner(16384), None);
}

fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        ("[a-z0-9.:]{1,12}", 0u32..5, prop::bool::weighted(0.7)),
        0..7,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            // Ring names are unique in a real pool (twemproxy rejects duplicates).
            .map(|(i, (name, weight, live))| Node {
                name: format!("{name}#{i}"),
                weight,
                live,
            })
            .collect()
    })
}

fn arb_kind() -> impl Strategy<Value = DistributionKind> {
    prop::sample::select(DistributionKind::ALL.to_vec())
}

fn arb_hash() -> impl Strategy<Value = HashFunction> {
    prop::sample::select(HashFunction::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn locate_returns_a_live_node(
        nodes in arb_nodes(),
        kind in arb_kind(),
        hash in arb_hash(),
        keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..40),
    ) {
        let dist = Distribution::build(kind, hash, &nodes);
        let any_live = nodes.iter().any(|n| n.live);
        for key in &keys {
            match dist.locate(key) {
                Some(i) => prop_assert!(nodes[i].live, "{kind} picked dead node {i}"),
                None => prop_assert!(!any_live, "{kind} found no node with live ones"),
            }
        }
    }

    #[test]
    fn hashing_never_panics_and_is_deterministic(
        key in prop::collection::vec(any::<u8>(), 0..200),
        hash in arb_hash(),
    ) {
        prop_assert_eq!(hash.hash(&key), hash.hash(&key));
        let tagged = HashTag::Cluster.apply(&key);
        prop_assert!(tagged.len() <= key.len());
        prop_assert!(cluster_slot(&key) < 16384);
    }
}
