//! Atomic units: MULTI/EXEC, WATCH-guarded transfers, scripts.

use std::collections::BTreeMap;

use super::*;

/// MULTI; INCR; SET token; GET; EXEC: EXEC must hold exactly those replies.
pub(super) fn multi(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let shard = (seq as usize) % shards;
        let tag = ctx.tag(shard, 2);
        let counter = format!("{tag}mu:{name}:c");
        let key = format!("{tag}mu:{name}:v");
        let tok = token(name, shard, seq);
        let requests = [
            cmd(&["MULTI"]),
            cmd(&["INCR", &counter]),
            cmd(&["SET", &key, &tok]),
            cmd(&["GET", &key]),
            cmd(&["EXEC"]),
        ];
        let sent = now();
        let Some(replies) = link.exchange(ctx, stats, &requests) else {
            stats.error();
            continue;
        };
        stats.checked(5);
        if !(is_ok(&replies[0]) || replies[0].is_error()) {
            ctx.misdelivered(stats, format!("MULTI got {:?}", replies[0]));
        }
        for reply in &replies[1..4] {
            if !(*reply == Reply::Simple("QUEUED".into()) || reply.is_error()) {
                ctx.misdelivered(stats, format!("a queued command got {reply:?}"));
            }
        }
        let served = match &replies[4] {
            Reply::Array(results) => {
                let expected_shape = results.len() == 3
                    && matches!(results[0], Reply::Integer(_))
                    && is_ok(&results[1])
                    && results[2] == Reply::Bulk(tok.clone().into_bytes());
                if expected_shape {
                    judge_incr(ctx, stats, &results[0], &counter, shard, sent)
                } else {
                    ctx.misdelivered(stats, format!("EXEC of seq {seq} got {results:?}"));
                    true
                }
            }
            Reply::Error(_) | Reply::Nil => false,
            other => {
                ctx.misdelivered(stats, format!("EXEC got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

pub(super) fn int_value(reply: &Reply) -> Option<i64> {
    reply.bulk_str()?.parse().ok()
}

/// WATCH x y; GET both; MULTI; move an amount; EXEC, retried when another
/// client's transfer aborts it. The pair's sum must never change.
pub(super) fn transfers(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let mut link = Link::new(port);
    let mut rng = fastrand::Rng::with_seed(u64::from(port));
    // A broken sum is reported once per pair and value, not per transfer.
    let mut reported: BTreeMap<usize, i64> = BTreeMap::new();
    while ctx.running() {
        let pair = rng.usize(..ctx.tags.len());
        let (x, y, shard) = account(ctx, pair);
        let Some(read) = link.exchange(
            ctx,
            stats,
            &[
                cmd(&["WATCH", &x, &y]),
                cmd(&["GET", &x]),
                cmd(&["GET", &y]),
            ],
        ) else {
            stats.error();
            continue;
        };
        stats.checked(3);
        if read.iter().any(Reply::is_error) {
            // End the WATCH before the next try.
            if link.exchange(ctx, stats, &[cmd(&["UNWATCH"])]).is_none() {
                link.close();
            }
            stats.error();
            continue;
        }
        if read[1] == Reply::Nil && read[2] == Reply::Nil {
            ctx.journal.suspect(
                shard,
                (now(), now()),
                format!("{}: transfer pair {x}, {y} vanished", stats.name),
            );
            let _ = link.exchange(ctx, stats, &[cmd(&["UNWATCH"])]);
            stats.error();
            continue;
        }
        // A missing key counts as 0: the sum check then fails, as it must.
        let value = |reply: &Reply| {
            if *reply == Reply::Nil {
                Some(0)
            } else {
                int_value(reply)
            }
        };
        let (Some(a), Some(b)) = (value(&read[1]), value(&read[2])) else {
            ctx.misdelivered(stats, format!("WATCH/GET/GET of {x}, {y} got {read:?}"));
            link.close();
            stats.error();
            continue;
        };
        if !is_ok(&read[0]) {
            ctx.misdelivered(stats, format!("WATCH got {:?}", read[0]));
        }
        if a + b != TOTAL && reported.insert(pair, a + b) != Some(a + b) {
            ctx.journal.violation(
                Check::Sum,
                format!(
                    "{}: {x} + {y} = {a} + {b} = {}, not {TOTAL}",
                    stats.name,
                    a + b
                ),
            );
        }
        let amount = rng.i64(1..=10);
        let (a, b) = if a >= amount {
            (a - amount, b + amount)
        } else {
            (a + amount, b - amount)
        };
        let Some(replies) = link.exchange(
            ctx,
            stats,
            &[
                cmd(&["MULTI"]),
                cmd(&["SET", &x, &a.to_string()]),
                cmd(&["SET", &y, &b.to_string()]),
                cmd(&["EXEC"]),
            ],
        ) else {
            stats.error();
            continue;
        };
        stats.checked(4);
        let served = match &replies[3] {
            Reply::Array(results) if results.len() == 2 && results.iter().all(is_ok) => true,
            // Another client's transfer touched the pair: WATCH did its job.
            Reply::Nil => {
                stats.retries.fetch_add(1, Relaxed);
                true
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("transfer EXEC got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// EVALSHA (EVAL on NOSCRIPT, and every tenth call) of a script that sets
/// a token, increments a counter and returns both.
pub(super) fn script(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut sha: Option<String> = None;
    let mut seq = 0u64;
    while ctx.running() {
        if sha.is_none() {
            match link
                .exchange(ctx, stats, &[cmd(&["SCRIPT", "LOAD", SCRIPT])])
                .as_deref()
            {
                Some([Reply::Bulk(s)]) => sha = Some(String::from_utf8_lossy(s).into_owned()),
                _ => {
                    stats.error();
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        seq += 1;
        let shard = (seq as usize) % shards;
        let tag = ctx.tag(shard, 5);
        let key = format!("{tag}sc:{name}:v");
        let counter = format!("{tag}sc:{name}:c");
        let tok = token(name, shard, seq);
        let sent = now();
        let eval = |body: &str, verb: &str| cmd(&[verb, body, "2", &key, &counter, &tok]);
        let request = if seq.is_multiple_of(10) {
            eval(SCRIPT, "EVAL")
        } else {
            eval(sha.as_deref().unwrap_or_default(), "EVALSHA")
        };
        let Some(mut replies) = link.exchange(ctx, stats, &[request]) else {
            stats.error();
            continue;
        };
        if matches!(&replies[0], Reply::Error(e) if e.starts_with("NOSCRIPT")) {
            stats.retries.fetch_add(1, Relaxed);
            let Some(again) = link.exchange(ctx, stats, &[eval(SCRIPT, "EVAL")]) else {
                stats.error();
                continue;
            };
            replies = again;
        }
        stats.checked(1);
        let served = match &replies[0] {
            Reply::Array(parts)
                if parts.len() == 2
                    && matches!(parts[0], Reply::Integer(_))
                    && parts[1] == Reply::Bulk(tok.clone().into_bytes()) =>
            {
                judge_incr(ctx, stats, &parts[0], &counter, shard, sent)
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("script of seq {seq} got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}
