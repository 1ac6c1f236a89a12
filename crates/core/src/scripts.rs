//! The scripts a pool has seen (SCRIPT LOAD, EVAL), by SHA1, so that an
//! EVALSHA answered `NOSCRIPT` (a master promoted after a failover, a
//! shard added, a server restarted: Redis 7 does not replicate its script
//! cache) is loaded there and retried, and the client never notices.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Scripts kept at most; the oldest are forgotten beyond.
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub struct Scripts {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Lowercase hex SHA1 -> body.
    bodies: HashMap<String, Bytes>,
    order: std::collections::VecDeque<String>,
}

/// The lowercase hex SHA1 Redis names a script by.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

impl Scripts {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a script body.
    pub fn remember(&self, body: &[u8]) {
        let sha = sha1_hex(body);
        let mut inner = self.lock();
        if inner.bodies.contains_key(&sha) {
            return;
        }
        if inner.order.len() >= CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.bodies.remove(&old);
            }
        }
        inner.order.push_back(sha.clone());
        inner.bodies.insert(sha, Bytes::copy_from_slice(body));
    }

    /// The body of the script with this SHA1 (any case), if seen.
    pub fn body(&self, sha: &[u8]) -> Option<Bytes> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        self.lock().bodies.get(&sha).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_scripts_by_redis_sha1() {
        let scripts = Scripts::default();
        // Redis: SCRIPT LOAD "return 1" -> e0e1f9fabfc9d4800c877a703b823ac0578ff8db
        scripts.remember(b"return 1");
        assert_eq!(
            scripts
                .body(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB")
                .as_deref(),
            Some(&b"return 1"[..])
        );
        assert!(scripts.body(b"0000").is_none());
    }
}

/// What a command does with scripts, for the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptUse {
    None,
    /// Carries a script body at this argument (EVAL, SCRIPT LOAD).
    Body(usize),
    /// Runs a script by SHA1 (argument 1): EVALSHA, EVALSHA_RO.
    Sha,
}

/// Whether command `id` runs the client's code (EVAL, EVALSHA, FCALL and
/// their read-only forms): its error replies are the client's own words.
pub fn runs_client_code(id: crate::command::CommandId) -> bool {
    id.spec().is_some_and(|spec| {
        matches!(
            spec.name(),
            "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro"
        )
    })
}

/// How command `id` uses scripts (a table lookup, cheap per request).
pub fn script_use(id: crate::command::CommandId) -> ScriptUse {
    use std::sync::OnceLock;
    static USES: OnceLock<Vec<ScriptUse>> = OnceLock::new();
    let uses = USES.get_or_init(|| {
        let mut uses = vec![ScriptUse::None; crate::command::CommandId::COUNT];
        for (name, role) in [
            ("eval", ScriptUse::Body(1)),
            ("eval_ro", ScriptUse::Body(1)),
            ("script|load", ScriptUse::Body(2)),
            ("evalsha", ScriptUse::Sha),
            ("evalsha_ro", ScriptUse::Sha),
        ] {
            if let Some(id) = crate::command::id_of(name) {
                if let Some(slot) = uses.get_mut(usize::from(id.0)) {
                    *slot = role;
                }
            }
        }
        uses
    });
    uses.get(usize::from(id.0))
        .copied()
        .unwrap_or(ScriptUse::None)
}
