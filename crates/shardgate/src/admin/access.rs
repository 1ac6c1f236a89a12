//! Who may use the admin server: a bearer token (`--admin-token-file`)
//! for every endpoint that changes the proxy (`POST /reload`, `/upgrade`,
//! `/reshard/*`), and for every endpoint when the server listens beyond
//! loopback, except `/health` and `/ready` (what orchestrators probe).
//! Without a token, an admin server beyond loopback refuses every
//! endpoint that changes the proxy. The decision is a pure function of
//! the request and the settings ([`decide`]).

use crate::secrets::Secret;

/// The admin server's access settings.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The bearer token (None: none configured).
    pub token: Option<Secret>,
    /// The server listens on an address other than loopback.
    pub exposed: bool,
}

/// What becomes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Serve,
    /// 401: no token, or the wrong one.
    Unauthorized,
    /// 403: beyond loopback without a token, nothing may change the proxy.
    NoTokenConfigured,
}

/// Endpoints served to anyone who reaches the server.
const OPEN: &[&str] = &["/health", "/ready"];

/// Decides a request: `changes_state` for the POST endpoints, `bearer`
/// the token the request presents (`Authorization: Bearer ...`).
pub fn decide(access: &Access, path: &str, changes_state: bool, bearer: Option<&str>) -> Decision {
    if !changes_state && OPEN.contains(&path) {
        return Decision::Serve;
    }
    match &access.token {
        Some(token) if changes_state || access.exposed => {
            if bearer.is_some_and(|b| token.matches(b.as_bytes())) {
                Decision::Serve
            } else {
                Decision::Unauthorized
            }
        }
        Some(_) => Decision::Serve,
        None if changes_state && access.exposed => Decision::NoTokenConfigured,
        None => Decision::Serve,
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(token: Option<&str>, exposed: bool) -> Access {
        Access {
            token: token.map(|t| Secret::new(t.into())),
            exposed,
        }
    }

    #[test]
    fn a_token_guards_state_changes_everywhere_and_everything_beyond_loopback() {
        use Decision::*;
        let local = access(Some("s3cret"), false);
        let exposed = access(Some("s3cret"), true);
        let cases = [
            (&local, "/metrics", false, None, Serve),
            (&local, "/reload", true, None, Unauthorized),
            (&local, "/reload", true, Some("wrong"), Unauthorized),
            (&local, "/reload", true, Some("s3cret"), Serve),
            (&local, "/reshard/start", true, Some("s3cre"), Unauthorized),
            (&exposed, "/metrics", false, None, Unauthorized),
            (&exposed, "/", false, Some("s3cret"), Serve),
            (&exposed, "/health", false, None, Serve),
            (&exposed, "/ready", false, None, Serve),
            (&exposed, "/upgrade", true, Some("s3cret"), Serve),
        ];
        for (access, path, post, bearer, expected) in cases {
            assert_eq!(
                decide(access, path, post, bearer),
                expected,
                "{path} post={post} bearer={bearer:?} exposed={}",
                access.exposed
            );
        }
    }

    #[test]
    fn without_a_token_only_loopback_may_change_the_proxy() {
        use Decision::*;
        assert_eq!(decide(&access(None, false), "/reload", true, None), Serve);
        assert_eq!(decide(&access(None, false), "/metrics", false, None), Serve);
        assert_eq!(
            decide(&access(None, true), "/reload", true, Some("x")),
            NoTokenConfigured
        );
        assert_eq!(decide(&access(None, true), "/metrics", false, None), Serve);
    }

    #[test]
    fn bearer_headers_are_read_case_insensitively() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}
