//! Merges for commands sent to every shard.

use bytes::{Bytes, BytesMut};

use super::PartReply;
use crate::frames::{aggregate, aggregate_header, integer, is_error, is_null, string};
use crate::route::Merge;

/// What the proxy puts into a merged INFO reply.
#[derive(Debug, Default)]
pub struct InfoPatch {
    /// The `# Proxy` section, put first, when asked for.
    pub proxy: Option<String>,
    /// `# Clients` fields the proxy answers with its own figures: a
    /// client asks about the proxy's clients (the servers' clients are
    /// the proxy's connections).
    pub clients: Vec<(&'static str, u64)>,
}

/// The client's reply from every shard's reply (in shard order). `info`
/// is what the proxy adds to INFO ([`Merge::Info`]).
pub fn merge(merge: Merge, replies: Vec<PartReply>, info: Option<&InfoPatch>) -> Bytes {
    match merge {
        Merge::AllOk => all_ok(replies),
        Merge::Same => same(replies),
        Merge::Sum => fold_integers(replies, 0, i64::saturating_add),
        Merge::Wait => fold_integers(replies, i64::MAX, i64::min),
        Merge::Max => fold_integers(replies, 0, i64::max),
        Merge::Min => fold_integers(replies, i64::MAX, i64::min),
        Merge::Concat => concat(replies, false),
        Merge::Union => concat(replies, true),
        Merge::AndArrays => and_arrays(replies),
        Merge::SumPairs => sum_pairs(replies),
        Merge::AnyOk => any_ok(replies),
        Merge::RandomKey => random_key(replies),
        Merge::Info => merge_info(replies, info),
    }
}

/// Every reply as a frame, or the client's error when a shard failed
/// (see [`super::failure`]).
fn frames(replies: &[PartReply]) -> Result<Vec<Bytes>, Bytes> {
    if let Some(error) = super::failure(replies) {
        return Err(error);
    }
    Ok(replies.iter().filter_map(|r| r.frame().ok()).collect())
}

fn all_ok(replies: Vec<PartReply>) -> Bytes {
    match frames(&replies) {
        Ok(frames) => frames
            .into_iter()
            .next()
            .unwrap_or_else(|| Bytes::from_static(b"+OK\r\n")),
        Err(error) => error,
    }
}

fn same(replies: Vec<PartReply>) -> Bytes {
    match frames(&replies) {
        Ok(frames) => {
            let first = frames
                .first()
                .cloned()
                .unwrap_or_else(|| Bytes::from_static(b"$-1\r\n"));
            match frames.iter().zip(&replies).find(|(f, _)| **f != first) {
                Some((_, reply)) => {
                    reply.named_error(b"-ERR shardgate: shards answered differently\r\n")
                }
                None => first,
            }
        }
        Err(error) => error,
    }
}

fn fold_integers(replies: Vec<PartReply>, init: i64, f: fn(i64, i64) -> i64) -> Bytes {
    let frames = match frames(&replies) {
        Ok(frames) => frames,
        Err(error) => return error,
    };
    let mut acc = init;
    for (frame, reply) in frames.iter().zip(&replies) {
        match integer(frame) {
            Some(n) => acc = f(acc, n),
            None => return reply.named_error(b"-ERR shardgate: expected an integer reply\r\n"),
        }
    }
    let mut out = BytesMut::with_capacity(24);
    resp::encode::integer(&mut out, if frames.is_empty() { 0 } else { acc });
    out.freeze()
}

fn concat(replies: Vec<PartReply>, distinct: bool) -> Bytes {
    let frames = match frames(&replies) {
        Ok(frames) => frames,
        Err(error) => return error,
    };
    let mut kind = b'*';
    let mut elements: Vec<Bytes> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (frame, reply) in frames.iter().zip(&replies) {
        let Some(agg) = aggregate(frame) else {
            return reply.named_error(b"-ERR shardgate: expected an array reply\r\n");
        };
        kind = agg.kind;
        for element in agg.elements {
            if !distinct || seen.insert(element.clone()) {
                elements.push(element);
            }
        }
    }
    encode_aggregate(kind, &elements)
}

fn and_arrays(replies: Vec<PartReply>) -> Bytes {
    let frames = match frames(&replies) {
        Ok(frames) => frames,
        Err(error) => return error,
    };
    let mut result: Option<Vec<i64>> = None;
    for (frame, reply) in frames.iter().zip(&replies) {
        let values: Option<Vec<i64>> = aggregate(frame)
            .map(|agg| agg.elements.iter().map(|e| integer(e)).collect())
            .unwrap_or(None);
        let Some(values) = values else {
            return reply.named_error(b"-ERR shardgate: expected an array of integers\r\n");
        };
        result = Some(match result {
            None => values,
            Some(acc) => acc.iter().zip(&values).map(|(a, b)| (*a).min(*b)).collect(),
        });
    }
    let values = result.unwrap_or_default();
    let mut out = BytesMut::new();
    resp::encode::array_header(&mut out, values.len());
    for v in values {
        resp::encode::integer(&mut out, v);
    }
    out.freeze()
}

/// `[name, count, name, count...]` (or a RESP3 map), counts summed per name
/// in first-seen order.
fn sum_pairs(replies: Vec<PartReply>) -> Bytes {
    let frames = match frames(&replies) {
        Ok(frames) => frames,
        Err(error) => return error,
    };
    let mut kind = b'*';
    let mut pairs: Vec<(Bytes, i64)> = Vec::new();
    for (frame, reply) in frames.iter().zip(&replies) {
        let Some(agg) = aggregate(frame) else {
            return reply.named_error(b"-ERR shardgate: expected an array reply\r\n");
        };
        kind = agg.kind;
        for pair in agg.elements.chunks(2) {
            let [name, count] = pair else { continue };
            let count = integer(count).unwrap_or(0);
            match pairs.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += count,
                None => pairs.push((name.clone(), count)),
            }
        }
    }
    let mut out = BytesMut::new();
    aggregate_header(&mut out, kind, pairs.len() * 2);
    for (name, count) in pairs {
        out.extend_from_slice(&name);
        resp::encode::integer(&mut out, count);
    }
    out.freeze()
}

fn any_ok(replies: Vec<PartReply>) -> Bytes {
    let mut first_error = None;
    for reply in &replies {
        match reply.frame() {
            Ok(frame) if !is_error(&frame) => return frame,
            Ok(frame) => {
                first_error.get_or_insert(frame);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.unwrap_or_else(|| Bytes::from_static(b"+OK\r\n"))
}

/// A key from a shard that had one (shards are asked in a random order by
/// the caller, so this is random among non-empty shards); null if none.
fn random_key(replies: Vec<PartReply>) -> Bytes {
    let mut null = None;
    for reply in &replies {
        match reply.frame() {
            Ok(frame) if is_null(&frame) => {
                null.get_or_insert(frame);
            }
            Ok(frame) if is_error(&frame) => return reply.named_error(&frame),
            Ok(frame) => return frame,
            Err(error) => return error,
        }
    }
    null.unwrap_or_else(|| Bytes::from_static(b"$-1\r\n"))
}

/// INFO: the first shard's text with `# Keyspace` summed over shards, the
/// proxy's own section first and its client figures in `# Clients`.
fn merge_info(replies: Vec<PartReply>, patch: Option<&InfoPatch>) -> Bytes {
    let frames = match frames(&replies) {
        Ok(frames) => frames,
        Err(error) => return error,
    };
    let verbatim = frames.first().and_then(|f| f.first()) == Some(&b'=');
    let texts: Vec<String> = frames
        .iter()
        .filter_map(string)
        .map(|b| {
            let text = String::from_utf8_lossy(&b).into_owned();
            match text.strip_prefix("txt:") {
                Some(rest) if verbatim => rest.to_string(),
                _ => text,
            }
        })
        .collect();
    let mut text = String::new();
    if let Some(proxy) = patch.and_then(|p| p.proxy.as_deref()) {
        text.push_str(proxy);
    }
    let clients = patch.map_or(&[][..], |p| &p.clients[..]);
    let first = texts.first().map(String::as_str).unwrap_or_default();
    let mut in_keyspace = false;
    let mut in_clients = false;
    let mut keyspace_written = false;
    for line in first.split("\r\n") {
        if line.starts_with('#') {
            in_keyspace = line.trim() == "# Keyspace";
            in_clients = line.trim() == "# Clients";
        }
        let field = line.split_once(':').map(|(name, _)| name);
        if let (true, Some((name, value))) = (
            in_clients,
            field.and_then(|f| clients.iter().find(|(name, _)| *name == f)),
        ) {
            text.push_str(&format!("{name}:{value}\r\n"));
            continue;
        }
        if in_keyspace {
            if !keyspace_written {
                text.push_str(&keyspace(&texts));
                keyspace_written = true;
            }
            continue;
        }
        if !text.is_empty() || !line.is_empty() {
            text.push_str(line);
            text.push_str("\r\n");
        }
    }
    while text.ends_with("\r\n\r\n") {
        text.truncate(text.len() - 2);
    }
    let mut out = BytesMut::with_capacity(text.len() + 32);
    if verbatim {
        let body = format!("txt:{text}");
        out.extend_from_slice(format!("={}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        resp::encode::bulk(&mut out, text.as_bytes());
    }
    out.freeze()
}

/// `# Keyspace` with `dbN:keys=..,expires=..,avg_ttl=..` summed over every
/// shard's INFO text (avg_ttl weighted by expiring keys).
fn keyspace(texts: &[String]) -> String {
    // (db, keys, expires, ttl * expires)
    let mut dbs: Vec<(u32, u64, u64, u128)> = Vec::new();
    for text in texts {
        for line in text.split("\r\n") {
            let Some((db, fields)) = line.split_once(':') else {
                continue;
            };
            let Some(n) = db.strip_prefix("db").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let mut keys = 0;
            let mut expires = 0;
            let mut ttl = 0u64;
            for field in fields.split(',') {
                match field.split_once('=') {
                    Some(("keys", v)) => keys = v.parse().unwrap_or(0),
                    Some(("expires", v)) => expires = v.parse().unwrap_or(0),
                    Some(("avg_ttl", v)) => ttl = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            let weighted = u128::from(ttl) * u128::from(expires);
            match dbs.iter_mut().find(|(d, ..)| *d == n) {
                Some(entry) => {
                    entry.1 += keys;
                    entry.2 += expires;
                    entry.3 += weighted;
                }
                None => dbs.push((n, keys, expires, weighted)),
            }
        }
    }
    dbs.sort_by_key(|(db, ..)| *db);
    let mut out = String::from("# Keyspace\r\n");
    for (db, keys, expires, weighted) in dbs {
        let avg = if expires == 0 {
            0
        } else {
            weighted / u128::from(expires)
        };
        out.push_str(&format!(
            "db{db}:keys={keys},expires={expires},avg_ttl={avg}\r\n"
        ));
    }
    out.push_str("\r\n");
    out
}

fn encode_aggregate(kind: u8, elements: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(16 + elements.iter().map(Bytes::len).sum::<usize>());
    aggregate_header(&mut out, kind, elements.len());
    for element in elements {
        out.extend_from_slice(element);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(frame: &str) -> PartReply {
        PartReply::answered("s".into(), Bytes::from(frame.to_string()))
    }

    #[test]
    fn sums_mins_and_all_ok() {
        assert_eq!(
            &merge(Merge::Sum, vec![ok(":2\r\n"), ok(":3\r\n")], None)[..],
            b":5\r\n"
        );
        assert_eq!(
            &merge(Merge::Wait, vec![ok(":2\r\n"), ok(":1\r\n")], None)[..],
            b":1\r\n"
        );
        assert_eq!(
            &merge(Merge::AllOk, vec![ok("+OK\r\n"), ok("+OK\r\n")], None)[..],
            b"+OK\r\n"
        );
        // Shards that disagree: the failing one is named.
        let failed = merge(Merge::AllOk, vec![ok("+OK\r\n"), ok("-ERR nope\r\n")], None);
        assert_eq!(&failed[..], b"-ERR nope (shard s)\r\n");
        // Every shard failing alike: the error as Redis words it.
        let failed = merge(
            Merge::AllOk,
            vec![ok("-ERR wrong args\r\n"), ok("-ERR wrong args\r\n")],
            None,
        );
        assert_eq!(&failed[..], b"-ERR wrong args\r\n");
        assert_eq!(
            &merge(Merge::Min, vec![ok(":7\r\n"), ok(":5\r\n")], None)[..],
            b":5\r\n"
        );
        let down = PartReply::failed("b".into(), "ERR shardgate: down");
        assert_eq!(
            &merge(Merge::Sum, vec![ok(":1\r\n"), down], None)[..],
            b"-ERR shardgate: down\r\n"
        );
    }

    #[test]
    fn concat_union_and_pairs() {
        let keys = merge(
            Merge::Concat,
            vec![ok("*1\r\n$1\r\na\r\n"), ok("*1\r\n$1\r\nb\r\n")],
            None,
        );
        assert_eq!(&keys[..], b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        let union = merge(
            Merge::Union,
            vec![ok("*1\r\n$1\r\na\r\n"), ok("*1\r\n$1\r\na\r\n")],
            None,
        );
        assert_eq!(&union[..], b"*1\r\n$1\r\na\r\n");
        let pairs = merge(
            Merge::SumPairs,
            vec![ok("*2\r\n$1\r\na\r\n:1\r\n"), ok("*2\r\n$1\r\na\r\n:2\r\n")],
            None,
        );
        assert_eq!(&pairs[..], b"*2\r\n$1\r\na\r\n:3\r\n");
        let exists = merge(
            Merge::AndArrays,
            vec![ok("*2\r\n:1\r\n:1\r\n"), ok("*2\r\n:0\r\n:1\r\n")],
            None,
        );
        assert_eq!(&exists[..], b"*2\r\n:0\r\n:1\r\n");
    }

    #[test]
    fn info_sums_the_keyspace_and_adds_the_proxy_section() {
        let a = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=100\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=300\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n";
        let bulk = |s: &str| ok(&format!("${}\r\n{s}\r\n", s.len()));
        let patch = InfoPatch {
            proxy: Some("# Proxy\r\nworkers:2\r\n\r\n".into()),
            clients: vec![("connected_clients", 7)],
        };
        let a = a.replace(
            "# Server",
            "# Clients\r\nconnected_clients:1\r\n\r\n# Server",
        );
        let merged = merge(Merge::Info, vec![bulk(&a), bulk(b)], Some(&patch));
        let text = String::from_utf8(string(&merged).expect("bulk").to_vec()).expect("utf8");
        assert!(
            text.starts_with(
                "# Proxy\r\nworkers:2\r\n\r\n# Clients\r\nconnected_clients:7\r\n\r\n# Server\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("db0:keys=5,expires=2,avg_ttl=200\r\ndb1:keys=1,expires=0,avg_ttl=0"),
            "{text}"
        );
    }
}
