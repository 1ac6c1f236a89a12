//! INFO through the proxy, built in one place: the proxy's own `# Proxy`
//! section, and what it patches into the shards' merged sections (the
//! merge itself is `fanout::broadcast`'s).

use bytes::Bytes;
use resp::Request;

use super::super::reply;
use super::super::{ClientStream, Session};
use crate::fanout::broadcast::InfoPatch;

/// What an INFO request needs.
pub(in super::super) enum InfoPlan {
    /// `INFO proxy`: answered by the proxy alone.
    ProxyOnly(Bytes),
    /// Sent to the shards, with the proxy's figures patched in.
    Shards(InfoPatch),
}

impl<S: ClientStream> Session<S> {
    /// Decides what INFO needs: the proxy section alone, or the shards'
    /// sections with the proxy section first (when asked for) and the
    /// proxy's client figures.
    pub(in super::super) fn info_plan(&self, request: &Request) -> InfoPlan {
        let sections: Vec<String> = request
            .args()
            .skip(1)
            .map(|s| String::from_utf8_lossy(s).to_lowercase())
            .collect();
        let wants_proxy = sections.is_empty()
            || sections
                .iter()
                .any(|s| matches!(s.as_str(), "proxy" | "all" | "everything" | "default"));
        let proxy = wants_proxy.then(|| self.proxy_section());
        if sections.len() == 1 && sections.first().is_some_and(|s| s == "proxy") {
            let text = proxy.unwrap_or_default();
            return InfoPlan::ProxyOnly(reply::verbatim_or_bulk(self.client.resp3, &text));
        }
        let clients = &self.pool.state.clients;
        let blocked = clients.blocked() as u64;
        let mut figures = vec![
            ("connected_clients", clients.count() as u64),
            ("blocked_clients", blocked),
            ("tracking_clients", 0),
            ("clients_in_timeout_table", blocked),
        ];
        let limit = self.config().client_connections;
        if limit > 0 {
            figures.push(("maxclients", u64::from(limit)));
        }
        InfoPlan::Shards(InfoPatch {
            proxy,
            clients: figures,
        })
    }

    /// `# Proxy`: the proxy's version, process, uptime, workers and
    /// configuration (epoch and hash, as `GET /config`), then one line
    /// per pool with its shards, clients and commands processed.
    fn proxy_section(&self) -> String {
        let proxy = &self.pool.proxy;
        let pools = proxy.pools();
        let config = proxy.config();
        let mut text = format!(
            "# Proxy\r\nproxy:shardgate\r\nproxy_version:{}\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\nworkers:{}\r\nconfig_epoch:{}\r\nconfig_hash:{}\r\npools:{}\r\nthis_pool:{}\r\n",
            crate::proxy_info::ProxyInfo::version(),
            std::process::id(),
            proxy.uptime().as_secs(),
            proxy.workers,
            config.epoch,
            config.hash,
            pools.len(),
            self.config().name,
        );
        for pool in pools.iter() {
            let topology = pool.topology();
            let workers = pool.worker_stats();
            let commands: u64 = workers
                .iter()
                .map(|w| w.commands().map(|(_, c)| c.requests.get()).sum::<u64>())
                .sum();
            let replica_reads: u64 = workers.iter().map(|w| w.replica_reads.get()).sum();
            text.push_str(&format!(
                "pool_{}:shards={},shards_without_master={},clients={},commands_processed={commands},replica_reads={replica_reads}\r\n",
                pool.name,
                topology.shard_count(),
                topology.shards.iter().filter(|s| s.master.is_none() && !s.ejected).count(),
                pool.clients.count(),
            ));
        }
        text.push_str("\r\n");
        text
    }
}
