//! What validation supplies and enforces: the default of every pool key
//! that has one, and the bounds of every number, each named and with why
//! it is that value. A key left out takes its default
//! (docs/configuration.md lists them); a value outside its bounds is a
//! problem, never clamped. The `tls:` block's own are in [`super::tls`].

use std::time::Duration;

// Requests and backend connections.

/// `timeout`. twemproxy waits forever without it; shardgate bounds every
/// request so a hung server never hangs its clients. Five seconds is far
/// beyond a healthy reply, and a client waiting that long is better told.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `connect_timeout` (the connect and its AUTH/SELECT/HELLO). That takes
/// milliseconds with a live node; a second tells a dead node from a slow
/// one without keeping its clients waiting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `reconnect_backoff_max`. Reconnects to a failed node back off from
/// 50 ms, doubling; stopping at a second means a node that is back is
/// used again within a second, at a cost of one attempt a second.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// `server_connections`: twemproxy's default. One pipelined connection
/// per node per worker carries a worker's traffic; more only help with
/// big replies.
pub const DEFAULT_SERVER_CONNECTIONS: u32 = 1;

/// Most `server_connections`. The count is per node, per worker and per
/// database in use; more than this is a typo, and would open that many
/// sockets on every node.
pub const MAX_SERVER_CONNECTIONS: u32 = 1024;

/// `client_connections`: twemproxy's default, no limit (0).
pub const DEFAULT_CLIENT_CONNECTIONS: u32 = 0;

/// `backlog`: twemproxy's default.
pub const DEFAULT_BACKLOG: u32 = 512;

/// Most `backlog`: `listen(2)` takes a C `int`.
pub const MAX_BACKLOG: u32 = i32::MAX as u32;

/// `client_output_limit`: reply bytes a client may leave unread before it
/// is disconnected. 256 MiB holds any reply a client reads as it should,
/// and stops one client that does not read from growing without bound.
pub const DEFAULT_CLIENT_OUTPUT_LIMIT: usize = 256 << 20;

/// `max_request_bytes`: Redis's own bound on a bulk argument
/// (`proto-max-bulk-len`, 512 MiB), also its most: a larger argument is
/// one no Redis would take.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 512 << 20;

/// Least `client_output_limit` and `max_request_bytes`: below a KiB, the
/// replies and arguments of ordinary commands would not fit.
pub const MIN_CLIENT_BYTES: usize = 1024;

// Databases.

/// `redis_db`: Redis's first database, where clients start.
pub const DEFAULT_REDIS_DB: u32 = 0;

/// `databases`: Redis's default (`databases 16`).
pub const DEFAULT_DATABASES: u32 = 16;

/// Most `redis_db` and `databases`: Redis keeps the count in a C `int`.
pub const MAX_DATABASES: u32 = i32::MAX as u32;

// Servers.

/// Largest server weight. twemproxy's modula lists a server `weight` times
/// in its table, so an unbounded weight is an unbounded allocation.
pub const MAX_SERVER_WEIGHT: u32 = 10_000;

// Shards that fail (twemproxy's ejection).

/// `server_retry_timeout`: twemproxy's default (30000 ms).
pub const DEFAULT_SERVER_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// `server_failure_limit`: twemproxy's default.
pub const DEFAULT_SERVER_FAILURE_LIMIT: u32 = 2;

/// Most `server_failure_limit`: more failed checks in a row than a
/// million is never meant (at one a second, twelve days).
pub const MAX_SERVER_FAILURE_LIMIT: u32 = 1_000_000;

// Health checks (docs/replication.md).

/// `health_check.interval`: with [`DEFAULT_HEALTH_FALL`], a dead node is
/// down after 1.5 s, soon enough to fail over before most clients time
/// out, and the probes (PING + INFO) stay negligible for the nodes.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_millis(500);

/// `health_check.timeout`: below the interval, so one probe ends before
/// the next starts; a live Redis answers PING and INFO in well under
/// that.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_millis(300);

/// `health_check.rise`: two answers in a row before a down node serves
/// again, so a node that flaps is not trusted on its first answer.
pub const DEFAULT_HEALTH_RISE: u32 = 2;

/// `health_check.fall`: three failures in a row before a node is down, so
/// one lost probe (a GC pause, a dropped packet) fails nothing over.
pub const DEFAULT_HEALTH_FALL: u32 = 3;

/// Most `health_check.rise` and `health_check.fall`: more checks in a row
/// than this would never decide.
pub const MAX_HEALTH_COUNT: u32 = 1000;

// Reads from replicas.

/// Most `max_replica_lag.seconds`: a day; a replica further behind than
/// that is not a replica to read from.
pub const MAX_REPLICA_LAG_SECONDS: u32 = 86_400;

/// `read_your_writes`: off. Sending a client's reads to the master after
/// its writes costs the replicas those reads; a pool asks for it.
pub const DEFAULT_READ_YOUR_WRITES: Duration = Duration::ZERO;

// Client authentication.

/// A user's `commands` when it gives none: every command, as Redis's
/// `+@all`; a user is restricted only when the file says so.
pub const DEFAULT_USER_COMMANDS: &str = "+@all";

/// `auth_failures_per_second`: far more failed AUTHs than any client
/// with a wrong password makes, and far fewer than a password guesser
/// needs.
pub const DEFAULT_AUTH_FAILURES_PER_SECOND: u32 = 100;

// Resharding (docs/resharding.md).

/// `reshard_keys_per_second`: enough to move a million keys in minutes
/// while leaving the servers most of their time for clients.
pub const DEFAULT_RESHARD_KEYS_PER_SECOND: u32 = 5_000;

/// `reshard_bytes_per_second`: 64 MiB/s, a fraction of a network link,
/// so moving keys does not crowd out client traffic.
pub const DEFAULT_RESHARD_BYTES_PER_SECOND: u64 = 64 << 20;

/// `reshard_big_key_bytes`: MIGRATE blocks both servers while it copies a
/// key, so keys from 16 MiB up, which would stall them noticeably, move
/// last, one at a time.
pub const DEFAULT_RESHARD_BIG_KEY_BYTES: u64 = 16 << 20;

// Observability.

/// `slowlog_log_slower_than`: Redis's default, 10000 µs.
pub const DEFAULT_SLOWLOG_THRESHOLD: Duration = Duration::from_millis(10);

/// `slowlog_max_len`: Redis's default.
pub const DEFAULT_SLOWLOG_MAX_LEN: usize = 128;

/// Most `slowlog_max_len`: the log is kept in memory per pool.
pub const MAX_SLOWLOG_MAX_LEN: usize = 1_000_000;

// Key placement.

/// `distribution`: twemproxy's default, so a twemproxy pool's keys stay
/// where twemproxy put them (a `cluster: true` pool uses the cluster's
/// slots instead).
pub const DEFAULT_DISTRIBUTION: keyspace::DistributionKind = keyspace::DistributionKind::Ketama;

/// `hash`: twemproxy's default, for the same reason.
pub const DEFAULT_HASH: keyspace::HashFunction = keyspace::HashFunction::Fnv1a_64;

/// `hash` with `distribution: maglev`: Envoy hashes keys with
/// MurmurHash2-64 for maglev; matching it places a maglev pool's keys
/// exactly as Envoy does.
pub const DEFAULT_MAGLEV_HASH: keyspace::HashFunction = keyspace::HashFunction::Murmur2_64;
