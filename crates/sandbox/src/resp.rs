//! A tiny blocking RESP client, independent of the proxy's own codec so
//! that tests do not check the codec with itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    /// Any RESP3 type, kept as its raw first line (enough for tests).
    Other(String),
}

impl Reply {
    pub fn bulk_str(&self) -> Option<String> {
        match self {
            Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Simple(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A blocking connection that sends commands and reads replies.
pub struct RespClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespClient {
    pub fn connect(port: u16) -> std::io::Result<RespClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = self.writer.set_read_timeout(timeout);
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command without reading.
    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        self.writer.write_all(&encode(args))
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// Reads one reply and returns its exact bytes.
    pub fn read_raw(&mut self) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        read_raw(&mut self.reader, &mut raw)?;
        Ok(raw)
    }

    /// Sends one command and returns the exact bytes of its reply.
    pub fn cmd_raw(&mut self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        self.send(args)?;
        self.read_raw()
    }
}

/// Appends one complete reply frame, as received, to `raw`. Iterative
/// (a count of elements still to read), so a reply nested thousands of
/// levels deep does not exhaust the stack.
fn read_raw(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let mut pending: i64 = 1;
    while pending > 0 {
        pending -= 1;
        let start = raw.len();
        reader.read_until(b'\n', raw)?;
        if !raw.ends_with(b"\r\n") {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = raw[start..raw.len() - 2].to_vec();
        let kind = line.first().copied().unwrap_or(0);
        let number = || -> std::io::Result<i64> {
            std::str::from_utf8(&line[1..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(format!("bad length line {line:?}")))
        };
        match kind {
            b'$' | b'=' | b'!' => {
                let n = number()?;
                if n >= 0 {
                    let at = raw.len();
                    raw.resize(at + n as usize + 2, 0);
                    reader.read_exact(&mut raw[at..])?;
                }
            }
            b'*' | b'~' | b'>' => pending += number()?.max(0),
            b'%' => pending += number()?.max(0) * 2,
            // An attribute precedes the value it describes.
            b'|' => pending += number()?.max(0) * 2 + 1,
            _ => {}
        }
    }
    Ok(())
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Whether a read's outcome says the other side closed the connection
/// (an end or a reset), not that the wait for a reply ran out.
pub fn closed_by_peer(outcome: &std::io::Result<Reply>) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(outcome, Err(e) if matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe))
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if !line.ends_with(b"\r\n") {
        return Err(invalid(format!("line without CRLF: {line:?}")));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| invalid(e.to_string()))
}

pub fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(1);
    let number = || {
        rest.parse::<i64>()
            .map_err(|e| invalid(format!("{line}: {e}")))
    };
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(number()?),
        "_" => Reply::Nil,
        "$" | "=" | "!" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            let mut data = vec![0; n as usize + 2];
            reader.read_exact(&mut data)?;
            data.truncate(n as usize);
            if kind == "!" {
                Reply::Error(String::from_utf8_lossy(&data).into_owned())
            } else {
                Reply::Bulk(data)
            }
        }
        "*" | "~" | ">" => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Nil);
            }
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(read_reply(reader)?);
            }
            Reply::Array(items)
        }
        "%" => {
            let n = number()?;
            let mut items = Vec::new();
            for _ in 0..n * 2 {
                items.push(read_reply(reader)?);
            }
            Reply::Array(items)
        }
        _ => Reply::Other(line),
    })
}

/// Sends one command on a fresh connection and returns the exact bytes of
/// its reply (read until one complete frame has arrived).
pub fn exchange_raw(port: u16, args: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&encode(args))?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&chunk[..n]);
        let mut cursor = std::io::Cursor::new(&received[..]);
        match read_reply(&mut cursor) {
            Ok(_) if cursor.position() as usize == received.len() => return Ok(received),
            Ok(_) => return Err(invalid("more bytes than one reply".into())),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => continue,
            Err(e) => return Err(e),
        }
    }
}
