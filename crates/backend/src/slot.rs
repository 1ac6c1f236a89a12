//! A reply slot: where a backend connection puts the reply to one request
//! and the session that sent it picks it up.
//!
//! Everything in a worker runs on one thread, so a slot is an `Rc` cell
//! rather than a channel: completing it is a store and a wake, with no
//! atomics and no lock. The request's bytes come back with the reply (the
//! connection kept them once written), so the slow log can name a slow
//! request without the session keeping a copy of every request.

use std::cell::{Cell, RefCell};
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

struct Inner {
    state: RefCell<State>,
    /// The request, as written to the server.
    request: Cell<Option<Bytes>>,
}

/// The receiving end: a future of the reply.
pub struct ReplySlot(Rc<Inner>);

/// The sending end, held in the connection's FIFO.
pub struct SlotSender(Rc<Inner>);

/// A new slot and its sender.
pub fn slot() -> (SlotSender, ReplySlot) {
    let inner = Rc::new(Inner {
        state: RefCell::new(State::Waiting(None)),
        request: Cell::new(None),
    });
    (SlotSender(inner.clone()), ReplySlot(inner))
}

impl SlotSender {
    /// Delivers the reply and wakes the receiver (if it still waits).
    pub fn complete(self, result: ReplyResult) {
        self.complete_with(result, None);
    }

    /// Delivers the reply with the request it answers.
    pub fn complete_with(self, result: ReplyResult, request: Option<Bytes>) {
        self.0.request.set(request);
        let previous = std::mem::replace(&mut *self.0.state.borrow_mut(), State::Done(result));
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
        ReplySlot(Rc::new(Inner {
            state: RefCell::new(State::Done(result)),
            request: Cell::new(None),
        }))
    }

    /// The request the reply answers, once the reply is in (if the
    /// connection handed it back).
    pub fn take_request(&self) -> Option<Bytes> {
        self.0.request.take()
    }

    /// The reply if it has arrived, without waiting.
    #[inline]
    pub fn try_take(&mut self) -> Option<ReplyResult> {
        self.try_take_if(|_| true)
    }

    /// The reply if it has arrived and `accept` takes it; otherwise it
    /// stays, for the waiting path (a redirection to follow).
    #[inline]
    pub fn try_take_if(
        &mut self,
        accept: impl FnOnce(&ReplyResult) -> bool,
    ) -> Option<ReplyResult> {
        let mut state = self.0.state.borrow_mut();
        match &*state {
            State::Done(result) if accept(result) => {
                match std::mem::replace(&mut *state, State::Taken) {
                    State::Done(result) => Some(result),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// True when the reply has arrived and `accept` says yes to it.
    pub fn is_in_and(&self, accept: impl FnOnce(&ReplyResult) -> bool) -> bool {
        matches!(&*self.0.state.borrow(), State::Done(result) if accept(result))
    }
}

impl Future for ReplySlot {
    type Output = ReplyResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        let mut state = self.0.state.borrow_mut();
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

    #[test]
    fn a_refused_reply_stays_for_the_waiting_path() {
        let (sender, mut receiver) = slot();
        assert!(!receiver.is_in_and(|_| true));
        sender.complete(Ok(Bytes::from_static(b"-MOVED 1 127.0.0.1:7000\r\n")));
        assert!(receiver.is_in_and(|_| true));
        assert!(!receiver.is_in_and(|_| false));
        assert!(receiver.try_take_if(|_| false).is_none());
        assert!(receiver.try_take_if(|_| true).is_some());
        assert!(!receiver.is_in_and(|_| true));
    }
}
