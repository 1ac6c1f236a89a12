//! Hot-path figures: pipelined requests through the parser, pipelined
//! replies through the scanner, with redis-protocol as a yardstick.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use resp::{Limits, ReplyScanner, RequestParser};

const PIPELINE: usize = 1000;

fn pipeline(frame: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(frame.len() * PIPELINE);
    for _ in 0..PIPELINE {
        b.extend_from_slice(frame);
    }
    b
}

fn requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(PIPELINE as u64));
    let cases: [(&str, &[u8]); 3] = [
        ("set", b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"),
        ("get", b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000012345\r\n"),
        ("inline_set", b"SET key value\r\n"),
    ];
    for (name, frame) in cases {
        let input = pipeline(frame);
        g.bench_function(name, |b| {
            let mut p = RequestParser::new(Limits::default());
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    while let Some(r) = p.next(buf).unwrap_or_default() {
                        black_box(r);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    let input = pipeline(cases[0].1);
    g.bench_function("set_redis_protocol", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                while let Ok(Some(f)) = redis_protocol::resp2::decode::decode(buf) {
                    let _ = buf.split_to(f.1);
                    black_box(f);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn replies(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply");
    g.throughput(Throughput::Elements(PIPELINE as u64));
    let cases: [(&str, &[u8]); 3] = [
        ("ok", b"+OK\r\n"),
        ("bulk", b"$5\r\nvalue\r\n"),
        ("array3", b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n"),
    ];
    for (name, frame) in cases {
        let input = pipeline(frame);
        g.bench_function(name, |b| {
            let mut s = ReplyScanner::new(Limits::default());
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    while let Ok(Some(f)) = s.scan(buf) {
                        black_box(buf.split_to(f.len));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, requests, replies);
criterion_main!(benches);
