//! Hash + locate for 16-byte keys, per distribution (target: <= 100 ns each), and the
//! bare hash functions. Run: `cargo bench -p shardgate-keyspace --bench locate`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use criterion::{criterion_group, criterion_main, Criterion};
use keyspace::{Distribution, DistributionKind, HashFunction, Node};
use std::hint::black_box;

const POOL: usize = 8;

fn keys() -> Vec<[u8; 16]> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..1024)
        .map(|_| std::array::from_fn(|_| rng.alphanumeric() as u8))
        .collect()
}

fn locate(c: &mut Criterion) {
    let nodes: Vec<Node> = (0..POOL)
        .map(|i| Node::new(format!("10.0.0.{i}:6379"), 1))
        .collect();
    let keys = keys();
    let mut group = c.benchmark_group("locate_16B");
    for (kind, hash) in [
        (DistributionKind::Ketama, HashFunction::Fnv1a_64),
        (DistributionKind::Ketama, HashFunction::Md5),
        (DistributionKind::Modula, HashFunction::Fnv1a_64),
        (DistributionKind::Random, HashFunction::Fnv1a_64),
        (DistributionKind::Maglev, HashFunction::Murmur2_64),
        (DistributionKind::Slots, HashFunction::Crc16),
    ] {
        let dist = Distribution::build(kind, hash, &nodes);
        let mut i = 0;
        group.bench_function(format!("{kind}/{hash}"), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                dist.locate(black_box(&keys[i]))
            })
        });
    }
    group.finish();
}

fn hashes(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("hash_16B");
    for hash in HashFunction::ALL {
        let mut i = 0;
        group.bench_function(hash.name(), |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                hash.hash(black_box(&keys[i]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, locate, hashes);
criterion_main!(benches);
