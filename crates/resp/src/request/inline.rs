//! Splitting an inline command line into arguments, exactly as
//! redis-server's `sdssplitargs` does.

use crate::error::{err, ErrorKind};
use crate::ProtocolError;

/// C's `isspace` in the C locale: what `sdssplitargs` skips between
/// arguments and accepts after a closing quote.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `line` (without its line ending) into arguments.
///
/// Rules, from `sdssplitargs`: arguments are separated by whitespace;
/// a double quote starts a quoted part (even mid-argument) with the escapes
/// `\n \r \t \b \a \xHH` and `\<any>` for that byte; a single quote starts
/// a part where only `\'` is an escape; a closing quote must be followed by
/// whitespace or the end; an unterminated quote is an error. The C code
/// works on a NUL-terminated string, so a NUL byte ends the line.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => line.get(..nul).unwrap_or_default(),
        None => line,
    };
    // Reads past the end as NUL, like the C string it mirrors.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' {
                    if let (Some(h), Some(l)) = (hex(at(p + 2)), hex(at(p + 3))) {
                        cur.push(h * 16 + l);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return err(ErrorKind::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return err(ErrorKind::UnbalancedQuotes);
                } else {
                    cur.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return err(ErrorKind::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return err(ErrorKind::UnbalancedQuotes);
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    // Only these end an unquoted argument: \v and \f do not,
                    // although they are skipped between arguments.
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        p += 1;
                        break;
                    }
                    0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => cur.push(c),
                }
            }
            p += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn split(s: &[u8]) -> Vec<Vec<u8>> {
        split_args(s).unwrap()
    }

    fn v(xs: &[&[u8]]) -> Vec<Vec<u8>> {
        xs.iter().map(|x| x.to_vec()).collect()
    }

    #[test]
    fn whitespace_separates() {
        assert_eq!(split(b"SET  k\tv "), v(&[b"SET", b"k", b"v"]));
        assert_eq!(split(b"  \x0b\x0c "), v(&[]));
        assert_eq!(split(b""), v(&[]));
        // \v does not end an unquoted argument.
        assert_eq!(split(b"a\x0bb c"), v(&[b"a\x0bb", b"c"]));
    }

    #[test]
    fn double_quotes_and_escapes() {
        assert_eq!(
            split(br#"SET "a b" "\n\r\t\b\a\\\"\q\x41\x4a\xZZ""#),
            v(&[b"SET", b"a b", b"\n\r\t\x08\x07\\\"qAJxZZ"])
        );
        assert_eq!(split(br#""""#), v(&[b""]));
        // A quote may start mid-argument.
        assert_eq!(
            split_args(br#"ab"c d"e x"#),
            err(ErrorKind::UnbalancedQuotes)
        );
        assert_eq!(split(br#"ab"c d" x"#), v(&[b"abc d", b"x"]));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(split(br"'a\'b' 'c\n'"), v(&[b"a'b", br"c\n"]));
    }

    #[test]
    fn unbalanced() {
        for bad in [
            &br#""abc"#[..],
            br#""abc"x"#,
            br"'abc",
            br"'abc'x",
            br#""abc\"#,
            br#""\x4"#,
        ] {
            assert_eq!(
                split_args(bad),
                err(ErrorKind::UnbalancedQuotes),
                "{}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(split(b"GET a\0b c"), v(&[b"GET", b"a"]));
        assert_eq!(split_args(b"GET \"a\0\""), err(ErrorKind::UnbalancedQuotes));
    }
}
