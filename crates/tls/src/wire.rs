//! Non-blocking plaintext reads and writes over an established TLS
//! session, in the style of `TcpStream::try_read` / `try_write`: the
//! backend's pipelined connections wait for socket readiness themselves
//! and then move what is there, so one session's reads and writes are
//! driven from one `select!` without splitting it behind a lock.
//!
//! Readiness: a session can hold decrypted plaintext the socket no longer
//! signals, so [`has_plaintext`] is checked before waiting for the socket
//! to be readable. Writes encrypt into the session and push its records
//! to the socket at once; records the socket did not take wait in the
//! session ([`has_records`]) and are pushed first by the next write or
//! by [`push`] once the socket is writable. A write accepts nothing new
//! while records wait, so at most one session buffer (rustls's 64 KiB
//! limit) is held per connection.

use std::io::{self, BufRead, Read, Write};

use bytes::BytesMut;
use rustls::{ConnectionCommon, SideData};
use tokio::net::TcpStream;

/// `std::io` over a tokio socket's non-blocking calls: `WouldBlock` when
/// it has nothing to give or no room (and tokio then clears readiness,
/// so the next wait is real).
struct Io<'a>(&'a TcpStream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether plaintext (or the end of the stream) is waiting in the
/// session: a read would not need the socket.
pub fn has_plaintext<SD: SideData>(tls: &ConnectionCommon<SD>) -> bool {
    !tls.wants_read()
}

/// Whether encrypted records wait for the socket.
pub fn has_records<SD: SideData>(tls: &ConnectionCommon<SD>) -> bool {
    tls.wants_write()
}

/// Appends the plaintext that has arrived to `buf`. `Ok(0)`: the peer
/// closed (cleanly or not). `WouldBlock`: nothing more for now.
pub fn try_read<SD: SideData>(
    tcp: &TcpStream,
    tls: &mut ConnectionCommon<SD>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    loop {
        let mut moved = 0;
        loop {
            let mut reader = tls.reader();
            let n = match reader.fill_buf() {
                Ok(chunk) => {
                    buf.extend_from_slice(chunk);
                    chunk.len()
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            if n == 0 {
                // close_notify: what was read is returned first.
                return Ok(moved);
            }
            reader.consume(n);
            moved += n;
        }
        if moved > 0 {
            return Ok(moved);
        }
        match tls.read_tls(&mut Io(tcp)) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                let processed = tls.process_new_packets();
                // An alert, a key update's answer: sent as soon as it can be.
                match push(tcp, tls) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Encrypts as much of `bufs` as the session takes and pushes it to the
/// socket; returns the plaintext bytes taken. `WouldBlock` when records
/// of an earlier write still wait for the socket (nothing is taken).
pub fn try_write<SD: SideData>(
    tcp: &TcpStream,
    tls: &mut ConnectionCommon<SD>,
    bufs: &[io::IoSlice<'_>],
) -> io::Result<usize> {
    push(tcp, tls)?;
    let taken = tls.writer().write_vectored(bufs)?;
    if taken == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    match push(tcp, tls) {
        Ok(()) => Ok(taken),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(taken),
        Err(e) => Err(e),
    }
}

/// Writes waiting records to the socket until none is left, or
/// `WouldBlock` when it is full.
pub fn push<SD: SideData>(tcp: &TcpStream, tls: &mut ConnectionCommon<SD>) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(&mut Io(tcp))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}
