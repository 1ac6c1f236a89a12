//! Where the proxies of a pool share its migration: a Redis the pool
//! names (`coordination:`), or, for a proxy alone, its own memory. See
//! `docs/resharding.md` for the keys.

use std::collections::BTreeMap;
use std::time::Duration;

use resp::Value;
use shardgate_core::error::NodeError;
use shardgate_core::reshard::MigrationRecord;

use crate::backend::wire::{text, WireConn};
use crate::backend::Handshake;
use crate::config::PoolConfig;

/// A proxy's registration lasts this long without a refresh.
pub const LEASE: Duration = Duration::from_secs(5);
/// A proxy whose lease ran out this long ago is no longer waited for:
/// it fenced itself (see `FENCE_AFTER`) well before.
pub const FORGET: Duration = Duration::from_secs(25);

/// What one heartbeat learned.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub record: Option<MigrationRecord>,
    /// A mover is moving a big key (the servers may be silent).
    pub big_key_moving: bool,
    /// Proxies that may still be serving, and the generation each acknowledged.
    pub proxies: Vec<(String, Option<u64>)>,
}

/// Where a source's scan stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// By `"{shard}/{db}"`: the SCAN cursor to resume from (`"0"` and
    /// `done`: finished).
    pub cursors: BTreeMap<String, String>,
    pub keys: u64,
    pub bytes: u64,
    /// The mover's estimate of the time left, at its last checkpoint.
    pub eta_seconds: Option<u64>,
}

/// What a mover reports after a SCAN step of one source.
pub struct Checkpoint<'a> {
    pub source: &'a str,
    /// Where the source's scan stands (see `mover::Cursor`).
    pub cursor: &'a str,
    /// Keys and bytes moved since the last checkpoint.
    pub keys: u64,
    pub bytes: u64,
    pub eta_seconds: Option<u64>,
}

pub enum Store {
    Redis(RedisStore),
    /// A proxy alone: the record lives in its memory.
    Local {
        record: Option<MigrationRecord>,
        progress: Progress,
    },
}

pub struct RedisStore {
    addr: std::net::SocketAddr,
    handshake: Handshake,
    timeout: Duration,
    conn: Option<WireConn>,
    prefix: String,
}

impl Store {
    pub fn for_pool(config: &PoolConfig) -> Store {
        match &config.coordination {
            Some(node) => Store::Redis(RedisStore {
                addr: node.addr,
                handshake: Handshake {
                    auth: config.coordination_auth.clone(),
                    ..Handshake::default()
                },
                timeout: config.connect_timeout.max(Duration::from_millis(500)),
                conn: None,
                prefix: format!("shardgate:{{{}}}", config.name),
            }),
            None => Store::Local {
                record: None,
                progress: Progress::default(),
            },
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Redis(_))
    }

    /// Renews this proxy's lease, records the generation it routes with,
    /// and reads the migration and the other proxies.
    pub async fn heartbeat(&mut self, me: &str, acked: u64) -> Result<Heartbeat, NodeError> {
        match self {
            Store::Local { record, .. } => Ok(Heartbeat {
                record: record.clone(),
                big_key_moving: false,
                proxies: vec![(me.to_string(), Some(acked))],
            }),
            Store::Redis(store) => store.heartbeat(me, acked).await,
        }
    }

    /// The pool's migration record, if any.
    pub async fn read(&mut self) -> Result<Option<MigrationRecord>, NodeError> {
        match self {
            Store::Local { record, .. } => Ok(record.clone()),
            Store::Redis(store) => {
                let key = store.key("migration");
                match store.call(&[b"GET", key.as_bytes()]).await? {
                    Value::Bulk(json) => serde_json::from_slice(&json)
                        .map(Some)
                        .map_err(|e| NodeError::Unexpected(format!("migration record: {e}"))),
                    _ => Ok(None),
                }
            }
        }
    }

    /// Changes the record with `change` if it is still `expected`
    /// (compare and set); Ok(false) when someone changed it first.
    pub async fn update(
        &mut self,
        expected: &Option<MigrationRecord>,
        next: &MigrationRecord,
    ) -> Result<bool, NodeError> {
        match self {
            Store::Local { record, progress } => {
                if record != expected {
                    return Ok(false);
                }
                if expected.as_ref().map(|r| r.generation) != Some(next.generation) {
                    *progress = Progress::default();
                }
                *record = Some(next.clone());
                Ok(true)
            }
            Store::Redis(store) => store.update(expected, next).await,
        }
    }

    /// Tells every proxy a big key moves (or no longer).
    pub async fn big_key_moving(&mut self, moving: bool) -> Result<(), NodeError> {
        let Store::Redis(store) = self else {
            return Ok(());
        };
        let key = store.key("big-key-moving");
        if moving {
            store
                .call(&[b"SET", key.as_bytes(), b"1", b"PX", b"120000"])
                .await?;
        } else {
            store.call(&[b"DEL", key.as_bytes()]).await?;
        }
        Ok(())
    }

    /// Takes or keeps the mover's lock.
    pub async fn lock_mover(&mut self, me: &str) -> Result<bool, NodeError> {
        match self {
            Store::Local { .. } => Ok(true),
            Store::Redis(store) => store.lock_mover(me).await,
        }
    }

    pub async fn progress(&mut self, generation: u64) -> Result<Progress, NodeError> {
        match self {
            Store::Local { progress, .. } => Ok(progress.clone()),
            Store::Redis(store) => store.progress(generation).await,
        }
    }

    /// Records a source's cursor, what moved since the last call, and the
    /// time left.
    pub async fn checkpoint(
        &mut self,
        generation: u64,
        checkpoint: &Checkpoint<'_>,
    ) -> Result<(), NodeError> {
        match self {
            Store::Local { progress, .. } => {
                (progress.cursors).insert(checkpoint.source.into(), checkpoint.cursor.into());
                progress.keys += checkpoint.keys;
                progress.bytes += checkpoint.bytes;
                progress.eta_seconds = checkpoint.eta_seconds;
                Ok(())
            }
            Store::Redis(store) => store.checkpoint(generation, checkpoint).await,
        }
    }

    /// This proxy stops (a clean shutdown): it is not waited for.
    pub async fn leave(&mut self, me: &str) {
        if let Store::Redis(store) = self {
            let key = store.key("proxies");
            let _ = store.call(&[b"ZREM", key.as_bytes(), me.as_bytes()]).await;
        }
    }
}

impl RedisStore {
    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    async fn conn(&mut self) -> Result<&mut WireConn, NodeError> {
        if self.conn.is_none() {
            self.conn = Some(WireConn::connect(self.addr, &self.handshake, self.timeout).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| NodeError::Io("no connection".into()))
    }

    /// Runs commands; a failure drops the connection (the next call
    /// reconnects).
    async fn query(&mut self, commands: &[&[&[u8]]]) -> Result<Vec<Value>, NodeError> {
        let timeout = self.timeout;
        let result = self.conn().await?.query(commands, timeout).await;
        if result.is_err() {
            self.conn = None;
        }
        let replies = result?;
        if let Some(Value::Error(e)) = replies.iter().find(|v| matches!(v, Value::Error(_))) {
            return Err(NodeError::Unexpected(
                String::from_utf8_lossy(e).into_owned(),
            ));
        }
        Ok(replies)
    }

    async fn call(&mut self, command: &[&[u8]]) -> Result<Value, NodeError> {
        self.query(&[command])
            .await?
            .pop()
            .ok_or_else(|| NodeError::Unexpected("no reply".into()))
    }

    /// The store's clock, in milliseconds.
    async fn now_ms(&mut self) -> Result<u64, NodeError> {
        match self.call(&[b"TIME"]).await? {
            Value::Array(parts) => {
                let number = |i: usize| {
                    parts
                        .get(i)
                        .and_then(text)
                        .and_then(|t| t.parse::<u64>().ok())
                };
                match (number(0), number(1)) {
                    (Some(s), Some(us)) => Ok(s * 1000 + us / 1000),
                    _ => Err(NodeError::Unexpected("TIME: odd reply".into())),
                }
            }
            _ => Err(NodeError::Unexpected("TIME: odd reply".into())),
        }
    }

    async fn heartbeat(&mut self, me: &str, acked: u64) -> Result<Heartbeat, NodeError> {
        let now = self.now_ms().await?;
        let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
        let forget_ms = u64::try_from(FORGET.as_millis()).unwrap_or(u64::MAX);
        let (proxies, record, ack) = (
            self.key("proxies"),
            self.key("migration"),
            self.key(&format!("ack:{me}")),
        );
        let big = self.key("big-key-moving");
        let expiry = (now + lease_ms).to_string();
        let cutoff = now.saturating_sub(forget_ms).to_string();
        let acked = acked.to_string();
        let keep = (lease_ms + forget_ms).to_string();
        let replies = self
            .query(&[
                &[
                    b"ZADD",
                    proxies.as_bytes(),
                    expiry.as_bytes(),
                    me.as_bytes(),
                ],
                &[
                    b"SET",
                    ack.as_bytes(),
                    acked.as_bytes(),
                    b"PX",
                    keep.as_bytes(),
                ],
                &[
                    b"ZREMRANGEBYSCORE",
                    proxies.as_bytes(),
                    b"-inf",
                    format!("({cutoff}").as_bytes(),
                ],
                &[b"GET", record.as_bytes()],
                &[b"ZRANGE", proxies.as_bytes(), b"0", b"-1"],
                &[b"EXISTS", big.as_bytes()],
            ])
            .await?;
        let big_key_moving = matches!(replies.get(5), Some(Value::Integer(1)));
        let record = match replies.get(3) {
            Some(Value::Bulk(json)) => Some(
                serde_json::from_slice(json)
                    .map_err(|e| NodeError::Unexpected(format!("migration record: {e}")))?,
            ),
            _ => None,
        };
        let members: Vec<String> = match replies.get(4) {
            Some(Value::Array(members)) => members.iter().filter_map(text).collect(),
            _ => Vec::new(),
        };
        let mut proxies = Vec::with_capacity(members.len());
        if !members.is_empty() {
            let keys: Vec<String> = members
                .iter()
                .map(|m| self.key(&format!("ack:{m}")))
                .collect();
            let mut command: Vec<&[u8]> = vec![b"MGET"];
            command.extend(keys.iter().map(|k| k.as_bytes()));
            if let Value::Array(acks) = self.call(&command).await? {
                for (member, ack) in members.into_iter().zip(acks) {
                    let generation = text(&ack).and_then(|t| t.parse().ok());
                    proxies.push((member, generation));
                }
            }
        }
        Ok(Heartbeat {
            record,
            big_key_moving,
            proxies,
        })
    }

    async fn update(
        &mut self,
        expected: &Option<MigrationRecord>,
        next: &MigrationRecord,
    ) -> Result<bool, NodeError> {
        let key = self.key("migration");
        let json = serde_json::to_vec(next).map_err(|e| NodeError::Unexpected(e.to_string()))?;
        self.call(&[b"WATCH", key.as_bytes()]).await?;
        let current = match self.call(&[b"GET", key.as_bytes()]).await? {
            Value::Bulk(json) => serde_json::from_slice::<MigrationRecord>(&json).ok(),
            _ => None,
        };
        if current != *expected {
            self.call(&[b"UNWATCH"]).await?;
            return Ok(false);
        }
        let replies = self
            .query(&[&[b"MULTI"], &[b"SET", key.as_bytes(), &json], &[b"EXEC"]])
            .await?;
        Ok(matches!(replies.last(), Some(Value::Array(_))))
    }

    async fn lock_mover(&mut self, me: &str) -> Result<bool, NodeError> {
        const LOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
            return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
            elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 \
            else return 0 end";
        let key = self.key("mover");
        let lease = LEASE.as_millis().to_string();
        let reply = self
            .call(&[
                b"EVAL",
                LOCK.as_bytes(),
                b"1",
                key.as_bytes(),
                me.as_bytes(),
                lease.as_bytes(),
            ])
            .await?;
        Ok(matches!(reply, Value::Integer(1)))
    }

    async fn progress(&mut self, generation: u64) -> Result<Progress, NodeError> {
        let key = self.key(&format!("progress:{generation}"));
        let mut progress = Progress::default();
        if let Value::Array(fields) = self.call(&[b"HGETALL", key.as_bytes()]).await? {
            for pair in fields.chunks(2) {
                let (Some(field), Some(value)) =
                    (pair.first().and_then(text), pair.get(1).and_then(text))
                else {
                    continue;
                };
                // Sources are `shard/db`: no clash with these names.
                match field.as_str() {
                    "keys" => progress.keys = value.parse().unwrap_or(0),
                    "bytes" => progress.bytes = value.parse().unwrap_or(0),
                    "eta" => progress.eta_seconds = value.parse().ok(),
                    source => {
                        progress.cursors.insert(source.to_string(), value);
                    }
                }
            }
        }
        Ok(progress)
    }

    async fn checkpoint(
        &mut self,
        generation: u64,
        checkpoint: &Checkpoint<'_>,
    ) -> Result<(), NodeError> {
        let key = self.key(&format!("progress:{generation}"));
        let (keys, bytes) = (checkpoint.keys.to_string(), checkpoint.bytes.to_string());
        // An unknown time left is "?", which reads back as None.
        let eta = checkpoint
            .eta_seconds
            .map_or_else(|| "?".to_string(), |s| s.to_string());
        self.query(&[
            &[
                b"HSET",
                key.as_bytes(),
                checkpoint.source.as_bytes(),
                checkpoint.cursor.as_bytes(),
                b"eta",
                eta.as_bytes(),
            ],
            &[b"HINCRBY", key.as_bytes(), b"keys", keys.as_bytes()],
            &[b"HINCRBY", key.as_bytes(), b"bytes", bytes.as_bytes()],
        ])
        .await?;
        Ok(())
    }
}
