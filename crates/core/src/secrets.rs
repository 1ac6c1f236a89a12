//! What in a request or a reply is a secret, and how it is hidden: the
//! arguments Redis itself redacts from its slow log (AUTH, HELLO AUTH,
//! MIGRATE AUTH / AUTH2, sensitive CONFIG SET values) and the settings
//! whose values CONFIG GET must not hand to a client (the backends'
//! passwords). Pure.

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::frames::{aggregate, aggregate_header, string};
use crate::glob::matches as glob_matches;

/// A secret (a backend password): never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time that does not depend
    /// on where they first differ (passwords, the admin token).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// What Redis shows in place of a redacted argument.
pub const REDACTED: &[u8] = b"(redacted)";

/// Server settings whose values are secrets (Redis 7's sensitive configs).
const SECRET_CONFIG: &[&str] = &[
    "requirepass",
    "masterauth",
    "tls-key-file-pass",
    "tls-client-key-file-pass",
];

fn is_secret_config(name: &[u8]) -> bool {
    SECRET_CONFIG
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(name))
}

/// Whether a CONFIG GET pattern can match a secret setting.
pub fn may_match_secret_config(pattern: &[u8]) -> bool {
    let lower = pattern.to_ascii_lowercase();
    SECRET_CONFIG
        .iter()
        .any(|s| glob_matches(&lower, s.as_bytes()))
}

/// The indexes of `args` (the command name first) that are secrets, as
/// Redis redacts them from its slow log.
pub fn secret_args<A: AsRef<[u8]>>(args: &[A]) -> Vec<usize> {
    let arg = |i: usize| args.get(i).map(AsRef::as_ref);
    let is = |i: usize, word: &str| arg(i).is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()));
    let mut secret = Vec::new();
    if is(0, "auth") {
        secret.extend(1..args.len());
    } else if is(0, "hello") {
        let mut i = 2;
        while i < args.len() {
            if is(i, "auth") {
                secret.extend([i + 1, i + 2]);
                i += 3;
            } else if is(i, "setname") {
                i += 2;
            } else {
                i += 1;
            }
        }
    } else if is(0, "migrate") {
        for i in 6..args.len() {
            if is(i, "keys") {
                break;
            }
            if is(i, "auth") {
                secret.push(i + 1);
            } else if is(i, "auth2") {
                secret.extend([i + 1, i + 2]);
            }
        }
    } else if is(0, "config") && is(1, "set") {
        secret.extend(
            (2..args.len())
                .step_by(2)
                .filter(|&i| arg(i).is_some_and(is_secret_config))
                .map(|i| i + 1),
        );
    } else if is(0, "acl") && is(1, "setuser") {
        // Password rules: >pass <pass #hash !hash.
        secret.extend((3..args.len()).filter(|&i| {
            arg(i).is_some_and(|a| matches!(a.first(), Some(b'>' | b'<' | b'#' | b'!')))
        }));
    }
    secret.retain(|&i| i < args.len());
    secret
}

/// A CONFIG GET reply (RESP2 pairs or a RESP3 map) with the values of
/// secret settings replaced by `(redacted)`; other replies unchanged.
pub fn redact_config_get(reply: Bytes) -> Bytes {
    let Some(agg) = aggregate(&reply) else {
        return reply;
    };
    let names: Vec<bool> = agg
        .elements
        .iter()
        .step_by(2)
        .map(|name| string(name).is_some_and(|n| is_secret_config(&n)))
        .collect();
    if !names.iter().any(|&secret| secret) {
        return reply;
    }
    let mut out = BytesMut::with_capacity(reply.len());
    aggregate_header(&mut out, agg.kind, agg.elements.len());
    for (i, element) in agg.elements.iter().enumerate() {
        if i % 2 == 1 && names.get(i / 2).copied().unwrap_or(false) {
            resp::encode::bulk(&mut out, REDACTED);
        } else {
            out.extend_from_slice(element);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_arguments_redis_redacts() {
        assert_eq!(secret_args(&["AUTH", "pw"]), vec![1]);
        assert_eq!(secret_args(&["auth", "user", "pw"]), vec![1, 2]);
        assert_eq!(
            secret_args(&["HELLO", "3", "SETNAME", "auth", "AUTH", "u", "p"]),
            vec![5, 6]
        );
        let migrate = [
            "MIGRATE", "h", "1", "", "0", "5000", "COPY", "AUTH", "pw", "KEYS", "a", "auth",
        ];
        assert_eq!(secret_args(&migrate), vec![8]);
        let migrate2 = ["MIGRATE", "h", "1", "k", "0", "5000", "AUTH2", "u", "p"];
        assert_eq!(secret_args(&migrate2), vec![7, 8]);
        assert_eq!(
            secret_args(&["CONFIG", "SET", "maxmemory", "1", "MasterAuth", "s"]),
            vec![5]
        );
        assert_eq!(
            secret_args(&["ACL", "SETUSER", "u", "on", ">pw", "~*"]),
            vec![4]
        );
        assert!(secret_args(&["GET", "auth"]).is_empty());
    }

    #[test]
    fn config_get_replies_lose_their_secrets_in_both_protocols() {
        let resp2 = Bytes::from_static(
            b"*4\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
        );
        assert_eq!(
            &redact_config_get(resp2)[..],
            b"*4\r\n$11\r\nrequirepass\r\n$10\r\n(redacted)\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
        );
        let resp3 = Bytes::from_static(b"%1\r\n$10\r\nmasterauth\r\n$2\r\npw\r\n");
        assert_eq!(
            &redact_config_get(resp3)[..],
            b"%1\r\n$10\r\nmasterauth\r\n$10\r\n(redacted)\r\n"
        );
        let plain = Bytes::from_static(b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
        assert_eq!(redact_config_get(plain.clone()), plain);
        assert!(may_match_secret_config(b"*"));
        assert!(may_match_secret_config(b"*PASS*"));
        assert!(!may_match_secret_config(b"maxmemory"));
    }
}
