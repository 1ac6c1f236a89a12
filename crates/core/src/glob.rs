//! Redis's glob matching (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`
//! and `\` escapes, over bytes. Used for users' key patterns and to
//! match CONFIG GET patterns against secret settings.

/// True when `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    match_from(pattern, text, 0)
}

fn match_from(mut p: &[u8], mut t: &[u8], depth: usize) -> bool {
    // Bound recursion on pathological patterns (Redis bounds it too).
    if depth > 1000 {
        return false;
    }
    while let Some(&c) = p.first() {
        match c {
            b'*' => {
                while let Some((b'*', rest)) = p.split_first() {
                    p = rest;
                }
                if p.is_empty() {
                    return true;
                }
                let mut rest = t;
                loop {
                    if match_from(p, rest, depth + 1) {
                        return true;
                    }
                    match rest.split_first() {
                        Some((_, shorter)) => rest = shorter,
                        None => return false,
                    }
                }
            }
            b'?' => {
                let Some((_, rest)) = t.split_first() else {
                    return false;
                };
                t = rest;
                p = p.get(1..).unwrap_or_default();
            }
            b'[' => {
                let Some(&ch) = t.first() else {
                    return false;
                };
                let (matched, rest) = class(p.get(1..).unwrap_or_default(), ch);
                if !matched {
                    return false;
                }
                p = rest;
                t = t.get(1..).unwrap_or_default();
            }
            b'\\' if p.len() >= 2 => {
                if t.first() != p.get(1) {
                    return false;
                }
                p = p.get(2..).unwrap_or_default();
                t = t.get(1..).unwrap_or_default();
            }
            _ => {
                if t.first() != Some(&c) {
                    return false;
                }
                p = p.get(1..).unwrap_or_default();
                t = t.get(1..).unwrap_or_default();
            }
        }
    }
    t.is_empty()
}

/// Matches `ch` against a `[...]` class whose body starts at `p`; returns
/// whether it matched and the pattern after the closing `]`.
fn class(mut p: &[u8], ch: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = p.get(1..).unwrap_or_default();
    }
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', c, rest @ ..] => {
                matched |= *c == ch;
                p = rest;
            }
            [a, b'-', b, rest @ ..] if *b != b']' => {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                matched |= (lo..=hi).contains(&ch);
                p = rest;
            }
            [c, rest @ ..] => {
                matched |= *c == ch;
                p = rest;
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_rules() {
        assert!(matches(b"*", b""));
        assert!(matches(b"app:*", b"app:users:1"));
        assert!(!matches(b"app:*", b"other"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-c]llo", b"hbllo"));
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"*:*:*", b"a:b:c"));
        assert!(!matches(b"abc", b"abcd"));
        assert!(!matches(
            &[b'*'; 50].iter().chain(b"x").copied().collect::<Vec<_>>(),
            &[b'a'; 40]
        ));
    }
}
