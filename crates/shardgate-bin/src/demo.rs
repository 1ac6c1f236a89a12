//! `shardgate demo`: a real local topology to look at within five minutes
//! of cloning. Three shards, each a master and a replica, three Sentinels,
//! all real `redis-server` / `redis-sentinel` processes in temp dirs;
//! shardgate in front in Sentinel mode with `prefer-replica` reads; a
//! small traffic generator; with `--chaos N`, a master killed every N
//! seconds so failovers can be watched on the status page. Ctrl-C stops
//! everything and removes the temp dirs.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sandbox::resp::Reply;
use sandbox::{find_program, RedisServer, RespClient, Sentinel};
use shardgate::{config, Options, Proxy};

const INSTALL: &str = "sudo apt-get install -y redis-server redis-sentinel redis-tools";
const SHARDS: usize = 3;

/// What the demo was asked for.
pub struct DemoArgs {
    pub port: u16,
    pub admin: SocketAddr,
    pub workers: usize,
    /// Kill a random master every this many seconds.
    pub chaos: Option<u64>,
}

/// Runs the demo until `wait` returns (Ctrl-C).
pub fn run(args: DemoArgs, wait: impl FnOnce()) -> ExitCode {
    for program in ["redis-server", "redis-sentinel"] {
        if find_program(program).is_none() {
            eprintln!("shardgate demo: `{program}` is not installed. Install it with:\n  {INSTALL}\n(or run `make demo`, which does)");
            return ExitCode::from(1);
        }
    }
    println!("starting {SHARDS} shards (a master and a replica each) and 3 Sentinels...");
    let masters: Vec<RedisServer> = (0..SHARDS).map(|_| RedisServer::start()).collect();
    let replicas: Vec<RedisServer> = masters
        .iter()
        .map(|m| RedisServer::builder().replica_of(m).start())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replicas.iter().all(RedisServer::linked) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let names: Vec<String> = (1..=SHARDS).map(|i| format!("shard{i}")).collect();
    let monitored: Vec<(&str, u16)> = names
        .iter()
        .map(String::as_str)
        .zip(masters.iter().map(RedisServer::port))
        .collect();
    let sentinels: Vec<Sentinel> = (0..3)
        .map(|_| Sentinel::start(&monitored, 2, 1000))
        .collect();

    let dir = match tempfile::Builder::new().prefix("shardgate-demo-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("shardgate demo: cannot create a temp dir: {e}");
            return ExitCode::from(1);
        }
    };
    let yaml = config_yaml(args.port, &masters, &sentinels, &names);
    let config_path = dir.path().join("shardgate.yml");
    if let Err(e) = std::fs::write(&config_path, &yaml) {
        eprintln!(
            "shardgate demo: cannot write {}: {e}",
            config_path.display()
        );
        return ExitCode::from(1);
    }
    let config = match config::parse(&yaml) {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("shardgate demo: internal config error: {problems:?}");
            return ExitCode::from(1);
        }
    };
    // The demo's configuration is generated, not read from a file: no
    // reloads, no upgrades.
    let options = Options {
        workers: args.workers,
        shutdown_grace: Duration::from_secs(2),
        admin: Some(args.admin),
        maxmemory_clients: crate::parse_size(crate::DEFAULT_MAXMEMORY_CLIENTS).unwrap_or(0),
        ..Options::default()
    };
    let proxy = match Proxy::start(config, options) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("shardgate demo: cannot start the proxy: {e}");
            return ExitCode::from(1);
        }
    };
    print_welcome(&args, &config_path, &masters, &replicas);

    let stop = Arc::new(AtomicBool::new(false));
    let nodes = Arc::new(Mutex::new(
        masters.into_iter().chain(replicas).collect::<Vec<_>>(),
    ));
    let traffic = std::thread::spawn({
        let stop = stop.clone();
        let port = args.port;
        move || generate_traffic(port, &stop)
    });
    let chaos = args.chaos.map(|every| {
        let stop = stop.clone();
        let nodes = nodes.clone();
        std::thread::spawn(move || chaos_monkey(every, &nodes, &stop))
    });
    wait();
    println!("\nstopping: proxy, Sentinels, servers...");
    stop.store(true, Relaxed);
    let _ = traffic.join();
    if let Some(chaos) = chaos {
        let _ = chaos.join();
    }
    proxy.shutdown();
    drop(sentinels);
    drop(nodes);
    drop(dir);
    println!("done: every process stopped and its temp dir removed");
    ExitCode::SUCCESS
}

fn config_yaml(
    port: u16,
    masters: &[RedisServer],
    sentinels: &[Sentinel],
    names: &[String],
) -> String {
    let mut yaml = format!(
        "demo:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  hash_tag: \"{{}}\"\n  timeout: 1000\n  read_policy: prefer-replica\n  max_replica_lag: {{seconds: 5}}\n  slowlog_log_slower_than: 5000\n  sentinels:\n"
    );
    for sentinel in sentinels {
        yaml.push_str(&format!("    - 127.0.0.1:{}:1\n", sentinel.port()));
    }
    yaml.push_str("  servers:\n");
    for (master, name) in masters.iter().zip(names) {
        yaml.push_str(&format!("    - {}:1 {name}\n", master.addr()));
    }
    yaml
}

fn print_welcome(
    args: &DemoArgs,
    config: &std::path::Path,
    masters: &[RedisServer],
    replicas: &[RedisServer],
) {
    let port = args.port;
    println!();
    println!("shardgate is running in front of a real topology:");
    for (i, (master, replica)) in masters.iter().zip(replicas).enumerate() {
        println!(
            "  shard{}: master {}  replica {}",
            i + 1,
            master.addr(),
            replica.addr()
        );
    }
    println!("  config: {}", config.display());
    println!();
    println!("  data port     redis-cli -p {port}");
    println!("  status page   http://{}/", args.admin);
    println!(
        "  metrics       curl -s http://{}/metrics | grep shardgate_requests_total",
        args.admin
    );
    println!();
    println!("try:");
    println!("  redis-cli -p {port} SET greeting hello");
    println!("  redis-cli -p {port} MGET greeting user:1 user:2");
    println!("  redis-cli -p {port} INFO proxy");
    println!("  redis-cli -p {port} SLOWLOG GET 5");
    match args.chaos {
        Some(every) => println!("\nchaos: a random master is killed every {every} s; watch the failovers on the status page"),
        None => println!("\n(run `make demo ARGS=\"--chaos 20\"` to kill a random master every 20 s)"),
    }
    println!("a small traffic generator is running; Ctrl-C stops everything\n");
}

/// A few hundred requests a second: writes, reads, a multi-shard MGET.
fn generate_traffic(port: u16, stop: &AtomicBool) {
    let ops = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let mut client: Option<RespClient> = None;
    let mut last_report = Instant::now();
    let mut i: u64 = 0;
    while !stop.load(Relaxed) {
        if client.is_none() {
            client = RespClient::connect(port).ok();
        }
        let Some(c) = client.as_mut() else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        i += 1;
        let key = format!("user:{}", i % 1000);
        let commands: [&[&str]; 3] = [
            &["SET", &key, "demo"],
            &["GET", &key],
            &["MGET", "user:1", "user:2", "user:3", &key],
        ];
        for command in commands {
            match c.cmd(command) {
                Ok(Reply::Error(_)) => {
                    errors.fetch_add(1, Relaxed);
                }
                Ok(_) => {
                    ops.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    errors.fetch_add(1, Relaxed);
                    client = None;
                    break;
                }
            }
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "traffic: {} ok, {} errors in the last 10 s",
                ops.swap(0, Relaxed),
                errors.swap(0, Relaxed)
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every `every` seconds: kill (SIGKILL) a node that is a master now, and
/// bring it back 10 s later (Sentinel makes it a replica).
fn chaos_monkey(every: u64, nodes: &Mutex<Vec<RedisServer>>, stop: &AtomicBool) {
    let mut revive: Option<(usize, Instant)> = None;
    let mut next = Instant::now() + Duration::from_secs(every);
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let mut nodes = nodes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((index, at)) = revive {
            if Instant::now() >= at {
                if let Some(node) = nodes.get_mut(index) {
                    node.restart();
                    println!("chaos: {} is back (it rejoins as a replica)", node.addr());
                }
                revive = None;
            }
        }
        if Instant::now() < next || revive.is_some() {
            continue;
        }
        next = Instant::now() + Duration::from_secs(every);
        let masters: Vec<usize> = (nodes.iter().enumerate())
            .filter(|(_, node)| node.role().as_deref() == Some("master"))
            .map(|(i, _)| i)
            .collect();
        let Some(&victim) = masters.get(fastrand::usize(..masters.len().max(1))) else {
            continue;
        };
        let Some(node) = nodes.get_mut(victim) else {
            continue;
        };
        node.kill();
        println!(
            "chaos: killed master {} (kill -9); Sentinel will fail over",
            node.addr()
        );
        revive = Some((victim, Instant::now() + Duration::from_secs(10)));
    }
}
