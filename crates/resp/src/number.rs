//! Decimal integers in both directions, exactly as redis-server reads and
//! writes them.

/// Parses `s` with redis-server's `string2ll` rules: optional `-`, no `+`,
/// no leading zeros (except `0` itself), no spaces, at most 20 bytes, and
/// no overflow. Anything else is `None`.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    // string2ll rejects slen >= LONG_STR_SIZE (21).
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(i64::MIN) does not fit in i64, so go through i128.
        i64::try_from(-i128::from(v)).ok()
    } else {
        i64::try_from(v).ok()
    }
}

/// The common length line, read in one pass: `line` starts with 1 to 9
/// digits without a leading zero (or `0` alone), then a CR at an index
/// below `max_line`, and a byte after it has arrived. Returns the value and
/// the CR's index. `None` for everything else (a partial line, a sign, a
/// leading zero, a long or bad number), which callers leave to their
/// general path: what this accepts, [`string2ll`] reads the same.
#[inline(always)] // on the path of every request and reply
pub(crate) fn plain_length(line: &[u8], max_line: usize) -> Option<(usize, usize)> {
    let mut value = usize::from(line.first()?.wrapping_sub(b'0'));
    if value > 9 {
        return None;
    }
    let mut i = 1;
    loop {
        let b = *line.get(i)?;
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            // A digit after a leading `0` (`05`), or a tenth digit.
            if value == 0 || i == 9 {
                return None;
            }
            value = value * 10 + usize::from(digit);
            i += 1;
        } else {
            return (b == b'\r' && i + 1 < line.len() && i < max_line).then_some((value, i));
        }
    }
}

/// Formats `n` in decimal into a stack buffer; returns the buffer and the
/// index where the digits start.
pub(crate) fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            // n % 10 < 10, so the cast cannot truncate.
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// Number of decimal digits of `n`.
pub(crate) fn digits(n: usize) -> usize {
    let mut d = 1;
    let mut n = n / 10;
    while n > 0 {
        d += 1;
        n /= 10;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_string2ll() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"3"), Some(3));
        assert_eq!(string2ll(b"-1"), Some(-1));
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"03",
            b"+3",
            b" 3",
            b"3 ",
            b"3x",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"18446744073709551616",
            b"000000000000000000001",
        ] {
            assert_eq!(string2ll(bad), None, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn plain_length_takes_what_string2ll_reads_the_same() {
        for (line, want) in [
            (&b"0\r\n"[..], Some((0, 1))),
            (b"7\r\n", Some((7, 1))),
            (b"123456789\r\n", Some((123_456_789, 9))),
            (b"12\rx", Some((12, 2))),
            // Left to the general path:
            (b"12\r", None),
            (b"\r\n", None),
            (b"05\r\n", None),
            (b"00\r\n", None),
            (b"-1\r\n", None),
            (b"+1\r\n", None),
            (b"1234567890\r\n", None),
            (b"1 \r\n", None),
        ] {
            assert_eq!(plain_length(line, 1024), want, "{}", line.escape_ascii());
            if let Some((value, cr)) = want {
                let digits = line.get(..cr).unwrap();
                assert_eq!(string2ll(digits), i64::try_from(value).ok());
            }
        }
        // The CR must lie within the line limit.
        assert_eq!(plain_length(b"123\r\n", 4), Some((123, 3)));
        assert_eq!(plain_length(b"123\r\n", 3), None);
    }

    #[test]
    fn format_and_count_digits() {
        let mut b = [0u8; 20];
        assert_eq!(format_u64(0, &mut b), b"0");
        assert_eq!(format_u64(42, &mut b), b"42");
        assert_eq!(format_u64(u64::MAX, &mut b), b"18446744073709551615");
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(123456), 6);
    }
}
