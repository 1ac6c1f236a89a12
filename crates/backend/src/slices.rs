//! `writev` slices over a queue of frames, for the backend connection's
//! outbox and a session's replies alike.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Most buffers handed to one `writev` (Linux takes up to 1024): a shared
/// connection's outbox gathers the frames of every session woken in one
/// tick, often several hundred at `-P 16`, and each `writev` saved is a
/// syscall and a wake-up of the server.
pub const MAX_IOVECS: usize = 512;
/// A queue this short is written from a short slice array.
const SHORT: usize = 8;
/// A queue this short is written from a mid-sized array (a whole array is
/// filled on every write: the big one only pays off for a big queue).
const MEDIUM: usize = 64;

/// Calls `write` with slices over the head of `queue` (at most
/// [`MAX_IOVECS`]), the first from byte `skip` of its frame. Short queues,
/// the usual case, fill a short array: filling the whole one on every
/// write costs more than the rest of the write's bookkeeping.
pub fn with_head<'q, R>(
    queue: &'q VecDeque<Bytes>,
    skip: usize,
    write: impl FnOnce(&[IoSlice<'q>]) -> R,
) -> R {
    let frames = queue.len();
    if frames <= SHORT {
        fill::<SHORT, R>(queue, skip, write)
    } else if frames <= MEDIUM {
        fill::<MEDIUM, R>(queue, skip, write)
    } else {
        fill::<MAX_IOVECS, R>(queue, skip, write)
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
        let frames = |n| -> VecDeque<Bytes> { (0..n).map(|_| Bytes::from_static(b"ab")).collect() };
        assert_eq!(lens(&frames(600), 1).len(), MAX_IOVECS);
        // Past the short and the medium array, nothing is left out.
        for n in [9, 64, 65, 512] {
            assert_eq!(lens(&frames(n), 0).len(), n);
        }
    }
}
