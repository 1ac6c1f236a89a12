//! shardgate's TLS: certificates and keys read from PEM files into rustls
//! configurations, for the pools' TLS listeners (the proxy as a server)
//! and for their Redis servers and Sentinels (the proxy as a client); the
//! live stores a reload swaps so new handshakes use new certificates
//! while connections already up keep theirs; handshake failures in
//! words; and the non-blocking reads and writes the backend's pipelined
//! connections make over a TLS session.
//!
//! One crypto provider is compiled in (ring) and installed explicitly at
//! start ([`install_provider`]); every configuration is also built with
//! it named, so nothing depends on a process default.
//!
//! # Layout
//! - `error`: [`LoadError`] (settings that cannot be loaded, naming the
//!   file) and [`HandshakeError`].
//! - `pem`: PEM files read into DER.
//! - `x509`: a certificate's expiry, serial and common name (a DER walk).
//! - `server`: [`ServerSide`] (a `tls:` block read) and [`Acceptor`].
//! - `client`: [`ClientSide`] (`backend_tls:` / `sentinel_tls:` read),
//!   [`Dialer`] and [`Connector`].
//! - `wire`: non-blocking plaintext reads and writes over a TLS session.

#![forbid(unsafe_code)]

mod client;
mod error;
mod pem;
mod server;
pub mod wire;
pub mod x509;

use std::io;
use std::sync::Arc;

pub use client::{ClientSide, Connector, Dialer};
pub use error::{HandshakeError, LoadError};
pub use pem::roots;
pub use rustls;
pub use server::{Acceptor, ServerSide};
pub use tokio_rustls;
pub use x509::CertSummary;

use shardgate_core::config::TlsVersion;

/// The crypto provider every configuration is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs [`provider`] as the process default (once; later calls do
/// nothing). rustls refuses to guess when a build has two providers, so
/// the choice is made here, explicitly, at start.
pub fn install_provider() {
    // Err means one is installed already: this process's, from an
    // earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The protocol versions from `min` up.
fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min {
        TlsVersion::V1_2 => BOTH,
        TlsVersion::V1_3 => ONLY_13,
    }
}

/// The other end of a handshake, as failures name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Why a handshake failed: a short label (metrics) and the words a log
/// line uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub words: String,
}

/// A handshake error in words, naming which side is at fault.
pub fn describe(error: &io::Error, peer: Side) -> String {
    classify(error, peer).words
}

/// A handshake error classified (see [`Failure`]).
pub fn classify(error: &io::Error, peer: Side) -> Failure {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let name = peer.name();
    let failure = |reason, words: String| Failure { reason, words };
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>());
    let Some(tls) = tls else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => failure(
                "closed",
                format!("the {name} closed the connection during the handshake"),
            ),
            io::ErrorKind::TimedOut => failure("timeout", "the handshake timed out".into()),
            _ => failure("io", error.to_string()),
        };
    };
    match tls {
        Error::NoCertificatesPresented => failure(
            "no_certificate",
            format!("the {name} presented no certificate (one is required)"),
        ),
        Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            failure("expired", format!("the {name}'s certificate has expired"))
        }
        Error::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => failure(
            "not_yet_valid",
            format!("the {name}'s certificate is not valid yet (check the clocks)"),
        ),
        Error::InvalidCertificate(Cert::UnknownIssuer) => failure(
            "unknown_ca",
            format!("the {name}'s certificate is not signed by a trusted CA"),
        ),
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            failure(
                "wrong_name",
                format!(
                    "the {name}'s certificate is not valid for the name dialled (set server_name)"
                ),
            )
        }
        Error::InvalidCertificate(other) => failure(
            "bad_certificate",
            format!("the {name}'s certificate was refused: {other:?}"),
        ),
        Error::AlertReceived(Alert::CertificateRequired) => failure(
            "certificate_required",
            format!("the {name} requires a client certificate (set cert and key)"),
        ),
        Error::AlertReceived(
            alert @ (Alert::UnknownCA | Alert::BadCertificate | Alert::CertificateExpired),
        ) => failure(
            "refused_by_peer",
            format!("the {name} refused the proxy's certificate ({alert:?})"),
        ),
        Error::AlertReceived(alert) => failure(
            "alert",
            format!("the {name} ended the handshake ({alert:?})"),
        ),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => failure(
            "not_tls",
            format!("the {name} does not speak TLS here (plaintext to a TLS port?)"),
        ),
        Error::PeerIncompatible(why) => failure(
            "incompatible",
            format!("no TLS version or cipher suite in common with the {name} ({why:?})"),
        ),
        other => failure("other", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn handshake_failures_read_as_words_naming_the_side_at_fault() {
        let cases = [
            (
                rustls::Error::NoCertificatesPresented,
                Side::Client,
                "no_certificate",
                "the client presented no certificate",
            ),
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
                Side::Client,
                "expired",
                "the client's certificate has expired",
            ),
            (
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                Side::Server,
                "unknown_ca",
                "the server's certificate is not signed by a trusted CA",
            ),
            (
                rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
                Side::Server,
                "certificate_required",
                "the server requires a client certificate",
            ),
        ];
        for (error, side, reason, words) in cases {
            let failure = classify(&wrapped(error), side);
            assert_eq!(failure.reason, reason);
            assert!(failure.words.starts_with(words), "{}", failure.words);
        }
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(classify(&eof, Side::Client).reason, "closed");
    }

    #[test]
    fn installing_the_provider_twice_is_harmless() {
        install_provider();
        install_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
