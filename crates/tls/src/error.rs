//! Why TLS settings could not be loaded or a handshake failed, naming the
//! file (never its contents) in words an operator can act on.

use std::path::PathBuf;

/// A `tls:`, `backend_tls:` or `sentinel_tls:` block that cannot be
/// loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{}: cannot read: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: not valid PEM: {reason}", .path.display())]
    NotPem { path: PathBuf, reason: String },
    #[error("{}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: the first certificate cannot be read", .0.display())]
    UnreadableLeaf(PathBuf),
    #[error("{}: no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)", .0.display())]
    NoPrivateKey(PathBuf),
    #[error("{}: not a usable CA certificate: {reason}", .path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("{} is not the private key of {}", .key.display(), .cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// rustls refused what a file holds (an unsupported key type, a CA
    /// list it cannot build a verifier from).
    #[error("{}: {reason}", .path.display())]
    Refused { path: PathBuf, reason: String },
    /// Settings that exclude each other or miss a part.
    #[error("{0}")]
    Settings(&'static str),
    /// rustls refused the protocol versions.
    #[error("{0}")]
    Versions(String),
}

/// Why a TLS handshake with a server did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("server_name '{0}' is not a valid name")]
    ServerName(String),
    /// The reason in words (see `describe`).
    #[error("TLS handshake failed: {0}")]
    Failed(String),
}
