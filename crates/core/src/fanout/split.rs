//! Multi-key commands split per shard (MGET, MSET, DEL, UNLINK, EXISTS,
//! TOUCH): which keys go where, and how the shards' replies become the one
//! reply a single Redis would give.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use resp::Request;

use super::PartReply;
use crate::frames::{aggregate, integer, is_error};
use crate::route::{Refusal, SplitKind};

/// One shard's share of a split request.
#[derive(Debug, Clone)]
pub struct Part {
    pub shard: usize,
    pub request: Request,
    /// Positions (0-based, among the keys) of this part's keys.
    pub positions: Vec<usize>,
}

/// A request split per shard.
#[derive(Debug, Clone)]
pub struct SplitPlan {
    pub kind: SplitKind,
    pub parts: Vec<Part>,
    pub keys: usize,
}

/// Arguments per key: MSET carries a value after each key.
fn stride(kind: SplitKind) -> usize {
    match kind {
        SplitKind::Mset => 2,
        _ => 1,
    }
}

/// Splits `request` (keys from argument 1 on) by the shard of each key, in
/// order of each shard's first key.
pub fn plan(
    kind: SplitKind,
    request: &Request,
    shard_of: impl Fn(&[u8]) -> Option<usize>,
) -> Result<SplitPlan, Refusal> {
    plan_grouped(kind, request, |key| Some((shard_of(key)?, 0)))
}

/// Like [`plan`], with keys of one shard split further by a group: a Redis
/// Cluster node refuses keys of two slots, so a cluster pool groups by
/// `(shard, slot)`.
pub fn plan_grouped(
    kind: SplitKind,
    request: &Request,
    group_of: impl Fn(&[u8]) -> Option<(usize, u16)>,
) -> Result<SplitPlan, Refusal> {
    let stride = stride(kind);
    let keys = request.argc().saturating_sub(1) / stride;
    // Each key's group (an index into `groups`, in order of each group's
    // first key), then each group's keys: every list is allocated once,
    // at its size. A static pool has a few groups (its shards), found by a
    // scan; past `SCAN_UP_TO` (a cluster pool's MGET of 10,000 keys may
    // touch 10,000 slots) by a map.
    const SCAN_UP_TO: usize = 8;
    let mut groups: Vec<((usize, u16), usize)> = Vec::new();
    let mut index: HashMap<(usize, u16), usize> = HashMap::new();
    let mut group_at = Vec::with_capacity(keys);
    for position in 0..keys {
        let key = request.arg(1 + position * stride).unwrap_or_default();
        let group = group_of(key).ok_or(Refusal::NoShard)?;
        let found = if groups.len() <= SCAN_UP_TO {
            groups.iter().position(|(g, _)| *g == group)
        } else {
            if index.is_empty() {
                index.extend(groups.iter().enumerate().map(|(i, (g, _))| (*g, i)));
            }
            index.get(&group).copied()
        };
        let at = match found {
            Some(at) => at,
            None => {
                if !index.is_empty() {
                    index.insert(group, groups.len());
                }
                groups.push((group, 0));
                groups.len() - 1
            }
        };
        if let Some((_, count)) = groups.get_mut(at) {
            *count += 1;
        }
        group_at.push(at);
    }
    let mut positions: Vec<Vec<usize>> = groups
        .iter()
        .map(|&(_, count)| Vec::with_capacity(count))
        .collect();
    for (position, &at) in group_at.iter().enumerate() {
        if let Some(list) = positions.get_mut(at) {
            list.push(position);
        }
    }
    let parts = groups
        .into_iter()
        .zip(positions)
        .map(|(((shard, _), _), positions)| {
            // The command name, then each key with its value (MSET).
            let runs = positions
                .iter()
                .map(|&p| 1 + p * stride..1 + (p + 1) * stride);
            Part {
                shard,
                request: request.select(std::iter::once(0..1).chain(runs)),
                positions,
            }
        })
        .collect();
    Ok(SplitPlan { kind, parts, keys })
}

/// Builds the client's reply from the parts' replies, in part order.
pub fn merge(plan: &SplitPlan, replies: Vec<PartReply>) -> Bytes {
    match plan.kind {
        SplitKind::Mget => merge_values(plan, replies),
        SplitKind::Mset => {
            if let Some(error) = super::failure(&replies) {
                return error;
            }
            for reply in replies {
                match reply.frame() {
                    Ok(frame) if frame.first() == Some(&b'+') => {}
                    Ok(frame) => return reply.named_error(&frame),
                    Err(error) => return error,
                }
            }
            Bytes::from_static(b"+OK\r\n")
        }
        SplitKind::Count => {
            if let Some(error) = super::failure(&replies) {
                return error;
            }
            let mut sum: i64 = 0;
            for reply in replies {
                match reply.frame() {
                    Ok(frame) => match integer(&frame) {
                        Some(n) => sum = sum.saturating_add(n),
                        None => return reply.named_error(&frame),
                    },
                    Err(error) => return error,
                }
            }
            let mut out = BytesMut::with_capacity(24);
            resp::encode::integer(&mut out, sum);
            out.freeze()
        }
    }
}

/// MGET: every value in its key's position, as its shard wrote it; a shard
/// that failed puts its error in each of its keys' positions.
fn merge_values(plan: &SplitPlan, replies: Vec<PartReply>) -> Bytes {
    let mut values: Vec<Bytes> = vec![Bytes::from_static(b"$-1\r\n"); plan.keys];
    for (part, reply) in plan.parts.iter().zip(replies) {
        let items = match reply.frame() {
            Ok(frame) => match aggregate(&frame) {
                Some(agg) if agg.elements.len() == part.positions.len() => agg.elements,
                _ if is_error(&frame) => vec![reply.named_error(&frame); part.positions.len()],
                _ => vec![reply.named_error(b"-ERR unexpected reply\r\n"); part.positions.len()],
            },
            Err(error) => vec![error; part.positions.len()],
        };
        for (value, &position) in items.into_iter().zip(&part.positions) {
            if let Some(slot) = values.get_mut(position) {
                *slot = value;
            }
        }
    }
    let mut out = BytesMut::with_capacity(16 + values.iter().map(Bytes::len).sum::<usize>());
    resp::encode::array_header(&mut out, values.len());
    for value in values {
        out.extend_from_slice(&value);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(frame: &'static [u8]) -> PartReply {
        PartReply::answered("s".into(), Bytes::from_static(frame))
    }

    #[test]
    fn plans_by_shard_in_first_key_order() {
        let request = Request::from_args(&["MSET", "a", "1", "b", "2", "c", "3"]);
        let plan = plan(SplitKind::Mset, &request, |k| {
            Some(usize::from(k[0] == b'b'))
        })
        .expect("plan");
        assert_eq!(plan.keys, 3);
        assert_eq!(plan.parts.len(), 2);
        assert_eq!(plan.parts[0].shard, 0);
        assert_eq!(plan.parts[0].positions, vec![0, 2]);
        assert_eq!(
            &plan.parts[0].request.raw[..],
            &Request::from_args(&["MSET", "a", "1", "c", "3"]).raw[..]
        );
        assert_eq!(plan.parts[1].positions, vec![1]);
    }

    #[test]
    fn many_groups_keep_first_key_order_past_the_scan() {
        // 40 keys in 20 groups (key i in group i % 20), interleaved: the
        // first 9 groups are found by a scan, the rest by the map.
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let request = Request::from_args(&args);
        let plan = plan_grouped(SplitKind::Mget, &request, |k| {
            let i: u16 = std::str::from_utf8(&k[1..]).ok()?.parse().ok()?;
            Some((usize::from(i % 20 % 3), i % 20))
        })
        .expect("plan");
        assert_eq!(plan.parts.len(), 20);
        for (g, part) in plan.parts.iter().enumerate() {
            assert_eq!(part.positions, vec![g, g + 20], "group {g}");
            assert_eq!(part.shard, g % 3);
        }
    }

    #[test]
    fn mget_keeps_order_and_puts_errors_where_the_keys_were() {
        let request = Request::from_args(&["MGET", "a", "b", "c"]);
        let plan = plan(SplitKind::Mget, &request, |k| {
            Some(usize::from(k[0] == b'b'))
        })
        .expect("plan");
        let merged = merge(
            &plan,
            vec![ok(b"*2\r\n$1\r\nA\r\n_\r\n"), ok(b"*1\r\n$1\r\nB\r\n")],
        );
        assert_eq!(&merged[..], b"*3\r\n$1\r\nA\r\n$1\r\nB\r\n_\r\n");
        let failed = PartReply::failed("s1".into(), "ERR shardgate: down");
        let merged = merge(&plan, vec![ok(b"*2\r\n$1\r\nA\r\n$1\r\nC\r\n"), failed]);
        assert_eq!(
            &merged[..],
            b"*3\r\n$1\r\nA\r\n-ERR shardgate: down\r\n$1\r\nC\r\n"
        );
    }

    #[test]
    fn counts_sum_and_the_first_error_names_its_shard() {
        let request = Request::from_args(&["DEL", "a", "b"]);
        let plan = plan(SplitKind::Count, &request, |k| {
            Some(usize::from(k[0] == b'b'))
        })
        .expect("plan");
        assert_eq!(
            &merge(&plan, vec![ok(b":1\r\n"), ok(b":1\r\n")])[..],
            b":2\r\n"
        );
        let merged = merge(&plan, vec![ok(b":1\r\n"), ok(b"-WRONGTYPE x\r\n")]);
        assert_eq!(&merged[..], b"-WRONGTYPE x (shard s)\r\n");
    }
}
