//! When the slot map is refreshed, and whether a new one is believed.
//! Pure: the clock and the replies are arguments.
//!
//! One refresh at a time, at most one a second: a storm of `MOVED` replies
//! during a resharding, or of connection failures against a dead primary,
//! asks many times but queries the cluster once a second at most. Between
//! requests a jittered timer (so a fleet of proxies does not query in
//! step) notices changes no request ran into.

use std::time::{Duration, Instant};

use super::map::SlotMap;

/// The shortest time between the starts of two refreshes.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The timer's mean period.
pub const TIMER: Duration = Duration::from_secs(10);

/// Why a refresh is wanted (for logs and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Timer,
    /// A node answered `MOVED`.
    Moved,
    /// A node answered `CLUSTERDOWN`.
    ClusterDown,
    /// A primary refused a connection, lost one, or timed out.
    PrimaryFailed,
    /// No map is believed yet.
    Startup,
    /// The last refresh found a changed map that no second node confirmed.
    Unconfirmed,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Timer => "timer",
            Reason::Moved => "MOVED",
            Reason::ClusterDown => "CLUSTERDOWN",
            Reason::PrimaryFailed => "primary failed",
            Reason::Startup => "startup",
            Reason::Unconfirmed => "unconfirmed change",
        }
    }
}

/// The refresh schedule.
#[derive(Debug)]
pub struct Schedule {
    running: bool,
    last_start: Option<Instant>,
    /// A request not served yet (the most urgent reason).
    wanted: Option<Reason>,
    timer: Instant,
}

impl Schedule {
    /// A schedule that wants its first refresh at once.
    pub fn new(now: Instant) -> Schedule {
        Schedule {
            running: false,
            last_start: None,
            wanted: Some(Reason::Startup),
            timer: now + TIMER,
        }
    }

    /// Asks for a refresh; served by [`Schedule::start`] when allowed.
    pub fn want(&mut self, reason: Reason) {
        self.wanted = self.wanted.max(Some(reason));
    }

    /// Starts a refresh if one is due and allowed now.
    pub fn start(&mut self, now: Instant) -> Option<Reason> {
        if self.running || self.next_start(now)? > now {
            return None;
        }
        let reason = self.wanted.take().unwrap_or(Reason::Timer);
        self.running = true;
        self.last_start = Some(now);
        Some(reason)
    }

    /// When a refresh may start next (None while one runs). The caller
    /// sleeps until then, or until a new request arrives.
    pub fn next_start(&self, now: Instant) -> Option<Instant> {
        if self.running {
            return None;
        }
        let allowed = self.last_start.map_or(now, |last| last + MIN_INTERVAL);
        let due = if self.wanted.is_some() {
            now
        } else {
            self.timer
        };
        Some(allowed.max(due))
    }

    /// The refresh ended; `jitter` in `[0, 1)` places the next timer
    /// between 0.8 and 1.2 periods from now.
    pub fn finished(&mut self, now: Instant, jitter: f64) {
        self.running = false;
        self.timer = now + TIMER.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
    }
}

/// What a refresh found, against the map believed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed.
    Unchanged,
    /// Changed, and a second node agrees (or there is no other node).
    Believe,
    /// Changed, but no second node agreed: kept as it was, retried.
    Unconfirmed,
}

/// Whether a map from one node must be confirmed by a second before it is
/// believed: any change must, when any other node is known (`others`:
/// nodes other than the one asked, from its map, the believed map and the
/// seeds). A one-node cluster has no second witness. The count includes
/// the seeds: a seed that is a one-node cluster of its own (or claims
/// every slot after a partition) does not confirm itself.
pub fn needs_witness(current: Option<&SlotMap>, found: &SlotMap, others: usize) -> bool {
    current != Some(found) && others > 0
}

/// Judges a refresh: `found` from one node, `witness` from a second one
/// (None if it was not needed or could not be asked), `others` as for
/// [`needs_witness`].
pub fn judge(
    current: Option<&SlotMap>,
    found: &SlotMap,
    witness: Option<&SlotMap>,
    others: usize,
) -> Verdict {
    if current == Some(found) {
        return Verdict::Unchanged;
    }
    if !needs_witness(current, found, others) || witness.is_some_and(|w| w.same_placement(found)) {
        return Verdict::Believe;
    }
    Verdict::Unconfirmed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodePort;

    #[test]
    fn one_refresh_at_a_time_and_one_a_second() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0);
        assert_eq!(s.start(t0), Some(Reason::Startup));
        s.want(Reason::Moved);
        assert_eq!(s.start(t0), None, "one runs");
        assert_eq!(s.next_start(t0), None);
        s.finished(t0 + Duration::from_millis(5), 0.5);
        // A storm of requests meanwhile is one refresh, a second after the last.
        for _ in 0..1000 {
            s.want(Reason::Moved);
        }
        s.want(Reason::PrimaryFailed);
        assert_eq!(s.start(t0 + Duration::from_millis(999)), None);
        assert_eq!(
            s.next_start(t0 + Duration::from_millis(10)),
            Some(t0 + MIN_INTERVAL)
        );
        assert_eq!(
            s.start(t0 + MIN_INTERVAL),
            Some(Reason::PrimaryFailed),
            "the most urgent reason"
        );
        s.finished(t0 + MIN_INTERVAL, 0.0);
        // Nothing wanted: the timer, 0.8 to 1.2 periods later.
        let t1 = t0 + MIN_INTERVAL;
        assert_eq!(s.next_start(t1), Some(t1 + TIMER.mul_f64(0.8)));
        assert_eq!(s.start(t1 + Duration::from_secs(7)), None);
        assert_eq!(s.start(t1 + Duration::from_secs(8)), Some(Reason::Timer));
    }

    fn map(reply_port: i64) -> SlotMap {
        use resp::Value;
        let bulk = |s: &str| Value::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()));
        let node = |port: i64, role: &str| {
            Value::Array(vec![
                bulk("id"),
                bulk("x"),
                bulk("port"),
                Value::Integer(port),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk("online"),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("slots"),
            Value::Array(vec![Value::Integer(0), Value::Integer(16383)]),
            bulk("nodes"),
            Value::Array(vec![node(reply_port, "master"), node(7999, "replica")]),
        ])]);
        SlotMap::from_shards(
            &reply,
            "127.0.0.1:7000".parse().expect("a"),
            NodePort::Plain,
        )
        .expect("map")
    }

    #[test]
    fn a_changed_map_needs_a_second_node() {
        let (old, new) = (map(7000), map(7001));
        assert_eq!(judge(Some(&old), &old, None, 1), Verdict::Unchanged);
        assert!(needs_witness(Some(&old), &new, 1));
        assert_eq!(judge(Some(&old), &new, None, 1), Verdict::Unconfirmed);
        // A node on the minority side still serves the old map.
        assert_eq!(judge(Some(&old), &new, Some(&old), 1), Verdict::Unconfirmed);
        assert_eq!(judge(Some(&old), &new, Some(&new), 1), Verdict::Believe);
        // The first map too: a seed may be the one partitioned away.
        assert_eq!(judge(None, &new, None, 2), Verdict::Unconfirmed);
        assert_eq!(judge(None, &new, Some(&new), 2), Verdict::Believe);
        // A one-node cluster, and no other seed: nobody else to ask.
        assert_eq!(judge(None, &new, None, 0), Verdict::Believe);
    }
}
