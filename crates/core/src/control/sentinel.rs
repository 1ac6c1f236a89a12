//! Which Sentinel to believe. Sentinels can disagree (one partitioned
//! away, or monitoring with a stale configuration). Queries carry each
//! master's `config-epoch`, which a failover raises: a claim older than the
//! newest the pool has heard, or naming another master at the same epoch,
//! is set aside rather than moving writes back and forth, unless a
//! majority of the pool's Sentinels now name that master and the newest
//! word is not itself fresh (a master monitored afresh starts again at
//! epoch 0; right after a failover, Sentinels that have not heard of it yet
//! are a majority for a moment). `+switch-master` is always followed:
//! Sentinel publishes it only after a failover its majority authorised.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long after the newest word moved a majority naming another master
/// is not enough: Sentinels learn a failover from each other within a few
/// seconds, and each is queried every few seconds.
pub const MAJORITY_GRACE: Duration = Duration::from_secs(30);

/// A master a Sentinel named, and the configuration epoch it named it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub epoch: u64,
    pub addr: SocketAddr,
}

/// One shard's master as the pool's Sentinels name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The newest word: the master followed.
    pub newest: Option<Claim>,
    /// When `newest` last moved to another master.
    moved_at: Option<Instant>,
    /// Per Sentinel, the master it named last.
    heard: Vec<Option<SocketAddr>>,
}

impl Claims {
    /// Nothing heard yet from any of `sentinels` Sentinels.
    pub fn new(sentinels: usize) -> Claims {
        Claims {
            newest: None,
            moved_at: None,
            heard: vec![None; sentinels],
        }
    }

    /// Sentinel `sentinel` names `addr` master in `epoch` (a query): taken
    /// as the newest word if it is the first, the same master as the
    /// newest, a newer epoch, or what a majority of the pool's Sentinels
    /// now say when the newest word has stood for [`MAJORITY_GRACE`] (the
    /// newest epoch is kept, so a lone stale Sentinel cannot take it back).
    /// Err with the claim it loses to.
    pub fn judge(
        &mut self,
        sentinel: usize,
        epoch: u64,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<(), Claim> {
        if let Some(heard) = self.heard.get_mut(sentinel) {
            *heard = Some(addr);
        }
        let agreeing = self.heard.iter().filter(|h| **h == Some(addr)).count();
        let settled = self
            .moved_at
            .is_none_or(|at| now.saturating_duration_since(at) >= MAJORITY_GRACE);
        let overrides = agreeing * 2 > self.heard.len() && settled;
        match &mut self.newest {
            Some(claim) if claim.addr == addr => {
                claim.epoch = claim.epoch.max(epoch);
                Ok(())
            }
            Some(claim) if epoch <= claim.epoch && !overrides => Err(*claim),
            newest => {
                if newest.is_some() {
                    self.moved_at = Some(now);
                }
                let epoch = newest.map_or(epoch, |claim| claim.epoch.max(epoch));
                *newest = Some(Claim { epoch, addr });
                Ok(())
            }
        }
    }

    /// `+switch-master` from Sentinel `sentinel`: the master is now
    /// `addr`, whatever the epochs heard so far (queries then bring the
    /// new epoch).
    pub fn switched(&mut self, sentinel: usize, addr: SocketAddr, now: Instant) {
        if let Some(heard) = self.heard.get_mut(sentinel) {
            *heard = Some(addr);
        }
        let epoch = self.newest.map_or(0, |claim| claim.epoch);
        if self.newest.is_some_and(|claim| claim.addr != addr) {
            self.moved_at = Some(now);
        }
        self.newest = Some(Claim { epoch, addr });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Three Sentinels that all name `port` master in `epoch`.
    fn all_three_name(port: u16, epoch: u64) -> Claims {
        Claims {
            newest: Some(Claim {
                epoch,
                addr: addr(port),
            }),
            moved_at: None,
            heard: vec![Some(addr(port)); 3],
        }
    }

    #[test]
    fn a_stale_or_disagreeing_sentinel_is_not_followed() {
        // Three Sentinels: 0, 1, 2.
        let mut c = Claims::new(3);
        let now = Instant::now();
        assert!(
            c.judge(0, 0, addr(1), now).is_ok(),
            "the first word is taken"
        );
        // Another master at the same epoch: the first one stays.
        assert_eq!(c.judge(1, 0, addr(2), now).unwrap_err().addr, addr(1));
        // A failover raised the epoch: followed.
        assert!(c.judge(0, 3, addr(2), now).is_ok());
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((3, addr(2))));
        // A Sentinel still on the old configuration: not followed, again
        // and again.
        assert_eq!(c.judge(2, 0, addr(1), now).unwrap_err().epoch, 3);
        assert!(c.judge(2, 0, addr(1), now).is_err());
        // The same master again, from any epoch: fine.
        assert!(c.judge(1, 2, addr(2), now).is_ok());
    }

    #[test]
    fn a_master_most_sentinels_name_is_followed_whatever_its_epoch() {
        // The master was monitored afresh (SENTINEL REMOVE + MONITOR): its
        // epoch starts again at 0, and no +switch-master is published.
        let mut c = all_three_name(1, 5);
        let now = Instant::now();
        assert!(
            c.judge(0, 0, addr(7), now).is_err(),
            "one of three is not enough"
        );
        assert!(c.judge(1, 0, addr(7), now).is_ok(), "two of three are");
        // The epoch heard stays, so a lone stale Sentinel cannot flip it back.
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((5, addr(7))));
        assert!(c.judge(2, 5, addr(1), now).is_err());
    }

    #[test]
    fn right_after_a_failover_sentinels_not_yet_told_are_no_majority() {
        // X at epoch 5 everywhere; Sentinel 0 leads a failover to Y (epoch
        // 6); Sentinels 1 and 2 still name X for a moment.
        let mut c = all_three_name(1, 5);
        let now = Instant::now();
        assert!(c.judge(0, 6, addr(2), now).is_ok());
        assert!(c.judge(1, 5, addr(1), now).is_err());
        let later = now + Duration::from_secs(3);
        assert!(c.judge(2, 5, addr(1), later).is_err());
        assert_eq!(c.newest.map(|c| (c.epoch, c.addr)), Some((6, addr(2))));
        // Long after, a majority naming another master is followed again.
        let much_later = now + MAJORITY_GRACE + Duration::from_secs(1);
        assert!(c.judge(1, 0, addr(3), much_later).is_err());
        assert!(c.judge(2, 0, addr(3), much_later).is_ok());
    }
}
