//! TLS settings: `tls:` (the pool's TLS listeners), `backend_tls:` (the
//! pool's Redis servers) and `sentinel_tls:` (its Sentinels), as written
//! and as validated. Only paths and choices: reading the files is the
//! `shardgate-tls` crate's job (this crate does no I/O).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The oldest TLS version a side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

/// Whether clients of a TLS listener must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// Asked for; a client without one is served, one with a bad one is
    /// refused.
    Optional,
    /// A client without a certificate signed by `client_ca` is refused
    /// (mutual TLS).
    Required,
}

impl ClientAuth {
    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

/// Which name of a client certificate becomes the client's proxy user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUser {
    /// The subject's common name (`CN=`), as Redis 7.2's
    /// `tls-auth-clients-user CN`.
    CommonName,
}

/// `tls:`: how the pool's TLS listeners (`tls_listen`,
/// `tls_readonly_listen`) talk to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenTls {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CAs that sign client certificates (PEM); with `client_auth`
    /// other than `none`.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    /// A handshake not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes a worker runs at once per TLS listener (a client takes a
    /// place once it sent a byte); further clients wait in the listen
    /// backlog (so a reconnect storm cannot starve traffic).
    pub max_handshakes: u32,
    /// A client certificate's name logs the client in as the proxy user
    /// of that name (None: clients AUTH as usual).
    pub user_from_cert: Option<CertUser>,
}

/// `handshake_timeout`: a TLS handshake takes a few round trips; five
/// seconds lets a slow client finish and drops one that never will before
/// it holds a place for long.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Most `handshake_timeout`, in milliseconds: ten minutes; a handshake
/// that may take longer is not one a proxy should wait for.
pub const MAX_HANDSHAKE_TIMEOUT_MS: i64 = 600_000;

/// `max_handshakes`: a handshake costs a worker a fraction of a
/// millisecond of CPU (ECDSA; RSA more), so 64 at once keep a reconnect
/// storm from starving the clients already connected, and still let
/// thousands of clients connect a second.
pub const DEFAULT_MAX_HANDSHAKES: u32 = 64;

/// Most `max_handshakes`: a hundred thousand at once would not bound a
/// worker at all.
pub const MAX_MAX_HANDSHAKES: u32 = 100_000;

/// `backend_tls:` / `sentinel_tls:`: how the proxy talks TLS to Redis
/// servers or Sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// CAs the servers' certificates must chain to (PEM). Required unless
    /// verification is turned off.
    pub ca: Option<PathBuf>,
    /// A client certificate and key, for servers that ask for one
    /// (Redis's default `tls-auth-clients yes`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The name the servers' certificates must carry. None: the IP
    /// address dialled (the certificate then needs that IP address).
    pub server_name: Option<String>,
    /// Accept any server certificate: encryption without authentication,
    /// for tests only.
    pub insecure_skip_verify: bool,
    pub min_version: TlsVersion,
}

/// The key that turns server verification off; its name says what it is.
pub const SKIP_VERIFY_KEY: &str = "insecure_skip_verify_for_tests";

/// `tls:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub client_auth: Option<String>,
    pub min_version: Option<serde_yaml_version::Version>,
    pub handshake_timeout: Option<i64>,
    pub max_handshakes: Option<i64>,
    pub user_from_cert: Option<String>,
}

/// `backend_tls:` / `sentinel_tls:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify_for_tests: Option<bool>,
    pub min_version: Option<serde_yaml_version::Version>,
}

/// `min_version: 1.2` is a YAML number, `"1.2"` a string: both are fine.
mod serde_yaml_version {
    use serde::{de, Deserialize, Deserializer};

    #[derive(Debug, Clone, PartialEq)]
    pub struct Version(pub String);

    impl<'de> Deserialize<'de> for Version {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Version, D::Error> {
            struct Visitor;
            impl de::Visitor<'_> for Visitor {
                type Value = Version;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a TLS version: 1.2 or 1.3")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                    Ok(Version(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Version, E> {
                    Ok(Version(format!("{v:.1}")))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Version, E> {
                    Ok(Version(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                    Ok(Version(v.to_string()))
                }
            }
            deserializer.deserialize_any(Visitor)
        }
    }
}

/// A problem: the key under the block (`cert`, `client_auth`...) and
/// what is wrong.
pub type Problem = (&'static str, String);

fn path(value: Option<String>, key: &'static str, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    match value {
        Some(p) if p.trim().is_empty() => {
            problems.push((key, "is empty".into()));
            None
        }
        Some(p) => Some(PathBuf::from(p)),
        None => None,
    }
}

fn version(value: Option<serde_yaml_version::Version>, problems: &mut Vec<Problem>) -> TlsVersion {
    match value.as_ref().map(|v| v.0.trim()) {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            problems.push((
                "min_version",
                format!("'{other}' is not supported (expected 1.2 or 1.3)"),
            ));
            TlsVersion::V1_2
        }
    }
}

/// Validates `tls:`; every problem at once.
pub fn listen_tls(raw: RawListenTls) -> Result<ListenTls, Vec<Problem>> {
    let mut problems = Vec::new();
    let cert = path(raw.cert, "cert", &mut problems);
    let key = path(raw.key, "key", &mut problems);
    if cert.is_none() && !problems.iter().any(|p| p.0 == "cert") {
        problems.push((
            "cert",
            "missing: the certificate chain (PEM) clients see".into(),
        ));
    }
    if key.is_none() && !problems.iter().any(|p| p.0 == "key") {
        problems.push(("key", "missing: the certificate's private key (PEM)".into()));
    }
    let client_ca = path(raw.client_ca, "client_ca", &mut problems);
    let client_auth = match raw.client_auth.as_deref() {
        None if client_ca.is_some() => ClientAuth::Required,
        None | Some("none") => ClientAuth::None,
        Some("optional") => ClientAuth::Optional,
        Some("required") => ClientAuth::Required,
        Some(other) => {
            problems.push((
                "client_auth",
                format!("unknown '{other}' (expected required, optional or none)"),
            ));
            ClientAuth::None
        }
    };
    if client_auth != ClientAuth::None && client_ca.is_none() {
        problems.push((
            "client_auth",
            format!(
                "'{}' needs `client_ca` (the CAs that sign client certificates)",
                client_auth.name()
            ),
        ));
    }
    if client_auth == ClientAuth::None && client_ca.is_some() {
        problems.push((
            "client_ca",
            "is set but `client_auth: none` asks clients for no certificate (remove one of them)"
                .into(),
        ));
    }
    let min_version = version(raw.min_version, &mut problems);
    let handshake_timeout = match raw.handshake_timeout {
        None => DEFAULT_HANDSHAKE_TIMEOUT,
        Some(ms) if (1..=MAX_HANDSHAKE_TIMEOUT_MS).contains(&ms) => {
            Duration::from_millis(ms.unsigned_abs())
        }
        Some(ms) => {
            problems.push((
                "handshake_timeout",
                format!("{ms} is out of range 1..={MAX_HANDSHAKE_TIMEOUT_MS} (milliseconds)"),
            ));
            DEFAULT_HANDSHAKE_TIMEOUT
        }
    };
    let max_handshakes = match raw.max_handshakes {
        None => DEFAULT_MAX_HANDSHAKES,
        Some(n) if (1..=i64::from(MAX_MAX_HANDSHAKES)).contains(&n) => {
            u32::try_from(n).unwrap_or(DEFAULT_MAX_HANDSHAKES)
        }
        Some(n) => {
            problems.push((
                "max_handshakes",
                format!("{n} is out of range 1..={MAX_MAX_HANDSHAKES}"),
            ));
            DEFAULT_MAX_HANDSHAKES
        }
    };
    let user_from_cert = match raw.user_from_cert.as_deref() {
        None | Some("none") => None,
        Some("CN") | Some("cn") => Some(CertUser::CommonName),
        Some(other) => {
            problems.push((
                "user_from_cert",
                format!("unknown '{other}' (expected CN or none)"),
            ));
            None
        }
    };
    if user_from_cert.is_some() && client_auth == ClientAuth::None {
        problems.push((
            "user_from_cert",
            "needs client certificates (`client_ca` and `client_auth`)".into(),
        ));
    }
    match (cert, key) {
        (Some(cert), Some(key)) if problems.is_empty() => Ok(ListenTls {
            cert,
            key,
            client_ca,
            client_auth,
            min_version,
            handshake_timeout,
            max_handshakes,
            user_from_cert,
        }),
        _ => Err(problems),
    }
}

/// Validates `backend_tls:` or `sentinel_tls:`; every problem at once.
pub fn upstream_tls(raw: RawUpstreamTls) -> Result<UpstreamTls, Vec<Problem>> {
    let mut problems = Vec::new();
    let ca = path(raw.ca, "ca", &mut problems);
    let cert = path(raw.cert, "cert", &mut problems);
    let key = path(raw.key, "key", &mut problems);
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(("key", "missing: `cert` needs its private key".into()));
            None
        }
        (None, Some(_)) => {
            problems.push(("cert", "missing: `key` needs its certificate".into()));
            None
        }
    };
    let insecure_skip_verify = raw.insecure_skip_verify_for_tests.unwrap_or(false);
    if ca.is_none() && !insecure_skip_verify && !problems.iter().any(|p| p.0 == "ca") {
        problems.push((
            "ca",
            format!(
                "missing: the CAs that sign the servers' certificates (PEM; the system's \
                 are in /etc/ssl/certs/ca-certificates.crt), or `{SKIP_VERIFY_KEY}: true` \
                 for tests"
            ),
        ));
    }
    if ca.is_some() && insecure_skip_verify {
        problems.push((
            SKIP_VERIFY_KEY,
            "is set together with `ca`: keep one (verification on, or off for tests)".into(),
        ));
    }
    let server_name = match raw.server_name {
        Some(name) if name.trim().is_empty() => {
            problems.push(("server_name", "is empty".into()));
            None
        }
        name => name,
    };
    let min_version = version(raw.min_version, &mut problems);
    if problems.is_empty() {
        Ok(UpstreamTls {
            ca,
            client_cert,
            server_name,
            insecure_skip_verify,
            min_version,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(yaml: &str) -> Result<ListenTls, Vec<Problem>> {
        listen_tls(yaml_serde::from_str(yaml).expect("yaml"))
    }

    fn upstream(yaml: &str) -> Result<UpstreamTls, Vec<Problem>> {
        upstream_tls(yaml_serde::from_str(yaml).expect("yaml"))
    }

    #[test]
    fn a_listener_needs_a_certificate_and_its_key() {
        let problems = listen("min_version: 1.3").unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.0).collect();
        assert_eq!(keys, ["cert", "key"]);
        let tls = listen("cert: /c.pem\nkey: /k.pem").expect("valid");
        assert_eq!(tls.client_auth, ClientAuth::None);
        assert_eq!(tls.min_version, TlsVersion::V1_2);
        assert_eq!(tls.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        assert_eq!(tls.max_handshakes, DEFAULT_MAX_HANDSHAKES);
    }

    #[test]
    fn a_client_ca_means_client_certificates_are_required_unless_told() {
        let tls = listen("cert: c\nkey: k\nclient_ca: ca").expect("valid");
        assert_eq!(tls.client_auth, ClientAuth::Required);
        let tls = listen("cert: c\nkey: k\nclient_ca: ca\nclient_auth: optional").expect("valid");
        assert_eq!(tls.client_auth, ClientAuth::Optional);
        let problems = listen("cert: c\nkey: k\nclient_auth: required").unwrap_err();
        assert_eq!(problems[0].0, "client_auth");
        assert!(problems[0].1.contains("needs `client_ca`"), "{problems:?}");
        let problems = listen("cert: c\nkey: k\nclient_ca: ca\nclient_auth: none").unwrap_err();
        assert_eq!(problems[0].0, "client_ca");
    }

    #[test]
    fn versions_are_1_2_or_1_3_as_numbers_or_strings() {
        for (written, version) in [
            ("1.2", TlsVersion::V1_2),
            ("\"1.3\"", TlsVersion::V1_3),
            ("1.3", TlsVersion::V1_3),
        ] {
            let tls = listen(&format!("cert: c\nkey: k\nmin_version: {written}")).expect("valid");
            assert_eq!(tls.min_version, version, "{written}");
        }
        let problems = listen("cert: c\nkey: k\nmin_version: 1.1").unwrap_err();
        assert_eq!(problems[0].0, "min_version");
        assert!(problems[0].1.contains("'1.1'"), "{problems:?}");
    }

    #[test]
    fn bounds_and_user_mapping_are_checked() {
        let problems =
            listen("cert: c\nkey: k\nhandshake_timeout: 0\nmax_handshakes: -1\nuser_from_cert: CN")
                .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            ["handshake_timeout", "max_handshakes", "user_from_cert"]
        );
        let tls = listen("cert: c\nkey: k\nclient_ca: ca\nuser_from_cert: CN").expect("valid");
        assert_eq!(tls.user_from_cert, Some(CertUser::CommonName));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(yaml_serde::from_str::<RawListenTls>("cert: c\ncertificate: x").is_err());
        assert!(yaml_serde::from_str::<RawUpstreamTls>("ca: c\nskip_verify: true").is_err());
    }

    #[test]
    fn an_upstream_verifies_against_a_ca_or_says_loudly_that_it_does_not() {
        let problems = upstream("server_name: redis").unwrap_err();
        assert_eq!(problems[0].0, "ca");
        assert!(problems[0].1.contains(SKIP_VERIFY_KEY), "{problems:?}");
        let tls = upstream("insecure_skip_verify_for_tests: true").expect("valid");
        assert!(tls.insecure_skip_verify && tls.ca.is_none());
        let problems = upstream("ca: a\ninsecure_skip_verify_for_tests: true").unwrap_err();
        assert_eq!(problems[0].0, SKIP_VERIFY_KEY);
        let tls = upstream("ca: a\ncert: c\nkey: k\nserver_name: redis.internal").expect("valid");
        assert_eq!(tls.client_cert, Some(("c".into(), "k".into())));
        assert_eq!(tls.server_name.as_deref(), Some("redis.internal"));
        let problems = upstream("ca: a\ncert: c").unwrap_err();
        assert_eq!(problems[0].0, "key");
    }
}
