//! The verdicts: pure functions of the journal's records.
//!
//! - **Lost acknowledged writes.** A counter is written by one client, so
//!   its acknowledged INCR values must never go back: an acknowledged
//!   value is lost when a later acknowledgement shows the counter lower
//!   (the INCR answering `w` found `w - 1`), or the final value is lower.
//!   A loss is *explained* when the request was in flight during a failover
//!   window of its shard (asynchronous replication loses what the old
//!   master had not sent yet); otherwise it is a violation. Stale reads
//!   and queue anomalies that clients reported are judged the same way.
//! - **Durable writes** (`WAIT 1` said a replica had it): a loss is
//!   explained only by a failover of its shard between the INCR and WAIT's
//!   reply (WAIT then counted the new master's replica).
//! - **Recovery**: every client's first success after each fault's end,
//!   within the bound.
//! - **RSS**: the largest sample of the last quarter of a proxy's life
//!   against the largest of the first quarter after warm-up.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::clock::Ms;
use crate::journal::{Ack, Check, CounterLog, FaultKind, Kind, Records, Violation};

/// Margin before the first fault on the old master (writes acknowledged
/// just before it may not have reached the replica yet).
const BEFORE: Ms = 1_000;
/// Margin after `+switch-master`: replies from the old master to requests
/// sent before the switch arrive up to the proxy's timeout later.
const AFTER: Ms = 2_000;
/// How far back a fault on the old master is taken as the failover's cause.
const CAUSE: Ms = 60_000;
/// A failover with no fault of ours on the old master (Sentinel decided by
/// itself): this long before it counts as its window.
const UNCAUSED: Ms = 10_000;

/// A time range, inclusive.
pub type Window = (Ms, Ms);

/// The windows in which `shard` may lose acknowledged writes: around each
/// failover, from the first fault on the old master that led to it; and
/// up to the restart of a killed master that Sentinel never failed over.
pub fn loss_windows(records: &Records, shard: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    for failover in records.failovers.iter().filter(|f| f.shard == shard) {
        let cause = records
            .faults
            .iter()
            .filter(|f| f.node == Some(failover.from))
            .filter(|f| f.start <= failover.at && f.start + CAUSE >= failover.at)
            .map(|f| f.start)
            .min()
            .unwrap_or(failover.at.saturating_sub(UNCAUSED));
        windows.push((cause.saturating_sub(BEFORE), failover.at + AFTER));
    }
    // A master Sentinel never failed over is restarted empty: everything
    // the shard held until then is gone, by the harness's doing.
    for fault in records.faults.iter().filter(|f| f.shard == Some(shard)) {
        if fault.kind == FaultKind::KillMaster && fault.detail.starts_with("no failover") {
            windows.push((0, fault.end + AFTER));
        }
    }
    windows
}

/// Whether a request in flight from `sent` to `acked` overlaps a window:
/// the old master may have run it at any moment in between (a reply read
/// late by a busy client still counts).
fn overlaps(windows: &[Window], sent: Ms, acked: Ms) -> bool {
    windows
        .iter()
        .any(|&(from, to)| sent <= to && from <= acked)
}

/// The acknowledged values of a counter that it no longer holds: those
/// above a value it later went back to, or above its final value.
pub fn lost_acks(log: &CounterLog, final_value: Option<i64>) -> Vec<Ack> {
    let mut floor = final_value.unwrap_or(i64::MAX);
    let mut lost = Vec::new();
    for ack in log.acks.iter().rev() {
        if ack.value > floor {
            lost.push(*ack);
        }
        floor = floor.min(ack.value - 1);
    }
    lost.reverse();
    lost
}

#[derive(Default, Debug)]
pub struct Losses {
    pub acked: usize,
    pub explained: usize,
    pub unexplained: usize,
    pub durable_acked: usize,
    pub durable_explained: usize,
    pub durable_unexplained: usize,
    pub suspects_explained: usize,
    pub suspects_unexplained: usize,
}

#[derive(Debug)]
pub struct RssVerdict {
    pub proxy: usize,
    pub incarnation: usize,
    pub baseline: u64,
    pub last: u64,
    pub growth: f64,
    /// False when the incarnation lived too short a time to judge.
    pub judged: bool,
}

#[derive(Default, Debug)]
pub struct RecoveryRow {
    pub measured: usize,
    pub worst: Ms,
    pub p50: Ms,
    pub unserved: usize,
}

/// Everything the report shows.
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub losses: Losses,
    pub recovery: BTreeMap<Kind, RecoveryRow>,
    pub rss: Vec<RssVerdict>,
}

pub struct Limits {
    pub recovery_bound: Duration,
    pub rss_growth: f64,
    /// Growth below this many KiB is never a violation: in a short run a
    /// few MiB of allocator arenas settling are not a trend.
    pub rss_slack_kib: u64,
    /// RSS samples before this (ms since start) are warm-up.
    pub warm_until: Ms,
    /// A proxy started later (restarted) warms up this long from its start.
    pub warmup: Ms,
    /// An incarnation is judged only if it lived this long after warm-up.
    pub rss_min_span: Ms,
}

pub fn judge(records: &Records, finals: &HashMap<String, Option<i64>>, limits: &Limits) -> Verdict {
    let mut violations = records.violations.clone();
    let mut losses = Losses::default();
    let windows: HashMap<usize, Vec<Window>> =
        (0..8).map(|s| (s, loss_windows(records, s))).collect();
    let no_windows = Vec::new();
    let windows_of = |shard: usize| windows.get(&shard).unwrap_or(&no_windows);

    let mut keys: Vec<&String> = records.counters.keys().collect();
    keys.sort();
    for key in keys {
        let log = &records.counters[key];
        losses.acked += log.acks.iter().filter(|a| !a.durable).count();
        losses.durable_acked += log.acks.iter().filter(|a| a.durable).count();
        for ack in lost_acks(log, finals.get(key).copied().flatten()) {
            if ack.durable {
                let failover_before_wait = records.failovers.iter().any(|f| {
                    f.shard == log.shard && f.at + BEFORE >= ack.sent && f.at <= ack.acked + BEFORE
                });
                if failover_before_wait {
                    losses.durable_explained += 1;
                } else {
                    losses.durable_unexplained += 1;
                    violations.push(Violation {
                        at: ack.acked,
                        check: Check::DurableLoss,
                        detail: format!(
                            "{key} = {} confirmed by WAIT at {} ms, lost with no failover of shard{} around it",
                            ack.value, ack.acked, log.shard + 1
                        ),
                    });
                }
            } else if overlaps(windows_of(log.shard), ack.sent, ack.acked) {
                losses.explained += 1;
            } else {
                losses.unexplained += 1;
                violations.push(Violation {
                    at: ack.acked,
                    check: Check::Loss,
                    detail: format!(
                        "{key} = {} acknowledged at {} ms, lost outside every failover window of shard{} (final {:?})",
                        ack.value,
                        ack.acked,
                        log.shard + 1,
                        finals.get(key).copied().flatten()
                    ),
                });
            }
        }
    }
    for suspect in &records.suspects {
        if overlaps(windows_of(suspect.shard), suspect.sent, suspect.acked) {
            losses.suspects_explained += 1;
        } else {
            losses.suspects_unexplained += 1;
            violations.push(Violation {
                at: suspect.seen,
                check: Check::Loss,
                detail: format!(
                    "{} (acknowledged at {} ms, seen at {} ms, shard{})",
                    suspect.what,
                    suspect.acked,
                    suspect.seen,
                    suspect.shard + 1
                ),
            });
        }
    }

    let bound = limits.recovery_bound.as_millis() as Ms;
    let mut recovery: BTreeMap<Kind, RecoveryRow> = BTreeMap::new();
    let mut times: BTreeMap<Kind, Vec<Ms>> = BTreeMap::new();
    for r in &records.recoveries {
        let row = recovery.entry(r.kind).or_default();
        match r.after {
            Some(after) => {
                row.measured += 1;
                row.worst = row.worst.max(after);
                times.entry(r.kind).or_default().push(after);
                if after > bound {
                    violations.push(Violation {
                        at: 0,
                        check: Check::Recovery,
                        detail: format!(
                            "{} first served {after} ms after fault {} ended (bound {bound} ms)",
                            r.client, r.fault
                        ),
                    });
                }
            }
            None => {
                row.unserved += 1;
                violations.push(Violation {
                    at: 0,
                    check: Check::Recovery,
                    detail: format!("{} not served again after fault {}", r.client, r.fault),
                });
            }
        }
    }
    for (kind, mut list) in times {
        list.sort_unstable();
        if let Some(row) = recovery.get_mut(&kind) {
            row.p50 = list[list.len() / 2];
        }
    }

    let mut rss = Vec::new();
    for series in &records.rss {
        let samples: Vec<(Ms, u64)> = series
            .samples
            .iter()
            .copied()
            .filter(|(at, _)| {
                let born = series.samples.first().map(|s| s.0).unwrap_or(0);
                *at >= limits.warm_until.max(born + limits.warmup)
            })
            .collect();
        let span = match (samples.first(), samples.last()) {
            (Some(first), Some(last)) => last.0 - first.0,
            _ => 0,
        };
        let quarter = samples.len() / 4;
        if quarter == 0 || span < limits.rss_min_span {
            let last = series.samples.last().map(|s| s.1).unwrap_or(0);
            rss.push(RssVerdict {
                proxy: series.proxy,
                incarnation: series.incarnation,
                baseline: last,
                last,
                growth: 0.0,
                judged: false,
            });
            continue;
        }
        let baseline = samples[..quarter].iter().map(|s| s.1).max().unwrap_or(0);
        let last = samples[samples.len() - quarter..]
            .iter()
            .map(|s| s.1)
            .max()
            .unwrap_or(0);
        let growth = (last as f64 / baseline.max(1) as f64 - 1.0) * 100.0;
        if growth > limits.rss_growth && last.saturating_sub(baseline) > limits.rss_slack_kib {
            violations.push(Violation {
                at: 0,
                check: Check::Rss,
                detail: format!(
                    "proxy {} (incarnation {}): RSS {baseline} KiB -> {last} KiB, +{growth:.1}% (bound {}% and {} KiB)",
                    series.proxy, series.incarnation, limits.rss_growth, limits.rss_slack_kib
                ),
            });
        }
        rss.push(RssVerdict {
            proxy: series.proxy,
            incarnation: series.incarnation,
            baseline,
            last,
            growth,
            judged: true,
        });
    }
    violations.sort_by_key(|v| (v.check, v.at));
    Verdict {
        violations,
        losses,
        recovery,
        rss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Failover, FaultRecord, Suspect};

    fn ack(value: i64, acked: Ms) -> Ack {
        Ack {
            value,
            sent: acked.saturating_sub(1),
            acked,
            durable: false,
        }
    }

    fn log(values: &[(i64, Ms)]) -> CounterLog {
        CounterLog {
            shard: 0,
            acks: values.iter().map(|&(v, t)| ack(v, t)).collect(),
        }
    }

    #[test]
    fn nothing_is_lost_while_the_counter_only_grows() {
        let log = log(&[(1, 10), (2, 20), (4, 30)]);
        assert!(lost_acks(&log, Some(4)).is_empty());
        // Unacknowledged INCRs that ran make the final value higher: fine.
        assert!(lost_acks(&log, Some(9)).is_empty());
        assert!(lost_acks(&log, None).is_empty());
    }

    #[test]
    fn a_final_value_below_an_acknowledged_one_loses_the_ones_above() {
        let log = log(&[(1, 10), (2, 20), (3, 30)]);
        let lost = lost_acks(&log, Some(1));
        assert_eq!(lost.iter().map(|a| a.value).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn a_regression_masked_by_later_increments_is_still_a_loss() {
        // 1..=5 acknowledged, failover back to 3, then 4, 5, 6 again.
        let log = log(&[
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 4),
            (5, 5),
            (4, 6),
            (5, 7),
            (6, 8),
        ]);
        let lost = lost_acks(&log, Some(6));
        assert_eq!(
            lost.iter().map(|a| (a.value, a.acked)).collect::<Vec<_>>(),
            vec![(4, 4), (5, 5)]
        );
    }

    fn records() -> Records {
        Records {
            faults: vec![FaultRecord {
                kind: FaultKind::StopMaster,
                shard: Some(0),
                node: Some(7001),
                start: 10_000,
                end: 14_000,
                detail: String::new(),
            }],
            failovers: vec![Failover {
                shard: 0,
                at: 12_500,
                from: 7001,
                to: 7002,
            }],
            ..Records::default()
        }
    }

    #[test]
    fn a_failover_window_runs_from_the_fault_on_the_old_master_to_after_the_switch() {
        let records = records();
        assert_eq!(loss_windows(&records, 0), vec![(9_000, 14_500)]);
        assert!(loss_windows(&records, 1).is_empty());
    }

    #[test]
    fn losses_inside_a_window_are_explained_and_outside_are_violations() {
        let mut records = records();
        records
            .counters
            .insert("k".into(), log(&[(1, 5_000), (2, 11_000), (3, 11_500)]));
        records
            .counters
            .insert("j".into(), log(&[(1, 1_000), (2, 2_000)]));
        let finals = HashMap::from([("k".to_string(), Some(1)), ("j".to_string(), Some(1))]);
        let limits = Limits {
            recovery_bound: Duration::from_secs(10),
            rss_growth: 10.0,
            rss_slack_kib: 0,
            warm_until: 0,
            warmup: 0,
            rss_min_span: 0,
        };
        let verdict = judge(&records, &finals, &limits);
        assert_eq!(verdict.losses.explained, 2);
        assert_eq!(verdict.losses.unexplained, 1);
        assert_eq!(verdict.violations.len(), 1);
        assert_eq!(verdict.violations[0].check, Check::Loss);

        records.suspects.push(Suspect {
            shard: 0,
            sent: 19_990,
            acked: 20_000,
            seen: 21_000,
            what: "stale".into(),
        });
        let verdict = judge(&records, &finals, &limits);
        assert_eq!(verdict.losses.suspects_unexplained, 1);
    }

    #[test]
    fn a_durable_loss_is_explained_only_by_a_failover_before_wait_returned() {
        let mut records = records();
        let durable = |value, sent, acked| Ack {
            value,
            sent,
            acked,
            durable: true,
        };
        records.counters.insert(
            "d".into(),
            CounterLog {
                shard: 0,
                // Around the switch at 12.5 s; then long before it.
                acks: vec![durable(1, 1_000, 1_100), durable(2, 12_000, 12_600)],
            },
        );
        let finals = HashMap::from([("d".to_string(), Some(0))]);
        let limits = Limits {
            recovery_bound: Duration::from_secs(10),
            rss_growth: 10.0,
            rss_slack_kib: 0,
            warm_until: 0,
            warmup: 0,
            rss_min_span: 0,
        };
        let verdict = judge(&records, &finals, &limits);
        assert_eq!(verdict.losses.durable_explained, 1);
        assert_eq!(verdict.losses.durable_unexplained, 1);
        assert_eq!(verdict.violations[0].check, Check::DurableLoss);
    }
}
