//! The time a migration has left, from how fast its mover scans: keys to
//! scan (the sources' sizes when the mover started) against keys scanned
//! per second over the last minute.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the rate looks.
const WINDOW: Duration = Duration::from_secs(60);
/// Less than this of scanning says nothing about the rate yet.
const AT_LEAST: Duration = Duration::from_secs(2);

pub(super) struct ScanClock {
    to_scan: u64,
    scanned: u64,
    /// (when, keys scanned by then), oldest first, within [`WINDOW`].
    samples: VecDeque<(Instant, u64)>,
}

impl ScanClock {
    pub(super) fn new(to_scan: u64, now: Instant) -> ScanClock {
        ScanClock {
            to_scan,
            scanned: 0,
            samples: VecDeque::from([(now, 0)]),
        }
    }

    /// `keys` more were scanned; the seconds left at the current rate
    /// (None until the rate is known).
    pub(super) fn scanned(&mut self, keys: u64, now: Instant) -> Option<u64> {
        self.scanned += keys;
        self.samples.push_back((now, self.scanned));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, from) = *self.samples.front()?;
        let elapsed = now.duration_since(since);
        if elapsed < AT_LEAST || self.scanned == from {
            return None;
        }
        let rate = (self.scanned - from) as f64 / elapsed.as_secs_f64();
        let left = self.to_scan.saturating_sub(self.scanned) as f64;
        Some((left / rate).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_what_remains_at_the_rate_of_the_last_minute() {
        let start = Instant::now();
        let mut clock = ScanClock::new(10_000, start);
        // Nothing said before two seconds of scanning.
        assert_eq!(clock.scanned(1_000, start + Duration::from_secs(1)), None);
        // 2,000 in 2 s: 1,000 a second, 8,000 left.
        assert_eq!(
            clock.scanned(1_000, start + Duration::from_secs(2)),
            Some(8)
        );
        // Then it slows: 6,000 at 62 s, 4,000 of them in the last 60 s
        // (the samples before 2 s are forgotten): 4,000 left at 66.7 a
        // second is a minute.
        assert_eq!(
            clock.scanned(4_000, start + Duration::from_secs(62)),
            Some(60)
        );
        // All scanned: nothing left.
        assert_eq!(
            clock.scanned(4_000, start + Duration::from_secs(122)),
            Some(0)
        );
    }

    #[test]
    fn more_scanned_than_expected_leaves_no_time() {
        let start = Instant::now();
        let mut clock = ScanClock::new(100, start);
        assert_eq!(clock.scanned(500, start + Duration::from_secs(5)), Some(0));
    }
}
