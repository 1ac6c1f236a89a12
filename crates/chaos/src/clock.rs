//! One clock for every record: milliseconds since the run started, so
//! fault windows and acknowledgements compare directly.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Milliseconds since the run started.
pub type Ms = u64;

static START: OnceLock<Instant> = OnceLock::new();

/// Now, in ms since the first call.
pub fn now() -> Ms {
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_millis() as Ms
}

/// Seconds with one decimal, for tables.
pub fn secs(ms: Ms) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes.
pub fn wait_for(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
