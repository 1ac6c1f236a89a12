//! The per-request cost of the command table: name lookup plus key
//! extraction, which the proxy runs on every request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use shardgate_core::command::lookup;

fn bench(c: &mut Criterion, name: &str, args: &[&[u8]]) {
    let mut keys = Vec::with_capacity(16);
    c.bench_function(name, |b| {
        b.iter(|| {
            let args = black_box(args);
            keys.clear();
            let n = lookup(args).map_or(0, |spec| spec.keys(args, &mut keys));
            black_box(n)
        })
    });
}

fn command(c: &mut Criterion) {
    bench(c, "GET k (lookup + keys)", &[b"GET", b"key:000123"]);
    bench(c, "get k, lowercase", &[b"get", b"key:000123"]);
    bench(c, "SET k v", &[b"SET", b"key:000123", b"value"]);
    bench(
        c,
        "MSET 4 pairs",
        &[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3", b"d", b"4"],
    );
    bench(
        c,
        "ZUNIONSTORE numkeys 3",
        &[b"ZUNIONSTORE", b"d", b"3", b"a", b"b", b"c"],
    );
    bench(
        c,
        "XREAD STREAMS 2",
        &[
            b"XREAD", b"COUNT", b"10", b"STREAMS", b"a", b"b", b"0", b"0",
        ],
    );
    bench(
        c,
        "CONFIG GET (subcommand)",
        &[b"CONFIG", b"GET", b"maxmemory"],
    );
    bench(c, "unknown command", &[b"NOSUCHCOMMAND", b"k"]);
}

criterion_group!(benches, command);
criterion_main!(benches);
