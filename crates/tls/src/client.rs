//! The proxy as a TLS client: a pool's `backend_tls:` or `sentinel_tls:`
//! read into a rustls [`ClientConfig`], the live store new connections
//! take it from, and the dial itself.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use shardgate_core::config::UpstreamTls;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{HandshakeError, LoadError};
use crate::pem::PemFile;
use crate::x509::CertSummary;
use crate::{describe, provider, versions, Side};

/// An upstream TLS block with its files read.
#[derive(Debug)]
pub struct ClientSide {
    pub settings: UpstreamTls,
    pub config: Arc<ClientConfig>,
    /// The client certificate the proxy presents, if any.
    pub cert: Option<CertSummary>,
    files: Vec<Vec<u8>>,
}

impl ClientSide {
    /// Reads the CAs and the client certificate the settings name.
    pub fn load(settings: &UpstreamTls) -> Result<ClientSide, LoadError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(settings.min_version))
            .map_err(|e| LoadError::Versions(e.to_string()))?;
        // Verification is skipped only when asked for by name, never for a
        // missing CA (the configuration refuses both, or neither).
        // Each file is read once: parsed, and kept to compare at a reload.
        let mut files = Vec::new();
        let builder = match (&settings.ca, settings.insecure_skip_verify) {
            (Some(ca), false) => {
                let ca = PemFile::read(ca)?;
                let roots = ca.roots()?;
                files.push(ca.into_bytes());
                builder.with_root_certificates(roots)
            }
            (None, true) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
            (Some(_), true) => {
                return Err(LoadError::Settings(
                    "`ca` and `insecure_skip_verify_for_tests` exclude each other",
                ))
            }
            (None, false) => {
                return Err(LoadError::Settings(
                    "a `ca` to verify servers with is required",
                ))
            }
        };
        let (config, cert) = match &settings.client_cert {
            Some((cert, key)) => {
                let (cert_file, key_file) = (PemFile::read(cert)?, PemFile::read(key)?);
                let chain = cert_file.chain()?;
                let key_der = key_file.private_key()?;
                files.extend([cert_file.into_bytes(), key_file.into_bytes()]);
                let config = builder
                    .with_client_auth_cert(chain.certs, key_der)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => LoadError::KeyMismatch {
                            key: key.clone(),
                            cert: cert.clone(),
                        },
                        other => LoadError::Refused {
                            path: cert.clone(),
                            reason: other.to_string(),
                        },
                    })?;
                (config, Some(chain.leaf))
            }
            None => (builder.with_no_client_auth(), None),
        };
        Ok(ClientSide {
            settings: settings.clone(),
            config: Arc::new(config),
            cert,
            files,
        })
    }

    /// Whether `other` was read from the same settings and the same bytes.
    pub fn same_as(&self, other: &ClientSide) -> bool {
        self.settings == other.settings && self.files == other.files
    }

    /// The TLS handshake over a connected socket to `addr`; the error
    /// says why in words (no certificate detail beyond the reason).
    pub async fn handshake(
        &self,
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let name = match &self.settings.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|_| HandshakeError::ServerName(name.clone()))?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| HandshakeError::Failed(describe(&e, Side::Server)))
    }
}

/// Where a pool's new connections to its servers (or Sentinels) take
/// their TLS configuration: swapped whole by a reload; connections
/// already up keep theirs.
#[derive(Default)]
pub struct Dialer {
    current: ArcSwapOption<ClientSide>,
}

impl Dialer {
    pub fn new(side: Option<ClientSide>) -> Dialer {
        Dialer {
            current: ArcSwapOption::new(side.map(Arc::new)),
        }
    }

    pub fn current(&self) -> Option<Arc<ClientSide>> {
        self.current.load_full()
    }

    pub fn set(&self, side: Option<Arc<ClientSide>>) {
        self.current.store(side);
    }
}

/// How a connection is dialled: plaintext, or TLS as a [`Dialer`] says
/// at the moment of the dial. Two connectors are equal when they are the
/// same store (a certificate re-read keeps it; its connections stay).
#[derive(Clone, Default)]
pub struct Connector(Option<Arc<Dialer>>);

impl Connector {
    pub fn new(dialer: Arc<Dialer>) -> Connector {
        Connector(Some(dialer))
    }

    /// The TLS configuration to dial with now (None: plaintext).
    pub fn current(&self) -> Option<Arc<ClientSide>> {
        self.0.as_ref()?.current()
    }
}

impl PartialEq for Connector {
    fn eq(&self, other: &Connector) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Connector {}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.current() {
            Some(_) => f.write_str("Connector(tls)"),
            None => f.write_str("Connector(plain)"),
        }
    }
}

/// `insecure_skip_verify_for_tests`: any certificate is accepted (the
/// handshake signatures are still checked, so the session is encrypted
/// to whoever holds the key of the certificate shown).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
