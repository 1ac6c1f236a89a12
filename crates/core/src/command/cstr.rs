//! Redis's own ways of reading arguments, reproduced byte for byte: key
//! positions must match what the server will see, including its quirks
//! (C-string comparisons stop at a NUL byte; `atoi` accepts "3abc").

/// `strcasecmp(arg, keyword) == 0` with `arg` read as a C string (up to its
/// first NUL). `keyword` is ASCII without NUL.
pub(super) fn strcasecmp_eq(arg: &[u8], keyword: &[u8]) -> bool {
    let c_str = match memchr::memchr(0, arg) {
        Some(nul) => arg.get(..nul).unwrap_or_default(),
        None => arg,
    };
    c_str.eq_ignore_ascii_case(keyword)
}

/// Redis's `string2ll` (one parser for the whole proxy: `resp`'s).
pub(super) use resp::string2ll as parse_ll;

/// glibc's `atoi`: `(int)strtol(s, NULL, 10)`: leading whitespace, an
/// optional sign, then digits up to the first non-digit; saturates at the
/// `long` range, then truncates to `int`. Garbage is 0.
pub(super) fn atoi(s: &[u8]) -> i32 {
    let mut rest = s;
    while let Some((&c, tail)) = rest.split_first() {
        if matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
            rest = tail;
        } else {
            break;
        }
    }
    let negative = match rest.split_first() {
        Some((b'-', tail)) => {
            rest = tail;
            true
        }
        Some((b'+', tail)) => {
            rest = tail;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    for &d in rest.iter().take_while(|d| d.is_ascii_digit()) {
        let digit = i64::from(d - b'0');
        v = if negative {
            v.saturating_mul(10).saturating_sub(digit)
        } else {
            v.saturating_mul(10).saturating_add(digit)
        };
    }
    // The `(int)` cast keeps the low 32 bits.
    v as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_is_strict() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"12"), Some(12));
        assert_eq!(parse_ll(b"-7"), Some(-7));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1x",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"000000000000000000001",
        ] {
            assert_eq!(parse_ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn atoi_is_lenient_like_glibc() {
        assert_eq!(atoi(b"12"), 12);
        assert_eq!(atoi(b"  +3abc"), 3);
        assert_eq!(atoi(b"-2"), -2);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"4294967297"), 1);
        // strtol saturates at LONG_MAX, whose low 32 bits are -1.
        assert_eq!(atoi(b"99999999999999999999"), -1);
        assert_eq!(atoi(b"-99999999999999999999"), 0);
    }

    #[test]
    fn keywords_compare_as_c_strings() {
        assert!(strcasecmp_eq(b"streams", b"STREAMS"));
        assert!(strcasecmp_eq(b"STREAMS\0junk", b"STREAMS"));
        assert!(!strcasecmp_eq(b"STREAM", b"STREAMS"));
        assert!(!strcasecmp_eq(b"\0STREAMS", b"STREAMS"));
    }
}
