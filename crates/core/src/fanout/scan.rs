//! The SCAN cursor across shards: the low bits say which shard, the rest
//! is that shard's own cursor. A full SCAN walks shard 0 to the last,
//! each to its end, so every key is returned (at least once, as Redis
//! promises) and MATCH, COUNT and TYPE apply on every shard.

use bytes::{Bytes, BytesMut};
use resp::Request;

use crate::frames::aggregate;

/// Bits of the cursor that hold the shard index (pools of up to 1024 shards).
pub const SHARD_BITS: u32 = 10;
const SHARD_MASK: u64 = (1 << SHARD_BITS) - 1;

/// Where a client's SCAN cursor points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub shard: usize,
    pub cursor: u64,
}

/// Bits of a cluster pool's cursor that hold the slot map's epoch.
const EPOCH_BITS: u32 = 8;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;

/// How client cursors are written. A cluster pool's carry the slot map's
/// epoch (mod 256) above the shard index: keys move between shards when
/// slots do, so a SCAN begun under another map would skip or repeat keys
/// silently; it is refused instead ([`CursorError::MapChanged`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codec {
    pub epoch: Option<u64>,
}

/// Why a client cursor cannot be continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not a number, or a shard the pool does not have.
    Invalid,
    /// Written under another slot map (cluster pools).
    MapChanged,
}

impl Codec {
    fn low_bits(&self) -> u32 {
        SHARD_BITS + if self.epoch.is_some() { EPOCH_BITS } else { 0 }
    }

    /// Decodes a client cursor: `Invalid` for one that is not a number or
    /// names a shard the pool does not have (Redis: "invalid cursor").
    pub fn decode(&self, cursor: &[u8], shards: usize) -> Result<Position, CursorError> {
        let value: u64 = std::str::from_utf8(cursor)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or(CursorError::Invalid)?;
        let shard = (value & SHARD_MASK) as usize;
        if shard >= shards {
            return Err(CursorError::Invalid);
        }
        if let Some(epoch) = self.epoch {
            // Cursor 0 starts a SCAN under any map.
            if value != 0 && (value >> SHARD_BITS) & EPOCH_MASK != epoch & EPOCH_MASK {
                return Err(CursorError::MapChanged);
            }
        }
        Ok(Position {
            shard,
            cursor: value >> self.low_bits(),
        })
    }

    /// The client cursor for `position`; None when the shard's cursor is
    /// too big to carry (a shard cursor needs under 54 bits; Redis's are
    /// far smaller).
    pub fn encode(&self, position: Position) -> Option<u64> {
        let low = self.low_bits();
        if position.cursor >> (64 - low) != 0 {
            return None;
        }
        let epoch = self.epoch.map_or(0, |e| (e & EPOCH_MASK) << SHARD_BITS);
        Some((position.cursor << low) | epoch | position.shard as u64)
    }
}

/// The request for one shard: SCAN with that shard's cursor, options as given.
pub fn shard_request(request: &Request, cursor: u64) -> Request {
    let cursor = cursor.to_string();
    let mut args: Vec<&[u8]> = request.args().collect();
    if let Some(slot) = args.get_mut(1) {
        *slot = cursor.as_bytes();
    }
    Request::from_args(&args)
}

/// Rewrites a shard's SCAN reply for the client: its cursor becomes the
/// client cursor of the next position (`next_shard` is the shard after
/// `shard` that still owns keys, if any). None if the reply is not a SCAN
/// reply.
pub fn rewrite_reply(
    reply: &Bytes,
    shard: usize,
    next_shard: Option<usize>,
    codec: Codec,
) -> Option<Bytes> {
    let agg = aggregate(reply)?;
    let [cursor, keys] = agg.elements.as_slice() else {
        return None;
    };
    let cursor = crate::frames::string(cursor)?;
    let cursor: u64 = std::str::from_utf8(&cursor).ok()?.parse().ok()?;
    let next = if cursor != 0 {
        codec.encode(Position { shard, cursor })?
    } else {
        match next_shard {
            Some(next) => codec.encode(Position {
                shard: next,
                cursor: 0,
            })?,
            None => 0,
        }
    };
    let next = next.to_string();
    let mut out = BytesMut::with_capacity(reply.len() + 24);
    resp::encode::array_header(&mut out, 2);
    resp::encode::bulk(&mut out, next.as_bytes());
    out.extend_from_slice(keys);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_shards() {
        let plain = Codec::default();
        let decode = |cursor: &[u8], shards| plain.decode(cursor, shards).ok();
        let p = Position {
            shard: 2,
            cursor: 12345,
        };
        let c = plain.encode(p).expect("fits");
        assert_eq!(decode(c.to_string().as_bytes(), 3), Some(p));
        assert_eq!(decode(c.to_string().as_bytes(), 2), None);
        assert_eq!(
            decode(b"0", 3),
            Some(Position {
                shard: 0,
                cursor: 0
            })
        );
        assert_eq!(decode(b"x", 3), None);
        // A shard cursor needs under 54 bits (Redis's are far smaller).
        assert_eq!(
            plain.encode(Position {
                shard: 0,
                cursor: u64::MAX
            }),
            None
        );
    }

    #[test]
    fn a_finished_shard_moves_to_the_next() {
        let reply = Bytes::from_static(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
        let plain = Codec::default();
        let next = rewrite_reply(&reply, 0, Some(1), plain).expect("scan reply");
        assert_eq!(&next[..], b"*2\r\n$1\r\n1\r\n*1\r\n$1\r\nk\r\n");
        let last = rewrite_reply(&reply, 1, None, plain).expect("scan reply");
        assert_eq!(&last[..], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
        let mid = Bytes::from_static(b"*2\r\n$2\r\n17\r\n*0\r\n");
        let next = rewrite_reply(&mid, 1, Some(2), plain).expect("scan reply");
        assert_eq!(
            &next[..],
            format!("*2\r\n$5\r\n{}\r\n*0\r\n", (17 << 10) | 1).as_bytes()
        );
    }

    #[test]
    fn a_cluster_cursor_names_its_map_and_a_changed_map_refuses_it() {
        let codec = Codec { epoch: Some(7) };
        let p = Position {
            shard: 2,
            cursor: 99,
        };
        let c = codec.encode(p).expect("fits").to_string();
        assert_eq!(codec.decode(c.as_bytes(), 3), Ok(p));
        let later = Codec { epoch: Some(8) };
        assert_eq!(later.decode(c.as_bytes(), 3), Err(CursorError::MapChanged));
        // 0 starts over under any map; a finished shard's next one keeps the epoch.
        assert_eq!(
            later.decode(b"0", 3),
            Ok(Position {
                shard: 0,
                cursor: 0
            })
        );
        let next = codec
            .encode(Position {
                shard: 1,
                cursor: 0,
            })
            .expect("fits");
        assert_ne!(next, 1, "the epoch is in it");
        assert_eq!(
            codec.decode(next.to_string().as_bytes(), 3),
            Ok(Position {
                shard: 1,
                cursor: 0
            })
        );
        assert_eq!(codec.decode(b"x", 3), Err(CursorError::Invalid));
    }
}
