//! Hash tags: which part of a key is hashed.

/// The hash-tag rule of a pool.
///
/// Both rules are "first `open`, then the first `close` after it; hash what is between
/// if it is non-empty, else the whole key". twemproxy's `hash_tag: "{}"` and Redis
/// Cluster's rule therefore agree on every key (`foo{}{bar}` hashes whole, `foo{{bar}}`
/// hashes `{bar`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashTag {
    /// Hash the whole key.
    None,
    /// twemproxy's two-character rule (`hash_tag: "ab"` is `Pair(b'a', b'b')`).
    Pair(u8, u8),
    /// Redis Cluster's `{...}` rule.
    Cluster,
}

impl HashTag {
    /// The rule for twemproxy's `hash_tag:` value: `""` is `None`, two bytes are a
    /// `Pair`; any other length is not a valid tag (twemproxy rejects it too).
    pub fn from_config(value: &str) -> Option<HashTag> {
        match *value.as_bytes() {
            [] => Some(HashTag::None),
            [open, close] => Some(HashTag::Pair(open, close)),
            _ => None,
        }
    }

    /// The bytes of `key` that are hashed.
    pub fn apply<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        match *self {
            HashTag::None => key,
            HashTag::Pair(open, close) => tagged(key, open, close),
            HashTag::Cluster => tagged(key, b'{', b'}'),
        }
    }
}

fn tagged(key: &[u8], open: u8, close: u8) -> &[u8] {
    let Some(start) = key.iter().position(|&b| b == open) else {
        return key;
    };
    let Some(after) = key.get(start + 1..) else {
        return key;
    };
    match after.iter().position(|&b| b == close) {
        Some(len) if len > 0 => after.get(..len).unwrap_or(key),
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::HashTag;

    #[test]
    fn cluster_rule_matches_redis_examples() {
        let t = HashTag::Cluster;
        assert_eq!(t.apply(b"{user1000}.following"), b"user1000");
        assert_eq!(t.apply(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(t.apply(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(t.apply(b"foo{bar}{zap}"), b"bar");
        assert_eq!(t.apply(b"foo{bar"), b"foo{bar");
        assert_eq!(t.apply(b"}foo{"), b"}foo{");
        assert_eq!(t.apply(b""), b"");
    }

    #[test]
    fn pair_rule_is_generic() {
        let t = HashTag::Pair(b'a', b'b');
        assert_eq!(t.apply(b"xaKEYbz"), b"KEY");
        assert_eq!(t.apply(b"xabz"), b"xabz");
        assert_eq!(t.apply(b"bxa"), b"bxa");
        let same = HashTag::Pair(b':', b':');
        assert_eq!(same.apply(b"a:b:c"), b"b");
        assert_eq!(HashTag::Pair(b'{', b'}').apply(b"foo{{bar}}"), b"{bar");
    }

    #[test]
    fn config_values() {
        assert_eq!(HashTag::from_config(""), Some(HashTag::None));
        assert_eq!(HashTag::from_config("{}"), Some(HashTag::Pair(b'{', b'}')));
        assert_eq!(HashTag::from_config("{"), None);
        assert_eq!(HashTag::from_config("abc"), None);
        assert_eq!(HashTag::None.apply(b"a{b}"), b"a{b}");
    }
}
