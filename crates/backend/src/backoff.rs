//! How long a lost connection (pipelined or push) waits before it tries
//! again: 50 ms, doubling up to the pool's `reconnect_backoff_max`, and
//! back to 50 ms once a connection is made.

use std::time::Duration;

/// The first wait, and the least `reconnect_backoff_max` can make the last.
const MIN: Duration = Duration::from_millis(50);

pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: MIN }
    }

    /// A connection was made: the next loss waits the least again.
    pub(crate) fn reset(&mut self) {
        self.next = MIN;
    }

    /// The wait before the next try; the one after doubles, up to `max`.
    pub(crate) fn next(&mut self, max: Duration) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(max.max(MIN));
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_and_starts_again_after_a_connection() {
        let mut backoff = Backoff::new();
        let max = Duration::from_millis(300);
        let waits: Vec<u128> = (0..5).map(|_| backoff.next(max).as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.next(max), MIN);
        // A maximum under the minimum still waits the minimum.
        assert_eq!(Backoff::new().next(Duration::ZERO), MIN);
    }
}
