//! Pub/Sub: a publisher on one proxy, a subscriber on the other.

use std::collections::BTreeMap;

use super::*;

pub(super) fn channels(publisher: &str, tag: &str) -> (String, String) {
    (format!("{tag}ch:{publisher}"), format!("pat:{publisher}:*"))
}

/// Publishes sequence numbers alternately on an exact channel and on
/// channels a pattern subscriber matches (spread over shards).
pub(super) fn publisher(ctx: &Ctx, stats: &ClientStats, port: u16) {
    let (exact, _) = channels(&stats.name, ctx.tag(0, 4));
    let mut link = Link::new(port);
    let mut seq = 0u64;
    while ctx.running() {
        seq += 1;
        let channel = if seq % 2 == 1 {
            exact.clone()
        } else {
            format!("pat:{}:{}", stats.name, seq % 8)
        };
        let payload = format!("{}:{seq}", stats.name);
        ctx.lock_unconfirmed().insert(payload.clone());
        let Some(replies) = link.exchange(ctx, stats, &[cmd(&["PUBLISH", &channel, &payload])])
        else {
            stats.error();
            continue;
        };
        stats.checked(1);
        let served = match &replies[0] {
            Reply::Integer(_) => {
                ctx.lock_unconfirmed().remove(&payload);
                true
            }
            Reply::Error(_) => false,
            other => {
                ctx.misdelivered(stats, format!("PUBLISH got {other:?}"));
                true
            }
        };
        finish(ctx, stats, served);
        ctx.pause();
    }
}

/// Subscribes to the other proxy's publisher (a channel and a pattern);
/// every message must be that publisher's, on a subscribed channel, and
/// newer than the last on its channel (gaps are allowed: Pub/Sub is at
/// most once; a duplicate or a reordering is not, except for a message
/// whose PUBLISH was never acknowledged, which may have run late). Order
/// is judged per channel: channels on different shards reach the proxy
/// over different connections, and no order holds between them.
pub(super) fn subscriber(ctx: &Ctx, stats: &ClientStats, port: u16, publisher_proxy: usize) {
    let publisher = format!("pb{publisher_proxy}");
    let (exact, pattern) = channels(&publisher, ctx.tag(0, 4));
    let prefix = format!("pat:{publisher}:");
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    while ctx.running() {
        let Ok(mut conn) = RespClient::connect(port) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        conn.set_read_timeout(Some(Duration::from_millis(200)));
        let mut bytes = encode(&["SUBSCRIBE", &exact]);
        bytes.extend(encode(&["PSUBSCRIBE", &pattern]));
        if conn.send_raw(&bytes).is_err() {
            continue;
        }
        while ctx.running() {
            let reply = match conn.read_reply() {
                Ok(reply) => reply,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => {
                    stats.error();
                    break;
                }
            };
            stats.checked(1);
            let Reply::Array(parts) = &reply else {
                ctx.misdelivered(stats, format!("subscriber got {reply:?}"));
                continue;
            };
            let texts: Vec<String> = parts
                .iter()
                .map(|p| p.bulk_str().unwrap_or_default())
                .collect();
            let message = match texts.first().map(String::as_str) {
                Some("subscribe") if texts.get(1) == Some(&exact) => continue,
                Some("psubscribe") if texts.get(1) == Some(&pattern) => continue,
                Some("message") if texts.len() == 3 && texts[1] == exact => {
                    Some((&texts[1], &texts[2], 2))
                }
                Some("pmessage")
                    if texts.len() == 4 && texts[1] == pattern && texts[2].starts_with(&prefix) =>
                {
                    Some((&texts[2], &texts[3], 8))
                }
                _ => None,
            };
            let seq = message.and_then(|(_, payload, _)| {
                payload
                    .strip_prefix(&format!("{publisher}:"))?
                    .parse::<u64>()
                    .ok()
            });
            let (Some((channel, payload, step)), Some(seq)) = (message, seq) else {
                ctx.misdelivered(stats, format!("subscriber got {texts:?}"));
                continue;
            };
            let previous = last.get(channel).copied().unwrap_or(0);
            if seq > previous {
                if previous > 0 && seq > previous + step {
                    stats.retries.fetch_add(1, Relaxed);
                }
                last.insert(channel.clone(), seq);
                stats.success(&ctx.epoch);
            } else if ctx.lock_unconfirmed().contains(payload) {
                // A PUBLISH that timed out, run late.
                stats.success(&ctx.epoch);
            } else {
                ctx.misdelivered(
                    stats,
                    format!("{channel}: acknowledged message {seq} after {previous}"),
                );
            }
        }
    }
}
