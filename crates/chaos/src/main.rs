//! `shardgate-chaos`: a bounded chaos run against the real shardgate
//! binary (see the `chaos` crate doc and docs/chaos.md). Prints a table;
//! exits 1 on any violation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    about = "A chaos run: 2 shardgate proxies, 3 shards, 3 Sentinels, mixed load, random faults, checked"
)]
struct Args {
    /// Minutes of faults (warm-up and final checks come on top).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Seed of the fault schedule and targets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The shardgate binary (default: next to this program).
    #[arg(long)]
    shardgate: Option<PathBuf>,
    /// Where logs, the timeline and the report go (default: target/chaos/<seed>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds within which every client must be served after a fault ends.
    #[arg(long, default_value_t = 10)]
    recovery_bound: u64,
    /// Largest proxy RSS growth after warm-up, in percent.
    #[arg(long, default_value_t = 10.0)]
    rss_growth: f64,
    /// RSS growth below this many MiB never fails (allocator arenas settle
    /// for a few minutes; a short run cannot tell that from a trend).
    #[arg(long, default_value_t = 4)]
    rss_slack_mib: u64,
    /// Milliseconds each client pauses between operations.
    #[arg(long, default_value_t = 5)]
    pace_ms: u64,
    /// Prove the checker can fail: tamper with a counter and a transfer
    /// account behind the proxies' backs after warm-up (the run must fail).
    #[arg(long)]
    self_test: bool,
    /// Instead of a chaos run: check that Pub/Sub subscribers through the
    /// proxy hear the new master soon after a Sentinel failover.
    #[arg(long)]
    check_pubsub_failover: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let here = std::env::current_exe().ok();
    let shardgate = args.shardgate.unwrap_or_else(|| {
        here.as_ref()
            .and_then(|p| p.parent())
            .map(|d| d.join("shardgate"))
            .unwrap_or_else(|| PathBuf::from("shardgate"))
    });
    if !shardgate.is_file() {
        eprintln!(
            "shardgate-chaos: no shardgate binary at {} (build it: cargo build -p shardgate-bin, or pass --shardgate)",
            shardgate.display()
        );
        return ExitCode::from(2);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = args.out.unwrap_or_else(|| {
        here.as_ref()
            .and_then(|p| p.parent()?.parent())
            .map(|target| target.join("chaos"))
            .unwrap_or_else(|| PathBuf::from("chaos"))
            .join(format!("seed{}-{stamp}", args.seed))
    });
    let options = chaos::Options {
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        seed: args.seed,
        shardgate: shardgate.clone(),
        out: out.clone(),
        recovery_bound: Duration::from_secs(args.recovery_bound),
        rss_growth: args.rss_growth,
        rss_slack_kib: args.rss_slack_mib * 1024,
        pace: Duration::from_millis(args.pace_ms),
        self_test: args.self_test,
    };
    if args.check_pubsub_failover {
        return if chaos::pubsub_failover::check(&options) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    // Taken before the run: the tree may change while it lasts.
    let heading = format!(
        "shardgate chaos run, {}, shardgate {}",
        date(),
        commit().unwrap_or_else(|| shardgate.display().to_string())
    );
    let outcome = chaos::run(&options);
    let report = chaos::report::render(&options, &outcome, &heading);
    let _ = std::fs::write(out.join("report.txt"), &report);
    let violations: String = outcome
        .verdict
        .violations
        .iter()
        .map(|v| format!("[{} ms] {}: {}\n", v.at, v.check, v.detail))
        .collect();
    let _ = std::fs::write(out.join("violations.log"), violations);
    println!("\nlogs, timeline and report: {}\n", out.display());
    print!("{report}");
    if outcome.verdict.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| format!("commit {}", String::from_utf8_lossy(&output.stdout).trim()))
}
