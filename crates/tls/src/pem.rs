//! PEM files read into DER (through rustls-pki-types), with errors that
//! name the file and say what was wrong with it.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::x509::{summarize, CertSummary};

/// A certificate chain as read, with what the proxy shows of its leaf.
#[derive(Debug, Clone)]
pub struct Chain {
    pub certs: Vec<CertificateDer<'static>>,
    pub leaf: CertSummary,
}

/// Every certificate in a PEM file (a chain, leaf first; or CAs).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A certificate chain whose leaf the proxy can read.
pub fn chain(path: &Path) -> Result<Chain, String> {
    let certs = certificates(path)?;
    let leaf = certs
        .first()
        .and_then(|leaf| summarize(leaf))
        .ok_or_else(|| format!("{}: the first certificate cannot be read", path.display()))?;
    Ok(Chain { certs, leaf })
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{}: no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY)",
            path.display()
        ),
        other => pem_error(path, &other),
    })
}

/// CAs for a verifier: every certificate of the file, each accepted.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// What the files held when read (an unreadable one as empty).
pub fn file_bytes<'a>(
    paths: impl IntoIterator<Item = Option<&'a std::path::PathBuf>>,
) -> Vec<Vec<u8>> {
    paths
        .into_iter()
        .flatten()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

fn pem_error(path: &Path, error: &rustls::pki_types::pem::Error) -> String {
    match error {
        rustls::pki_types::pem::Error::Io(e) => format!("{}: cannot read: {e}", path.display()),
        other => format!("{}: not valid PEM: {other:?}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let e = certificates(&missing).unwrap_err();
        assert!(e.contains("missing.pem: cannot read"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").expect("write");
        let e = certificates(&empty).unwrap_err();
        assert!(e.contains("empty.pem: no certificate in it"), "{e}");
        let e = private_key(&empty).unwrap_err();
        assert!(e.contains("empty.pem: no private key in it"), "{e}");
    }
}
