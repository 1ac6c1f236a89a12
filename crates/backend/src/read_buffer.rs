//! The buffer a connection reads a server's replies into.

use bytes::BytesMut;

/// What a connection reads at a time, and keeps between replies.
pub const READ_CHUNK: usize = 16 * 1024;

/// A fresh buffer for a connection.
pub fn new() -> BytesMut {
    BytesMut::with_capacity(READ_CHUNK)
}

/// Room for the next read: a chunk at a time. A buffer that grew for a
/// big reply is let go once that reply was delivered (its allocation is
/// freed when the client's copy is written and dropped), so a connection
/// keeps a chunk, not the largest reply it ever carried: four 100 MB GETs
/// left 480 MB held by idle connections.
pub fn make_room(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
        *buf = new();
    } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grown_buffer_is_let_go_once_empty() {
        let mut buf = new();
        buf.extend_from_slice(&vec![b'x'; 1 << 20]);
        make_room(&mut buf);
        assert!(buf.capacity() >= 1 << 20, "kept while it holds data");
        let reply = buf.split().freeze();
        make_room(&mut buf);
        assert!(buf.capacity() <= 4 * READ_CHUNK && buf.capacity() >= READ_CHUNK / 4);
        assert_eq!(reply.len(), 1 << 20);
    }
}
