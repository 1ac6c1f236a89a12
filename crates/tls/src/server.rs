//! The listener side: a pool's `tls:` block read into a rustls
//! [`ServerConfig`], and the live store new handshakes take it from.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use shardgate_core::config::{ClientAuth, ListenTls};

use crate::error::LoadError;
use crate::pem::PemFile;
use crate::x509::CertSummary;
use crate::{provider, versions};

/// A `tls:` block with its files read: what a handshake needs.
#[derive(Debug)]
pub struct ServerSide {
    pub settings: ListenTls,
    pub config: Arc<ServerConfig>,
    /// The certificate clients are shown (its leaf).
    pub cert: CertSummary,
    /// The bytes every file held, to tell a re-read that changed nothing.
    files: Vec<Vec<u8>>,
}

impl ServerSide {
    /// Reads the certificate, key and client CAs the settings name.
    pub fn load(settings: &ListenTls) -> Result<ServerSide, LoadError> {
        let provider = provider();
        // Each file is read once: parsed, and kept to compare at a reload.
        let cert_file = PemFile::read(&settings.cert)?;
        let key_file = PemFile::read(&settings.key)?;
        let ca_file = settings
            .client_ca
            .as_deref()
            .map(PemFile::read)
            .transpose()?;
        let chain = cert_file.chain()?;
        let key = key_file.private_key()?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(settings.min_version))
            .map_err(|e| LoadError::Versions(e.to_string()))?;
        let builder = match (&ca_file, settings.client_auth) {
            (Some(ca_file), ClientAuth::Optional | ClientAuth::Required) => {
                let roots = ca_file.roots()?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if settings.client_auth == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|e| LoadError::Refused {
                    path: ca_file.path().to_path_buf(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(chain.certs, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => LoadError::KeyMismatch {
                    key: settings.key.clone(),
                    cert: settings.cert.clone(),
                },
                other => LoadError::Refused {
                    path: settings.cert.clone(),
                    reason: other.to_string(),
                },
            })?;
        let files = [Some(cert_file), Some(key_file), ca_file]
            .into_iter()
            .flatten()
            .map(PemFile::into_bytes)
            .collect();
        Ok(ServerSide {
            settings: settings.clone(),
            config: Arc::new(config),
            cert: chain.leaf,
            files,
        })
    }

    /// Whether `other` was read from the same settings and the same bytes.
    pub fn same_as(&self, other: &ServerSide) -> bool {
        self.settings == other.settings && self.files == other.files
    }
}

/// Where new handshakes of a pool's TLS listeners take their
/// configuration: swapped whole by a reload, so a handshake runs with one
/// certificate from start to end and connections already up keep theirs.
#[derive(Default)]
pub struct Acceptor {
    current: ArcSwapOption<ServerSide>,
}

impl Acceptor {
    pub fn new(side: Option<ServerSide>) -> Acceptor {
        Acceptor {
            current: ArcSwapOption::new(side.map(Arc::new)),
        }
    }

    /// The configuration for the next handshake (None: no `tls:` block).
    pub fn current(&self) -> Option<Arc<ServerSide>> {
        self.current.load_full()
    }

    pub fn set(&self, side: Option<Arc<ServerSide>>) {
        self.current.store(side);
    }
}
