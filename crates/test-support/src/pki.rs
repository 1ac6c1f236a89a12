//! Test certificates made by the openssl CLI in a temp dir: CAs and the
//! certificates they sign (ECDSA P-256), valid now, expired or not yet
//! valid. Nothing is committed; every test makes its own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temp dir of keys and certificates, removed on drop.
pub struct Pki {
    dir: tempfile::TempDir,
}

/// A CA: its certificate (what verifiers are given) and key.
#[derive(Debug, Clone)]
pub struct Ca {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// The serial number as `openssl x509 -serial` prints it.
    pub fn serial(&self) -> String {
        let out = openssl(&["x509", "-noout", "-serial", "-in", &path(&self.cert)]);
        out.trim().trim_start_matches("serial=").to_string()
    }

    /// `notAfter` as Unix seconds (`openssl x509 -enddate`, read by `date`).
    pub fn not_after(&self) -> i64 {
        let out = openssl(&["x509", "-noout", "-enddate", "-in", &path(&self.cert)]);
        let date = out.trim().trim_start_matches("notAfter=");
        let out = Command::new("date")
            .args(["-u", "-d", date, "+%s"])
            .output()
            .expect("run date");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("date prints seconds")
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub enum Validity {
    /// From yesterday for this many days.
    Days(u32),
    /// Expired: valid from 10 days ago to yesterday.
    Expired,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server (and client: Redis uses one pair for both).
    Server,
    Client,
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Runs openssl; panics with its output when it fails.
fn openssl(args: &[&str]) -> String {
    let program = crate::require_program("openssl", "openssl");
    let out = Command::new(program)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `YYMMDDHHMMSSZ`, `days` from now (UTC).
fn stamp(days: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("{days} days"), "+%y%m%d%H%M%SZ"])
        .output()
        .expect("run date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn key(&self, name: &str) -> PathBuf {
        let key = self.dir().join(format!("{name}.key"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &path(&key),
        ]);
        key
    }

    /// A self-signed CA, valid for ten years.
    pub fn ca(&self, name: &str) -> Ca {
        let key = self.key(name);
        let cert = self.dir().join(format!("{name}.crt"));
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &path(&key),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &path(&cert),
        ]);
        let ca_dir = self.dir().join(format!("{name}-db"));
        std::fs::create_dir_all(ca_dir.join("new")).expect("mkdir");
        std::fs::write(ca_dir.join("index.txt"), "").expect("index");
        std::fs::write(
            ca_dir.join("openssl.cnf"),
            format!(
                "[ca]\ndefault_ca = ca\n[ca]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}/new\n\
                 serial = {db}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
                 certificate = {cert}\nprivate_key = {key}\n[any]\ncommonName = supplied\n",
                db = path(&ca_dir),
                cert = path(&cert),
                key = path(&key),
            ),
        )
        .expect("openssl.cnf");
        Ca {
            name: name.to_string(),
            cert,
            key,
        }
    }

    /// A certificate for `cn` signed by `ca`, valid for 127.0.0.1 and
    /// localhost (and `names`), each issue with a fresh random serial.
    pub fn issue(&self, ca: &Ca, file: &str, cn: &str, usage: Usage, validity: Validity) -> Issued {
        let key = self.key(file);
        let csr = self.dir().join(format!("{file}.csr"));
        openssl(&[
            "req",
            "-new",
            "-key",
            &path(&key),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &path(&csr),
        ]);
        let ext = self.dir().join(format!("{file}.ext"));
        let usage = match usage {
            Usage::Server => "serverAuth,clientAuth",
            Usage::Client => "clientAuth",
        };
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
            ),
        )
        .expect("ext");
        let (start, end) = match validity {
            Validity::Days(days) => (stamp(-1), stamp(i64::from(days))),
            Validity::Expired => (stamp(-10), stamp(-1)),
        };
        let cert = self.dir().join(format!("{file}.crt"));
        let db = self.dir().join(format!("{}-db", ca.name));
        openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-rand_serial",
            "-config",
            &path(&db.join("openssl.cnf")),
            "-in",
            &path(&csr),
            "-out",
            &path(&cert),
            "-startdate",
            &start,
            "-enddate",
            &end,
            "-extfile",
            &path(&ext),
        ]);
        Issued { cert, key }
    }

    /// `issue` for a server, valid for a year.
    pub fn server(&self, ca: &Ca, file: &str) -> Issued {
        self.issue(ca, file, file, Usage::Server, Validity::Days(365))
    }

    /// `issue` for a client named `cn`, valid for a year.
    pub fn client(&self, ca: &Ca, file: &str, cn: &str) -> Issued {
        self.issue(ca, file, cn, Usage::Client, Validity::Days(365))
    }
}
