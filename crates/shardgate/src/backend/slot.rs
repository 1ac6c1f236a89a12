//! A reply slot: where a backend connection puts the reply to one request
//! and the session that sent it picks it up.
//!
//! Everything in a worker runs on one thread, so a slot is an `Rc` cell
//! rather than a channel: completing it is a store and a wake, with no
//! atomics and no lock.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::error::BackendError;

/// The reply to one request, or why there is none.
pub type ReplyResult = Result<Bytes, BackendError>;

enum State {
    Waiting(Option<Waker>),
    Done(ReplyResult),
    Taken,
}

/// The receiving end: a future of the reply.
pub struct ReplySlot(Rc<RefCell<State>>);

/// The sending end, held in the connection's FIFO.
pub struct SlotSender(Rc<RefCell<State>>);

/// A new slot and its sender.
pub fn slot() -> (SlotSender, ReplySlot) {
    let state = Rc::new(RefCell::new(State::Waiting(None)));
    (SlotSender(state.clone()), ReplySlot(state))
}

impl SlotSender {
    /// Delivers the reply and wakes the receiver (if it still waits).
    pub fn complete(self, result: ReplyResult) {
        let previous = std::mem::replace(&mut *self.0.borrow_mut(), State::Done(result));
        if let State::Waiting(Some(waker)) = previous {
            waker.wake();
        }
    }

    /// True when the receiver is gone: nobody will read the reply.
    pub fn is_abandoned(&self) -> bool {
        Rc::strong_count(&self.0) == 1
    }
}

impl ReplySlot {
    /// A slot that already holds its reply.
    pub fn ready(result: ReplyResult) -> ReplySlot {
        ReplySlot(Rc::new(RefCell::new(State::Done(result))))
    }

    /// The reply if it has arrived, without waiting.
    pub fn try_take(&mut self) -> Option<ReplyResult> {
        let mut state = self.0.borrow_mut();
        match &*state {
            State::Done(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => Some(result),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Future for ReplySlot {
    type Output = ReplyResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        let mut state = self.0.borrow_mut();
        match &mut *state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => Poll::Ready(result),
                _ => Poll::Pending,
            },
            // Polled again after completion: a caller bug; never resolve twice.
            State::Taken => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_once_to_the_waiting_receiver() {
        let (sender, receiver) = slot();
        let waiter = tokio::task::LocalSet::new();
        let got = waiter
            .run_until(async move {
                let task = tokio::task::spawn_local(receiver);
                tokio::task::yield_now().await;
                sender.complete(Ok(Bytes::from_static(b"+OK\r\n")));
                task.await.expect("join")
            })
            .await;
        assert_eq!(got.expect("reply"), Bytes::from_static(b"+OK\r\n"));
    }

    #[test]
    fn a_dropped_receiver_is_seen_as_abandoned() {
        let (sender, receiver) = slot();
        assert!(!sender.is_abandoned());
        drop(receiver);
        assert!(sender.is_abandoned());
        sender.complete(Ok(Bytes::new()));
    }

    #[test]
    fn try_take_returns_the_reply_once() {
        let (sender, mut receiver) = slot();
        assert!(receiver.try_take().is_none());
        sender.complete(Ok(Bytes::from_static(b":1\r\n")));
        assert!(receiver.try_take().is_some());
        assert!(receiver.try_take().is_none());
    }
}
