//! One chaos run: start the topology, place keys, start the load and the
//! watchers, warm up, apply faults until the time is up, let everything
//! heal, read the final state, stop the proxies (they must exit 0), judge.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::resp::Reply;
use test_support::RespClient;

use crate::check::{judge, Limits, Verdict};
use crate::clock::{now, wait_for};
use crate::cluster::{Cluster, SHARDS};
use crate::faults::Scheduler;
use crate::journal::{Check, ClientStats, Epoch, Journal, Kind, Records};
use crate::monitor;
use crate::workload::{self, Ctx, TOTAL};

pub struct Options {
    /// How long faults are applied (warm-up and the final checks come on top).
    pub duration: Duration,
    pub seed: u64,
    /// The shardgate binary under test.
    pub shardgate: PathBuf,
    /// Where logs and the report go.
    pub out: PathBuf,
    pub recovery_bound: Duration,
    /// Largest RSS growth after warm-up, in percent.
    pub rss_growth: f64,
    pub rss_slack_kib: u64,
    /// Pause between two operations of one client.
    pub pace: Duration,
    /// Proves the checker can fail: right after warm-up, changes a counter
    /// and a transfer account directly on their master, behind the
    /// proxies' backs (the run must then report a loss and a sum).
    pub self_test: bool,
}

/// What a run produced, for the report.
pub struct Outcome {
    pub records: Records,
    pub verdict: Verdict,
    pub clients: Vec<Arc<ClientStats>>,
    pub transfers_checked: usize,
    pub elapsed: Duration,
    pub warmup: Duration,
}

/// Runs the whole thing. Panics (with the harness's message) only when the
/// topology cannot even start.
pub fn run(options: &Options) -> Outcome {
    let started = Instant::now();
    now();
    std::fs::create_dir_all(&options.out).expect("create the output directory");
    let journal = Arc::new(Journal::default());
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    journal.note(format!(
        "run started at unix time {unix} (times in brackets are seconds since then)"
    ));
    journal.note(format!(
        "starting 3 shards (master + replica, each behind a relay), 3 Sentinels, 2 proxies; logs in {}",
        options.out.display()
    ));
    let mut cluster = Cluster::start(&options.shardgate, &options.out);
    let _kill_proxies = KillProxiesOnDrop(cluster.proxies.clone());
    let stop_watchers = Arc::new(AtomicBool::new(false));
    let mut watchers: Vec<_> = cluster
        .sentinels
        .iter()
        .map(|s| monitor::watch_sentinel(s.port(), journal.clone(), stop_watchers.clone()))
        .collect();
    if !wait_for(Duration::from_secs(60), || cluster.healed().is_ok()) {
        panic!("the topology never came up: {:?}", cluster.healed());
    }
    watchers.push(monitor::watch_stalls(
        journal.clone(),
        stop_watchers.clone(),
    ));
    watchers.push(monitor::watch_proxies(
        cluster.proxies.clone(),
        journal.clone(),
        stop_watchers.clone(),
    ));
    let ports = cluster.proxies.ports();
    let tags = probe_tags(&cluster, ports[0]);
    journal.note(format!(
        "hash tags per shard: {:?}",
        tags.iter().map(Vec::len).collect::<Vec<_>>()
    ));

    let epoch = Arc::new(Epoch::default());
    let stop_clients = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        journal: journal.clone(),
        epoch: epoch.clone(),
        stop: stop_clients.clone(),
        ports: ports.clone(),
        tags,
        pace: options.pace,
        unconfirmed: Default::default(),
    });
    for pair in 0..SHARDS {
        let (x, y, _) = workload::account(&ctx, pair);
        through_proxy(ports[0], &["SET", &x, &TOTAL.to_string()]);
        through_proxy(ports[0], &["SET", &y, "0"]);
    }
    let mut clients = Vec::new();
    let mut threads = Vec::new();
    for proxy in 0..ports.len() {
        for kind in Kind::ALL {
            let (stats, thread) = workload::spawn(ctx.clone(), kind, proxy);
            clients.push(stats);
            threads.push(thread);
        }
    }

    let warmup = (options.duration / 10).clamp(Duration::from_secs(10), Duration::from_secs(60));
    journal.note(format!("load started; warm-up {warmup:?} without faults"));
    std::thread::sleep(warmup);
    let warm_until = now();
    if options.self_test {
        tamper(&cluster, &ctx);
        std::thread::sleep(Duration::from_secs(2));
    }
    let faults_end = Instant::now() + options.duration;
    let mut scheduler = Scheduler::new(
        &mut cluster,
        journal.clone(),
        epoch.clone(),
        clients.clone(),
        options.seed,
        options.recovery_bound,
    );
    scheduler.run_until(faults_end);
    journal.note("faults over; waiting for the topology to heal".into());
    scheduler.await_heal("the last fault");
    drop(scheduler);

    stop_clients.store(true, Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let finals = final_counters(&journal, ports[0]);
    let transfers_checked = check_sums(&ctx, ports[0]);
    stop_watchers.store(true, Relaxed);
    for watcher in watchers {
        let _ = watcher.join();
    }
    cluster.proxies.stop_proxies(&journal);

    let records = journal.snapshot();
    let elapsed_faults = now().saturating_sub(warm_until);
    let limits = Limits {
        recovery_bound: options.recovery_bound,
        rss_growth: options.rss_growth,
        rss_slack_kib: options.rss_slack_kib,
        warm_until,
        warmup: warmup.as_millis() as u64,
        rss_min_span: elapsed_faults / 2,
    };
    let verdict = judge(&records, &finals, &limits);
    let _ = std::fs::write(
        options.out.join("timeline.log"),
        records.notes.join("\n") + "\n",
    );
    let rss: String = records
        .rss
        .iter()
        .flat_map(|series| {
            series.samples.iter().map(move |(at, kib)| {
                format!("{},{},{at},{kib}\n", series.proxy, series.incarnation)
            })
        })
        .collect();
    let _ = std::fs::write(
        options.out.join("rss.csv"),
        format!("proxy,incarnation,ms,kib\n{rss}"),
    );
    Outcome {
        records,
        verdict,
        clients,
        transfers_checked,
        elapsed: started.elapsed(),
        warmup,
    }
}

/// One command through a proxy, retried until it succeeds (20 s at most).
fn through_proxy(port: u16, args: &[&str]) -> Option<Reply> {
    let mut reply = None;
    wait_for(Duration::from_secs(20), || {
        reply = RespClient::connect(port)
            .ok()
            .and_then(|mut c| c.cmd(args).ok())
            .filter(|r| !r.is_error());
        reply.is_some()
    });
    reply
}

/// Hash tags by the shard their keys land on: a probe key per tag is
/// written through the proxy and looked for on each shard's master.
pub(crate) fn probe_tags(cluster: &Cluster, port: u16) -> Vec<Vec<String>> {
    let mut tags = vec![Vec::new(); SHARDS];
    // Varied tags: short similar names (t1, t2, ...) can all hash to one
    // or two points of the ketama ring.
    for i in 0..400u64 {
        if tags.iter().all(|t| t.len() >= 8) {
            break;
        }
        let tag = format!("{{{:08x}}}", i.wrapping_mul(2_654_435_761) % 0xffff_ffff);
        let key = format!("{tag}probe");
        if through_proxy(port, &["SET", &key, "1"]).is_none() {
            panic!("cannot write {key} through the proxy");
        }
        for (shard, list) in tags.iter_mut().enumerate() {
            let master = cluster.master_of(shard).expect("a master per shard");
            let real = cluster.nodes[master].server.port();
            if crate::cluster::query(real, &["EXISTS", &key], Duration::from_secs(1))
                == Some(Reply::Integer(1))
            {
                list.push(tag.clone());
            }
        }
    }
    assert!(
        tags.iter().all(|t| !t.is_empty()),
        "a shard got no hash tag: {tags:?}"
    );
    tags
}

/// Each counter's final value, read through proxy 0.
fn final_counters(journal: &Journal, port: u16) -> HashMap<String, Option<i64>> {
    let keys: Vec<String> = journal.snapshot().counters.keys().cloned().collect();
    keys.into_iter()
        .map(|key| {
            let value = match through_proxy(port, &["GET", &key]) {
                Some(Reply::Bulk(v)) => String::from_utf8_lossy(&v).parse().ok(),
                _ => {
                    journal.note(format!("final value of {key} unreadable"));
                    None
                }
            };
            (key, value)
        })
        .collect()
}

/// The transfer pairs must still add up to the total.
fn check_sums(ctx: &Ctx, port: u16) -> usize {
    let mut checked = 0;
    for pair in 0..SHARDS {
        let (x, y, _) = workload::account(ctx, pair);
        let value = |key: &str| match through_proxy(port, &["GET", key]) {
            Some(Reply::Bulk(v)) => String::from_utf8_lossy(&v).parse::<i64>().ok(),
            _ => None,
        };
        match (value(&x), value(&y)) {
            (Some(a), Some(b)) if a + b == TOTAL => checked += 1,
            other => ctx.journal.violation(
                Check::Sum,
                format!("at the end {x}, {y} = {other:?}, not summing to {TOTAL}"),
            ),
        }
    }
    checked
}

/// `--self-test`: lowers a client's counter and adds to a transfer account
/// on their master directly. An honest checker must call both out.
fn tamper(cluster: &Cluster, ctx: &Ctx) {
    let counter = ctx
        .journal
        .snapshot()
        .counters
        .iter()
        .find(|(_, log)| !log.acks.is_empty())
        .map(|(key, log)| (key.clone(), log.shard));
    let (x, _, pair_shard) = workload::account(ctx, 0);
    let mut targets = vec![(x, pair_shard, "INCRBY")];
    if let Some((key, shard)) = counter {
        targets.push((key, shard, "DECRBY"));
    }
    for (key, shard, verb) in targets {
        let master = cluster.master_of(shard).expect("a master");
        let real = cluster.nodes[master].server.port();
        let reply = crate::cluster::query(real, &[verb, &key, "3"], Duration::from_secs(1));
        ctx.journal.note(format!(
            "self-test: {verb} {key} 3 on its master directly: {reply:?}"
        ));
    }
}

/// Kills the proxies when the run ends, also by a panic in the harness.
pub(crate) struct KillProxiesOnDrop(pub(crate) Arc<crate::cluster::ProxySet>);

impl Drop for KillProxiesOnDrop {
    fn drop(&mut self) {
        self.0.kill_all();
    }
}
