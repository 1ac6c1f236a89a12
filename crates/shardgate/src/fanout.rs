//! Multi-key commands split per shard and merged back into one reply, as a
//! single Redis would answer.
//!
//! Planning (which keys go to which shard) is pure; merging takes the
//! shards' replies in shard order and builds the client's reply. A failed
//! shard surfaces where its keys are: an MGET gets the error in each of
//! that shard's positions; counts and OKs get the first error.

use bytes::{Bytes, BytesMut};
use resp::{Limits, Request, Value};

/// How the per-shard replies become one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// MGET: part `p` answered the keys at `positions[p]` of the original.
    Values { positions: Vec<Vec<usize>>, total: usize },
    /// DEL, UNLINK, EXISTS, TOUCH: the integers summed.
    SumIntegers,
    /// MSET: `+OK` when every part says so.
    AllOk,
}

/// One request split into per-shard requests.
#[derive(Debug, Clone)]
pub struct Plan {
    pub parts: Vec<(usize, Request)>,
    pub merge: Merge,
}

/// Multi-key commands that are split across shards, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splittable {
    /// MGET key [key ...]
    Mget,
    /// MSET key value [key value ...]
    Mset,
    /// DEL / UNLINK / EXISTS / TOUCH key [key ...]
    Count,
}

impl Splittable {
    pub fn of(name: &[u8]) -> Option<Splittable> {
        if name.eq_ignore_ascii_case(b"MGET") {
            Some(Splittable::Mget)
        } else if name.eq_ignore_ascii_case(b"MSET") {
            Some(Splittable::Mset)
        } else if [&b"DEL"[..], b"UNLINK", b"EXISTS", b"TOUCH"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            Some(Splittable::Count)
        } else {
            None
        }
    }

    /// Arguments per key: MSET carries a value after each key.
    fn stride(self) -> usize {
        match self {
            Splittable::Mset => 2,
            _ => 1,
        }
    }
}

/// Splits `request` (keys from argument 1 on, `stride` arguments per key)
/// by the shard of each key. `shard_of` returns None for a key no live
/// server owns.
pub fn plan(
    kind: Splittable,
    request: &Request,
    shard_of: impl Fn(&[u8]) -> Option<usize>,
) -> Result<Plan, String> {
    let stride = kind.stride();
    let name = request.arg(0).unwrap_or_default();
    // (shard, key positions) in order of each shard's first key.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let keys = (request.argc().saturating_sub(1)) / stride;
    for position in 0..keys {
        let key = request.arg(1 + position * stride).unwrap_or_default();
        let shard = shard_of(key).ok_or("ERR shardgate: no live server in the pool")?;
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, positions)) => positions.push(position),
            None => groups.push((shard, vec![position])),
        }
    }
    let parts = groups
        .iter()
        .map(|(shard, positions)| {
            let mut args: Vec<&[u8]> = Vec::with_capacity(1 + positions.len() * stride);
            args.push(name);
            for &position in positions {
                for offset in 0..stride {
                    args.push(request.arg(1 + position * stride + offset).unwrap_or_default());
                }
            }
            (*shard, Request::from_args(&args))
        })
        .collect();
    let merge = match kind {
        Splittable::Mget => Merge::Values {
            positions: groups.into_iter().map(|(_, p)| p).collect(),
            total: keys,
        },
        Splittable::Mset => Merge::AllOk,
        Splittable::Count => Merge::SumIntegers,
    };
    Ok(Plan { parts, merge })
}

/// One shard's answer: its reply bytes, or the error text a client sees.
pub type PartReply = Result<Bytes, String>;

/// Builds the client's reply from the parts' replies, in part order.
pub fn merge(merge: &Merge, replies: Vec<PartReply>) -> Bytes {
    let mut out = BytesMut::new();
    match merge {
        Merge::Values { positions, total } => {
            let mut values: Vec<Value> = vec![Value::Null; *total];
            for (reply, positions) in replies.into_iter().zip(positions) {
                let items = match decode(reply) {
                    Ok(Value::Array(items)) if items.len() == positions.len() => items,
                    Ok(Value::Error(e)) => vec![Value::Error(e); positions.len()],
                    Ok(other) => vec![
                        Value::Error(Bytes::from(format!(
                            "ERR shardgate: unexpected reply from a shard: {other:?}"
                        )));
                        positions.len()
                    ],
                    Err(e) => vec![Value::Error(Bytes::from(e)); positions.len()],
                };
                for (value, &position) in items.into_iter().zip(positions) {
                    if let Some(slot) = values.get_mut(position) {
                        *slot = value;
                    }
                }
            }
            Value::Array(values).encode(&mut out);
        }
        Merge::SumIntegers => {
            let mut sum: i64 = 0;
            for reply in replies {
                match decode(reply) {
                    Ok(Value::Integer(n)) => sum += n,
                    Ok(Value::Error(e)) => return error_reply(&e),
                    Ok(other) => return unexpected(&other),
                    Err(e) => return error_reply(e.as_bytes()),
                }
            }
            resp::encode::integer(&mut out, sum);
        }
        Merge::AllOk => {
            for reply in replies {
                match decode(reply) {
                    Ok(Value::Simple(_)) => {}
                    Ok(Value::Error(e)) => return error_reply(&e),
                    Ok(other) => return unexpected(&other),
                    Err(e) => return error_reply(e.as_bytes()),
                }
            }
            resp::encode::simple(&mut out, b"OK");
        }
    }
    out.freeze()
}

fn decode(reply: PartReply) -> Result<Value, String> {
    let bytes = reply?;
    resp::decode(&bytes, &Limits::default()).map_err(|e| format!("ERR shardgate: invalid reply from a shard: {e}"))
}

fn error_reply(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 3);
    resp::encode::error(&mut out, &String::from_utf8_lossy(message));
    out.freeze()
}

fn unexpected(value: &Value) -> Bytes {
    error_reply(format!("ERR shardgate: unexpected reply from a shard: {value:?}").as_bytes())
}
