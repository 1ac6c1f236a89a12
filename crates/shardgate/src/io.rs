//! Socket writes of queued `Bytes` with `writev`, so replies and requests
//! go out without being copied into one buffer first; a read that does
//! not wait.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One write of the queue's head: a plain write when it holds a single
/// buffer (a reply at `-P 1`: no slices to fill), else one `writev`.
fn poll_write_head<W: AsyncWrite + Unpin>(
    writer: &mut W,
    cx: &mut Context<'_>,
    queue: &VecDeque<Bytes>,
) -> Poll<io::Result<usize>> {
    match queue.len() {
        1 => {
            let only = queue.front().map(|b| &b[..]).unwrap_or_default();
            Pin::new(writer).poll_write(cx, only)
        }
        _ => crate::backend::slices::with_head(queue, 0, |slices| {
            Pin::new(writer).poll_write_vectored(cx, slices)
        }),
    }
}

/// Writes every queued buffer, in order, and empties the queue; then
/// flushes (a TLS stream's last records may still wait in it; a socket's
/// flush does nothing).
///
/// The `writev` slices live only while the write is polled, never across
/// a wait: an awaiting session's future (its memory while it waits) does
/// not carry them.
pub async fn write_all_queued<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    std::future::poll_fn(|cx| {
        while !queue.is_empty() {
            match poll_write_head(&mut *writer, cx, queue) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => consume(queue, written),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    })
    .await?;
    writer.flush().await
}

/// Reads what is there into `buf` without waiting: None when nothing is
/// (the read would wait).
pub fn read_now<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Option<io::Result<usize>> {
    let mut cx = Context::from_waker(Waker::noop());
    let read = std::pin::pin!(reader.read_buf(buf));
    match read.poll(&mut cx) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

/// Writes as much of the queue as the socket takes right now, without
/// waiting; returns the number of bytes written.
pub fn write_queued_now<W: AsyncWrite + Unpin>(
    writer: &mut W,
    queue: &mut VecDeque<Bytes>,
) -> io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut total = 0;
    while !queue.is_empty() {
        match poll_write_head(&mut *writer, &mut cx, queue) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => {
                total += n;
                consume(queue, n);
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(total)
}

/// Drops `n` written bytes from the front of the queue.
pub fn consume(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            queue.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_splits_buffers_at_any_point() {
        let mut queue: VecDeque<Bytes> =
            ["abc", "de", "fgh"].into_iter().map(Bytes::from).collect();
        consume(&mut queue, 4);
        assert_eq!(
            queue,
            VecDeque::from([Bytes::from("e"), Bytes::from("fgh")])
        );
        consume(&mut queue, 4);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn writes_everything_in_order_through_short_writes() {
        // A duplex pipe with a tiny buffer forces partial writes.
        let (mut a, mut b) = tokio::io::duplex(3);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut out)
                .await
                .map(|_| out)
        });
        let mut queue: VecDeque<Bytes> = (0..100).map(|i| Bytes::from(format!("{i},"))).collect();
        write_all_queued(&mut a, &mut queue).await.expect("write");
        drop(a);
        let expected: String = (0..100).map(|i| format!("{i},")).collect();
        assert_eq!(
            reader.await.expect("join").expect("read"),
            expected.as_bytes()
        );
    }
}
