//! CLUSTER, READONLY, READWRITE and ASKING on a pool with
//! `cluster_proxies`: the proxies answer as a Redis Cluster of their own
//! (`shardgate_core::cluster::face`), so cluster-aware clients spread
//! their load over them. Any proxy serves any key, so the connection
//! flags are accepted and change nothing.

use bytes::Bytes;
use resp::Request;

use super::super::reply::{self, OK};
use super::super::{ClientStream, Flow, Session};
use super::{subcommand, Subcommand};
use crate::command::Resolution;
use crate::error::CommandError;

impl<S: ClientStream> Session<S> {
    pub(super) fn cluster(&mut self, request: &Request, resolution: &Resolution) -> Flow {
        let name = match resolution {
            Resolution::Known(_, spec) | Resolution::UnknownSubcommand(_, spec) => spec.name(),
            Resolution::Unknown => "",
        };
        // READONLY, READWRITE, ASKING: connection flags a node keeps; every
        // proxy serves reads by its read policy and takes any key.
        if !name.starts_with("cluster") {
            return self.answer(Ok(OK));
        }
        let Some(view) = self.pool.state.face() else {
            // A reload removed `cluster_proxies` since the request was routed.
            return self.error_next("ERR This instance has cluster support disabled");
        };
        let resp3 = self.client.resp3;
        let reply = match subcommand(request, resolution) {
            Subcommand::Known("slots") => Ok(view.slots(resp3)),
            Subcommand::Known("shards") => Ok(view.shards(resp3)),
            Subcommand::Known("nodes") => Ok(reply::verbatim_or_bulk(resp3, &view.nodes_text())),
            Subcommand::Known("info") => Ok(reply::verbatim_or_bulk(resp3, &view.info_text())),
            Subcommand::Known("myid") => Ok(reply::bulk(view.my_id().as_bytes())),
            Subcommand::Known("keyslot") => Ok(reply::integer(i64::from(keyspace::cluster_slot(
                request.arg(2).unwrap_or_default(),
            )))),
            Subcommand::Known("help") => Ok(help()),
            Subcommand::Known(sub) => Err(CommandError::NotThroughProxy {
                command: "cluster",
                subcommand: sub.to_string(),
                why: "is not answered by the proxies' cluster view \
                      (SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT are); run it on a Redis Cluster node",
            }),
            Subcommand::Unknown(sub) => Err(CommandError::unknown_subcommand("cluster", sub)),
        };
        self.answer(reply)
    }
}

fn help() -> Bytes {
    reply::help(&[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "SLOTS",
        "    Return the proxies and the slots each serves (every proxy serves any key).",
        "SHARDS",
        "    Return the same as shards of one primary each.",
        "NODES",
        "    Return every listed proxy; one that does not answer is marked fail.",
        "INFO",
        "    Return the cluster's state as the proxies present it.",
        "MYID",
        "    Return this proxy's node id.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "HELP",
        "    Print this help.",
    ])
}
