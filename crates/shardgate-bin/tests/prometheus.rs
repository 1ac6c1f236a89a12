//! The operations kit against a real Prometheus (Debian's `prometheus`):
//! it scrapes a running proxy every second and answers the queries an
//! operator asks (request rate per command, error ratio, p99 latency from
//! the histograms, replica lag, shards without a master); the alert rules
//! in contrib/prometheus/alerts.yml load, evaluate and fire on live data
//! and pass `promtool check rules` and `promtool test rules`; and every
//! PromQL expression of the Grafana dashboard contrib/grafana/shardgate.json
//! parses and returns data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // a test fails by panicking

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use test_support::ports::free_port;
use test_support::{assert_eventually, require_program, Prometheus, RedisServer, RespClient};
use test_support::{prometheus, Shardgate};

/// How long Prometheus gets to show what the proxy did: a scrape a
/// second, a rule evaluation a second, health checks every 100 ms.
const CONVERGE: Duration = Duration::from_secs(30);
/// The window of `rate()` in the queries (also `$__rate_interval`).
const WINDOW: &str = "20s";
/// A script that spins for 100 ms: a known slow command (DEBUG SLEEP is
/// not allowed through the proxy).
const SLOW_SCRIPT: &str = "local t=redis.call('TIME') local e=t[1]*1e6+t[2]+1e5 \
                           repeat t=redis.call('TIME') until t[1]*1e6+t[2]>e return 1";

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contrib")
        .join(path)
}

/// Client traffic through the proxy until dropped: SET, GET (read from the
/// replica), MGET over both shards (a fan-out) and LPUSH on a string (a
/// WRONGTYPE error each time) to pool `shop`; a 100 ms script (slow, in the
/// slow log) to the one-shard pool `cache`. Connections that fail (a shard
/// killed) are made again.
struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(shop: u16, cache: u16) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds: [(u16, &[&[&str]], u64); 2] = [
            (
                shop,
                &[
                    &["SET", "user:1", "alice"],
                    &["GET", "user:1"],
                    // user:* are on alpha, single letters on beta.
                    &["MGET", "user:1", "user:2", "a", "b"],
                    &["LPUSH", "greeting", "x"],
                ],
                5,
            ),
            (cache, &[&["EVAL", SLOW_SCRIPT, "0"]], 0),
        ];
        let mut setup = RespClient::connect(shop).expect("connect");
        assert_eq!(
            setup.cmd(&["SET", "greeting", "hello"]).unwrap(),
            common::ok()
        );
        let threads = rounds
            .into_iter()
            .map(|(port, commands, pause_ms)| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut client = None;
                    while !stop.load(Ordering::Relaxed) {
                        let connection = match client.as_mut() {
                            Some(connection) => connection,
                            None => match RespClient::connect(port) {
                                Ok(connection) => client.insert(connection),
                                Err(_) => continue,
                            },
                        };
                        if commands.iter().any(|c| connection.cmd(c).is_err()) {
                            client = None;
                        }
                        // Pacing, not waiting for anything: a few hundred
                        // requests a second is plenty for rates.
                        std::thread::sleep(Duration::from_millis(pause_ms));
                    }
                })
            })
            .collect();
        Traffic { stop, threads }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// `sum by (label) (expr)` as a map from the label's value to the value.
fn by_label(prometheus: &Prometheus, expr: &str, label: &str) -> BTreeMap<String, f64> {
    prometheus
        .query(expr)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|series| {
            let key = series["metric"][label].as_str().unwrap_or("").to_string();
            let value = series["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap();
            (key, value)
        })
        .collect()
}

/// The live alerts (pending or firing) named `name` for pool `pool`.
fn alert_state(prometheus: &Prometheus, name: &str, pool: &str) -> Option<String> {
    let alerts = prometheus.api("/api/v1/alerts").ok()?;
    alerts["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["pool"] == pool)
        .and_then(|a| a["state"].as_str().map(str::to_string))
}

#[test]
fn prometheus_scrapes_the_proxy_and_answers_the_operators_queries() {
    let master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&master).start();
    assert_eventually!(replica.linked(), "replica never linked");
    let mut beta = RedisServer::start();
    let cache = RedisServer::builder()
        .arg("enable-debug-command", "yes")
        .start();
    let (port, cache_port) = (free_port(), free_port());
    let yaml = format!(
        "shop:\n  listen: 127.0.0.1:{port}\n  read_policy: prefer-replica\n  \
         health_check: {{interval: 100, timeout: 100, rise: 1, fall: 2}}\n  servers:\n    - {}:1 alpha\n    - {}:1 beta\n  \
         replicas:\n    alpha: [\"{}\"]\n\
         cache:\n  listen: 127.0.0.1:{cache_port}\n  slowlog_log_slower_than: 20000\n  servers:\n    - {}:1\n",
        master.addr(),
        beta.addr(),
        replica.addr(),
        cache.addr()
    );
    let proxy = Shardgate::builder(common::BIN, &yaml)
        .wait_port(port)
        .wait_port(cache_port)
        .start();
    let target = format!("127.0.0.1:{}", proxy.admin_port().expect("admin port"));
    let prometheus = Prometheus::start(
        std::slice::from_ref(&target),
        &[contrib("prometheus/alerts.yml")],
    );
    let q = |expr: &str| prometheus.value(expr);

    assert_eventually!(
        within = CONVERGE,
        q(&format!(
            "up{{job=\"{}\",instance=\"{target}\"}}",
            prometheus::JOB
        )) == Some(1.0),
        "Prometheus never scraped the admin server; log:\n{}",
        prometheus.log()
    );
    // Traffic only now: a rate needs the counter to move between scrapes.
    let traffic = Traffic::start(port, cache_port);

    // Request rate per command: every command sent, and none that was not.
    let rates = || {
        by_label(
            &prometheus,
            &format!(
                "sum by (command) (rate(shardgate_requests_total{{pool=\"shop\"}}[{WINDOW}]))"
            ),
            "command",
        )
    };
    assert_eventually!(
        within = CONVERGE,
        ["set", "get", "mget", "lpush"]
            .iter()
            .all(|c| rates().get(*c).is_some_and(|r| *r > 0.0)),
        "a request rate per command stayed 0 or absent: {:?}",
        rates()
    );
    // GET and SET are sent in lockstep, so their rates agree once the
    // window lies wholly inside the traffic. Until then they may not: SET's
    // series began with the setup's SET, before the traffic, and `rate()`
    // extrapolates a series that starts inside its window differently.
    let lockstep = |rates: &BTreeMap<String, f64>| match (rates.get("get"), rates.get("set")) {
        (Some(get), Some(set)) => (get / set - 1.0).abs() < 0.2,
        _ => false,
    };
    assert_eventually!(
        within = CONVERGE,
        lockstep(&rates()),
        "GET and SET are sent in lockstep, yet their rates differ: {:?}",
        rates()
    );
    let rates = rates();
    assert!(
        !rates.contains_key("del"),
        "a rate for a command never sent: {rates:?}"
    );

    // Error ratio: every LPUSH on a string fails, no GET does.
    let error_ratio = |filter: &str| {
        q(&format!(
            "sum(rate(shardgate_request_errors_total{{{filter}}}[{WINDOW}])) / sum(rate(shardgate_requests_total{{{filter}}}[{WINDOW}]))"
        ))
    };
    // Not exactly 1 either way: a request is counted when it is dispatched
    // and its error when the reply comes back, so a scrape may fall between
    // the two. An LPUSH in flight at the window's start then adds an error
    // without a request, one in flight at its end a request without an error.
    let lpush_ratio = error_ratio("pool=\"shop\",command=\"lpush\"").unwrap_or(0.0);
    assert!(
        (lpush_ratio - 1.0).abs() < 0.05,
        "the error ratio of LPUSH (WRONGTYPE every time): {lpush_ratio}"
    );
    assert_eq!(error_ratio("pool=\"shop\",command=\"get\""), Some(0.0));
    let pool_ratio = error_ratio("pool=\"shop\"").expect("pool error ratio");
    assert!(
        pool_ratio > 0.05 && pool_ratio < 0.5,
        "one request in four or five is an error: {pool_ratio}"
    );

    // Latency from the histograms: a GET is fast, the slow script takes
    // 100 ms, which lands in the bucket (65.5 ms, 131 ms].
    let quantile = |quantile: f64, pool: &str, command: &str| {
        q(&format!(
            "histogram_quantile({quantile}, sum by (le) (rate(shardgate_request_duration_seconds_bucket{{pool=\"{pool}\",command=\"{command}\"}}[{WINDOW}])))"
        ))
        .unwrap_or(f64::NAN)
    };
    assert_eventually!(
        within = CONVERGE,
        quantile(0.5, "cache", "eval") > 0.0,
        "no slow script latency in Prometheus"
    );
    let get_p99 = quantile(0.99, "shop", "get");
    let sleep_p50 = quantile(0.5, "cache", "eval");
    assert!(get_p99 > 0.0 && get_p99 < 0.065, "p99 of GET: {get_p99} s");
    assert!(
        (0.065..=0.132).contains(&sleep_p50),
        "p50 of a 100 ms script: {sleep_p50} s"
    );

    // Replica lag: one series, for the replica, and small.
    let lag = prometheus
        .query("shardgate_node_replication_lag_seconds{pool=\"shop\"}")
        .unwrap();
    assert_eq!(lag.len(), 1, "one replica, one lag series: {lag:?}");
    assert_eq!(lag[0]["metric"]["node"], replica.addr().as_str());
    assert_eq!(lag[0]["metric"]["shard"], "alpha");
    let lag_seconds: f64 = lag[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(lag_seconds < 5.0, "replica lag {lag_seconds} s");

    // Replica reads, fan-outs, the slow log.
    for (what, expr, pool) in [
        ("replica reads", "shardgate_replica_reads_total", "shop"),
        ("fan-outs", "shardgate_fanouts_total", "shop"),
        (
            "slow log entries",
            "shardgate_slowlog_entries_total",
            "cache",
        ),
    ] {
        assert_eventually!(
            within = CONVERGE,
            q(&format!("sum(rate({expr}{{pool=\"{pool}\"}}[{WINDOW}]))")).is_some_and(|r| r > 0.0),
            "no {what} per second in pool {pool} in Prometheus"
        );
    }
    assert_eq!(
        q(&format!(
            "sum(rate(shardgate_replica_reads_total{{pool=\"cache\"}}[{WINDOW}]))"
        )),
        Some(0.0),
        "pool cache has no replica"
    );

    // Healthy servers: every shard has a master.
    assert_eq!(q("sum(shardgate_shards{pool=\"shop\"})"), Some(2.0));
    assert_eq!(
        q("sum(shardgate_shards_without_master{pool=\"shop\"})"),
        Some(0.0)
    );

    check_dashboard(&prometheus, &target);

    // The alert rules load and evaluate against the live series.
    assert_eventually!(
        within = CONVERGE,
        rules_health(&prometheus).iter().all(|(_, h)| h == "ok"),
        "rules not all evaluated fine: {:?}",
        rules_health(&prometheus)
    );
    assert_eq!(
        rules_health(&prometheus).len(),
        alert_count(),
        "every rule of alerts.yml is loaded"
    );
    // A quarter of the requests fail: the error-ratio alert is pending.
    assert_eventually!(
        within = CONVERGE,
        alert_state(&prometheus, "ShardgateHighErrorRatio", "shop").as_deref() == Some("pending"),
        "the error ratio alert is not pending: {:?}",
        prometheus.api("/api/v1/alerts")
    );
    assert_eq!(
        alert_state(&prometheus, "ShardgateShardWithoutMaster", "shop"),
        None
    );

    // A shard loses its master: the gauge and the alert say so.
    beta.kill();
    assert_eventually!(
        within = CONVERGE,
        q("sum(shardgate_shards_without_master{pool=\"shop\"})") == Some(1.0),
        "Prometheus never saw a shard without master"
    );
    assert_eventually!(
        within = CONVERGE,
        alert_state(&prometheus, "ShardgateShardWithoutMaster", "shop").is_some(),
        "ShardgateShardWithoutMaster never became active: {:?}",
        prometheus.api("/api/v1/alerts")
    );
    // It comes back: a failover is counted and its alert fires.
    beta.restart();
    assert_eventually!(
        within = CONVERGE,
        q(&format!(
            "sum(increase(shardgate_failovers_total{{pool=\"shop\"}}[{WINDOW}]))"
        ))
        .is_some_and(|n| n > 0.0),
        "no failover counted after the master came back"
    );
    assert_eventually!(
        within = CONVERGE,
        alert_state(&prometheus, "ShardgateFailover", "shop").as_deref() == Some("firing"),
        "ShardgateFailover never fired: {:?}",
        prometheus.api("/api/v1/alerts")
    );
    assert_eventually!(
        within = CONVERGE,
        q("sum(shardgate_shards_without_master{pool=\"shop\"})") == Some(0.0),
        "the shard never got its master back in Prometheus"
    );
    drop(traffic);
}

/// (rule name, health) of every rule Prometheus loaded.
fn rules_health(prometheus: &Prometheus) -> Vec<(String, String)> {
    let rules = prometheus.api("/api/v1/rules").unwrap_or_default();
    rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                r["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn alert_count() -> usize {
    std::fs::read_to_string(contrib("prometheus/alerts.yml"))
        .expect("alerts.yml")
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count()
}

/// Every PromQL expression of the Grafana dashboard, with its template
/// variables replaced by this test's values, parses and returns data; so
/// do the variables' `label_values` queries.
fn check_dashboard(prometheus: &Prometheus, target: &str) {
    let text = std::fs::read_to_string(contrib("grafana/shardgate.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["uid"], "shardgate");

    let values: BTreeMap<&str, &str> = [
        ("datasource", "prometheus"),
        ("job", prometheus::JOB),
        ("instance", target),
        ("pool", "shop"),
        ("command", "get"),
        ("__rate_interval", WINDOW),
    ]
    .into();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let defined: BTreeSet<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().expect("variable name"))
        .collect();
    assert_eq!(
        defined,
        values
            .keys()
            .copied()
            .filter(|k| !k.starts_with("__"))
            .collect(),
        "the variables this test knows values for"
    );
    let substitute = |expr: &str| {
        let mut out = expr.to_string();
        // Longest names first, so `$pool` never eats part of `$pools`.
        let mut names: Vec<_> = values.iter().collect();
        names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        for (name, value) in names {
            out = out
                .replace(&format!("${{{name}}}"), value)
                .replace(&format!("${name}"), value);
        }
        assert!(!out.contains('$'), "an unknown variable in `{expr}`");
        out
    };

    // Panels: unique ids, on the grid, every query on the variable data source.
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(panel["id"].as_u64().expect("id")),
            "{title}: duplicate id"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(w >= 1 && x + w <= 24, "{title}: off the 24-column grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            let expr = target["expr"].as_str().expect("expr");
            exprs.push((title.to_string(), expr.to_string()));
        }
    }
    assert!(exprs.len() >= 30, "only {} expressions", exprs.len());
    for (title, expr) in &exprs {
        let query = substitute(expr);
        assert_eventually!(
            within = CONVERGE,
            prometheus.query(&query).is_ok_and(|r| !r.is_empty()),
            "panel `{title}`: `{query}` returns no data: {:?}",
            prometheus.query(&query)
        );
    }

    // Variables: `label_values(selector, label)` lists this test's value.
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let name = variable["name"].as_str().unwrap();
        let definition = substitute(variable["definition"].as_str().expect("definition"));
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("${name}: not label_values(...): {definition}"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        let found = prometheus
            .api(&format!(
                "/api/v1/label/{}/values?match[]={}",
                label.trim(),
                prometheus::encode(selector.trim())
            ))
            .unwrap_or_else(|e| panic!("${name}: {e}"));
        assert!(
            found.as_array().unwrap().iter().any(|v| v == values[name]),
            "${name} = {definition} does not list {}: {found}",
            values[name]
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let promtool = require_program("promtool", "prometheus");
    let dir = contrib("prometheus");
    let check = Command::new(&promtool)
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    let out = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "promtool check rules:\n{out}");
    let expected = format!("SUCCESS: {} rules found", alert_count());
    assert!(out.contains(&expected), "{expected} expected:\n{out}");

    let test = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(&dir)
        .output()
        .expect("run promtool");
    let out =
        String::from_utf8_lossy(&test.stdout).into_owned() + &String::from_utf8_lossy(&test.stderr);
    assert!(test.status.success(), "promtool test rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert has a unit test that shows it firing.
    let tests = std::fs::read_to_string(dir.join("alerts_test.yml")).expect("alerts_test.yml");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    for name in rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(str::trim)
    {
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - exp_labels"
            )),
            "alerts_test.yml never shows {name} firing"
        );
        assert!(
            tests.contains(&format!("alertname: {name}\n        exp_alerts: []")),
            "alerts_test.yml never shows {name} not firing"
        );
    }
}
