//! The config file as written: serde structs that mirror twemproxy's
//! `nutcracker.yml` pool keys, plus shardgate's extensions. Nothing here is
//! validated; [`super::validate`] turns it into typed values.

use std::collections::BTreeMap;
use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// One pool as written in the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    // twemproxy's keys.
    pub listen: Option<String>,
    pub hash: Option<String>,
    pub hash_tag: Option<String>,
    pub distribution: Option<String>,
    pub timeout: Option<i64>,
    pub backlog: Option<i64>,
    pub preconnect: Option<bool>,
    pub redis: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub redis_auth: Option<RawSecret>,
    pub redis_db: Option<i64>,
    pub server_connections: Option<i64>,
    pub client_connections: Option<i64>,
    pub auto_eject_hosts: Option<bool>,
    pub server_retry_timeout: Option<i64>,
    pub server_failure_limit: Option<i64>,
    pub tcpkeepalive: Option<bool>,
    pub servers: Option<Vec<String>>,
    // shardgate's extensions (docs/configuration.md).
    pub connect_timeout: Option<i64>,
    pub reconnect_backoff_max: Option<i64>,
    pub client_output_limit: Option<i64>,
    pub max_request_bytes: Option<i64>,
    pub redis_user: Option<String>,
    pub databases: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub password: Option<RawSecret>,
    pub users: Option<Vec<RawUser>>,
    pub auth_failures_per_second: Option<i64>,
    // High availability.
    pub replicas: Option<std::collections::BTreeMap<String, Vec<String>>>,
    pub sentinels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub sentinel_auth: Option<RawSecret>,
    pub sentinel_user: Option<String>,
    pub failover: Option<String>,
    pub health_check: Option<RawHealthCheck>,
    pub discover_replicas: Option<bool>,
    pub keys_may_move: Option<bool>,
    // Redis Cluster (docs/cluster.md).
    pub cluster: Option<bool>,
    pub cluster_proxies: Option<Vec<String>>,
    pub cluster_announce: Option<String>,
    // Resharding.
    pub coordination: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub coordination_auth: Option<RawSecret>,
    pub reshard_keys_per_second: Option<i64>,
    pub reshard_bytes_per_second: Option<i64>,
    pub reshard_big_key_bytes: Option<i64>,
    pub shard_down: Option<String>,
    // Read/write splitting.
    pub read_policy: Option<String>,
    pub read_balance: Option<String>,
    pub max_replica_lag: Option<RawReplicaLag>,
    pub replica_fallback: Option<String>,
    pub read_your_writes: Option<i64>,
    pub readonly_listen: Option<String>,
    // TLS (docs/tls.md).
    pub tls_listen: Option<String>,
    pub tls_readonly_listen: Option<String>,
    pub tls: Option<super::tls::RawListenTls>,
    pub backend_tls: Option<super::tls::RawUpstreamTls>,
    pub sentinel_tls: Option<super::tls::RawUpstreamTls>,
    // Observability.
    pub slowlog_log_slower_than: Option<i64>,
    pub slowlog_max_len: Option<i64>,
}

/// One client user as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: String,
    pub password: RawSecret,
    pub commands: Option<String>,
    pub keys: Option<Vec<String>>,
}

/// `health_check:` as written (milliseconds and counts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
}

/// `max_replica_lag:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplicaLag {
    pub seconds: Option<i64>,
    pub bytes: Option<i64>,
}

/// A secret as written. YAML reads `password: 12345678` as a number and
/// `password: yes` as a boolean; either is what the user typed, so any
/// scalar is taken as its text. No value is an empty secret (validation
/// rejects it). Neither `Debug` nor a type error ever shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawSecret(pub String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawSecret(****)")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawSecret, D::Error> {
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// A secret key that is present, even with no value: `Some(RawSecret(""))`,
/// not `None` (which would silently mean "no password").
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<RawSecret>, D::Error> {
    RawSecret::deserialize(deserializer).map(Some)
}

struct SecretVisitor;

impl<'de> de::Visitor<'de> for SecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a password (a string, or a number written unquoted)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawSecret, E> {
        Ok(RawSecret(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawSecret, E> {
        Ok(RawSecret::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<RawSecret, E> {
        Ok(RawSecret::default())
    }
}

/// The secrets of every pool exactly as typed. [`RawPool`] is read through
/// a YAML value tree, where `0x1F`, `1.50` or `+12` have already become the
/// numbers 31, 1.5 and 12; this second, lenient pass reads the text itself
/// (a scalar read as a string keeps its spelling). Everything else is
/// ignored; a file this pass cannot read is reported by the first one.
pub fn written_secrets(text: &str) -> BTreeMap<String, WrittenSecrets> {
    yaml_serde::from_str(text).unwrap_or_default()
}

/// One pool's secrets as typed (see [`written_secrets`]). `String`, not
/// [`RawSecret`]: asked for a string, the YAML reader returns any scalar's
/// text. Deliberately not `Debug`.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct WrittenSecrets {
    redis_auth: Option<String>,
    password: Option<String>,
    sentinel_auth: Option<String>,
    users: Option<Vec<WrittenUser>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WrittenUser {
    password: Option<String>,
}

impl RawPool {
    /// Takes each secret's text as typed, where the second pass read it.
    pub fn use_written(&mut self, written: &WrittenSecrets) {
        fn replace(secret: &mut Option<RawSecret>, written: &Option<String>) {
            if let (Some(secret), Some(written)) = (secret.as_mut(), written) {
                secret.0.clone_from(written);
            }
        }
        replace(&mut self.redis_auth, &written.redis_auth);
        replace(&mut self.password, &written.password);
        replace(&mut self.sentinel_auth, &written.sentinel_auth);
        if let (Some(users), Some(written)) = (self.users.as_mut(), written.users.as_ref()) {
            for (user, written) in users.iter_mut().zip(written) {
                if let Some(password) = &written.password {
                    user.password.0.clone_from(password);
                }
            }
        }
    }
}
