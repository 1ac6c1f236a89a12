//! `/stats`: twemproxy's stats JSON (its port 22222 output), field for
//! field, so dashboards and scripts written for twemproxy keep working.
//! Each shard appears under its ring name (the server's name, or
//! `host:port`), with its nodes' traffic summed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Map, Value};

use super::Admin;
use crate::proxy_info::ProxyInfo;

pub fn stats(admin: &Admin) -> Value {
    let mut root = Map::new();
    root.insert("service".into(), json!("nutcracker"));
    root.insert("source".into(), json!(hostname()));
    root.insert("version".into(), json!(ProxyInfo::version()));
    root.insert("uptime".into(), json!(admin.proxy.uptime().as_secs()));
    root.insert(
        "timestamp".into(),
        json!(admin.proxy.started_unix + admin.proxy.uptime().as_secs()),
    );
    let mut total = 0;
    let mut current = 0;
    for pool in admin.pools().iter() {
        let workers = pool.worker_stats();
        let accepted: u64 = workers.iter().map(|w| w.clients_accepted.get()).sum();
        let errors: u64 = workers
            .iter()
            .map(|w| w.protocol_errors.get() + w.slow_clients.get())
            .sum();
        let connected = u64::from(pool.admitted.load(Relaxed));
        total += accepted;
        current += connected;
        let topology = pool.topology();
        let mut entry = Map::new();
        entry.insert(
            "client_eof".into(),
            json!(accepted.saturating_sub(connected + errors)),
        );
        entry.insert("client_err".into(), json!(errors));
        entry.insert("client_connections".into(), json!(connected));
        entry.insert(
            "server_ejects".into(),
            json!(topology.shards.iter().filter(|s| s.ejected).count()),
        );
        entry.insert("forward_error".into(), json!(0));
        entry.insert(
            "fragments".into(),
            json!(workers.iter().map(|w| w.fanouts.get()).sum::<u64>()),
        );
        // Node address -> shard name, from the controller's view.
        let mut shard_of = BTreeMap::new();
        for shard in &pool.status().shards {
            for node in &shard.nodes {
                shard_of.insert(node.addr.to_string(), shard.name.to_string());
            }
        }
        let mut servers: BTreeMap<String, [u64; 7]> = topology
            .shards
            .iter()
            .map(|s| (s.name.to_string(), [0; 7]))
            .collect();
        for (addr, stats) in pool.node_stats() {
            let shard = shard_of
                .iter()
                .find(|(label, _)| label.parse::<std::net::SocketAddr>().ok() == Some(addr))
                .map(|(_, shard)| shard.clone());
            let Some(row) = shard.and_then(|s| servers.get_mut(&s)) else {
                continue;
            };
            let requests = stats.requests.get();
            let failed = stats.errors.get();
            row[0] += stats.connection_failures.get();
            row[1] += stats.connections.get();
            row[2] += requests;
            row[3] += stats.bytes_out.get();
            row[4] += requests.saturating_sub(failed + stats.outstanding.get());
            row[5] += stats.bytes_in.get();
            row[6] += stats.outstanding.get();
        }
        for (
            name,
            [err, connections, requests, request_bytes, responses, response_bytes, queued],
        ) in servers
        {
            let ejected = topology
                .shards
                .iter()
                .any(|s| *s.name == *name && s.ejected);
            entry.insert(
                name,
                json!({
                    "server_eof": 0,
                    "server_err": err,
                    "server_timedout": 0,
                    "server_connections": connections,
                    "server_ejected_at": if ejected { admin.proxy.started_unix + admin.proxy.uptime().as_secs() } else { 0 },
                    "requests": requests,
                    "request_bytes": request_bytes,
                    "responses": responses,
                    "response_bytes": response_bytes,
                    "in_queue": queued,
                    "in_queue_bytes": 0,
                    "out_queue": 0,
                    "out_queue_bytes": 0,
                }),
            );
        }
        root.insert(pool.name.to_string(), Value::Object(entry));
    }
    root.insert("total_connections".into(), json!(total));
    root.insert("curr_connections".into(), json!(current));
    Value::Object(root)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
