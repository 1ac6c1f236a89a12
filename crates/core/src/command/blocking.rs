//! Whether one call may block the connection it runs on, for the router:
//! a blocking call must not share a pipelined backend connection.

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
            "xread" | "xreadgroup" => xread_keys(args).is_some() && has_block_option(args),
            _ => self.is_blocking(),
        }
    }
}

/// Scans XREAD/XREADGROUP options the way Redis does (up to STREAMS).
fn has_block_option<A: Args + ?Sized>(args: &A) -> bool {
    let mut i = 1;
    while let Some(arg) = args.arg(i) {
        if strcasecmp_eq(arg, b"block") {
            return true;
        } else if strcasecmp_eq(arg, b"count") {
            i += 1;
        } else if strcasecmp_eq(arg, b"group") {
            i += 2;
        } else if !strcasecmp_eq(arg, b"noack") {
            return false;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::lookup;

    fn blocks(args: &[&str]) -> bool {
        lookup(args).is_some_and(|spec| spec.is_blocking_call(args))
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
