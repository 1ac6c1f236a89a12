//! The certificate fields the proxy reads, checked against what openssl
//! says of real certificates; and the configurations built from them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use shardgate_core::config::{ClientAuth, ListenTls, TlsVersion, UpstreamTls};
use shardgate_tls::{x509, ClientSide, ServerSide};
use test_support::pki::{Pki, Usage, Validity};

fn listen(cert: &std::path::Path, key: &std::path::Path) -> ListenTls {
    ListenTls {
        cert: cert.into(),
        key: key.into(),
        client_ca: None,
        client_auth: ClientAuth::None,
        min_version: TlsVersion::V1_2,
        handshake_timeout: std::time::Duration::from_secs(5),
        max_handshakes: 8,
        user_from_cert: None,
    }
}

#[test]
fn expiry_serial_and_name_match_openssl() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    for (file, validity) in [("valid", Validity::Days(30)), ("old", Validity::Expired)] {
        let issued = pki.issue(&ca, file, &format!("cn-{file}"), Usage::Server, validity);
        let side = ServerSide::load(&listen(&issued.cert, &issued.key)).expect("loads");
        assert_eq!(side.cert.not_after, issued.not_after(), "{file}");
        assert_eq!(side.cert.serial, issued.serial(), "{file}");
        assert_eq!(
            side.cert.common_name.as_deref(),
            Some(&*format!("cn-{file}"))
        );
    }
    let der = std::fs::read(pki.dir().join("ca.crt")).unwrap();
    assert!(x509::summarize(&der).is_none(), "PEM is not DER");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_by_name() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let a = pki.server(&ca, "a");
    let b = pki.server(&ca, "b");
    let e = ServerSide::load(&listen(&a.cert, &b.key))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("b.key is not the private key of") && e.contains("a.crt"),
        "{e}"
    );
    let e = ServerSide::load(&listen(&a.key, &a.key))
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.key: no certificate in it"), "{e}");
}

#[test]
fn a_re_read_of_unchanged_files_is_the_same_and_a_new_certificate_is_not() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let a = pki.server(&ca, "a");
    let settings = listen(&a.cert, &a.key);
    let first = ServerSide::load(&settings).unwrap();
    assert!(first.same_as(&ServerSide::load(&settings).unwrap()));
    pki.server(&ca, "a"); // the same files, a new certificate and key
    let second = ServerSide::load(&settings).unwrap();
    assert!(!first.same_as(&second));
    assert_ne!(first.cert.serial, second.cert.serial);
}

#[test]
fn upstream_sides_load_with_and_without_a_client_certificate() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let client = pki.client(&ca, "proxy", "proxy");
    let settings = UpstreamTls {
        ca: Some(ca.cert.clone()),
        client_cert: Some((client.cert.clone(), client.key.clone())),
        server_name: None,
        insecure_skip_verify: false,
        min_version: TlsVersion::V1_3,
    };
    let side = ClientSide::load(&settings).unwrap();
    assert_eq!(side.cert.as_ref().unwrap().serial, client.serial());
    let plain = UpstreamTls {
        client_cert: None,
        ..settings
    };
    assert!(ClientSide::load(&plain).unwrap().cert.is_none());
}
