//! The fault-injecting relay in front of a real redis-server: it forwards,
//! delays, stalls and resets as it says.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use test_support::relay::Direction;
use test_support::resp::Reply;
use test_support::{RedisServer, Relay, RespClient};

fn pong() -> Reply {
    Reply::Simple("PONG".into())
}

#[test]
fn forwards_delays_stalls_and_resets() {
    let server = RedisServer::start();
    let relay = Relay::start(server.port());
    let mut client = RespClient::connect(relay.port()).expect("connect through the relay");
    assert_eq!(client.cmd(&["PING"]).unwrap(), pong());
    assert_eq!(relay.connections(), 1);

    relay.set_delay(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(client.cmd(&["PING"]).unwrap(), pong());
    let round_trip = started.elapsed();
    assert!(
        round_trip >= Duration::from_millis(300),
        "150 ms each way, round trip {round_trip:?}"
    );
    relay.heal();

    for direction in [Direction::ToServer, Direction::ToClient] {
        relay.stall(direction, true);
        client.set_read_timeout(Some(Duration::from_millis(300)));
        client.send(&["PING"]).unwrap();
        let err = client.read_reply().expect_err("no reply while stalled");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
        relay.stall(direction, false);
        client.set_read_timeout(Some(Duration::from_secs(5)));
        assert_eq!(client.read_reply().unwrap(), pong(), "{direction:?}");
    }

    relay.reset();
    let err = client.cmd(&["PING"]).expect_err("the connection was reset");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    // New connections are relayed again at once.
    let mut again = RespClient::connect(relay.port()).expect("reconnect");
    assert_eq!(again.cmd(&["PING"]).unwrap(), pong());
}

#[test]
fn a_server_that_is_down_resets_the_client() {
    let mut server = RedisServer::start();
    let relay = Relay::start(server.port());
    server.kill();
    let mut client = RespClient::connect(relay.port()).expect("the relay accepts");
    assert!(client.cmd(&["PING"]).is_err());
    server.restart();
    let mut client = RespClient::connect(relay.port()).expect("connect");
    assert_eq!(client.cmd(&["PING"]).unwrap(), pong());
}
