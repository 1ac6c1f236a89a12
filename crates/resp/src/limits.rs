//! Size bounds applied to everything read off the wire.

/// Bounds on what the parser and scanner accept. Nothing is ever allocated
/// up front from a length read off the wire, so these bound work and memory
/// per connection rather than guard a pre-allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `$` payload, in bytes. Default 512 MiB, redis-server's
    /// `proto-max-bulk-len`.
    pub max_bulk_len: usize,
    /// Largest aggregate element count (`*`, `~`, `>`; pairs for `%`, `|`).
    /// Default `i32::MAX`, redis-server 7's own bound for requests: replies
    /// share this type and a big `SMEMBERS`/`LRANGE`/`KEYS` legitimately
    /// returns millions of elements, so a lower default would drop healthy
    /// backend connections. Memory stays bounded by the bytes actually
    /// received, never by the announced count.
    pub max_array_len: usize,
    /// Deepest reply nesting (aggregates inside aggregates, attributes and
    /// streamed strings count as a level). Default 64; Redis replies nest
    /// two or three levels.
    pub max_depth: usize,
    /// Longest line: an inline request, a `*`/`$` count line, a reply's
    /// simple string / error / number. Counts every byte before the line's
    /// LF (an inline line's CR included), so the limit does not depend on
    /// how the bytes were split. Default 64 KiB, redis-server's
    /// `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_len: usize,
}

/// Reply nesting a backend may send: a Lua script returning a table that
/// contains itself makes Redis 7 nest about 6,400 levels (until Lua's
/// stack limit) before its error, so the proxy must pass that through.
/// The scanner keeps 16 bytes per open level: 256 KiB at the bound.
pub const MAX_REPLY_DEPTH: usize = 16 * 1024;

impl Limits {
    /// Limits for scanning replies from a server: [`Limits::default`] with
    /// room for the deepest reply Redis sends ([`MAX_REPLY_DEPTH`]).
    pub fn replies() -> Limits {
        Limits {
            max_depth: MAX_REPLY_DEPTH,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_array_len: i32::MAX as usize,
            max_depth: 64,
            max_inline_len: 64 * 1024,
        }
    }
}
