//! `/metrics`: every counter in the Prometheus text format (0.0.4).
//! Worker counters are summed here, at scrape time. Labels stay bounded:
//! pools, shards and nodes from the configuration or the topology, and
//! command names from the command table; never keys or client addresses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use super::Admin;
use crate::metrics::{HistogramSnapshot, LATENCY_BOUNDS_US};
use crate::proxy_info::{ProxyInfo, ReloadResult};

pub fn render(admin: &Admin) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let proxy = &admin.proxy;
    metric(&mut out, "shardgate_info", "gauge", "Build information.");
    let _ = writeln!(
        out,
        "shardgate_info{{version=\"{}\"}} 1",
        ProxyInfo::version()
    );
    metric(
        &mut out,
        "shardgate_uptime_seconds",
        "gauge",
        "Seconds since the proxy started.",
    );
    let _ = writeln!(out, "shardgate_uptime_seconds {}", proxy.uptime().as_secs());
    metric(&mut out, "shardgate_workers", "gauge", "Worker threads.");
    let _ = writeln!(out, "shardgate_workers {}", proxy.workers);
    config(&mut out, proxy);
    pools(&mut out, admin);
    cluster_pools(&mut out, admin);
    certificates(&mut out, admin);
    commands(&mut out, admin);
    nodes(&mut out, admin);
    out
}

/// Cluster pools (`docs/cluster.md`): redirections the data path followed
/// and the controller's slot map refreshes. Nothing for other pools.
fn cluster_pools(out: &mut String, admin: &Admin) {
    let pools = admin.pools();
    let clusters: Vec<_> = pools.iter().filter(|p| p.config().cluster).collect();
    if clusters.is_empty() {
        return;
    }
    metric(
        out,
        "shardgate_cluster_redirects_total",
        "counter",
        "Cluster replies the proxy followed instead of passing on, by kind.",
    );
    for pool in &clusters {
        let stats = &pool.cluster.stats;
        for (kind, n) in [
            ("moved", &stats.moved),
            ("ask", &stats.ask),
            ("tryagain", &stats.tryagain),
            ("clusterdown", &stats.clusterdown),
        ] {
            let _ = writeln!(
                out,
                "shardgate_cluster_redirects_total{{pool=\"{}\",kind=\"{kind}\"}} {}",
                escape(&pool.name),
                n.load(Relaxed)
            );
        }
    }
    type Get = fn(&crate::pool::cluster::RedirectStats) -> u64;
    let counters: [(&str, &str, Get); 5] = [
        (
            "shardgate_cluster_retries_total",
            "Requests retried after a primary failed to answer.",
            |s| s.retried.load(Relaxed),
        ),
        (
            "shardgate_cluster_redirect_loops_total",
            "Requests ended by the redirection limit.",
            |s| s.loops.load(Relaxed),
        ),
        (
            "shardgate_cluster_refreshes_total",
            "Slot map refreshes run.",
            |s| s.refreshes.load(Relaxed),
        ),
        (
            "shardgate_cluster_maps_believed_total",
            "Changed slot maps believed (a second node agreed).",
            |s| s.maps_believed.load(Relaxed),
        ),
        (
            "shardgate_cluster_maps_unconfirmed_total",
            "Changed slot maps no second node confirmed (kept the old one).",
            |s| s.unconfirmed.load(Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        metric(out, name, "counter", help);
        for pool in &clusters {
            let _ = writeln!(
                out,
                "{name}{{pool=\"{}\"}} {}",
                escape(&pool.name),
                get(&pool.cluster.stats)
            );
        }
    }
}

/// The configuration's epoch and reloads by outcome.
fn config(out: &mut String, proxy: &ProxyInfo) {
    let record = proxy.config();
    metric(
        out,
        "shardgate_config_epoch",
        "gauge",
        "The configuration's epoch: 0 at start, one more per applied reload.",
    );
    let _ = writeln!(out, "shardgate_config_epoch {}", record.epoch);
    metric(
        out,
        "shardgate_config_last_reload_successful",
        "gauge",
        "1 unless the last reload attempt changed nothing because of a problem.",
    );
    let ok = record
        .last_attempt
        .as_ref()
        .is_none_or(|a| a.result == ReloadResult::Applied);
    let _ = writeln!(
        out,
        "shardgate_config_last_reload_successful {}",
        u8::from(ok)
    );
    metric(
        out,
        "shardgate_config_reloads_total",
        "counter",
        "Reload attempts by result: applied, invalid (bad file), refused (keys would move), failed (could not apply).",
    );
    for result in ReloadResult::ALL {
        let _ = writeln!(
            out,
            "shardgate_config_reloads_total{{result=\"{}\"}} {}",
            result.as_str(),
            proxy.reloads(result)
        );
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values are escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn pools(out: &mut String, admin: &Admin) {
    type Get = fn(&crate::pool::PoolState) -> u64;
    let gauges: [(&str, &str, &str, Get); 6] = [
        (
            "shardgate_client_memory_bytes",
            "gauge",
            "What the pool's clients hold in the proxy's buffers (read buffers, queued MULTI requests, unwritten replies), summed ten times a second when --maxmemory-clients is set.",
            |p| p.client_memory.load(Relaxed),
        ),
        (
            "shardgate_reshard_proxies_not_acknowledging",
            "gauge",
            "Proxies that have not acknowledged the pool's migration yet (keys wait to move).",
            |p| p.stats.reshard_waiting.load(Relaxed),
        ),
        (
            "shardgate_client_connections",
            "gauge",
            "Clients connected now.",
            |p| u64::from(p.admitted.load(Relaxed)),
        ),
        (
            "shardgate_topology_version",
            "gauge",
            "Topology snapshots published.",
            |p| p.topology().version,
        ),
        ("shardgate_shards", "gauge", "Shards in the pool.", |p| {
            p.topology().shard_count() as u64
        }),
        (
            "shardgate_shards_without_master",
            "gauge",
            "Shards with no usable master (and not ejected).",
            |p| {
                p.topology()
                    .shards
                    .iter()
                    .filter(|s| s.master.is_none() && !s.ejected)
                    .count() as u64
            },
        ),
    ];
    let counters: [(&str, &str, Get); 10] = [
        (
            "shardgate_client_connections_rejected_total",
            "Clients turned away at client_connections.",
            |p| p.rejected_clients.load(Relaxed),
        ),
        (
            "shardgate_clients_evicted_total",
            "Clients closed because all clients together held more than --maxmemory-clients (the heaviest first).",
            |p| p.evicted_clients.load(Relaxed),
        ),
        (
            "shardgate_auth_failures_total",
            "Failed client authentications.",
            |p| p.users().failures(),
        ),
        (
            "shardgate_reshard_keys_moved_total",
            "Keys this proxy's resharding mover moved.",
            |p| p.stats.keys_moved.load(Relaxed),
        ),
        (
            "shardgate_reshard_bytes_moved_total",
            "Bytes (MEMORY USAGE) this proxy's resharding mover moved.",
            |p| p.stats.bytes_moved.load(Relaxed),
        ),
        (
            "shardgate_failovers_total",
            "Shards that got a usable master back after losing it.",
            |p| p.stats.failovers.load(Relaxed),
        ),
        (
            "shardgate_replica_exclusions_total",
            "Replicas taken out of the read rotation.",
            |p| p.stats.replica_exclusions.load(Relaxed),
        ),
        (
            "shardgate_health_flips_total",
            "Nodes that went down or came back up.",
            |p| p.stats.health_flips.load(Relaxed),
        ),
        (
            "shardgate_failover_seconds_total",
            "Time shards spent without a usable master, in seconds.",
            |p| p.stats.failover_micros.load(Relaxed) / 1_000_000,
        ),
        (
            "shardgate_slowlog_entries_total",
            "Requests logged in the proxy's slow log.",
            |p| p.slowlog.total(),
        ),
    ];
    for (name, kind, help, get) in gauges {
        metric(out, name, kind, help);
        for pool in admin.pools().iter() {
            let _ = writeln!(
                out,
                "{name}{{pool=\"{}\"}} {}",
                escape(&pool.name),
                get(pool)
            );
        }
    }
    for (name, help, get) in counters {
        metric(out, name, "counter", help);
        for pool in admin.pools().iter() {
            let _ = writeln!(
                out,
                "{name}{{pool=\"{}\"}} {}",
                escape(&pool.name),
                get(pool)
            );
        }
    }
    type WorkerGet = fn(&crate::metrics::PoolStats) -> u64;
    let worker_counters: [(&str, &str, WorkerGet); 9] = [
        (
            "shardgate_reshard_moving_key_requests_total",
            "Requests on moving keys: run on their source if the keys are still there, else on their destination.",
            |s| s.moving_key_requests.get(),
        ),
        (
            "shardgate_clients_accepted_total",
            "Client connections accepted.",
            |s| s.clients_accepted.get(),
        ),
        (
            "shardgate_client_protocol_errors_total",
            "Clients disconnected for a protocol error.",
            |s| s.protocol_errors.get(),
        ),
        (
            "shardgate_slow_clients_total",
            "Clients disconnected for leaving replies unread.",
            |s| s.slow_clients.get(),
        ),
        (
            "shardgate_replica_reads_total",
            "Reads served by replicas.",
            |s| s.replica_reads.get(),
        ),
        (
            "shardgate_fanouts_total",
            "Requests split across shards or sent to every shard.",
            |s| s.fanouts.get(),
        ),
        (
            "shardgate_leased_connections_total",
            "Connections pinned to one client (transactions, blocking calls, WAIT).",
            |s| s.leases.get(),
        ),
        (
            "shardgate_tls_handshakes_total",
            "TLS clients whose handshake completed.",
            |s| s.tls_handshakes.get(),
        ),
        (
            "shardgate_tls_handshake_failures_total",
            "TLS clients refused at the handshake (certificate missing, expired or from an unknown CA; not TLS; timed out).",
            |s| s.tls_handshake_failures.get(),
        ),
    ];
    for (name, help, get) in worker_counters {
        metric(out, name, "counter", help);
        for pool in admin.pools().iter() {
            let total: u64 = pool.worker_stats().iter().map(|s| get(s)).sum();
            let _ = writeln!(out, "{name}{{pool=\"{}\"}} {total}", escape(&pool.name));
        }
    }
    metric(
        out,
        "shardgate_reshard_phase",
        "gauge",
        "1 for the phase the pool's migration is in (none, moving, paused, aborting, done, aborted).",
    );
    for pool in admin.pools().iter() {
        let now = pool.stats.reshard_phase.load(Relaxed) as usize;
        for (index, phase) in crate::reshard::PHASES.iter().enumerate() {
            let _ = writeln!(
                out,
                "shardgate_reshard_phase{{pool=\"{}\",phase=\"{phase}\"}} {}",
                escape(&pool.name),
                u8::from(index == now)
            );
        }
    }
    metric(
        out,
        "shardgate_reshard_mover_errors_total",
        "counter",
        "Times the resharding mover stopped on an error, by kind (server, migrate, replicas, no_master, stopped); it retries.",
    );
    for pool in admin.pools().iter() {
        let kinds = crate::reshard::mover::MoverErrorKind::ALL.iter();
        for (kind, count) in kinds.zip(&pool.stats.mover_errors) {
            let _ = writeln!(
                out,
                "shardgate_reshard_mover_errors_total{{pool=\"{}\",kind=\"{}\"}} {}",
                escape(&pool.name),
                kind.label(),
                count.load(Relaxed)
            );
        }
    }
}

/// When each certificate the proxy presents expires (contrib's alert
/// rules warn 14 and 2 days ahead).
fn certificates(out: &mut String, admin: &Admin) {
    metric(
        out,
        "shardgate_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "When a certificate the proxy presents expires (Unix time): `use` is tls (the pool's listeners), backend_tls, sentinel_tls or admin (the admin server's, no pool).",
    );
    if let Some(cert) = admin.proxy.admin_tls().and_then(|tls| tls.presented()) {
        let _ = writeln!(
            out,
            "shardgate_tls_certificate_expiry_timestamp_seconds{{use=\"admin\",path=\"{}\"}} {}",
            escape(&cert.path),
            cert.summary.not_after
        );
    }
    for pool in admin.pools().iter() {
        for cert in pool.tls.presented() {
            let _ = writeln!(
                out,
                "shardgate_tls_certificate_expiry_timestamp_seconds{{pool=\"{}\",use=\"{}\",path=\"{}\"}} {}",
                escape(&pool.name),
                cert.used_for.key(),
                escape(&cert.path),
                cert.summary.not_after
            );
        }
    }
}

fn commands(out: &mut String, admin: &Admin) {
    // (pool, command) -> (requests, errors, latency)
    let mut rows: BTreeMap<(String, &'static str), (u64, u64, HistogramSnapshot)> = BTreeMap::new();
    for pool in admin.pools().iter() {
        for worker in pool.worker_stats() {
            for (name, stats) in worker.commands() {
                let requests = stats.requests.get();
                if requests == 0 {
                    continue;
                }
                let row = rows
                    .entry((pool.name.to_string(), name.unwrap_or("unknown")))
                    .or_default();
                row.0 += requests;
                row.1 += stats.errors.get();
                row.2.merge(&stats.latency.snapshot());
            }
        }
    }
    metric(
        out,
        "shardgate_requests_total",
        "counter",
        "Requests by pool and command.",
    );
    for ((pool, command), (requests, ..)) in &rows {
        let _ = writeln!(
            out,
            "shardgate_requests_total{{pool=\"{}\",command=\"{command}\"}} {requests}",
            escape(pool)
        );
    }
    metric(
        out,
        "shardgate_request_errors_total",
        "counter",
        "Error replies by pool and command.",
    );
    for ((pool, command), (_, errors, _)) in &rows {
        let _ = writeln!(
            out,
            "shardgate_request_errors_total{{pool=\"{}\",command=\"{command}\"}} {errors}",
            escape(pool)
        );
    }
    metric(
        out,
        "shardgate_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its reply, through the proxy.",
    );
    for ((pool, command), (_, _, histogram)) in &rows {
        let labels = format!("pool=\"{}\",command=\"{command}\"", escape(pool));
        histogram_lines(
            out,
            "shardgate_request_duration_seconds",
            &labels,
            histogram,
        );
    }
}

fn histogram_lines(out: &mut String, name: &str, labels: &str, histogram: &HistogramSnapshot) {
    let mut cumulative = 0;
    for (bound, count) in LATENCY_BOUNDS_US.iter().zip(histogram.counts) {
        cumulative += count;
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let total = histogram.count();
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}",
        histogram.sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
}

/// Per node: state and role from the controller; traffic summed over workers.
fn nodes(out: &mut String, admin: &Admin) {
    struct Row {
        labels: String,
        up: bool,
        master: bool,
        role: &'static str,
        lag: Option<u64>,
        behind: Option<u64>,
        serves_reads: bool,
        traffic: Traffic,
    }
    #[derive(Default)]
    struct Traffic {
        requests: u64,
        errors: u64,
        bytes_in: u64,
        bytes_out: u64,
        connections: u64,
        connection_failures: u64,
        latency: HistogramSnapshot,
    }
    let mut rows = Vec::new();
    for pool in admin.pools().iter() {
        let mut traffic: BTreeMap<SocketAddr, Traffic> = BTreeMap::new();
        for (addr, stats) in pool.node_stats() {
            let t = traffic.entry(addr).or_default();
            t.requests += stats.requests.get();
            t.errors += stats.errors.get();
            t.bytes_in += stats.bytes_in.get();
            t.bytes_out += stats.bytes_out.get();
            t.connections += stats.connections.get();
            t.connection_failures += stats.connection_failures.get();
            t.latency.merge(&stats.latency.snapshot());
        }
        let status = pool.status();
        for shard in &status.shards {
            for node in &shard.nodes {
                rows.push(Row {
                    labels: format!(
                        "pool=\"{}\",shard=\"{}\",node=\"{}\"",
                        escape(&pool.name),
                        escape(&shard.name),
                        escape(&node.addr)
                    ),
                    up: node.health == crate::topology::Health::Up,
                    master: node.is_master,
                    role: node.role,
                    lag: node.lag_seconds,
                    behind: node.behind_bytes,
                    serves_reads: node.serves_reads,
                    traffic: traffic.remove(&node.socket).unwrap_or_default(),
                });
            }
        }
    }
    type Get = fn(&Row) -> Option<u64>;
    let series: [(&str, &str, &str, Get); 13] = [
        (
            "shardgate_node_up",
            "gauge",
            "1 while health checks pass.",
            |r| Some(u64::from(r.up)),
        ),
        (
            "shardgate_node_is_master",
            "gauge",
            "1 for the node the shard's writes go to.",
            |r| Some(u64::from(r.master)),
        ),
        (
            "shardgate_node_serves_reads",
            "gauge",
            "1 for a replica fit to serve reads.",
            |r| Some(u64::from(r.serves_reads)),
        ),
        (
            "shardgate_node_replication_lag_seconds",
            "gauge",
            "Seconds since a replica heard from its master.",
            |r| r.lag,
        ),
        (
            "shardgate_node_replication_behind_bytes",
            "gauge",
            "Bytes of replication stream a replica has not processed.",
            |r| r.behind,
        ),
        (
            "shardgate_node_requests_total",
            "counter",
            "Requests sent to the node.",
            |r| Some(r.traffic.requests),
        ),
        (
            "shardgate_node_errors_total",
            "counter",
            "Requests to the node that got no reply (down, lost, timed out).",
            |r| Some(r.traffic.errors),
        ),
        (
            "shardgate_node_received_bytes_total",
            "counter",
            "Bytes read from the node.",
            |r| Some(r.traffic.bytes_in),
        ),
        (
            "shardgate_node_sent_bytes_total",
            "counter",
            "Bytes written to the node.",
            |r| Some(r.traffic.bytes_out),
        ),
        (
            "shardgate_node_connections",
            "gauge",
            "Open connections to the node.",
            |r| Some(r.traffic.connections),
        ),
        (
            "shardgate_node_connection_failures_total",
            "counter",
            "Failed connects and lost connections.",
            |r| Some(r.traffic.connection_failures),
        ),
        (
            "shardgate_node_role_master",
            "gauge",
            "1 while the node reports role master.",
            |r| Some(u64::from(r.role == "master")),
        ),
        (
            "shardgate_node_role_replica",
            "gauge",
            "1 while the node reports role replica.",
            |r| Some(u64::from(r.role == "replica")),
        ),
    ];
    for (name, kind, help, get) in series {
        metric(out, name, kind, help);
        for row in &rows {
            if let Some(value) = get(row) {
                let _ = writeln!(out, "{name}{{{}}} {value}", row.labels);
            }
        }
    }
    metric(
        out,
        "shardgate_node_latency_seconds",
        "histogram",
        "Round trip of requests to the node.",
    );
    for row in &rows {
        histogram_lines(
            out,
            "shardgate_node_latency_seconds",
            &row.labels,
            &row.traffic.latency,
        );
    }
}
