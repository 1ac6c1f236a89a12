//! The controller's decisions, input by input, on a fake clock: what
//! failover correctness rests on (a flapping master, two masters, a
//! Sentinel majority against a stale Sentinel, a deposed master returning
//! empty, a replica restarted as master, managed peers, a slow first
//! probe, ejection and readmission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::topology::info::{ReplicaInfo, Replication};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn node(port: u16) -> NodeAddr {
    NodeAddr::new(addr(port), format!("127.0.0.1:{port}"))
}

/// A master at `offset` listing online replicas `(port, offset)`.
fn master(offset: u64, replicas: &[(u16, u64)]) -> Result<Probe, NodeError> {
    Ok(Probe {
        latency: Duration::from_micros(100),
        replication: Replication {
            role: Role::Master {
                replicas: replicas
                    .iter()
                    .map(|&(port, offset)| ReplicaInfo {
                        ip: "127.0.0.1".into(),
                        port,
                        addr: Some(addr(port)),
                        online: true,
                        offset,
                        lag: 0,
                    })
                    .collect(),
            },
            master_repl_offset: offset,
        },
        new_connection: false,
        busy: None,
    })
}

/// A replica of `of` at `offset`, its link up.
fn replica(of: u16, offset: u64) -> Result<Probe, NodeError> {
    Ok(Probe {
        latency: Duration::from_micros(100),
        replication: Replication {
            role: Role::Replica {
                master_host: "127.0.0.1".into(),
                master_port: of,
                master_addr: Some(addr(of)),
                link_up: true,
                last_io_seconds: Some(0),
                offset,
            },
            master_repl_offset: offset,
        },
        new_connection: false,
        busy: None,
    })
}

fn down() -> Result<Probe, NodeError> {
    Err(NodeError::Timeout(Duration::from_millis(300)))
}

fn on_new_connection(probe: Result<Probe, NodeError>) -> Result<Probe, NodeError> {
    probe.map(|mut p| {
        p.new_connection = true;
        p
    })
}

/// One pool's kernel on a fake clock.
struct Sim {
    kernel: Kernel,
    start: Instant,
    now: Instant,
}

impl Sim {
    /// A pool from YAML lines for one pool named `p` (its `servers:` etc.).
    fn new(pool: &str) -> Sim {
        let config = crate::config::parse(&format!("p:\n  listen: 127.0.0.1:1\n{pool}"))
            .expect("config")
            .pools
            .remove(0);
        let start = Instant::now();
        Sim {
            kernel: Kernel::new(Arc::new(config), "000-me".into(), start),
            start,
            now: start,
        }
    }

    /// A managed pool: master 7001, replicas 7002 and 7003 (fall 3, rise 2).
    fn managed() -> Sim {
        Sim::new(
            "  failover: managed\n  servers:\n    - 127.0.0.1:7001:1 s1\n  \
             replicas:\n    s1: [127.0.0.1:7002, 127.0.0.1:7003]\n",
        )
    }

    /// Moves the clock to `ms` after the start.
    fn at(&mut self, ms: u64) -> &mut Sim {
        self.now = self.start + Duration::from_millis(ms);
        self
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        self.kernel.decide(self.now, input)
    }

    fn probe(&mut self, port: u16, result: Result<Probe, NodeError>) -> Vec<Action> {
        let started = self.now;
        self.input(Input::Probed {
            addr: addr(port),
            started,
            result,
            busy_with: None,
        })
    }

    /// Probes every node once with these results, then ends startup.
    fn started(&mut self, probes: &[(u16, Result<Probe, NodeError>)]) -> Vec<Action> {
        for (port, result) in probes {
            self.probe(*port, result.clone());
        }
        assert!(self.kernel.ready(), "every node was probed");
        self.input(Input::Settled)
    }

    fn master_of(&self, shard: usize) -> SocketAddr {
        self.kernel.shards()[shard].group.master
    }
}

fn events(actions: &[Action], kind: EventKind) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event {
                kind: k, message, ..
            } if *k == kind => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn published_master(actions: &[Action]) -> Option<Option<SocketAddr>> {
    actions.iter().rev().find_map(|a| match a {
        Action::Publish { shards, .. } => Some(shards[0].master.as_ref().map(|m| m.addr)),
        _ => None,
    })
}

fn find_peers(actions: &[Action]) -> Option<&AfterPeers> {
    actions.iter().find_map(|a| match a {
        Action::FindPeers { then, .. } => Some(then),
        _ => None,
    })
}

fn promotes(actions: &[Action]) -> Option<SocketAddr> {
    actions.iter().find_map(|a| match a {
        Action::Promote { node, .. } => Some(node.addr),
        _ => None,
    })
}

fn repoints(actions: &[Action]) -> Vec<(SocketAddr, u16)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Repoint { node, port, .. } => Some((node.addr, *port)),
            _ => None,
        })
        .collect()
}

fn healthy_managed() -> Sim {
    let mut sim = Sim::managed();
    let actions = sim.started(&[
        (7001, master(100, &[(7002, 100), (7003, 90)])),
        (7002, replica(7001, 100)),
        (7003, replica(7001, 90)),
    ]);
    // The replicas' fitness is news: published, with the configured master.
    assert_eq!(published_master(&actions), Some(Some(addr(7001))));
    sim
}

#[test]
fn nothing_is_decided_or_published_before_startup_ends() {
    let mut sim = Sim::managed();
    let probes = sim.kernel.start();
    assert_eq!(probes.len(), 3, "every configured node is probed");
    let before = sim.probe(7001, down());
    assert!(before.iter().all(|a| !matches!(a, Action::Publish { .. })));
    assert!(!sim.kernel.ready(), "7002 and 7003 not probed yet");
}

#[test]
fn a_slow_first_probe_at_startup_does_not_fail_over() {
    let mut sim = Sim::managed();
    // The master's first probe fails: down at once (the first result
    // decides), so writes are refused, but one failure is no outage.
    let actions = sim.started(&[
        (7001, down()),
        (7002, replica(7001, 100)),
        (7003, replica(7001, 90)),
    ]);
    assert_eq!(published_master(&actions), Some(None));
    assert_eq!(find_peers(&actions), None);
    assert_eq!(promotes(&actions), None);
    // It answers twice (rise): writes go back to it, still no failover.
    sim.at(500).probe(7001, master(100, &[(7002, 100)]));
    let actions = sim.at(1000).probe(7001, master(100, &[(7002, 100)]));
    assert_eq!(published_master(&actions), Some(Some(addr(7001))));
    assert_eq!(find_peers(&actions), None);
}

#[test]
fn a_lost_master_is_failed_over_to_the_replica_with_the_most_data() {
    let mut sim = healthy_managed();
    sim.at(500).probe(7001, down());
    sim.at(1000).probe(7001, down());
    let actions = sim.at(1500).probe(7001, down());
    assert_eq!(published_master(&actions), Some(None), "down after fall");
    assert_eq!(find_peers(&actions), Some(&AfterPeers::Promote(node(7002))));
    // Only one attempt at a time: another probe decides nothing new.
    assert_eq!(
        find_peers(&sim.at(1600).probe(7003, replica(7001, 90))),
        None
    );
    let actions = sim.at(1700).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then: AfterPeers::Promote(node(7002)),
    });
    assert_eq!(promotes(&actions), Some(addr(7002)));
    let actions = sim.at(1800).input(Input::Promoted {
        shard: 0,
        node: node(7002),
        result: Ok(()),
    });
    assert_eq!(published_master(&actions), Some(Some(addr(7002))));
    let master = events(&actions, EventKind::Master);
    assert!(
        master
            .iter()
            .any(|m| m.contains("ms after the master was lost")),
        "{master:?}"
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::FailedOver { .. })));
    // The other replica is re-pointed at the new master right away.
    let Some(AfterPeers::Repoint(strays)) = find_peers(&actions) else {
        panic!("no re-pointing: {actions:?}");
    };
    assert_eq!(strays, &vec![node(7003)]);
    let actions = sim.at(1900).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then: AfterPeers::Repoint(strays.clone()),
    });
    assert_eq!(repoints(&actions), vec![(addr(7003), 7002)]);
}

#[test]
fn a_flapping_master_stays_lost_until_it_is_up_again() {
    let mut sim = healthy_managed();
    for ms in [500, 1000, 1500] {
        sim.at(ms).probe(7001, down());
    }
    // One answer between failures does not bring it back (rise is 2)...
    sim.at(1600).probe(7001, master(100, &[]));
    let actions = sim.at(1700).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then: AfterPeers::Promote(node(7002)),
    });
    assert_eq!(promotes(&actions), Some(addr(7002)), "still lost");
    // ...while two in a row do, and then a pending promotion is dropped.
    let mut sim = healthy_managed();
    for ms in [500, 1000, 1500] {
        sim.at(ms).probe(7001, down());
    }
    sim.at(1600).probe(7001, master(100, &[]));
    sim.at(1650).probe(7001, master(100, &[]));
    let actions = sim.at(1700).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then: AfterPeers::Promote(node(7002)),
    });
    assert_eq!(promotes(&actions), None, "the master is back");
    assert_eq!(sim.master_of(0), addr(7001));
}

#[test]
fn an_older_managed_proxy_acts_and_this_one_follows_it() {
    let mut sim = healthy_managed();
    for ms in [500, 1000, 1500] {
        sim.at(ms).probe(7001, down());
    }
    let peers = Input::Peers {
        shard: 0,
        result: Ok(Some("000-older".into())),
        then: AfterPeers::Promote(node(7002)),
    };
    let actions = sim.at(1600).input(peers.clone());
    assert_eq!(promotes(&actions), None);
    let deferred = events(&actions, EventKind::Failover);
    assert!(deferred[0].contains("older managed proxy"), "{deferred:?}");
    // The next attempt (a health interval later) asks again: no second event.
    let actions = sim.at(2100).probe(7001, down());
    assert!(find_peers(&actions).is_some());
    let actions = sim.at(2200).input(peers);
    assert!(events(&actions, EventKind::Failover).is_empty());
    // The older proxy promotes 7003; this one follows it.
    let actions = sim.at(2300).probe(7003, master(95, &[]));
    assert_eq!(sim.master_of(0), addr(7003));
    assert!(events(&actions, EventKind::Failover)
        .iter()
        .any(|m| m.contains("following 127.0.0.1:7003")));
    // Peers that cannot be asked: no promotion either.
    let mut sim = healthy_managed();
    for ms in [500, 1000, 1500] {
        sim.at(ms).probe(7001, down());
    }
    let actions = sim.at(1600).input(Input::Peers {
        shard: 0,
        result: Err(NodeError::Connect("refused".into())),
        then: AfterPeers::Promote(node(7002)),
    });
    assert_eq!(promotes(&actions), None);
}

#[test]
fn a_deposed_master_returning_empty_is_made_a_replica_never_written_to() {
    let mut sim = healthy_managed();
    for ms in [500, 1000, 1500] {
        sim.at(ms).probe(7001, down());
    }
    sim.at(1600).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then: AfterPeers::Promote(node(7002)),
    });
    let actions = sim.at(1700).input(Input::Promoted {
        shard: 0,
        node: node(7002),
        result: Ok(()),
    });
    // 7003 is re-pointed at the new master (the executor answers).
    let then = find_peers(&actions).expect("re-pointing").clone();
    sim.at(1710).input(Input::Peers {
        shard: 0,
        result: Ok(None),
        then,
    });
    sim.at(1720).input(Input::Repointed {
        shard: 0,
        node: node(7003),
        result: Ok(()),
    });
    sim.at(1800).probe(7002, master(200, &[(7003, 200)]));
    sim.at(1850).probe(7003, replica(7002, 200));
    // The old master restarts empty, reporting master.
    sim.at(3000).probe(7001, on_new_connection(master(0, &[])));
    let actions = sim.at(3500).probe(7001, on_new_connection(master(0, &[])));
    assert_eq!(sim.master_of(0), addr(7002), "writes stay on the data");
    assert_ne!(published_master(&actions), Some(Some(addr(7001))));
    let Some(AfterPeers::Repoint(strays)) = find_peers(&actions) else {
        panic!("the old master is not re-pointed: {actions:?}");
    };
    assert_eq!(strays, &vec![node(7001)]);
}

#[test]
fn two_masters_with_data_each_are_a_conflict_an_operator_resolves() {
    let mut sim = Sim::new(
        "  failover: managed\n  servers:\n    - 127.0.0.1:7001:1 s1\n  \
         replicas:\n    s1: [127.0.0.1:7002, 127.0.0.1:7003, 127.0.0.1:7004]\n",
    );
    // 7001 and 7002 both master, each with a replica: either may hold
    // writes the other lacks.
    let actions = sim.started(&[
        (7001, master(100, &[(7003, 100)])),
        (7002, master(200, &[(7004, 200)])),
        (7003, replica(7001, 100)),
        (7004, replica(7002, 200)),
    ]);
    let conflict = events(&actions, EventKind::TwoMasters);
    assert!(conflict[0].contains("two masters"), "{conflict:?}");
    assert_eq!(published_master(&actions), Some(None), "writes refused");
    assert!(find_peers(&actions).is_none() && repoints(&actions).is_empty());
    // An operator demotes 7002: the conflict is over.
    let actions = sim.at(500).probe(7002, replica(7001, 100));
    assert!(events(&actions, EventKind::TwoMasters)[0].contains("conflict is over"));
    assert_eq!(published_master(&actions), Some(Some(addr(7001))));
}

#[test]
fn a_replica_restarted_as_master_is_judged_by_its_data_a_promoted_one_is_kept() {
    // A replica restarts (a runtime REPLICAOF is not in its config): it
    // comes back, on a new connection, as an empty master.
    let mut sim = healthy_managed();
    let actions = sim.at(500).probe(7003, on_new_connection(master(0, &[])));
    assert_eq!(sim.master_of(0), addr(7001));
    let Some(AfterPeers::Repoint(strays)) = find_peers(&actions) else {
        panic!("not re-pointed: {actions:?}");
    };
    assert_eq!(strays, &vec![node(7003)]);
    // An operator promotes a replica (seen turning master on the same
    // connection): never demoted by the proxy; a conflict instead.
    let mut sim = healthy_managed();
    let actions = sim.at(500).probe(7002, master(100, &[]));
    assert!(repoints(&actions).is_empty());
    assert!(find_peers(&actions).is_none());
    let conflict = events(&actions, EventKind::TwoMasters);
    assert!(
        conflict.first().is_some_and(|m| m.contains("two masters")),
        "{conflict:?}"
    );
}

#[test]
fn sentinel_majority_and_switch_master_are_followed_a_stale_sentinel_is_not() {
    let mut sim = Sim::new(
        "  failover: sentinel\n  sentinels:\n    - 127.0.0.1:26379:1\n    \
         - 127.0.0.1:26380:1\n    - 127.0.0.1:26381:1\n  servers:\n    - 127.0.0.1:7001:1 s1\n",
    );
    let said = |sentinel, port, epoch| Input::SentinelMaster {
        sentinel,
        shard: 0,
        addr: node(port),
        epoch,
        via: format!("Sentinel {sentinel}"),
    };
    sim.probe(7001, master(100, &[]));
    assert!(!sim.kernel.ready(), "no Sentinel heard yet");
    for s in 0..3 {
        sim.input(said(s, 7001, Some(5)));
    }
    assert!(sim.kernel.ready());
    sim.input(Input::Settled);
    // A stale Sentinel names another master at an older epoch: logged, not followed.
    let actions = sim.at(100).input(said(2, 7002, Some(4)));
    assert!(events(&actions, EventKind::Sentinel)[0].contains("not followed"));
    assert!(!actions.iter().any(|a| matches!(a, Action::Verify { .. })));
    // The same word again within seconds: not logged twice.
    assert!(events(
        &sim.at(200).input(said(2, 7002, Some(4))),
        EventKind::Sentinel
    )
    .is_empty());
    // +switch-master: verified with ROLE, then followed.
    let actions = sim.at(300).input(said(0, 7002, None));
    assert!(actions.iter().any(
        |a| matches!(a, Action::Verify { addr, .. } if addr.addr == SocketAddr::from(([127, 0, 0, 1], 7002)))
    ));
    assert_eq!(sim.master_of(0), addr(7001), "not before ROLE says master");
    let actions = sim.at(400).input(Input::Verified {
        shard: 0,
        addr: node(7002),
        via: "Sentinel 0 (+switch-master)".into(),
        result: Ok(()),
    });
    assert_eq!(published_master(&actions), Some(Some(addr(7002))));
    // A node that is not a master is not followed, whoever names it.
    let actions = sim.at(500).input(said(1, 7003, Some(9)));
    assert!(actions.iter().any(|a| matches!(a, Action::Verify { .. })));
    let actions = sim.at(600).input(Input::Verified {
        shard: 0,
        addr: node(7003),
        via: "Sentinel 1 (query)".into(),
        result: Err(NodeError::Unexpected("ROLE says slave".into())),
    });
    assert_eq!(sim.master_of(0), addr(7002));
    assert!(events(&actions, EventKind::Sentinel)[0].contains("ignored"));
}

#[test]
fn an_ejected_shard_returns_after_the_retry_timeout_or_at_once_after_a_failover() {
    let mut sim = Sim::new(
        "  auto_eject_hosts: true\n  server_failure_limit: 2\n  server_retry_timeout: 30000\n  \
         servers:\n    - 127.0.0.1:7001:1\n    - 127.0.0.1:7101:1\n",
    );
    sim.started(&[(7001, master(1, &[])), (7101, master(1, &[]))]);
    sim.at(500).probe(7001, down());
    let actions = sim.at(1000).probe(7001, down());
    assert_eq!(
        events(&actions, EventKind::Eject),
        vec!["shard ejected from the ring"]
    );
    let ejected = |actions: &[Action]| {
        actions.iter().rev().find_map(|a| match a {
            Action::Publish { shards, .. } => Some(shards[0].ejected),
            _ => None,
        })
    };
    assert_eq!(ejected(&actions), Some(true));
    // Healthy again, but back only after `server_retry_timeout`.
    sim.at(2000).probe(7001, master(1, &[]));
    let actions = sim.at(2500).probe(7001, master(1, &[]));
    assert!(events(&actions, EventKind::Eject).is_empty());
    let actions = sim.at(31_000).probe(7001, master(1, &[]));
    assert_eq!(
        events(&actions, EventKind::Eject),
        vec!["shard back in the ring"]
    );
    assert_eq!(ejected(&actions), Some(false));
}

#[test]
fn replicas_serve_reads_only_while_fit_and_exclusions_are_counted() {
    let mut sim = healthy_managed();
    let actions = sim
        .at(100)
        .probe(7001, master(100, &[(7002, 100), (7003, 90)]));
    assert!(actions
        .iter()
        .all(|a| !matches!(a, Action::ReplicaExcluded)));
    let fit = |sim: &Sim| sim.kernel.shards()[0].fit.clone();
    assert_eq!(fit(&sim), vec![addr(7002), addr(7003)]);
    // 7003's link goes down: excluded, counted, and said once.
    let mut unlinked = replica(7001, 90);
    if let Ok(probe) = &mut unlinked {
        if let Role::Replica { link_up, .. } = &mut probe.replication.role {
            *link_up = false;
        }
    }
    let actions = sim.at(200).probe(7003, unlinked.clone());
    assert!(actions.iter().any(|a| matches!(a, Action::ReplicaExcluded)));
    assert!(events(&actions, EventKind::Replica)[0].contains("no longer serves reads"));
    assert_eq!(fit(&sim), vec![addr(7002)]);
    let actions = sim.at(300).probe(7003, unlinked);
    assert!(events(&actions, EventKind::Replica).is_empty());
}

#[test]
fn nodes_a_master_lists_join_the_shard_and_are_probed() {
    let mut sim = healthy_managed();
    let actions = sim
        .at(100)
        .probe(7001, master(100, &[(7002, 100), (7003, 90), (7004, 80)]));
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Probe(n) if n.addr == addr(7004))));
    assert!(events(&actions, EventKind::Replica)[0].contains("7004 joined"));
    // Down for a minute, a learned node is forgotten and no longer probed.
    sim.at(200).probe(7004, down());
    let actions = sim.at(200 + 61_000).input(Input::Tick);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::StopProbing(a) if *a == addr(7004))));
}

impl Sim {
    /// A reload: the same pool `p` with these YAML lines.
    fn reload(&mut self, pool: &str) -> Vec<Action> {
        let config = crate::config::parse(&format!("p:\n  listen: 127.0.0.1:1\n{pool}"))
            .expect("config")
            .pools
            .remove(0);
        self.kernel.reconfigure(self.now, Arc::new(config))
    }
}

fn probed(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe(n) => Some(n.addr),
            _ => None,
        })
        .collect()
}

fn stopped(actions: &[Action]) -> Vec<SocketAddr> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StopProbing(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn published_replicas(actions: &[Action]) -> Option<Vec<SocketAddr>> {
    actions.iter().rev().find_map(|a| match a {
        Action::Publish { shards, .. } => Some(shards[0].replicas.iter().map(|r| r.addr).collect()),
        _ => None,
    })
}

#[test]
fn a_reload_adds_and_removes_replicas_and_a_removed_one_is_not_learned_again() {
    let mut sim = healthy_managed();
    // 7003 leaves the file, 7004 joins it.
    let actions = sim.at(100).reload(
        "  failover: managed\n  servers:\n    - 127.0.0.1:7001:1 s1\n  \
         replicas:\n    s1: [127.0.0.1:7002, 127.0.0.1:7004]\n",
    );
    assert_eq!(probed(&actions), vec![addr(7004)]);
    assert_eq!(stopped(&actions), vec![addr(7003)]);
    // Published at once (the configuration changed), 7003 no longer reads.
    assert_eq!(published_replicas(&actions), Some(vec![addr(7002)]));
    // The master still lists 7003 as its replica: it is not learned again.
    let actions = sim
        .at(200)
        .probe(7001, master(100, &[(7002, 100), (7003, 90)]));
    assert!(probed(&actions).is_empty());
    assert!(sim.kernel.shards()[0].group.node(addr(7003)).is_none());
    // Health the kept nodes had is kept: 7002 still serves, and 7004
    // joins it once probed.
    let actions = sim.at(300).probe(7004, replica(7001, 100));
    assert_eq!(
        published_replicas(&actions),
        Some(vec![addr(7002), addr(7004)])
    );
}

#[test]
fn a_reload_that_changes_nothing_routing_needs_still_publishes_the_new_config() {
    let mut sim = healthy_managed();
    let actions = sim.at(100).reload(
        "  failover: managed\n  timeout: 900\n  servers:\n    - 127.0.0.1:7001:1 s1\n  \
         replicas:\n    s1: [127.0.0.1:7002, 127.0.0.1:7003]\n",
    );
    assert!(probed(&actions).is_empty() && stopped(&actions).is_empty());
    let published = actions.iter().find_map(|a| match a {
        Action::Publish { version, .. } => Some(*version),
        _ => None,
    });
    assert!(published.is_some(), "{actions:?}");
    assert_eq!(sim.master_of(0), addr(7001));
}

#[test]
fn a_named_server_moved_by_a_reload_is_its_shards_master_at_the_new_address() {
    let mut sim = Sim::new("  servers:\n    - 127.0.0.1:7001:1 s1\n    - 127.0.0.1:7005:1 s2\n");
    sim.started(&[(7001, master(10, &[])), (7005, master(10, &[]))]);
    let actions = sim
        .at(100)
        .reload("  servers:\n    - 127.0.0.1:7009:1 s1\n    - 127.0.0.1:7005:1 s2\n");
    assert_eq!(probed(&actions), vec![addr(7009)]);
    assert_eq!(stopped(&actions), vec![addr(7001)]);
    assert!(events(&actions, EventKind::Master)[0]
        .contains("moved from 127.0.0.1:7001 to 127.0.0.1:7009"));
    assert_eq!(sim.master_of(0), addr(7009));
    // Writes go there at once, as to a configured server at startup.
    assert_eq!(published_master(&actions), Some(Some(addr(7009))));
    // The shard keeps its name (its place on the ring): nothing moves.
    assert_eq!(&*sim.kernel.shards()[0].group.name, "s1");
    // Should it not answer, it is down like any master (after `fall`).
    let downed = (1..=5).find(|i| {
        let actions = sim.at(200 + i * 100).probe(7009, down());
        published_master(&actions) == Some(None)
    });
    assert!(
        downed.is_some(),
        "a moved server that does not answer stays up"
    );
}

#[test]
fn a_server_moved_onto_its_former_replica_is_written_to_at_once() {
    let mut sim = Sim::new("  servers:\n    - 127.0.0.1:7001:1 s1\n    - 127.0.0.1:7005:1 s2\n");
    // The data was copied to 7009, which 7001 lists as its replica.
    sim.started(&[
        (7001, master(10, &[(7009, 10)])),
        (7005, master(10, &[])),
        (7009, replica(7001, 10)),
    ]);
    // The operator promoted it and points s1 at it.
    let actions = sim
        .at(100)
        .reload("  servers:\n    - 127.0.0.1:7009:1 s1\n    - 127.0.0.1:7005:1 s2\n");
    assert_eq!(published_master(&actions), Some(Some(addr(7009))));
    // A probe sent before the reload (it still saw a replica) is stale.
    let stale = Input::Probed {
        addr: addr(7009),
        started: sim.start + Duration::from_millis(90),
        result: replica(7001, 10),
        busy_with: None,
    };
    let actions = sim.at(120).input(stale);
    assert_eq!(published_master(&actions), None, "nothing changes");
}

#[test]
fn a_node_the_proxy_keeps_busy_is_not_marked_down() {
    let mut sim = healthy_managed();
    for i in 1..=5 {
        let started = sim.at(i * 100).now;
        let actions = sim.input(Input::Probed {
            addr: addr(7001),
            started,
            result: down(),
            busy_with: Some("moving a big key".into()),
        });
        assert!(
            events(&actions, EventKind::Health).is_empty(),
            "{actions:?}"
        );
        assert!(promotes(&actions).is_none());
    }
    assert_eq!(sim.master_of(0), addr(7001));
    // Without the excuse, the same silence is a failure.
    let failed = (6..=10).any(|i| {
        let actions = sim.at(i * 100).probe(7001, down());
        !events(&actions, EventKind::Health).is_empty()
    });
    assert!(failed);
}
