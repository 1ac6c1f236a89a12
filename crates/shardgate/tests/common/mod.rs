//! The in-process harness: the proxy started as a library inside the
//! test (`Proxy::start`) on a free port, shut down on drop, with a count
//! of panics in any thread of the process (the proxy's included).
#![allow(dead_code)] // each test file uses part of it

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Once};

use shardgate::pool::PoolState;
use shardgate::{Options, Proxy};
use test_support::ports::free_port;
use test_support::{assert_eventually, RespClient};

/// Panics in any thread of this process (the proxy's included).
pub static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            default(info);
        }));
    });
}

/// The proxy, running in this process; shut down on drop.
pub struct InProcess {
    proxy: Option<Proxy>,
    pub port: u16,
}

impl InProcess {
    /// One pool on a free port over `servers`, with `extra` pool lines.
    pub fn start(servers: &[u16], extra: &str) -> InProcess {
        count_panics();
        let port = free_port();
        let mut yaml = format!("fuzz:\n  listen: 127.0.0.1:{port}\n{extra}  servers:\n");
        for server in servers {
            yaml.push_str(&format!("    - 127.0.0.1:{server}:1\n"));
        }
        let config = shardgate::config::parse(&yaml).expect("config");
        let proxy = Proxy::start(config, Options::default()).expect("start the proxy");
        assert_eventually!(
            TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the proxy never listened on {port}"
        );
        InProcess {
            proxy: Some(proxy),
            port,
        }
    }

    pub fn client(&self) -> RespClient {
        RespClient::connect(self.port).expect("connect to the proxy")
    }

    /// The pool's shared state (its client registry, stats, users).
    pub fn pool(&self) -> Arc<PoolState> {
        let proxy = self.proxy.as_ref().expect("running");
        proxy.pools().first().cloned().expect("one pool")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(proxy) = self.proxy.take() {
            proxy.shutdown();
        }
    }
}
