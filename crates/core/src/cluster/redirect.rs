//! What a cluster node's error reply asks of the proxy: `MOVED`, `ASK`,
//! `TRYAGAIN`, `CLUSTERDOWN`. Read from the reply frame as it came, so a
//! reply that is none of them costs one byte compare.

use std::net::{IpAddr, SocketAddr};

/// A reply that is not the command's answer but a redirection or a
/// transient refusal (none of them ran the command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// The slot is served by `to` now (for good).
    Moved { slot: u16, to: SocketAddr },
    /// The slot is migrating: this key is on `to` already; ask it there,
    /// once, after `ASKING`.
    Ask { slot: u16, to: SocketAddr },
    /// `MOVED` or `ASK` to an address the proxy cannot parse (a host name
    /// announced with `cluster-preferred-endpoint-type hostname`).
    Elsewhere { slot: u16 },
    /// A multi-key command whose keys are split by a migration in progress.
    TryAgain,
    /// The cluster cannot serve the slot now (a failed primary not yet
    /// replaced, or the node is on the minority side of a partition).
    ClusterDown,
}

/// The redirection a reply frame asks for, if any.
#[inline]
pub fn redirect(frame: &[u8]) -> Option<Redirect> {
    if frame.first() != Some(&b'-') {
        return None;
    }
    cold(frame)
}

#[cold]
fn cold(frame: &[u8]) -> Option<Redirect> {
    let line = frame.get(1..)?;
    let end = line.iter().position(|&b| b == b'\r').unwrap_or(line.len());
    let text = std::str::from_utf8(line.get(..end)?).ok()?;
    let mut words = text.split(' ');
    let kind = words.next()?;
    match kind {
        "TRYAGAIN" => return Some(Redirect::TryAgain),
        "CLUSTERDOWN" => return Some(Redirect::ClusterDown),
        "MOVED" | "ASK" => {}
        _ => return None,
    }
    let slot: u16 = words.next()?.parse().ok()?;
    if slot >= keyspace::SLOT_COUNT {
        return None;
    }
    let Some(to) = words.next().and_then(parse_addr) else {
        return Some(Redirect::Elsewhere { slot });
    };
    Some(match kind {
        "MOVED" => Redirect::Moved { slot, to },
        _ => Redirect::Ask { slot, to },
    })
}

/// `ip:port` as Redis writes it (IPv6 without brackets: `::1:7000`).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.rsplit_once(':')?;
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn reads_each_kind() {
        assert_eq!(
            redirect(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Moved {
                slot: 3999,
                to: addr("127.0.0.1:6381")
            })
        );
        assert_eq!(
            redirect(b"-ASK 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Ask {
                slot: 3999,
                to: addr("127.0.0.1:6381")
            })
        );
        assert_eq!(
            redirect(b"-MOVED 1 ::1:7000\r\n"),
            Some(Redirect::Moved {
                slot: 1,
                to: addr("[::1]:7000")
            })
        );
        assert_eq!(
            redirect(b"-MOVED 12 redis-1.example:7000\r\n"),
            Some(Redirect::Elsewhere { slot: 12 })
        );
        assert_eq!(
            redirect(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Redirect::TryAgain)
        );
        assert_eq!(
            redirect(b"-CLUSTERDOWN The cluster is down\r\n"),
            Some(Redirect::ClusterDown)
        );
    }

    #[test]
    fn everything_else_is_an_answer() {
        for frame in [
            &b"+OK\r\n"[..],
            b"$5\r\nMOVED\r\n",
            b"-ERR wrong\r\n",
            b"-MOVED\r\n",
            b"-MOVED 16384 127.0.0.1:1\r\n",
            b"-MOVED x 127.0.0.1:1\r\n",
            b"-",
            b"",
            b"-MOVEDX 1 127.0.0.1:1\r\n",
        ] {
            assert_eq!(
                redirect(frame),
                None,
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
    }
}
