//! How handles wake a connection task on the same thread: one stored
//! waker, no atomics (everything in a worker runs on one thread).

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct TaskWake(RefCell<Option<Waker>>);

impl TaskWake {
    /// Wakes the task if it waits in [`TaskWake::next`].
    pub fn wake(&self) {
        if let Some(waker) = self.0.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves the next time [`TaskWake::wake`] is called (or the task is
    /// polled again for another reason: callers re-check their state).
    pub async fn next(&self) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            *self.0.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
