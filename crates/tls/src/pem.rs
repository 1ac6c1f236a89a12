//! PEM files read into DER (through rustls-pki-types), with errors that
//! name the file and say what was wrong with it.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::LoadError;
use crate::x509::{summarize, CertSummary};

/// A certificate chain as read, with what the proxy shows of its leaf.
#[derive(Debug, Clone)]
pub struct Chain {
    pub certs: Vec<CertificateDer<'static>>,
    pub leaf: CertSummary,
}

/// A PEM file's bytes, read once: what is parsed is what a later reload
/// compares with (reading it again to compare could see a renewal the
/// parsed configuration never had, and keep the old certificate as
/// "unchanged" for good).
pub struct PemFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl PemFile {
    pub fn read(path: &Path) -> Result<PemFile, LoadError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(PemFile {
                path: path.to_path_buf(),
                bytes,
            }),
            Err(e) => Err(LoadError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Every certificate in it (a chain, leaf first; or CAs).
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, LoadError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(&e))?;
        if certs.is_empty() {
            return Err(LoadError::NoCertificate(self.path.clone()));
        }
        Ok(certs)
    }

    /// A certificate chain whose leaf the proxy can read.
    pub fn chain(&self) -> Result<Chain, LoadError> {
        let certs = self.certificates()?;
        let leaf = certs
            .first()
            .and_then(|leaf| summarize(leaf))
            .ok_or_else(|| LoadError::UnreadableLeaf(self.path.clone()))?;
        Ok(Chain { certs, leaf })
    }

    /// The private key in it (PKCS#8, PKCS#1 or SEC1).
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, LoadError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                LoadError::NoPrivateKey(self.path.clone())
            }
            other => self.error(&other),
        })
    }

    /// CAs for a verifier: every certificate in it, each accepted.
    pub fn roots(&self) -> Result<rustls::RootCertStore, LoadError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.certificates()? {
            roots.add(cert).map_err(|e| LoadError::BadCa {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(roots)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes, for comparing with a later read.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn error(&self, error: &rustls::pki_types::pem::Error) -> LoadError {
        let path = self.path.clone();
        match error {
            rustls::pki_types::pem::Error::Io(e) => LoadError::Read {
                path,
                reason: e.to_string(),
            },
            other => LoadError::NotPem {
                path,
                reason: format!("{other:?}"),
            },
        }
    }
}

/// CAs for a verifier, from a file: every certificate in it, each accepted.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, LoadError> {
    PemFile::read(path)?.roots()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let e = PemFile::read(&missing).err().expect("missing").to_string();
        assert!(e.contains("missing.pem: cannot read"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").expect("write");
        let empty = PemFile::read(&empty).expect("read");
        let e = empty.certificates().unwrap_err().to_string();
        assert!(e.contains("empty.pem: no certificate in it"), "{e}");
        let e = empty.private_key().unwrap_err().to_string();
        assert!(e.contains("empty.pem: no private key in it"), "{e}");
    }
}
