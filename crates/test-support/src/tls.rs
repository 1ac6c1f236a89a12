//! Clients of a TLS port: a blocking RESP client over rustls (the test's
//! own TLS stack, not the proxy's code paths), and the command-line
//! tools the issue names: `redis-cli --tls` and `openssl s_client`.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sandbox::resp::{encode, read_reply, Reply};

use crate::pki::Issued;

fn config(ca: &Path, identity: Option<&Issued>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read ca") {
        roots.add(cert.expect("ca cert")).expect("add ca");
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(issued) => {
            let chain = CertificateDer::pem_file_iter(&issued.cert)
                .expect("read cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_file(&issued.key).expect("read key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A blocking RESP client over TLS (verifying the server against `ca`,
/// as `127.0.0.1`).
pub struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Connects and completes the handshake (with TLS 1.3 a server that
    /// refuses the client's certificate says so at the first read).
    pub fn connect(port: u16, ca: &Path, identity: Option<&Issued>) -> std::io::Result<TlsClient> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let connection = ClientConnection::new(config(ca, identity), name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut stream = StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(&encode(args))?;
        stream.flush()
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.stream)
    }

    /// The serial of the certificate the server showed, as openssl
    /// prints it.
    pub fn server_serial(&self) -> String {
        let leaf = self
            .stream
            .get_ref()
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("a server certificate")
            .clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let der = dir.path().join("leaf.der");
        std::fs::write(&der, leaf.as_ref()).expect("write");
        let out = Command::new(crate::require_program("openssl", "openssl"))
            .args(["x509", "-inform", "DER", "-noout", "-serial", "-in"])
            .arg(&der)
            .output()
            .expect("openssl x509");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_string()
    }
}

/// The serial of the certificate a TLS port shows, as `openssl s_client`
/// receives it and `openssl x509 -serial` prints it (None when no
/// handshake completed).
pub fn s_client_serial(port: u16, ca: &Path, identity: Option<&Issued>) -> Option<String> {
    let openssl = crate::require_program("openssl", "openssl");
    let mut command = Command::new(&openssl);
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-showcerts"]);
    if let Some(issued) = identity {
        command
            .arg("-cert")
            .arg(&issued.cert)
            .arg("-key")
            .arg(&issued.key);
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[begin..].find("-----END CERTIFICATE-----")? + begin + 25;
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("leaf.pem");
    std::fs::write(&pem, &text[begin..end]).expect("write");
    let out = Command::new(&openssl)
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl x509");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_string(),
    )
}

/// `redis-cli --tls -p PORT ARGS...` (verifying against `ca`): its
/// stdout, or its stderr when it failed.
pub fn redis_cli(
    port: u16,
    ca: &Path,
    identity: Option<&Issued>,
    args: &[&str],
) -> Result<String, String> {
    let mut command = Command::new(crate::require_program("redis-cli", "redis-tools"));
    command
        .args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()])
        .arg("--cacert")
        .arg(ca);
    if let Some(issued) = identity {
        command
            .arg("--cert")
            .arg(&issued.cert)
            .arg("--key")
            .arg(&issued.key);
    }
    let out = command.args(args).output().expect("redis-cli");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success()
        && !stdout.starts_with("Could not connect")
        && !stdout.starts_with("Error")
    {
        Ok(stdout)
    } else {
        Err(format!("{stdout} {stderr}"))
    }
}
