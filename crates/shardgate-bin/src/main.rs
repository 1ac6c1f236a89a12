//! The `shardgate` binary: command line, logging, signals and exit codes.
//! Everything else lives in the `shardgate` library; `shardgate demo`
//! lives in [`demo`].

mod demo;
mod remote;

// jemalloc: as fast as mimalloc for the proxy's many small, short-lived
// buffers, and it gives memory back while the proxy is idle (a background
// thread purges what was freed within about a second: .cargo/config.toml
// sets it at build time), where mimalloc kept 700 MB after four 100 MB
// values had come and gone.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shardgate::config;
use shardgate::{Options, Proxy};
use tracing_subscriber::EnvFilter;

/// A fast Redis proxy: shards keys like twemproxy, speaks Redis exactly.
#[derive(Debug, Parser)]
#[command(
    name = "shardgate",
    version,
    about = "A fast Redis proxy: shards keys like twemproxy (its nutcracker.yml runs as it is), \
             speaks Redis exactly, fails over with Sentinel or by itself, splits reads to \
             replicas, reloads its config and reshards without dropping clients.",
    after_help = "Run `shardgate -c FILE` to serve; `shardgate demo` for a local topology to \
                  try; docs in /usr/share/doc/shardgate or the docs/ directory."
)]
struct Cli {
    /// Configuration file (twemproxy's nutcracker.yml format plus extensions).
    #[arg(
        short = 'c',
        long = "conf-file",
        value_name = "FILE",
        default_value = "conf/shardgate.yml"
    )]
    conf_file: PathBuf,

    /// Check the configuration file and exit (0 if valid).
    #[arg(short = 't', long = "test-conf")]
    test_conf: bool,

    /// Worker threads; default: one per core.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// More logging: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    shutdown_grace: u64,

    /// Turn off per-command metrics (to measure what they cost).
    #[arg(long)]
    no_metrics: bool,

    /// What all clients together may hold in the proxy's buffers (read
    /// buffers, queued MULTI requests, unwritten replies), as Redis 7's
    /// maxmemory-clients: beyond it the clients holding the most are
    /// closed. Bytes, or with kb, mb, gb (1024-based); 0: no limit.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAXMEMORY_CLIENTS, value_parser = parse_size)]
    maxmemory_clients: u64,

    /// Admin HTTP server address (metrics, stats, topology, status page);
    /// `off` disables it. Loopback unless told otherwise.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8001",
        global = true
    )]
    admin: String,

    /// A host name the admin server answers to (repeatable). IP addresses,
    /// `localhost` and this machine's name always work; other names are
    /// refused (a guard against DNS rebinding from a web page).
    #[arg(long = "admin-host", value_name = "NAME", global = true)]
    admin_hosts: Vec<String>,

    /// A file holding the admin server's bearer token: required by
    /// reload, upgrade and resharding, and by every endpoint but /health
    /// and /ready when the admin server listens beyond loopback. The
    /// commands that talk to a running proxy send it.
    #[arg(long = "admin-token-file", value_name = "FILE", global = true)]
    admin_token_file: Option<PathBuf>,

    /// Serve the admin server over HTTPS with this certificate chain (PEM;
    /// with --admin-tls-key). Re-read by every reload.
    #[arg(
        long = "admin-tls-cert",
        value_name = "FILE",
        requires = "admin_tls_key"
    )]
    admin_tls_cert: Option<PathBuf>,

    /// The admin certificate's private key (PEM).
    #[arg(
        long = "admin-tls-key",
        value_name = "FILE",
        requires = "admin_tls_cert"
    )]
    admin_tls_key: Option<PathBuf>,

    /// For the commands that talk to a running proxy: its admin server
    /// speaks HTTPS, with a certificate signed by these CAs (PEM).
    #[arg(long = "admin-ca", value_name = "FILE", global = true)]
    admin_ca: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the running proxy (its admin server, --admin) to reload its
    /// configuration file, and print what changed or every problem.
    /// Exits 0 only if the reload was applied.
    Reload,
    /// Ask the running proxy (--admin) to start the binary at its path in
    /// its place: the new process takes the listening sockets and every
    /// client between two requests; the old one exits. Prints the new pid.
    Upgrade,
    /// Online resharding through the running proxy (--admin): `plan`
    /// measures what would move (keys and bytes per source and
    /// destination, big keys, destination memory, time) and changes
    /// nothing; `start` moves each pool's keys to the servers its entry in
    /// the config file lists; `status`, `pause`, `resume`, `abort` (moves
    /// them back).
    Reshard {
        #[arg(value_parser = ["plan", "start", "status", "pause", "resume", "abort"])]
        action: String,
        /// Only this pool (pause, resume, abort).
        #[arg(long)]
        pool: Option<String>,
        /// plan: compare with this file instead of the proxy's own.
        #[arg(short = 'c', long = "conf-file", value_name = "FILE")]
        conf_file: Option<PathBuf>,
        /// plan: keys scanned per source database at most; beyond, the
        /// figures are scaled up from the sample.
        #[arg(long, value_name = "N", default_value_t = 100_000)]
        max_keys: u64,
    },
    /// Print the running proxy's pools, shards, nodes (role, health, lag,
    /// reads) and recent events, from its admin server (--admin).
    Status,
    /// Print a shell completion script: `shardgate completions bash >
    /// /etc/bash_completion.d/shardgate` (or zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Start a local topology (3 shards x master + replica, 3 Sentinels)
    /// with shardgate in front, and a little traffic. Ctrl-C stops it all.
    Demo {
        /// The data port clients connect to.
        #[arg(long, default_value_t = 22121)]
        port: u16,
        /// Kill a random master every SECONDS, to watch failovers live.
        #[arg(long, value_name = "SECONDS")]
        chaos: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--maxmemory-clients`'s default (the demo's too).
const DEFAULT_MAXMEMORY_CLIENTS: &str = "1gb";

/// A size as Redis's configuration writes it: `512`, `64kb`, `100mb`,
/// `1gb` (1024-based; upper case too).
fn parse_size(text: &str) -> Result<u64, SizeError> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => lower.split_at(at),
        None => (lower.as_str(), ""),
    };
    let scale: u64 = match unit {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        other => return Err(SizeError::Unit(other.to_string())),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| SizeError::NotASize(text.to_string()))?;
    n.checked_mul(scale)
        .ok_or_else(|| SizeError::TooLarge(text.to_string()))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum SizeError {
    #[error("unknown unit '{0}' (use kb, mb or gb)")]
    Unit(String),
    #[error("'{0}' is not a size (e.g. 512mb, 1gb, 0)")]
    NotASize(String),
    #[error("'{0}' is too large")]
    TooLarge(String),
}

#[derive(Debug, thiserror::Error)]
enum TokenError {
    #[error("--admin-token-file {}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--admin-token-file {}: the file is empty", .0.display())]
    Empty(PathBuf),
}

/// The token in `--admin-token-file` (its first line), if given.
fn admin_token(cli: &Cli) -> Result<Option<shardgate::secrets::Secret>, TokenError> {
    let Some(path) = &cli.admin_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.clone(),
        source,
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(TokenError::Empty(path.clone()));
    }
    Ok(Some(shardgate::secrets::Secret::new(token.to_string())))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let admin = match cli.admin.as_str() {
        "off" => None,
        addr => {
            match addr.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    eprintln!("shardgate: --admin '{addr}' is not an address (e.g. 127.0.0.1:8001, or off)");
                    return ExitCode::from(1);
                }
            }
        }
    };
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(Command::Completions { shell }) = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "shardgate", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Some(
        command @ (Command::Reload | Command::Upgrade | Command::Reshard { .. } | Command::Status),
    ) = &cli.command
    {
        let Some(admin) = admin else {
            eprintln!("shardgate: needs the proxy's admin server address (--admin)");
            return ExitCode::from(1);
        };
        let token = match admin_token(&cli) {
            Ok(token) => token,
            Err(e) => {
                eprintln!("shardgate: {e}");
                return ExitCode::from(1);
            }
        };
        let admin = remote::Admin {
            addr: admin,
            token: token.map(|t| t.expose().to_string()),
            ca: cli.admin_ca.clone(),
        };
        return match command {
            Command::Upgrade => remote::upgrade(&admin),
            Command::Reshard {
                action,
                conf_file,
                max_keys,
                ..
            } if action == "plan" => remote::reshard_plan(&admin, conf_file.as_deref(), *max_keys),
            Command::Reshard { action, pool, .. } => {
                remote::reshard(&admin, action, pool.as_deref())
            }
            Command::Status => remote::status(&admin),
            _ => remote::run(&admin),
        };
    }
    if let Some(Command::Demo { port, chaos }) = cli.command {
        raise_fd_limit();
        let Some(admin) = admin else {
            eprintln!("shardgate demo: the demo needs its admin server (the status page); drop --admin off");
            return ExitCode::from(1);
        };
        let args = demo::DemoArgs {
            port,
            admin,
            workers,
            chaos,
        };
        let signals = match Signals::install() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("shardgate demo: cannot handle signals: {error}");
                return ExitCode::from(1);
            }
        };
        return demo::run(args, move || {
            signals.wait(|| {}, || {}, std::future::pending());
        });
    }
    let (config, text) = match config::load_with_text(&cli.conf_file) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprint!("shardgate: invalid configuration {error}");
            return ExitCode::from(1);
        }
    };
    let problems = shardgate::pool::tls::check(&config);
    if !problems.is_empty() {
        eprintln!(
            "shardgate: invalid configuration {}: {} problem{}:",
            cli.conf_file.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for problem in problems {
            eprintln!("  - {problem}");
        }
        return ExitCode::from(1);
    }
    if cli.test_conf {
        println!(
            "shardgate: configuration file '{}' syntax is ok ({} pool{})",
            cli.conf_file.display(),
            config.pools.len(),
            if config.pools.len() == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    raise_fd_limit();
    let admin_token = match admin_token(&cli) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("shardgate: {e}");
            return ExitCode::from(1);
        }
    };
    let admin_tls = match (&cli.admin_tls_cert, &cli.admin_tls_key) {
        (Some(cert), Some(key)) => Some(shardgate::config::ListenTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
            client_auth: shardgate::config::ClientAuth::None,
            min_version: shardgate::config::TlsVersion::V1_2,
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 64,
            user_from_cert: None,
        }),
        _ => None,
    };
    // Before anything starts: a SIGTERM during startup must drain, not kill.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("shardgate: cannot handle signals: {error}");
            return ExitCode::from(1);
        }
    };
    let options = Options {
        workers,
        shutdown_grace: Duration::from_secs(cli.shutdown_grace),
        metrics: !cli.no_metrics,
        admin,
        admin_hosts: cli.admin_hosts.clone(),
        admin_token,
        admin_tls,
        config_file: Some((cli.conf_file.clone(), text)),
        // An upgrade starts this binary again, with the same arguments.
        executable: std::env::current_exe()
            .ok()
            .map(|exe| (exe, std::env::args_os().skip(1).collect())),
        inherit: std::env::var_os(shardgate::upgrade::ENV).map(PathBuf::from),
        maxmemory_clients: cli.maxmemory_clients,
    };
    let proxy = match Proxy::start(config, options) {
        Ok(proxy) => proxy,
        Err(error) => {
            eprintln!("shardgate: cannot start: {error}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        workers,
        "shardgate started"
    );
    let grace = Duration::from_secs(cli.shutdown_grace);
    let mut retired = proxy.retired();
    let (reloads, upgrades) = (proxy.reloads(), proxy.reloads());
    let conf_file = cli.conf_file.clone();
    let stop = signals.wait(
        move || {
            tracing::info!("SIGHUP received: reloading {}", conf_file.display());
            // The reload logs its outcome.
            let _ = reloads.reload();
        },
        move || {
            tracing::info!("SIGUSR2 received: upgrading to the binary at its path");
            // A failure is logged; this process carries on.
            let _ = upgrades.upgrade();
        },
        // An upgrade asked for through the admin server.
        async move {
            let _ = retired.wait_for(|r| *r).await;
        },
    );
    match stop {
        "upgrade" => {
            proxy.drain(grace);
            tracing::info!("clients handed over: this process exits");
        }
        signal => tracing::info!("{signal} received: shutting down"),
    }
    proxy.shutdown();
    tracing::info!("shardgate stopped");
    ExitCode::SUCCESS
}

fn init_logging(cli: &Cli) {
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a terminal: files and pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Many idle clients need many descriptors: raise the soft limit to the hard one.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("file descriptor limit: {limit}"),
        Err(error) => tracing::warn!("cannot raise the file descriptor limit: {error}"),
    }
}

/// The signals the proxy handles, registered before it starts: one that
/// arrives during startup is kept, not fatal (the default action of
/// SIGTERM and SIGHUP would end the process before it could drain).
struct Signals {
    runtime: tokio::runtime::Runtime,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    user2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _entered = runtime.enter();
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
            user2: signal(SignalKind::user_defined2())?,
            runtime,
        })
    }

    /// Blocks until SIGTERM or SIGINT ("SIGTERM", "SIGINT"), or until
    /// `retired` resolves ("upgrade": a new process serves in this one's
    /// place); runs `on_hangup` at each SIGHUP, `on_upgrade` at each SIGUSR2
    /// (each on a thread of its own: see [`beside_the_runtime`]).
    fn wait(
        mut self,
        on_hangup: impl Fn() + Send + Sync + 'static,
        on_upgrade: impl Fn() + Send + Sync + 'static,
        retired: impl std::future::Future<Output = ()>,
    ) -> &'static str {
        let (on_hangup, on_upgrade) = (Arc::new(on_hangup), Arc::new(on_upgrade));
        self.runtime.block_on(async {
            tokio::pin!(retired);
            loop {
                tokio::select! {
                    _ = self.terminate.recv() => return "SIGTERM",
                    _ = self.interrupt.recv() => return "SIGINT",
                    _ = self.hangup.recv() => beside_the_runtime("reload", &on_hangup),
                    _ = self.user2.recv() => beside_the_runtime("upgrade", &on_upgrade),
                    () = &mut retired => return "upgrade",
                }
            }
        })
    }
}

/// Runs `action` on a thread of its own and does not wait for it. A reload
/// and an upgrade block until their outcome (`blocking_recv`), which panics
/// on a thread driving a runtime ("Cannot block the current thread from
/// within a runtime"), and the signal loop must stay free for SIGTERM: an
/// upgrade waits up to 30 s for its successor. The reload thread takes
/// requests in order, so a second SIGHUP reloads after the first.
fn beside_the_runtime(name: &str, action: &Arc<impl Fn() + Send + Sync + 'static>) {
    let action = Arc::clone(action);
    if let Err(error) = std::thread::Builder::new()
        .name(format!("shardgate-{name}-signal"))
        .spawn(move || action())
    {
        tracing::error!("cannot start the {name}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_redis_writes_them() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert!(parse_size("1tb").is_err());
        assert!(parse_size("mb").is_err());
        assert!(parse_size("99999999999999gb").is_err());
    }
}
