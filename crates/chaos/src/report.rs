//! The table a run prints (and keeps as `report.txt`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::clock::secs;
use crate::journal::{Check, FaultKind, Kind};
use crate::run::{Options, Outcome};

fn count(check: Check, outcome: &Outcome) -> usize {
    outcome
        .verdict
        .violations
        .iter()
        .filter(|v| v.check == check)
        .count()
}

fn verdict(n: usize) -> &'static str {
    if n == 0 {
        "ok"
    } else {
        "VIOLATED"
    }
}

pub fn render(options: &Options, outcome: &Outcome, heading: &str) -> String {
    let records = &outcome.records;
    let v = &outcome.verdict;
    let mut out = String::new();
    let _ = writeln!(out, "{heading}");
    let _ = writeln!(
        out,
        "seed {}, faults for {} s after {} s of warm-up, {} s in all; 2 proxies (2 workers each), 3 shards (master + replica), 3 Sentinels",
        options.seed,
        options.duration.as_secs(),
        outcome.warmup.as_secs(),
        outcome.elapsed.as_secs()
    );
    let _ = writeln!(out);

    let mut by_kind: BTreeMap<FaultKind, (usize, usize)> = BTreeMap::new();
    for fault in &records.faults {
        let entry = by_kind.entry(fault.kind).or_default();
        entry.0 += 1;
        let led_to_failover = records.failovers.iter().any(|f| {
            fault.node == Some(f.from) && f.at >= fault.start && f.at <= fault.end + 2_000
        });
        entry.1 += usize::from(led_to_failover);
    }
    let _ = writeln!(out, "| fault | count | followed by a failover |");
    let _ = writeln!(out, "|---|---:|---:|");
    for (kind, (n, failovers)) in &by_kind {
        let _ = writeln!(out, "| {} | {n} | {failovers} |", kind.name());
    }
    let _ = writeln!(
        out,
        "| **all** | **{}** | **{}** Sentinel failovers observed (`+switch-master`) |",
        records.faults.len(),
        records.failovers.len()
    );
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "| client kind (x2 proxies) | ops ok | errors | replies checked | retries | recovery p50 / worst (s) | not served |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mut total_checked = 0;
    let mut transfers_retried = 0;
    for kind in Kind::ALL {
        let clients: Vec<_> = outcome.clients.iter().filter(|c| c.kind == kind).collect();
        let sum = |f: fn(&crate::journal::ClientStats) -> u64| -> u64 {
            clients.iter().map(|c| f(c)).sum()
        };
        let ok = sum(|c| c.ok.load(Relaxed));
        let errors = sum(|c| c.errors.load(Relaxed));
        let checked = sum(|c| c.checked.load(Relaxed));
        let retries = sum(|c| c.retries.load(Relaxed));
        total_checked += checked;
        if kind == Kind::Watch {
            transfers_retried = retries;
        }
        let row = v.recovery.get(&kind);
        let recovery = row
            .map(|r| format!("{} / {}", secs(r.p50), secs(r.worst)))
            .unwrap_or_else(|| "-".into());
        let unserved = row.map(|r| r.unserved).unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {ok} | {errors} | {checked} | {retries} | {recovery} | {unserved} |",
            kind.name()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "retries: WATCH transfers aborted by a concurrent transfer; EVALSHA answered NOSCRIPT (then EVAL); Pub/Sub gaps (messages lost, allowed)"
    );
    let _ = writeln!(out);

    let l = &v.losses;
    let worst = v.recovery.values().map(|r| r.worst).max().unwrap_or(0);
    let rss: Vec<String> = v
        .rss
        .iter()
        .filter(|r| r.judged)
        .map(|r| {
            format!(
                "proxy {}: {:.1} -> {:.1} MiB ({:+.1}%)",
                r.proxy,
                r.baseline as f64 / 1024.0,
                r.last as f64 / 1024.0,
                r.growth
            )
        })
        .collect();
    let restarts = records
        .faults
        .iter()
        .filter(|f| f.kind == FaultKind::RestartProxy)
        .count();
    let rows: Vec<(String, usize, String)> = vec![
        (
            "no proxy crash or panic".into(),
            count(Check::Crash, outcome),
            format!("{restarts} restarts by SIGTERM, each exit 0; no \"panicked\" in any log"),
        ),
        (
            format!(
                "every client served again within {} s of each fault's end",
                options.recovery_bound.as_secs()
            ),
            count(Check::Recovery, outcome),
            format!(
                "worst {} s, over {} faults x {} clients",
                secs(worst),
                records.faults.len(),
                outcome.clients.len()
            ),
        ),
        (
            "no acknowledged write lost (INCR counters)".into(),
            l.unexplained,
            format!(
                "{} lost inside a failover window (explained), {} outside, of {} acknowledged",
                l.explained, l.unexplained, l.acked
            ),
        ),
        (
            "stale reads / queue anomalies".into(),
            l.suspects_unexplained,
            format!(
                "{} inside a failover window (explained), {} outside",
                l.suspects_explained, l.suspects_unexplained
            ),
        ),
        (
            "no write confirmed by WAIT 1 lost".into(),
            l.durable_unexplained,
            format!(
                "{} lost with a failover before WAIT returned (explained), {} without, of {} confirmed",
                l.durable_explained, l.durable_unexplained, l.durable_acked
            ),
        ),
        (
            "no reply to the wrong client or out of order".into(),
            count(Check::Misdelivery, outcome),
            format!("{total_checked} replies checked"),
        ),
        (
            "no request left unanswered (15 s)".into(),
            count(Check::Hang, outcome),
            String::new(),
        ),
        (
            "transfer sums constant".into(),
            count(Check::Sum, outcome),
            format!(
                "{} pairs at the end; {transfers_retried} WATCH aborts retried",
                outcome.transfers_checked
            ),
        ),
        (
            format!(
                "proxy RSS flat after warm-up (< {}%, or < {} MiB)",
                options.rss_growth,
                options.rss_slack_kib / 1024
            ),
            count(Check::Rss, outcome),
            rss.join("; "),
        ),
        (
            "topology healed after every fault (60 s)".into(),
            count(Check::Heal, outcome),
            String::new(),
        ),
    ];
    let _ = writeln!(out, "| check | result | violations | detail |");
    let _ = writeln!(out, "|---|---|---:|---|");
    for (check, n, detail) in &rows {
        let _ = writeln!(out, "| {check} | {} | {n} | {detail} |", verdict(*n));
    }
    let longest = records.stalls.iter().map(|s| s.1).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "| (observed) the machine: a 50 ms sleep of the harness woke over 200 ms late | {} | - | everything under test stalls alike: recovery times include it |",
        if records.stalls.is_empty() {
            "never".to_string()
        } else {
            format!("{} times, at worst {} s late", records.stalls.len(), secs(longest))
        }
    );
    let readonly: u64 = outcome
        .clients
        .iter()
        .map(|c| c.readonly.load(Relaxed))
        .sum();
    let _ = writeln!(
        out,
        "| (observed) writes answered READONLY: they reached a node in the replica role | {} | - | counted, not failed: see docs/chaos.md |",
        if readonly == 0 {
            "none".to_string()
        } else {
            format!("{readonly} (times in timeline.log)")
        }
    );
    let _ = writeln!(out);
    let failed = rows.iter().filter(|(_, n, _)| *n > 0).count();
    if v.violations.is_empty() {
        let _ = writeln!(out, "PASS: no violation");
    } else {
        let _ = writeln!(out, "FAIL: {} violations", v.violations.len());
        for violation in v.violations.iter().take(40) {
            let _ = writeln!(
                out,
                "  [{} s] {}: {}",
                secs(violation.at),
                violation.check,
                violation.detail
            );
        }
        if v.violations.len() > 40 {
            let _ = writeln!(
                out,
                "  ... {} more in violations.log",
                v.violations.len() - 40
            );
        }
    }
    // The plain closing line test runners are read by.
    let _ = writeln!(
        out,
        "chaos: {} passed, {failed} failed",
        rows.len() - failed
    );
    out
}
