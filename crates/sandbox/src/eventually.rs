//! Waiting for things that converge (failover, reconnects), with a deadline
//! instead of a sleep.

use std::time::{Duration, Instant};

/// Polls `condition` every 10 ms until it holds or `deadline` passes.
/// Returns how long it took, or None on timeout.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if condition() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that a condition becomes true within a deadline (default 10 s).
///
/// ```text
/// assert_eventually!(proxy_answers(), "proxy never answered");
/// assert_eventually!(within = Duration::from_secs(3), master_is(b), "no failover");
/// ```
#[macro_export]
macro_rules! assert_eventually {
    (within = $deadline:expr, $cond:expr, $($msg:tt)+) => {
        if $crate::eventually::wait_until($deadline, || $cond).is_none() {
            panic!("not within {:?}: {}", $deadline, format!($($msg)+));
        }
    };
    ($cond:expr, $($msg:tt)+) => {
        $crate::assert_eventually!(within = std::time::Duration::from_secs(10), $cond, $($msg)+)
    };
}
