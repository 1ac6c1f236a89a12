//! A queue: BLPOP woken by another connection's RPUSH.

use std::collections::BTreeMap;

use super::*;

/// BLPOP on one connection, RPUSH of a token on another: the pop must
/// return this client's tokens in push order.
pub(super) fn blocking(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let name = &stats.name;
    let shard = stats.proxy % ctx.tags.len();
    let queue = format!("{}q:{name}", ctx.tag(shard, 3));
    let mut popper = Link::new(port);
    let mut pusher = Link::new(port);
    let mut pushed: BTreeMap<u64, (Ms, Ms)> = BTreeMap::new();
    let mut popped: BTreeMap<u64, (Ms, Ms)> = BTreeMap::new();
    // Pushes answered with an error or not at all: they may run late.
    let mut doubtful: BTreeSet<u64> = BTreeSet::new();
    let mut last_popped = 0u64;
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let pop_sent = now();
        if popper.send(&encode(&["BLPOP", &queue, "2"])).is_none() {
            stats.error();
            continue;
        }
        std::thread::sleep(Duration::from_millis(5));
        let push_sent = now();
        let push = pusher.exchange(ctx, stats, &[cmd(&["RPUSH", &queue, &token(name, 0, seq)])]);
        let mut served = match push.as_deref() {
            Some([Reply::Integer(_)]) => {
                pushed.insert(seq, (push_sent, now()));
                true
            }
            Some([Reply::Error(_)]) | None => {
                doubtful.insert(seq);
                false
            }
            Some(other) => {
                ctx.misdelivered(stats, format!("RPUSH got {other:?}"));
                true
            }
        };
        let Some(pop) = popper.read(ctx, stats, 1, "BLPOP") else {
            // The BLPOP may have taken an element whose reply was lost.
            pushed.clear();
            stats.error();
            continue;
        };
        stats.checked(2);
        match &pop[0] {
            Reply::Array(parts)
                if parts.len() == 2 && parts[0].bulk_str().as_deref() == Some(queue.as_str()) =>
            {
                let value = match &parts[1] {
                    Reply::Bulk(value) => value.clone(),
                    _ => Vec::new(),
                };
                match own_value(&value, name, 0, seq) {
                    Seen::Foreign => {
                        ctx.misdelivered(stats, format!("BLPOP {queue} got {parts:?}"))
                    }
                    Seen::Fresh | Seen::Older(_) => {
                        let got = match own_value(&value, name, 0, seq) {
                            Seen::Older(s) => s,
                            _ => seq,
                        };
                        if got <= last_popped {
                            if let Some(&at) = popped.get(&got) {
                                ctx.journal.suspect(
                                    shard,
                                    at,
                                    format!("{name}: queue element {got} delivered again (after {last_popped})"),
                                );
                            } else if !doubtful.contains(&got) {
                                ctx.journal.suspect(
                                    shard,
                                    (now(), now()),
                                    format!("{name}: acknowledged push {got} popped after {last_popped}"),
                                );
                            }
                        } else {
                            let skipped: Vec<(u64, (Ms, Ms))> =
                                pushed.range(..got).map(|(s, at)| (*s, *at)).collect();
                            for (s, at) in skipped {
                                ctx.journal.suspect(
                                    shard,
                                    at,
                                    format!(
                                        "{name}: acknowledged push {s} never popped (popped {got})"
                                    ),
                                );
                                pushed.remove(&s);
                            }
                            pushed.remove(&got);
                            popped.insert(got, (pop_sent, now()));
                            while popped.len() > 1000 {
                                popped.pop_first();
                            }
                            last_popped = got;
                        }
                    }
                }
            }
            // Nothing within 2 s: the push went elsewhere or failed.
            Reply::Nil => served = false,
            // The BLPOP may have taken an element whose reply was lost.
            Reply::Error(_) => {
                pushed.clear();
                served = false;
            }
            other => ctx.misdelivered(stats, format!("BLPOP got {other:?}")),
        }
        finish(ctx, stats, served);
        ctx.pause();
    }
}
