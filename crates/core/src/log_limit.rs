//! Log lines that a client or a flood could repeat endlessly (a security
//! warning, accept failures at the descriptor limit) are rate limited, so
//! one misbehaving peer cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows one log line per `every` seconds.
pub struct LogLimit {
    every: u64,
    /// The Unix second of the last allowed line, plus one (0: never).
    last: AtomicU64,
}

impl LogLimit {
    pub const fn new(every_secs: u64) -> LogLimit {
        LogLimit {
            every: every_secs,
            last: AtomicU64::new(0),
        }
    }

    /// True when a line may be logged now (and counts it).
    pub fn allow(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 1;
        let last = self.last.load(Relaxed);
        if last != 0 && now < last + self.every {
            return false;
        }
        self.last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_one_line_per_period() {
        let limit = LogLimit::new(60);
        assert!(limit.allow());
        assert!(!limit.allow());
        assert!(!limit.allow());
    }
}
