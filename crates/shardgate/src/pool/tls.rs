//! A pool's TLS material, as every worker and the controller share it:
//! the listeners' certificate ([`Acceptor`]) and the configurations its
//! connections to servers and Sentinels dial with ([`Dialer`]). Each is a
//! live store: a reload reads the files again ([`Reread`]) and swaps what
//! changed, so new handshakes use the new certificate and connections
//! already up keep theirs. See `docs/tls.md`.

use std::sync::Arc;

use shardgate_tls::{Acceptor, CertSummary, ClientSide, Connector, Dialer, LoadError, ServerSide};

use crate::config::{Config, ListenTls, PoolConfig, UpstreamTls};

/// Which of a pool's TLS configurations a certificate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsUse {
    /// `tls:`: shown to clients.
    Listener,
    /// `backend_tls:`: shown to Redis servers.
    Backend,
    /// `sentinel_tls:`: shown to Sentinels.
    Sentinel,
    /// `--admin-tls-cert`: shown to the admin server's clients.
    Admin,
}

impl TlsUse {
    /// The config key, as metrics and messages name it.
    pub fn key(self) -> &'static str {
        match self {
            TlsUse::Listener => "tls",
            TlsUse::Backend => "backend_tls",
            TlsUse::Sentinel => "sentinel_tls",
            TlsUse::Admin => "admin",
        }
    }
}

/// A certificate that expires sooner than this is flagged on the status
/// page (and by contrib's alert rules).
pub const EXPIRY_WARNING: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

/// A certificate the pool presents, for `/metrics` and the status page.
#[derive(Debug, Clone)]
pub struct PresentedCert {
    pub used_for: TlsUse,
    pub path: String,
    pub summary: CertSummary,
}

/// A pool's live TLS stores.
#[derive(Default)]
pub struct PoolTls {
    pub acceptor: Acceptor,
    backend: Arc<Dialer>,
    sentinel: Arc<Dialer>,
}

impl PoolTls {
    /// Reads every file the pool's TLS settings name. A file that cannot
    /// be read leaves its side empty, said at ERROR (startup checks them
    /// first with [`check`], so this happens only if one changed since).
    pub fn new(config: &PoolConfig) -> PoolTls {
        let loaded = Loaded::read(config);
        for problem in &loaded.problems {
            tracing::error!(pool = %config.name, "{problem}; the side it configures does not work until a reload reads a good file");
        }
        PoolTls {
            acceptor: Acceptor::new(loaded.listener),
            backend: Arc::new(Dialer::new(loaded.backend)),
            sentinel: Arc::new(Dialer::new(loaded.sentinel)),
        }
    }

    /// What the pool's connections to its servers dial with.
    pub fn backend(&self) -> Connector {
        Connector::new(self.backend.clone())
    }

    /// What the pool's connections to its Sentinels dial with.
    pub fn sentinel(&self) -> Connector {
        Connector::new(self.sentinel.clone())
    }

    /// The certificates the pool presents now.
    pub fn presented(&self) -> Vec<PresentedCert> {
        let mut certs = Vec::new();
        if let Some(side) = self.acceptor.current() {
            certs.push(PresentedCert {
                used_for: TlsUse::Listener,
                path: side.settings.cert.display().to_string(),
                summary: side.cert.clone(),
            });
        }
        for (used_for, dialer) in [
            (TlsUse::Backend, &self.backend),
            (TlsUse::Sentinel, &self.sentinel),
        ] {
            let Some(side) = dialer.current() else {
                continue;
            };
            if let (Some(summary), Some((path, _))) = (&side.cert, &side.settings.client_cert) {
                certs.push(PresentedCert {
                    used_for,
                    path: path.display().to_string(),
                    summary: summary.clone(),
                });
            }
        }
        certs
    }
}

/// The admin server's TLS (`--admin-tls-cert`, `--admin-tls-key`): a
/// listener certificate like a pool's, read at start and again by every
/// reload.
pub struct AdminTls {
    pub acceptor: Acceptor,
}

impl AdminTls {
    /// Reads the certificate and key; Err names the file and the problem.
    pub fn load(settings: &ListenTls) -> Result<AdminTls, LoadError> {
        let side = ServerSide::load(settings)?;
        Ok(AdminTls {
            acceptor: Acceptor::new(Some(side)),
        })
    }

    /// The certificate it presents now.
    pub fn presented(&self) -> Option<PresentedCert> {
        let side = self.acceptor.current()?;
        Some(PresentedCert {
            used_for: TlsUse::Admin,
            path: side.settings.cert.display().to_string(),
            summary: side.cert.clone(),
        })
    }
}

/// Every problem reading the files `config` names (startup and
/// `shardgate -t` refuse a configuration with any).
pub fn check(config: &Config) -> Vec<String> {
    config
        .pools
        .iter()
        .flat_map(|pool| Loaded::read(pool).problems)
        .collect()
}

/// A pool's TLS files, read.
struct Loaded {
    listener: Option<ServerSide>,
    backend: Option<ClientSide>,
    sentinel: Option<ClientSide>,
    /// `pool 'p': tls: <why>`, one per side that failed.
    problems: Vec<String>,
}

impl Loaded {
    fn read(config: &PoolConfig) -> Loaded {
        let mut problems = Vec::new();
        let mut note = |key: &str, e: LoadError| {
            problems.push(format!("pool '{}': {key}: {e}", config.name));
        };
        let listener = config
            .tls
            .as_ref()
            .and_then(|s| ServerSide::load(s).map_err(|e| note("tls", e)).ok());
        let mut upstream = |key, settings: &Option<UpstreamTls>| {
            settings
                .as_ref()
                .and_then(|s| ClientSide::load(s).map_err(|e| note(key, e)).ok())
        };
        let backend = upstream("backend_tls", &config.backend_tls);
        let sentinel = upstream("sentinel_tls", &config.sentinel_tls);
        Loaded {
            listener,
            backend,
            sentinel,
            problems,
        }
    }
}

/// A reload's certificates: every pool's TLS files read again, before
/// anything changes ([`Reread::prepare`]), then swapped in
/// ([`Reread::apply`]).
///
/// A side whose settings the reload changes must load, or the reload is
/// invalid and nothing changes. A side whose settings stay the same and
/// whose files no longer load keeps the certificate it has, and the
/// reload says so (a renewal half-written by a tool must not take the
/// listener down).
pub struct Reread {
    swaps: Vec<Swap>,
    /// What the reload reports: certificates replaced or kept.
    lines: Vec<String>,
}

enum Swap {
    Admin(Arc<AdminTls>, Option<Arc<ServerSide>>),
    Listener(Arc<super::PoolState>, Option<Arc<ServerSide>>),
    Backend(Arc<super::PoolState>, Option<Arc<ClientSide>>),
    Sentinel(Arc<super::PoolState>, Option<Arc<ClientSide>>),
}

/// One side's outcome.
enum Side<T> {
    /// Swap in this (None: the side is off now).
    Set(Option<Arc<T>>),
    /// Keep what is there (unchanged, or a re-read that failed).
    Keep,
}

impl Reread {
    /// Reads the files of every pool of `next` that runs already (a new
    /// pool reads its own when it starts). Err: every problem of a side
    /// whose settings change and whose files do not load.
    /// The admin server's certificate (command-line settings) is read
    /// again too.
    pub fn prepare(
        pools: &[Arc<super::PoolState>],
        admin: Option<&Arc<AdminTls>>,
        next: &Config,
    ) -> Result<Reread, Vec<String>> {
        let mut reread = Reread {
            swaps: Vec::new(),
            lines: Vec::new(),
        };
        let mut problems = Vec::new();
        if let Some(admin) = admin {
            let current = admin.acceptor.current();
            let settings = current.as_ref().map(|side| side.settings.clone());
            let mut outcome = Outcome {
                who: "admin server".into(),
                lines: &mut reread.lines,
                problems: &mut problems,
            };
            let side = outcome.side(
                "tls",
                settings.as_ref(),
                current,
                |s| &s.settings,
                ServerSide::load,
                ServerSide::same_as,
                |s| Some(&s.cert),
            );
            if let Side::Set(side @ Some(_)) = side {
                reread.swaps.push(Swap::Admin(admin.clone(), side));
            }
        }
        for config in &next.pools {
            let Some(state) = pools.iter().find(|p| *p.name == *config.name) else {
                continue;
            };
            let tls = &state.tls;
            let mut outcome = Outcome {
                who: format!("pool '{}'", config.name),
                lines: &mut reread.lines,
                problems: &mut problems,
            };
            let listener = outcome.side(
                "tls",
                config.tls.as_ref(),
                tls.acceptor.current(),
                |s| &s.settings,
                ServerSide::load,
                ServerSide::same_as,
                |s| Some(&s.cert),
            );
            let backend = outcome.side(
                "backend_tls",
                config.backend_tls.as_ref(),
                tls.backend.current(),
                |s| &s.settings,
                ClientSide::load,
                ClientSide::same_as,
                |s| s.cert.as_ref(),
            );
            let sentinel = outcome.side(
                "sentinel_tls",
                config.sentinel_tls.as_ref(),
                tls.sentinel.current(),
                |s| &s.settings,
                ClientSide::load,
                ClientSide::same_as,
                |s| s.cert.as_ref(),
            );
            if let Side::Set(side) = listener {
                reread.swaps.push(Swap::Listener(state.clone(), side));
            }
            if let Side::Set(side) = backend {
                reread.swaps.push(Swap::Backend(state.clone(), side));
            }
            if let Side::Set(side) = sentinel {
                reread.swaps.push(Swap::Sentinel(state.clone(), side));
            }
        }
        if problems.is_empty() {
            Ok(reread)
        } else {
            Err(problems)
        }
    }

    /// Swaps the new configurations in; returns what the reload reports.
    pub fn apply(self) -> Vec<String> {
        for swap in self.swaps {
            match swap {
                Swap::Admin(admin, side) => admin.acceptor.set(side),
                Swap::Listener(state, side) => state.tls.acceptor.set(side),
                Swap::Backend(state, side) => state.tls.backend.set(side),
                Swap::Sentinel(state, side) => state.tls.sentinel.set(side),
            }
        }
        self.lines
    }
}

/// Decides sides for one pool (or the admin server).
struct Outcome<'a> {
    /// `pool 'p'` or `admin server`, as lines name it.
    who: String,
    lines: &'a mut Vec<String>,
    problems: &'a mut Vec<String>,
}

impl Outcome<'_> {
    #[allow(clippy::too_many_arguments)]
    fn side<S: PartialEq, T>(
        &mut self,
        key: &str,
        settings: Option<&S>,
        current: Option<Arc<T>>,
        settings_of: impl Fn(&T) -> &S,
        load: impl Fn(&S) -> Result<T, LoadError>,
        same: impl Fn(&T, &T) -> bool,
        cert: impl Fn(&T) -> Option<&CertSummary>,
    ) -> Side<T> {
        let who = self.who.clone();
        let Some(settings) = settings else {
            return match current {
                Some(_) => Side::Set(None),
                None => Side::Keep,
            };
        };
        let unchanged = current
            .as_ref()
            .filter(|current| settings_of(current) == settings);
        match (load(settings), unchanged) {
            (Ok(loaded), Some(current)) if same(current, &loaded) => Side::Keep,
            (Ok(loaded), _) => {
                if let Some(summary) = cert(&loaded) {
                    self.lines.push(format!(
                        "{who}: {key}: certificate (re)loaded: serial {}, expires {}",
                        summary.serial,
                        shardgate_tls::x509::utc(summary.not_after)
                    ));
                } else {
                    self.lines.push(format!("{who}: {key}: reloaded"));
                }
                Side::Set(Some(Arc::new(loaded)))
            }
            (Err(e), Some(current)) => {
                let serial = cert(current).map(|c| c.serial.clone()).unwrap_or_default();
                let line =
                    format!("{who}: {key}: {e}; keeping the certificate in use (serial {serial})");
                tracing::error!("{line}");
                self.lines.push(line);
                Side::Keep
            }
            (Err(e), None) => {
                self.problems.push(format!("{who}: {key}: {e}"));
                Side::Keep
            }
        }
    }
}
