//! `shardgate-conns`: opens many client connections to a Redis endpoint
//! (Redis itself or a proxy in front of it) and keeps each one active at a
//! steady rate: one `GET` every `1/rate` seconds, each connection's
//! schedule offset at random so the requests spread evenly over time.
//! Every request's latency (from its send to its reply) is recorded after
//! a warm-up; the tool prints one line of JSON with the percentiles.
//!
//! One thread drives every connection, so the load generator costs little
//! CPU next to what it measures (about 10,000 requests per second).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[derive(Parser, Debug)]
#[command(about = "Many client connections at a steady request rate; latency percentiles")]
struct Args {
    /// Where to connect (host:port).
    #[arg(long)]
    addr: SocketAddr,
    /// Client connections.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Requests per second per connection.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Distinct keys the GETs spread over.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    errors: u64,
    failed: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = rlimit::increase_nofile_limit(args.connections as u64 + 1_000) {
        eprintln!("shardgate-conns: cannot raise the descriptor limit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shardgate-conns: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(&args));
    println!("{report}");
    std::process::ExitCode::SUCCESS
}

async fn run(args: &Args) -> String {
    // Connect everyone first (256 at a time), so the measured part has
    // every connection open.
    let mut streams = Vec::with_capacity(args.connections);
    let mut connect_failures = 0u64;
    for chunk in (0..args.connections).collect::<Vec<_>>().chunks(256) {
        let mut pending = Vec::new();
        for &i in chunk {
            pending.push(tokio::spawn(connect(args.addr, i, args.connections)));
        }
        for handle in pending {
            match handle.await {
                Ok(Ok(stream)) => streams.push(stream),
                _ => connect_failures += 1,
            }
        }
    }
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = Vec::with_capacity(streams.len());
    for (i, stream) in streams.into_iter().enumerate() {
        let offset = period.mul_f64(fastrand::f64());
        let key = format!("key:{}", (i as u64) % args.keys.max(1));
        tasks.push(tokio::spawn(drive(
            stream,
            key,
            start + offset,
            period,
            measure_from,
            end,
        )));
    }
    let mut all = Vec::new();
    let (mut errors, mut failed_connections) = (0u64, 0u64);
    let mut first_failure = None;
    for task in tasks {
        if let Ok(seen) = task.await {
            all.extend(seen.latencies_us);
            errors += seen.errors;
            if let Some(why) = seen.failed {
                failed_connections += 1;
                first_failure.get_or_insert(why);
            }
        }
    }
    all.sort_unstable();
    let at = |q: f64| -> u32 {
        if all.is_empty() {
            return 0;
        }
        let index = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all.get(index).copied().unwrap_or(0)
    };
    format!(
        "{{\"connections\": {}, \"connect_failures\": {connect_failures}, \"requests\": {}, \
         \"errors\": {errors}, \"failed_connections\": {failed_connections}, \
         \"first_failure\": {:?}, \"seconds\": {}, \"p50_us\": {}, \"p99_us\": {}, \
         \"p999_us\": {}, \"max_us\": {}}}",
        args.connections - connect_failures as usize,
        all.len(),
        first_failure.unwrap_or_default(),
        args.seconds,
        at(0.50),
        at(0.99),
        at(0.999),
        all.last().copied().unwrap_or(0)
    )
}

/// Connections one loopback source address can open to one port (the
/// ephemeral port range is about 28,000 wide).
const PER_SOURCE: usize = 25_000;

/// Connection `i` of `count`: past [`PER_SOURCE`], from 127.0.0.2, .3, ...
/// in turn, so tens of thousands of connections to one port do not run
/// out of source ports. (Redis's protected mode turns away any source but
/// 127.0.0.1: point many connections at a proxy, or at a Redis without it.)
async fn connect(
    addr: SocketAddr,
    i: usize,
    count: usize,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let sources = count.div_ceil(PER_SOURCE);
    if addr.ip().is_loopback() && sources > 1 {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % sources) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One connection's schedule: a GET at `first`, then every `period`,
/// until `end`; latencies counted from `measure_from`.
async fn drive(
    mut stream: tokio::net::TcpStream,
    key: String,
    first: Instant,
    period: Duration,
    measure_from: Instant,
    end: Instant,
) -> Seen {
    let request = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 4096];
    let mut next = first;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            seen.failed = Some(e.to_string());
            return seen;
        }
        match read_reply(&mut stream, &mut buf).await {
            Ok(ok) => {
                if !ok {
                    seen.errors += 1;
                }
                if sent >= measure_from {
                    let micros = sent.elapsed().as_micros();
                    seen.latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Err(e) => {
                seen.failed = Some(e.to_string());
                return seen;
            }
        }
        next += period;
    }
    seen
}

/// Reads one reply to GET (a bulk string, a null, or an error); Ok(false)
/// for an error reply.
async fn read_reply(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut len = 0;
    loop {
        if let Some(done) = complete(buf.get(..len).unwrap_or_default()) {
            return Ok(done);
        }
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(buf.get_mut(len..).unwrap_or_default()).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len += n;
    }
}

/// Whether `bytes` hold a whole reply: Some(true) for a value or a null,
/// Some(false) for an error, None while more is needed.
fn complete(bytes: &[u8]) -> Option<bool> {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let line = bytes.get(..line_end)?;
    match line.first()? {
        b'$' => {
            let n: i64 = std::str::from_utf8(line.get(1..)?).ok()?.parse().ok()?;
            if n < 0 {
                return Some(true);
            }
            let whole = line_end + 2 + usize::try_from(n).ok()? + 2;
            (bytes.len() >= whole).then_some(true)
        }
        b'-' => Some(false),
        _ => Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::complete;

    #[test]
    fn replies_are_whole_only_when_all_their_bytes_are_there() {
        assert_eq!(complete(b"$-1\r\n"), Some(true));
        assert_eq!(complete(b"$3\r\nab"), None);
        assert_eq!(complete(b"$3\r\nabc\r\n"), Some(true));
        assert_eq!(complete(b"-ERR x\r\n"), Some(false));
        assert_eq!(complete(b"$3"), None);
    }
}
