//! Whether one call may block the connection it runs on, for the router
//! (a blocking call must not share a pipelined backend connection), and
//! for how long it asked to.

use std::time::Duration;

use super::args::Args;
use super::cstr::strcasecmp_eq;
use super::procs::xread_keys;
use super::spec::CommandSpec;

impl CommandSpec {
    /// True when this call may block on the server: BLPOP, BLMOVE, BZMPOP
    /// and the like always (even with a timeout, which only bounds the
    /// wait); XREAD and XREADGROUP only with a BLOCK option before STREAMS;
    /// WAIT always (Redis does not flag it `blocking`, but it waits for
    /// replicas). Malformed XREADs, which fail at once, do not block.
    pub fn is_blocking_call<A: Args + ?Sized>(&self, args: &A) -> bool {
        match self.name {
            "wait" => true,
            "xread" | "xreadgroup" => xread_keys(args).is_some() && block_option(args).is_some(),
            _ => self.is_blocking(),
        }
    }
}

impl CommandSpec {
    /// A blocking call's own timeout, from its arguments: `Some(None)`
    /// waits forever (timeout 0), `None` when the argument does not parse
    /// (the server answers with an error at once) or the command has none.
    pub fn block_timeout<A: Args + ?Sized>(&self, args: &A) -> Option<Option<Duration>> {
        let argc = args.argc();
        let (at, millis) = match self.name {
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "brpoplpush" | "blmove" => {
                (argc.checked_sub(1)?, false)
            }
            "blmpop" | "bzmpop" => (1, false),
            "wait" => (2, true),
            "xread" | "xreadgroup" => (block_option(args)? + 1, true),
            _ => return None,
        };
        let text = std::str::from_utf8(args.arg(at)?).ok()?;
        let seconds = if millis {
            text.parse::<u64>().ok()? as f64 / 1000.0
        } else {
            text.parse::<f64>().ok()?
        };
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        Some((seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9))))
    }
}

/// Where the BLOCK option of an XREAD/XREADGROUP is, scanning options the
/// way Redis does (up to STREAMS; a GROUP's names or a COUNT's value named
/// "block" are not it).
fn block_option<A: Args + ?Sized>(args: &A) -> Option<usize> {
    let mut i = 1;
    while let Some(arg) = args.arg(i) {
        if strcasecmp_eq(arg, b"block") {
            return Some(i);
        } else if strcasecmp_eq(arg, b"count") {
            i += 1;
        } else if strcasecmp_eq(arg, b"group") {
            i += 2;
        } else if !strcasecmp_eq(arg, b"noack") {
            return None;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::lookup;

    fn blocks(args: &[&str]) -> bool {
        lookup(args).is_some_and(|spec| spec.is_blocking_call(args))
    }

    #[test]
    fn a_blocking_calls_own_timeout_is_read_where_redis_reads_it() {
        use std::time::Duration;
        let timeout = |args: &[&str]| lookup(args).and_then(|spec| spec.block_timeout(args));
        assert_eq!(
            timeout(&["BLPOP", "a", "b", "1.5"]),
            Some(Some(Duration::from_millis(1500)))
        );
        assert_eq!(timeout(&["BLPOP", "a", "0"]), Some(None));
        assert_eq!(
            timeout(&["BLMPOP", "2", "1", "a", "LEFT"]),
            Some(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            timeout(&["WAIT", "1", "250"]),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            timeout(&["XREAD", "COUNT", "1", "BLOCK", "100", "STREAMS", "s", "$"]),
            Some(Some(Duration::from_millis(100)))
        );
        // A consumer named "block" is not the option.
        assert_eq!(
            timeout(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "block",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">"
            ]),
            Some(None)
        );
        assert_eq!(timeout(&["BLPOP", "a", "soon"]), None);
        assert_eq!(timeout(&["BLPOP", "a", "-1"]), None);
        assert_eq!(timeout(&["GET", "a"]), None);
    }

    #[test]
    fn which_calls_block() {
        assert!(blocks(&["BLPOP", "a", "0"]));
        assert!(blocks(&["brpoplpush", "a", "b", "1"]));
        assert!(blocks(&["BZMPOP", "1", "1", "a", "MIN"]));
        assert!(blocks(&["WAIT", "1", "0"]));
        assert!(blocks(&["XREAD", "BLOCK", "0", "STREAMS", "a", "$"]));
        assert!(blocks(&[
            "XREAD", "COUNT", "1", "block", "10", "STREAMS", "a", "$"
        ]));
        assert!(blocks(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "a",
            ">"
        ]));
        assert!(!blocks(&["XREAD", "STREAMS", "a", "$"]));
        assert!(!blocks(&["XREAD", "COUNT", "1", "STREAMS", "BLOCK", "$"]));
        assert!(!blocks(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "a",
            ">"
        ]));
        assert!(!blocks(&["XREAD", "BLOCK", "0", "STREAMS", "a"]));
        assert!(!blocks(&["GET", "a"]));
        assert!(!blocks(&["LPOP", "a"]));
    }
}
