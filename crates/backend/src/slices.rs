//! `writev` slices over a queue of frames, for the backend connection's
//! outbox and a session's replies alike.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most buffers handed to one `writev`.
pub const MAX_IOVECS: usize = 64;
/// A queue this short is written from a short slice array.
const SHORT: usize = 8;

/// Calls `write` with slices over the head of `queue` (at most
/// [`MAX_IOVECS`]), the first from byte `skip` of its frame. Short queues,
/// the usual case, fill a short array: filling the whole one on every
/// write costs more than the rest of the write's bookkeeping.
pub fn with_head<'q, R>(
    queue: &'q VecDeque<Bytes>,
    skip: usize,
    write: impl FnOnce(&[IoSlice<'q>]) -> R,
) -> R {
    match queue.len() {
        ..=SHORT => fill::<SHORT, R>(queue, skip, write),
        _ => fill::<MAX_IOVECS, R>(queue, skip, write),
    }
}

fn fill<'q, const N: usize, R>(
    queue: &'q VecDeque<Bytes>,
    skip: usize,
    write: impl FnOnce(&[IoSlice<'q>]) -> R,
) -> R {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    for (i, (slot, frame)) in slices.iter_mut().zip(queue).enumerate() {
        *slot = IoSlice::new(match i {
            0 => frame.get(skip..).unwrap_or_default(),
            _ => frame,
        });
        count += 1;
    }
    write(slices.get(..count).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(queue: &VecDeque<Bytes>, skip: usize) -> Vec<usize> {
        with_head(queue, skip, |slices| {
            slices.iter().map(|s| s.len()).collect()
        })
    }

    #[test]
    fn covers_the_head_of_the_queue_from_skip() {
        let queue: VecDeque<Bytes> = (1..=3).map(|n| Bytes::from(vec![b'x'; n])).collect();
        assert_eq!(lens(&queue, 0), vec![1, 2, 3]);
        assert_eq!(lens(&queue, 1), vec![0, 2, 3]);
        let long: VecDeque<Bytes> = (0..100).map(|_| Bytes::from_static(b"ab")).collect();
        assert_eq!(lens(&long, 1).len(), MAX_IOVECS);
        let nine: VecDeque<Bytes> = (0..9).map(|_| Bytes::from_static(b"ab")).collect();
        assert_eq!(
            lens(&nine, 0).len(),
            9,
            "past the short array, nothing is left out"
        );
    }
}
