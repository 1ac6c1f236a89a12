use super::*;
use crate::config::address::{HostPort, Listener, ServerLine};

const NUTCRACKER_YML: &str = r#"
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  server_retry_timeout: 2000
  server_failure_limit: 1
  servers:
   - 127.0.0.1:6379:1

gamma:
  listen: 127.0.0.1:22123
  hash: fnv1a_64
  distribution: ketama
  timeout: 400
  backlog: 1024
  preconnect: true
  redis: true
  auto_eject_hosts: true
  server_retry_timeout: 2000
  server_failure_limit: 3
  server_connections: 2
  hash_tag: "{}"
  servers:
   - 127.0.0.1:6380:1 server1
   - 127.0.0.1:6381:2 server2

sock:
  listen: /tmp/shardgate-test.sock 0666
  redis: true
  servers:
   - localhost:6379:1
"#;

#[test]
fn accepts_twemproxys_own_example() {
    let config = parse(NUTCRACKER_YML).expect("valid");
    assert_eq!(config.pools.len(), 3);
    let gamma = config
        .pools
        .iter()
        .find(|p| p.name == "gamma")
        .expect("gamma");
    assert_eq!(gamma.timeout, Duration::from_millis(400));
    assert_eq!(gamma.server_connections, 2);
    assert_eq!(gamma.hash_tag, HashTag::Pair(b'{', b'}'));
    assert_eq!(gamma.servers[1].weight, 2);
    assert_eq!(gamma.servers[1].name.as_deref(), Some("server2"));
    assert_eq!(gamma.servers[1].ring_name(), "server2");
    let alpha = config
        .pools
        .iter()
        .find(|p| p.name == "alpha")
        .expect("alpha");
    assert_eq!(alpha.servers[0].ring_name(), "127.0.0.1:6379");
    assert_eq!(alpha.hash_tag, HashTag::None);
    assert_eq!(alpha.timeout, DEFAULT_TIMEOUT);
    let sock = config
        .pools
        .iter()
        .find(|p| p.name == "sock")
        .expect("sock");
    assert_eq!(
        sock.listen,
        Some(ListenAddr::Unix {
            path: "/tmp/shardgate-test.sock".into(),
            mode: Some(0o666)
        })
    );
}

#[test]
fn reports_every_problem_with_its_location() {
    let problems = parse(
        r#"
a:
  listen: 127.0.0.1:notaport
  hash: sha256
  distribution: consistent
  timeout: -5
  hash_tag: "{"
  servers:
   - 127.0.0.1:6379
   - 127.0.0.1:6379:0
b:
  listen: 127.0.0.1:1
  servers: []
c:
  listen: 127.0.0.1:2
  surprise: 1
  servers: ["127.0.0.1:1:1"]
"#,
    )
    .expect_err("invalid");
    let all = problems.join("\n");
    for expected in [
        "pool 'a': listen:",
        "pool 'a': hash: unknown 'sha256'",
        "pool 'a': distribution: unknown 'consistent'",
        "pool 'a': timeout: -5",
        "pool 'a': hash_tag:",
        "pool 'a': servers[0]: '127.0.0.1:6379': expected host:port:weight",
        "pool 'a': servers[1]: '127.0.0.1:6379:0': weight '0'",
        "pool 'b': servers: missing or empty",
        "pool 'c': unknown field `surprise`",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(problems.len(), 9, "{all}");
}

#[test]
fn rejects_memcached_pools_and_shared_listeners() {
    let problems = parse(
        "a:\n  listen: 127.0.0.1:5\n  redis: false\n  servers: [\"127.0.0.1:1:1\"]\n\
         b:\n  listen: 127.0.0.1:6\n  servers: [\"127.0.0.1:1:1\"]\n\
         c:\n  listen: 127.0.0.1:6\n  servers: [\"127.0.0.1:1:1\"]\n",
    )
    .expect_err("invalid");
    let all = problems.join("\n");
    assert!(all.contains("memcached pools are not supported"), "{all}");
    assert!(
        all.contains("pools 'b' and 'c' both listen on 127.0.0.1:6"),
        "{all}"
    );
}

#[test]
fn rejects_empty_and_non_map_documents() {
    assert_eq!(parse("").expect_err("empty"), vec!["no pools are defined"]);
    assert!(parse("- 1\n- 2\n").is_err());
    assert!(parse("a: [unclosed").expect_err("yaml")[0].contains("not valid YAML"));
}

fn problems_of(text: &str) -> String {
    parse(text).expect_err("invalid").join("\n")
}

#[test]
fn cluster_proxies_are_dialable_addresses_and_name_this_proxy() {
    let servers = "  servers: [\"127.0.0.1:7001:1\"]\n";
    let config = parse(&format!(
        "ok:\n  listen: 127.0.0.1:7502\n  \
         cluster_proxies: [127.0.0.1:7503, 127.0.0.1:7502, 127.0.0.1:7503]\n{servers}"
    ))
    .expect("valid");
    let face = config.pools[0].cluster_face.clone().expect("a face");
    assert_eq!(face.me, "127.0.0.1:7502".parse().unwrap());
    assert_eq!(face.proxies.len(), 2, "sorted and deduplicated");
    let all = problems_of(&format!(
        "a:\n  listen: 127.0.0.1:7500\n  cluster_proxies: [proxy1:7500]\n{servers}\
         b:\n  listen: 127.0.0.1:7501\n  cluster_proxies: [127.0.0.1:7600]\n{servers}\
         c:\n  listen: /tmp/c.sock\n  cluster_proxies: [127.0.0.1:7601]\n{servers}\
         d:\n  listen: 127.0.0.1:7504\n  cluster_announce: 127.0.0.1:7504\n{servers}"
    ));
    for expected in [
        "pool 'a': cluster_proxies: 'proxy1:7500' is not an ip:port",
        "pool 'b': cluster_proxies: does not list this proxy (127.0.0.1:7501",
        "pool 'c': cluster_announce: missing",
        "pool 'd': cluster_announce: is set but the pool has no `cluster_proxies`",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn tls_listeners_need_a_tls_block_and_a_tls_block_needs_a_listener() {
    let servers = "  servers: [\"127.0.0.1:7001:1\"]\n";
    let all = problems_of(&format!(
        "a:\n  tls_listen: 127.0.0.1:7400\n{servers}\
         b:\n  listen: 127.0.0.1:7401\n  tls: {{cert: c, key: k}}\n{servers}\
         c:\n  tls_listen: /tmp/x.sock\n  tls: {{cert: c, key: k}}\n{servers}\
         d:\n  listen: 127.0.0.1:7402\n  tls_listen: 127.0.0.1:7402\n  tls: {{cert: c}}\n{servers}\
         e:\n  hash: md5\n{servers}"
    ));
    for expected in [
        "pool 'a': tls: missing: `tls_listen` needs a `tls:` block",
        "pool 'b': tls: is set but the pool has no `tls_listen` or `tls_readonly_listen`",
        "pool 'c': tls_listen: must be host:port",
        "pool 'd': tls.key: missing",
        "pool 'e': listen: missing",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    // Listeners of one pool may not share a socket either.
    let all = problems_of(&format!(
        "d:\n  listen: 127.0.0.1:7402\n  tls_listen: 127.0.0.1:7402\n  \
         tls: {{cert: c, key: k}}\n{servers}"
    ));
    assert!(
        all.contains("pool 'd': tls_listen: 127.0.0.1:7402 is also the pool's listen address"),
        "{all}"
    );
}

#[test]
fn tls_only_pools_and_upstream_tls_are_valid_and_checked_against_the_pool() {
    let config = parse(
        "a:\n  tls_listen: 127.0.0.1:7410\n  tls_readonly_listen: 127.0.0.1:7411\n  \
         tls: {cert: /c.pem, key: /k.pem, client_ca: /ca.pem, min_version: 1.3}\n  \
         backend_tls: {ca: /redis-ca.pem, server_name: redis.internal}\n  \
         servers: [\"127.0.0.1:7001:1\"]\n",
    )
    .expect("valid");
    let pool = &config.pools[0];
    assert_eq!(pool.listen, None);
    assert_eq!(pool.main_listener(), pool.tls_listen.as_ref());
    assert_eq!(pool.listeners().len(), 2);
    let tls = pool.tls.as_ref().expect("tls");
    assert_eq!(tls.client_auth, ClientAuth::Required);
    assert_eq!(tls.min_version, TlsVersion::V1_3);
    let backend = pool.backend_tls.as_ref().expect("backend_tls");
    assert_eq!(backend.server_name.as_deref(), Some("redis.internal"));
    let all = problems_of(
        "a:\n  listen: 127.0.0.1:7412\n  sentinel_tls: {ca: /c}\n  \
         coordination: 127.0.0.1:7002\n  backend_tls: {insecure_skip_verify_for_tests: true}\n  \
         servers: [\"127.0.0.1:7001:1\"]\n",
    );
    for expected in [
        "pool 'a': sentinel_tls: is set but the pool has no `sentinels`",
        "pool 'a': coordination: resharding is not supported with `backend_tls` yet",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn rejects_an_address_given_twice_among_a_pools_servers_and_replicas() {
    let all = problems_of(
        "p:\n  listen: 127.0.0.1:7100\n  failover: managed\n  servers:\n   \
         - 127.0.0.1:7101:1 s1\n   - 127.0.0.1:7102:1 s2\n   - 127.1:7105:1 s3\n   \
         - 127.0.0.1:7105:1 s4\n  replicas:\n    \
         s1: [127.0.0.1:7103, 127.0.0.1:7102]\n    s2: [127.0.0.1:7104, 127.0.0.1:7104]\n",
    );
    for expected in [
        "pool 'p': replicas.s1[1]: 127.0.0.1:7102 is also servers[1] (s2)",
        "pool 'p': replicas.s2[1]: 127.0.0.1:7104 is also replicas.s2[0]",
        "pool 'p': servers[3]: 127.0.0.1:7105 is also servers[2] (s3) as 127.1:7105;",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(all.lines().count(), 3, "{all}");
}

#[test]
fn rejects_a_backend_shared_by_pools_when_either_manages_failover() {
    let pools = "a:\n  listen: 127.0.0.1:7200\n  failover: FAILOVER\n  \
                 servers: [\"127.0.0.1:7201:1 a1\"]\n  replicas: {a1: [127.0.0.1:7202]}\n\
                 b:\n  listen: 127.0.0.1:7210\n  servers: [\"127.0.0.1:7202:1\"]\n";
    let all = problems_of(&pools.replace("FAILOVER", "managed"));
    assert!(
        all.contains(
            "pools 'a' (replicas.a1[0]) and 'b' (servers[0]) both use backend 127.0.0.1:7202"
        ),
        "{all}"
    );
    assert_eq!(all.lines().count(), 1, "{all}");
    // Without a managing proxy, pools may share a backend (twemproxy allows it).
    parse(&pools.replace("FAILOVER", "none")).expect("valid");
}

#[test]
fn rejects_listeners_that_collide_across_and_within_pools() {
    let all = problems_of(
        "a:\n  listen: 127.0.0.1:7300\n  readonly_listen: 127.0.0.1:7301\n  \
         servers: [\"127.0.0.1:1:1\"]\n\
         b:\n  listen: 127.0.0.1:7301\n  readonly_listen: 127.0.0.1:7301\n  \
         servers: [\"127.0.0.1:1:1\"]\n\
         c:\n  listen: 0.0.0.0:7300\n  servers: [\"127.0.0.1:1:1\"]\n\
         d:\n  listen: 127.0.0.1:7302\n  readonly_listen: 127.0.0.2:7301\n  \
         servers: [\"127.0.0.1:1:1\"]\n\
         e:\n  listen: /tmp/shardgate-7303.sock 0600\n  servers: [\"127.0.0.1:1:1\"]\n\
         f:\n  listen: 127.0.0.1:7304\n  readonly_listen: /tmp/shardgate-7303.sock\n  \
         servers: [\"127.0.0.1:1:1\"]\n",
    );
    for expected in [
        "pools 'a' (readonly_listen) and 'b' (listen) both listen on 127.0.0.1:7301",
        "pools 'a' (readonly_listen) and 'b' (readonly_listen) both listen on 127.0.0.1:7301",
        "pool 'b': readonly_listen: 127.0.0.1:7301 is also the pool's listen address",
        "pools 'a' (listen 127.0.0.1:7300) and 'c' (listen 0.0.0.0:7300) both bind port 7300",
        "pools 'e' (listen) and 'f' (readonly_listen) both listen on /tmp/shardgate-7303.sock",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    // 127.0.0.1 and 127.0.0.2 are distinct addresses on one port.
    assert_eq!(all.lines().count(), 5, "{all}");
}

#[test]
fn caps_server_weight() {
    let pool = |weight: &str| {
        format!("p:\n  listen: 127.0.0.1:7400\n  servers: [\"127.0.0.1:1:{weight}\"]\n")
    };
    let config = parse(&pool("10000")).expect("valid");
    assert_eq!(config.pools[0].servers[0].weight, 10_000);
    for weight in ["10001", "4294967295"] {
        let all = problems_of(&pool(weight));
        assert!(
            all.contains(&format!(
                "servers[0]: '127.0.0.1:1:{weight}': weight '{weight}' must be 1..=10000"
            )),
            "{all}"
        );
    }
}

#[test]
fn takes_numeric_and_boolean_secrets_as_written() {
    let config = parse(
        "p:\n  listen: 127.0.0.1:7500\n  password: 12345678\n  redis_auth: 0x1F\n  \
         sentinel_auth: 1.50\n  sentinels: [\"127.0.0.1:26379:1\"]\n  \
         servers: [\"127.0.0.1:1:1 m\"]\n  users:\n    \
         - {name: app, password: true}\n    - {name: ops, password: +0012}\n",
    )
    .expect("valid");
    let pool = &config.pools[0];
    let secret = |s: Option<&Secret>| s.map(|s| s.expose().to_string());
    assert_eq!(secret(pool.password.as_ref()).as_deref(), Some("12345678"));
    assert_eq!(
        secret(pool.redis_auth.as_ref().map(|a| &a.password)).as_deref(),
        Some("0x1F")
    );
    assert_eq!(
        secret(pool.sentinel_auth.as_ref().map(|a| &a.password)).as_deref(),
        Some("1.50")
    );
    assert_eq!(pool.users[0].password.expose(), "true");
    assert_eq!(pool.users[1].password.expose(), "+0012");
}

#[test]
fn never_shows_a_secret_in_an_error() {
    let all = problems_of(
        "p:\n  listen: 127.0.0.1:7600\n  password: [s3cret-1]\n  redis_auth: {s3cret-2: 1}\n  \
         servers: [\"127.0.0.1:1:1\"]\n  users: [{name: app, password: [s3cret-3]}]\n",
    );
    assert!(all.contains("pool 'p': "), "{all}");
    assert!(!all.contains("s3cret"), "{all}");
}

#[test]
fn rejects_conflicting_or_empty_credentials() {
    let all = problems_of(
        "a:\n  listen: 127.0.0.1:7700\n  sentinel_user: watcher\n  \
         sentinels: [\"127.0.0.1:26379:1\"]\n  servers: [\"127.0.0.1:1:1 m\"]\n\
         b:\n  listen: 127.0.0.1:7701\n  sentinel_auth: \"\"\n  \
         sentinels: [\"127.0.0.1:26379:1\"]\n  servers: [\"127.0.0.1:1:1 m\"]\n\
         c:\n  listen: 127.0.0.1:7702\n  password: one\n  servers: [\"127.0.0.1:1:1\"]\n  \
         users: [{name: app, password: two}, {name: default, password: three}]\n\
         d:\n  listen: 127.0.0.1:7703\n  password:\n  redis_auth: ~\n  \
         servers: [\"127.0.0.1:1:1\"]\n",
    );
    for expected in [
        "pool 'a': sentinel_user: needs `sentinel_auth` (the user's password)",
        "pool 'b': sentinel_auth: is empty (remove the key for no password)",
        "pool 'c': users[1]: user 'default' and `password` both set the default user's password",
        "pool 'd': password: is empty (remove the key for no password)",
        "pool 'd': redis_auth: is empty (remove the key for no password)",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(all.lines().count(), 5, "{all}");
}

#[test]
fn a_cluster_pool_takes_slots_and_tags_from_the_cluster_and_refuses_what_it_decides() {
    let config =
        parse("c:\n  listen: 127.0.0.1:7300\n  cluster: true\n  servers: [\"127.0.0.1:7000:1\"]\n")
            .expect("valid");
    let pool = &config.pools[0];
    assert!(pool.cluster);
    assert_eq!(pool.distribution, DistributionKind::Slots);
    assert_eq!(pool.hash_tag, HashTag::Cluster);
    let problems = parse(
        "c:\n  listen: 127.0.0.1:7300\n  cluster: true\n  distribution: ketama\n  \
         hash: md5\n  redis_db: 2\n  max_replica_lag: {seconds: 2}\n  failover: managed\n  \
         servers: [\"127.0.0.1:7000:1\"]\n",
    )
    .expect_err("conflicts");
    let all = problems.join("\n");
    for key in [
        "distribution",
        "hash",
        "redis_db",
        "max_replica_lag",
        "failover",
    ] {
        assert!(
            all.contains(&format!("pool 'c': {key}:")),
            "missing {key} in:\n{all}"
        );
    }
}

/// The pure step over `text`: each pool as it leaves validation, and the
/// problems validation found.
fn validated(text: &str) -> (Vec<checked::Checked>, Vec<String>) {
    let Document {
        pools,
        mut problems,
    } = read(text).expect("YAML");
    let checked = (pools.into_iter())
        .map(|(name, raw)| pool::Checker::new(&name, &mut problems).pool(raw))
        .collect();
    (checked, problems)
}

#[test]
fn validation_reads_names_and_only_the_resolve_step_looks_them_up() {
    // `.invalid` never resolves (RFC 6761).
    let text = "p:\n  listen: localhost:7800\n  \
                servers: [\"redis.invalid:6379:1\", \"127.0.0.1:6380:1 s1\"]\n  \
                replicas: {s1: [replica.invalid:6380]}\n";
    let (mut pools, problems) = validated(text);
    assert_eq!(
        problems,
        Vec::<String>::new(),
        "validation looked a name up"
    );
    let pool = pools.remove(0);
    assert!(pool.clean);
    let server = &pool.servers[0];
    assert_eq!(server.key, "servers[0]");
    assert_eq!(
        server.value.at,
        HostPort {
            host: "redis.invalid".into(),
            port: 6379
        }
    );
    assert_eq!(pool.replicas[0].1.value.host, "replica.invalid");
    assert_eq!(
        pool.listeners.listen,
        Some(Listener::Tcp("localhost:7800".into()))
    );

    let mut problems = Vec::new();
    let resolved = resolve::resolve(pool, &mut problems);
    assert!(!resolved.clean);
    assert_eq!(
        resolved.listeners.listen,
        Some(ListenAddr::Tcp("127.0.0.1:7800".parse().unwrap()))
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with(
            "pool 'p': servers[0]: 'redis.invalid:6379:1': cannot resolve 'redis.invalid:6379': "
        ),
        "{problems:#?}"
    );
    assert!(
        problems[1].starts_with(
            "pool 'p': replicas.s1[0]: 'replica.invalid:6380': \
             cannot resolve 'replica.invalid:6380': "
        ),
        "{problems:#?}"
    );
    // The whole pipeline says the same.
    assert_eq!(parse(text).expect_err("unresolvable"), problems);
}

#[test]
fn a_listener_is_checked_as_written_before_it_is_resolved() {
    let (_, problems) = validated(
        "a:\n  listen: nowhere\n  servers: [\"127.0.0.1:1:1\"]\n\
         b:\n  listen: 127.0.0.1:notaport\n  servers: [\"127.0.0.1:1:1\"]\n\
         c:\n  listen: 127.0.0.1:0\n  readonly_listen: /tmp/c.sock 0800\n  \
         servers: [\"127.0.0.1:1:1\"]\n\
         d:\n  listen: host.invalid:7000 extra\n  servers: [\"127.0.0.1:1:1\"]\n",
    );
    assert_eq!(
        problems,
        [
            "pool 'a': listen: cannot resolve 'nowhere': invalid socket address",
            "pool 'b': listen: cannot resolve '127.0.0.1:notaport': invalid port value",
            "pool 'c': readonly_listen: '0800' is not an octal file mode",
            "pool 'd': listen: 'host.invalid:7000 extra': expected host:port or /unix/path [mode]",
        ]
    );
}

#[test]
fn address_errors_say_what_is_wrong_with_the_line() {
    let server = |line: &str| ServerLine::parse(line).expect_err(line).to_string();
    assert_eq!(server(""), "empty server line");
    assert_eq!(server("h:1:1 a b"), "expected host:port:weight [name]");
    assert_eq!(
        server("/tmp/r.sock:1"),
        "unix-socket servers are not supported; use host:port:weight"
    );
    assert_eq!(server("h:1"), "expected host:port:weight");
    assert_eq!(server("h:1:0"), "weight '0' must be 1..=10000");
    assert_eq!(server("h:0:1"), "port '0' must be 1..65535");
    let node = |line: &str, weight| HostPort::node(line, weight).expect_err(line).to_string();
    assert_eq!(node("h", true), "expected host:port[:weight]");
    assert_eq!(node("h:1:1", false), "expected host:port");
    assert_eq!(node("h:65536", false), "port '65536' must be 1..65535");
    assert_eq!(
        HostPort::node("h:1:1", true).expect("a weight may follow"),
        HostPort {
            host: "h".into(),
            port: 1
        }
    );
    let e = parse_node("node.invalid:1", false).expect_err("unresolvable");
    assert!(matches!(e, AddressError::Lookup { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("cannot resolve 'node.invalid:1': "),
        "{e}"
    );
}

#[test]
fn keys_left_out_take_the_named_defaults() {
    let config =
        parse("p:\n  listen: 127.0.0.1:7900\n  servers: [\"127.0.0.1:1:1\"]\n").expect("valid");
    let pool = &config.pools[0];
    assert_eq!(pool.timeout, DEFAULT_TIMEOUT);
    assert_eq!(pool.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(pool.reconnect_backoff_max, DEFAULT_RECONNECT_BACKOFF_MAX);
    assert_eq!(pool.server_retry_timeout, DEFAULT_SERVER_RETRY_TIMEOUT);
    assert_eq!(pool.backlog, DEFAULT_BACKLOG);
    assert_eq!(pool.server_connections, DEFAULT_SERVER_CONNECTIONS);
    assert_eq!(pool.client_connections, DEFAULT_CLIENT_CONNECTIONS);
    assert_eq!(pool.server_failure_limit, DEFAULT_SERVER_FAILURE_LIMIT);
    assert_eq!(pool.client_output_limit, DEFAULT_CLIENT_OUTPUT_LIMIT);
    assert_eq!(pool.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
    assert_eq!(pool.redis_db, DEFAULT_REDIS_DB);
    assert_eq!(pool.databases, DEFAULT_DATABASES);
    assert_eq!(
        pool.auth_failures_per_second,
        DEFAULT_AUTH_FAILURES_PER_SECOND
    );
    assert_eq!(
        pool.health_check,
        HealthCheck {
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            rise: DEFAULT_HEALTH_RISE,
            fall: DEFAULT_HEALTH_FALL,
        }
    );
    assert_eq!(
        pool.reshard,
        Reshard {
            keys_per_second: DEFAULT_RESHARD_KEYS_PER_SECOND,
            bytes_per_second: DEFAULT_RESHARD_BYTES_PER_SECOND,
            big_key_bytes: DEFAULT_RESHARD_BIG_KEY_BYTES,
        }
    );
    assert_eq!(pool.read_your_writes, DEFAULT_READ_YOUR_WRITES);
    assert_eq!(pool.slowlog_threshold, Some(DEFAULT_SLOWLOG_THRESHOLD));
    assert_eq!(pool.slowlog_max_len, DEFAULT_SLOWLOG_MAX_LEN);
    assert_eq!(pool.distribution, DEFAULT_DISTRIBUTION);
    assert_eq!(pool.hash, DEFAULT_HASH);
    let bounds = problems_of(
        "p:\n  listen: 127.0.0.1:7901\n  servers: [\"127.0.0.1:1:1\"]\n  \
         server_connections: 1025\n  health_check: {fall: 1001}\n",
    );
    for expected in [
        "server_connections: 1025 is out of range 1..=1024",
        "health_check.fall: 1001 is out of range 1..=1000",
    ] {
        assert!(
            bounds.contains(expected),
            "missing {expected:?} in:\n{bounds}"
        );
    }
}
