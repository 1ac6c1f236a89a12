//! Plain writes read back: pipelined SET/GET with an INCR, MSET/MGET
//! over every shard, INCR confirmed by WAIT.

use super::*;

/// Pipelines SET k token, GET k on a key per shard, then an INCR.
pub(super) fn pipeline(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let keys: Vec<String> = (0..shards)
        .map(|s| format!("{}pl:{name}:{s}", ctx.tag(s, 1)))
        .collect();
    let counters: Vec<String> = (0..shards)
        .map(|s| format!("{}plc:{name}:{s}", ctx.tag(s, 1)))
        .collect();
    let mut history: Vec<KeyHistory> = vec![KeyHistory::default(); shards];
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let counter = (seq as usize) % shards;
        let mut requests = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            requests.push(cmd(&["SET", key, &token(name, i, seq)]));
            requests.push(cmd(&["GET", key]));
        }
        requests.push(cmd(&["INCR", &counters[counter]]));
        let sent = now();
        let Some(replies) = link.exchange(ctx, stats, &requests) else {
            history.iter_mut().for_each(|h| h.record(seq, None));
            stats.error();
            continue;
        };
        let at = now();
        let mut served = true;
        for i in 0..shards {
            let set = &replies[2 * i];
            let written = match set {
                r if is_ok(r) => Some((sent, at)),
                Reply::Error(_) => {
                    served = false;
                    None
                }
                other => {
                    ctx.misdelivered(stats, format!("SET got {other:?}"));
                    None
                }
            };
            served &= judge_read(
                ctx,
                stats,
                &replies[2 * i + 1],
                i,
                i,
                seq,
                written,
                &history[i],
            );
            history[i].record(seq, written);
        }
        served &= judge_incr(
            ctx,
            stats,
            &replies[2 * shards],
            &counters[counter],
            counter,
            sent,
        );
        stats.checked(requests.len() as u64);
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// MSET over a key on each shard, then MGET of the same keys.
pub(super) fn multi_key(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let keys: Vec<String> = (0..shards)
        .map(|s| format!("{}mk:{name}", ctx.tag(s, 6)))
        .collect();
    let mut history = KeyHistory::default();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let mut mset = vec!["MSET".to_string()];
        for (i, key) in keys.iter().enumerate() {
            mset.push(key.clone());
            mset.push(token(name, i, seq));
        }
        let mut mget = vec!["MGET".to_string()];
        mget.extend(keys.iter().cloned());
        let sent = now();
        let Some(replies) = link.exchange(ctx, stats, &[mset, mget]) else {
            history.record(seq, None);
            stats.error();
            continue;
        };
        let at = now();
        stats.checked(2);
        let written = match &replies[0] {
            r if is_ok(r) => Some((sent, at)),
            Reply::Error(_) => None,
            other => {
                ctx.misdelivered(stats, format!("MSET got {other:?}"));
                None
            }
        };
        let mut served = written.is_some();
        match &replies[1] {
            Reply::Array(values) if values.len() == shards => {
                for (i, value) in values.iter().enumerate() {
                    served &= judge_read(ctx, stats, value, i, i, seq, written, &history);
                }
            }
            Reply::Error(_) => served = false,
            other => ctx.misdelivered(stats, format!("MGET got {other:?}")),
        }
        history.record(seq, written);
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// INCR, then WAIT 1 300: a counter value WAIT confirmed is durable.
pub(super) fn durable(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shards = ctx.tags.len();
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let shard = (seq as usize) % shards;
        let key = format!("{}du:{name}", ctx.tag(shard, 7));
        let sent = now();
        let Some(incr) = link.exchange(ctx, stats, &[cmd(&["INCR", &key])]) else {
            stats.error();
            continue;
        };
        let Reply::Integer(value) = incr[0] else {
            if !incr[0].is_error() {
                ctx.misdelivered(stats, format!("INCR {key} got {:?}", incr[0]));
            }
            stats.error();
            continue;
        };
        let incr_acked = now();
        let wait = link.exchange(ctx, stats, &[cmd(&["WAIT", "1", "300"])]);
        stats.checked(2);
        let replicas = match wait.as_deref() {
            Some([Reply::Integer(n)]) => Some(*n),
            Some([Reply::Error(_)]) | None => None,
            Some(other) => {
                ctx.misdelivered(stats, format!("WAIT got {other:?}"));
                None
            }
        };
        let durable = replicas.is_some_and(|n| n >= 1);
        let acked = if durable { now() } else { incr_acked };
        ctx.journal.ack(
            &key,
            shard,
            Ack {
                value,
                sent,
                acked,
                durable,
            },
        );
        finish(ctx, stats, replicas.is_some());
        ctx.pause();
        std::thread::sleep(Duration::from_millis(20));
    }
}
