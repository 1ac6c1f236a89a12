//! The proxy's slow log: requests slower than a threshold through the
//! proxy (arrival to reply), with the node that served them. Kept per
//! pool, read with SLOWLOG GET / LEN / RESET in Redis's format, plus the
//! node as a seventh field of each entry.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

/// Redis keeps at most 32 arguments and 128 bytes of each.
const MAX_ARGS: usize = 32;
const MAX_ARG_BYTES: usize = 128;

/// One slow request.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    pub id: u64,
    pub at_unix: u64,
    pub duration_us: u64,
    pub args: Vec<Bytes>,
    pub client_addr: String,
    pub client_name: String,
    /// `host:port` of the node that answered (empty: answered by the proxy
    /// or by several shards).
    pub node: Arc<str>,
}

/// The threshold of a disabled slow log.
const OFF: u64 = u64::MAX;

/// A pool's slow log.
#[derive(Debug)]
pub struct SlowLog {
    /// In microseconds; [`OFF`]: disabled. Atomic: a reload changes it.
    threshold_us: AtomicU64,
    max_len: AtomicUsize,
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
}

impl SlowLog {
    pub fn new(threshold: Option<Duration>, max_len: usize) -> SlowLog {
        let log = SlowLog {
            threshold_us: AtomicU64::new(OFF),
            max_len: AtomicUsize::new(0),
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        };
        log.configure(threshold, max_len);
        log
    }

    /// New settings (a reload); entries past the new length are dropped.
    pub fn configure(&self, threshold: Option<Duration>, max_len: usize) {
        let micros = threshold.map_or(OFF, |t| u64::try_from(t.as_micros()).unwrap_or(OFF - 1));
        self.threshold_us.store(micros, Relaxed);
        self.max_len.store(max_len, Relaxed);
        self.lock().truncate(max_len);
    }

    /// The threshold, None when disabled.
    pub fn threshold(&self) -> Option<Duration> {
        match self.threshold_us.load(Relaxed) {
            OFF => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// Whether a request that took `elapsed` belongs in the log.
    #[inline]
    pub fn is_slow(&self, elapsed: Duration) -> bool {
        let threshold = self.threshold_us.load(Relaxed);
        threshold != OFF && elapsed.as_micros() > u128::from(threshold)
    }

    /// Logs a slow request; `raw` is the request as the client sent it.
    pub fn record(
        &self,
        raw: &Bytes,
        elapsed: Duration,
        client_addr: String,
        client_name: String,
        node: Arc<str>,
    ) {
        let args = arguments(raw);
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Relaxed),
            at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            args,
            client_addr,
            client_name,
            node,
        };
        let mut entries = self.lock();
        entries.push_front(entry);
        entries.truncate(self.max_len.load(Relaxed));
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<SlowEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest `count` entries (Redis's default is 10; negative: all).
    pub fn get(&self, count: Option<i64>) -> Vec<SlowEntry> {
        let entries = self.lock();
        let count = match count {
            Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => usize::MAX,
            None => 10,
        };
        entries.iter().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Entries ever logged.
    pub fn total(&self) -> u64 {
        self.next_id.load(Relaxed)
    }
}

/// The request's arguments, shortened as Redis shortens them.
fn arguments(raw: &Bytes) -> Vec<Bytes> {
    let mut buf = BytesMut::from(&raw[..]);
    let mut parser = resp::RequestParser::new(resp::Limits::default());
    let Ok(Some(request)) = parser.next(&mut buf) else {
        return Vec::new();
    };
    let argc = request.argc();
    let all: Vec<&[u8]> = request.args().collect();
    let secret = crate::secrets::secret_args(&all);
    let mut args: Vec<Bytes> = all
        .iter()
        .enumerate()
        .take(if argc > MAX_ARGS { MAX_ARGS - 1 } else { argc })
        .map(|(i, arg)| {
            if secret.contains(&i) {
                Bytes::from_static(crate::secrets::REDACTED)
            } else if arg.len() > MAX_ARG_BYTES {
                let mut short = arg.get(..MAX_ARG_BYTES).unwrap_or_default().to_vec();
                short.extend_from_slice(
                    format!("... ({} more bytes)", arg.len() - MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(short)
            } else {
                Bytes::copy_from_slice(arg)
            }
        })
        .collect();
    if argc > MAX_ARGS {
        args.push(Bytes::from(format!(
            "... ({} more arguments)",
            argc - MAX_ARGS + 1
        )));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_and_shortens_arguments() {
        let log = SlowLog::new(Some(Duration::from_millis(1)), 2);
        assert!(!log.is_slow(Duration::from_micros(500)));
        assert!(log.is_slow(Duration::from_millis(2)));
        let long = "x".repeat(200);
        for i in 0..3 {
            let raw = resp::Request::from_args(&["SET", &format!("k{i}"), &long]).raw;
            log.record(
                &raw,
                Duration::from_millis(5),
                "127.0.0.1:1".into(),
                String::new(),
                "n".into(),
            );
        }
        assert_eq!(log.len(), 2);
        assert_eq!(log.total(), 3);
        let entries = log.get(None);
        assert_eq!(entries[0].id, 2);
        assert_eq!(&entries[0].args[1][..], b"k2");
        assert!(entries[0].args[2].ends_with(b"... (72 more bytes)"));
        let migrate = ["MIGRATE", "h", "1", "k", "0", "5000", "AUTH2", "user", "pw"];
        let args = arguments(&resp::Request::from_args(&migrate).raw);
        assert_eq!(&args[7][..], b"(redacted)");
        assert_eq!(&args[8][..], b"(redacted)");
        assert_eq!(&args[3][..], b"k");
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        assert_eq!(arguments(&resp::Request::from_args(&many).raw).len(), 32);
        log.reset();
        assert!(log.is_empty());
    }
}
