//! The proxy tier as a Redis Cluster (`cluster_proxies`): what `CLUSTER
//! SLOTS`, `SHARDS`, `NODES`, `MYID` and `INFO` answer, so cluster-aware
//! clients spread their requests over the proxies with no load balancer
//! and move to the others when one dies. Every proxy takes any key; the
//! division only spreads the load. Pure: the control plane says which
//! proxies answer, the session encodes the replies.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use resp::encode;

use crate::config::ClusterFace;

/// Redis Cluster's slot count.
const SLOTS: u32 = 16384;

/// One proxy as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceNode {
    pub addr: SocketAddr,
    /// A node id derived from the address, so every proxy names every
    /// other the same way.
    pub id: String,
    /// The slots it serves (None: it does not answer, so none).
    pub slots: Option<(u16, u16)>,
    pub me: bool,
}

/// The cluster as this proxy presents it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceView {
    /// Every listed proxy, in address order.
    pub nodes: Vec<FaceNode>,
    /// Bumped each time the division changes (CLUSTER INFO's epochs).
    pub epoch: u64,
}

/// The 40 hex digits a node id has, from a proxy's address.
pub fn node_id(addr: SocketAddr) -> String {
    sha1_smol::Sha1::from(format!("shardgate {addr}")).hexdigest()
}

impl FaceView {
    /// Divides the slots among the proxies `live` says answer (this one
    /// always does: it is answering), in equal contiguous ranges in address
    /// order, so proxies that agree on who is live agree on the division.
    pub fn new(face: &ClusterFace, live: impl Fn(SocketAddr) -> bool, epoch: u64) -> FaceView {
        let serving: Vec<SocketAddr> = face
            .proxies
            .iter()
            .copied()
            .filter(|&addr| addr == face.me || live(addr))
            .collect();
        let count = serving.len().max(1) as u32;
        let nodes = face
            .proxies
            .iter()
            .map(|&addr| {
                let slots = serving.iter().position(|&a| a == addr).map(|i| {
                    let i = i as u32;
                    let (start, end) = (i * SLOTS / count, (i + 1) * SLOTS / count - 1);
                    (start as u16, end as u16)
                });
                FaceNode {
                    addr,
                    id: node_id(addr),
                    slots,
                    me: addr == face.me,
                }
            })
            .collect();
        FaceView { nodes, epoch }
    }

    fn serving(&self) -> impl Iterator<Item = (&FaceNode, (u16, u16))> {
        self.nodes
            .iter()
            .filter_map(|node| node.slots.map(|slots| (node, slots)))
    }

    fn me(&self) -> Option<&FaceNode> {
        self.nodes.iter().find(|node| node.me)
    }

    /// `CLUSTER SLOTS`: each range with its proxy (no replicas: every
    /// proxy serves every slot if asked).
    pub fn slots(&self, resp3: bool) -> Bytes {
        let mut out = BytesMut::new();
        let serving: Vec<_> = self.serving().collect();
        encode::array_header(&mut out, serving.len());
        for (node, (start, end)) in serving {
            encode::array_header(&mut out, 3);
            encode::integer(&mut out, i64::from(start));
            encode::integer(&mut out, i64::from(end));
            encode::array_header(&mut out, 4);
            encode::bulk(&mut out, node.addr.ip().to_string().as_bytes());
            encode::integer(&mut out, i64::from(node.addr.port()));
            encode::bulk(&mut out, node.id.as_bytes());
            // Redis 7's networking metadata: none (no hostnames).
            if resp3 {
                encode::map_header(&mut out, 0);
            } else {
                encode::array_header(&mut out, 0);
            }
        }
        out.freeze()
    }

    /// `CLUSTER SHARDS`: one shard per serving proxy, a primary alone.
    pub fn shards(&self, resp3: bool) -> Bytes {
        let mut out = BytesMut::new();
        let map = |out: &mut BytesMut, pairs: usize| {
            if resp3 {
                encode::map_header(out, pairs);
            } else {
                encode::array_header(out, pairs * 2);
            }
        };
        let serving: Vec<_> = self.serving().collect();
        encode::array_header(&mut out, serving.len());
        for (node, (start, end)) in serving {
            map(&mut out, 2);
            encode::bulk(&mut out, b"slots");
            encode::array_header(&mut out, 2);
            encode::integer(&mut out, i64::from(start));
            encode::integer(&mut out, i64::from(end));
            encode::bulk(&mut out, b"nodes");
            encode::array_header(&mut out, 1);
            map(&mut out, 7);
            let ip = node.addr.ip().to_string();
            for (key, value) in [
                ("id", node.id.as_str()),
                ("ip", &ip),
                ("endpoint", &ip),
                ("role", "master"),
                ("health", "online"),
            ] {
                encode::bulk(&mut out, key.as_bytes());
                encode::bulk(&mut out, value.as_bytes());
            }
            encode::bulk(&mut out, b"port");
            encode::integer(&mut out, i64::from(node.addr.port()));
            encode::bulk(&mut out, b"replication-offset");
            encode::integer(&mut out, 0);
        }
        out.freeze()
    }

    /// `CLUSTER NODES`: Redis's text, one line per proxy; one that does
    /// not answer is `master,fail` with no slots.
    pub fn nodes_text(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let flags = match (node.me, node.slots.is_some()) {
                (true, _) => "myself,master",
                (false, true) => "master",
                (false, false) => "master,fail",
            };
            let link = if node.slots.is_some() {
                "connected"
            } else {
                "disconnected"
            };
            // ip:port@bus-port: the proxies have no cluster bus.
            let _ = write!(
                text,
                "{} {}:{}@0 {flags} - 0 0 {} {link}",
                node.id,
                node.addr.ip(),
                node.addr.port(),
                self.epoch
            );
            if let Some((start, end)) = node.slots {
                let _ = write!(text, " {start}-{end}");
            }
            text.push('\n');
        }
        text
    }

    /// `CLUSTER INFO`'s text.
    pub fn info_text(&self) -> String {
        let serving = self.serving().count();
        let mut text = String::new();
        for (key, value) in [
            ("cluster_state", "ok".to_string()),
            ("cluster_slots_assigned", SLOTS.to_string()),
            ("cluster_slots_ok", SLOTS.to_string()),
            ("cluster_slots_pfail", "0".into()),
            ("cluster_slots_fail", "0".into()),
            ("cluster_known_nodes", self.nodes.len().to_string()),
            ("cluster_size", serving.to_string()),
            ("cluster_current_epoch", self.epoch.to_string()),
            ("cluster_my_epoch", self.epoch.to_string()),
            ("cluster_stats_messages_sent", "0".into()),
            ("cluster_stats_messages_received", "0".into()),
            ("total_cluster_links_buffer_limit_exceeded", "0".into()),
        ] {
            let _ = write!(text, "{key}:{value}\r\n");
        }
        text
    }

    /// `CLUSTER MYID`.
    pub fn my_id(&self) -> &str {
        self.me().map_or("", |node| node.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(me: &str, proxies: &[&str]) -> ClusterFace {
        let mut proxies: Vec<SocketAddr> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        proxies.sort();
        ClusterFace {
            proxies,
            me: me.parse().unwrap(),
        }
    }

    #[test]
    fn the_live_proxies_divide_every_slot_in_address_order() {
        let face = face(
            "127.0.0.1:7002",
            &["127.0.0.1:7003", "127.0.0.1:7001", "127.0.0.1:7002"],
        );
        let view = FaceView::new(&face, |_| true, 1);
        let slots: Vec<_> = view.nodes.iter().map(|n| n.slots).collect();
        assert_eq!(
            slots,
            [Some((0, 5460)), Some((5461, 10921)), Some((10922, 16383))]
        );
        // A dead proxy serves nothing; the others cover it all.
        let view = FaceView::new(&face, |addr| addr.port() != 7001, 2);
        let slots: Vec<_> = view.nodes.iter().map(|n| n.slots).collect();
        assert_eq!(slots, [None, Some((0, 8191)), Some((8192, 16383))]);
        assert!(view.nodes_text().contains("master,fail"));
        assert!(view.info_text().contains("cluster_size:2\r\n"));
    }

    #[test]
    fn this_proxy_serves_even_when_it_thinks_itself_dead_and_ids_agree_everywhere() {
        let face_a = face("127.0.0.1:7001", &["127.0.0.1:7001", "127.0.0.1:7002"]);
        let face_b = face("127.0.0.1:7002", &["127.0.0.1:7001", "127.0.0.1:7002"]);
        let (a, b) = (
            FaceView::new(&face_a, |_| false, 1),
            FaceView::new(&face_b, |_| true, 1),
        );
        assert_eq!(a.nodes[0].slots, Some((0, 16383)));
        assert_eq!(a.nodes[0].id, b.nodes[0].id);
        assert_eq!(a.my_id().len(), 40);
        assert_ne!(a.my_id(), b.my_id());
        let line = b.nodes_text();
        assert!(
            line.lines()
                .nth(1)
                .unwrap()
                .contains(" myself,master - 0 0 1 connected 8192-16383"),
            "{line}"
        );
    }

    #[test]
    fn slots_reply_is_redis_7s_shape() {
        let face = face("127.0.0.1:7001", &["127.0.0.1:7001"]);
        let view = FaceView::new(&face, |_| true, 1);
        let id = node_id("127.0.0.1:7001".parse().unwrap());
        let expected = format!(
            "*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n{id}\r\n*0\r\n"
        );
        assert_eq!(view.slots(false), expected.as_bytes());
    }
}
