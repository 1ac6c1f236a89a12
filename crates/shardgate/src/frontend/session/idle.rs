//! A client idle between requests, parked as a small record: its
//! connection, identity and routing snapshot. The rest of a `Session`
//! (parser, reply queues, transaction, scratch space) is dropped when it
//! parks and made again when it sends (issue 18: what an idle client
//! costs is what its task holds while it waits).
//!
//! Only a session with nothing but defaults in that rest parks this way;
//! one inside MULTI or WATCH or holding a partial request parks whole
//! (`Session::park`), and a subscribed one waits inside its serving
//! future (its links wake it).

use std::rc::Rc;
use std::task::Poll;

use bytes::BytesMut;
use resp::RequestParser;
use std::time::Instant;

use super::client::Client;
use super::transaction::Transaction;
use super::{limits_of, read_ready, signal_before_waiting, ClientStream, End, Session};
use crate::backend::SessionWaker;
use crate::metrics::UNKNOWN_COMMAND;
use crate::view::{PoolView, PoolWorker};

/// What an idle session keeps.
pub(super) struct Idle<S> {
    pub stream: S,
    pub pool: Rc<PoolWorker>,
    /// Kept, not taken afresh on waking: the next batch compares it with
    /// the pool's to see a reload that happened meanwhile.
    pub view: Rc<PoolView>,
    pub client: Client,
    pub batch_started: Instant,
    pub slowlog: bool,
    pub metrics: bool,
    pub busy: u8,
}

impl<S: ClientStream> Session<S> {
    /// Nothing but defaults beside what [`Idle`] keeps: the session may
    /// park as its idle record.
    pub(super) fn is_plain(&self) -> bool {
        self.read_buf.is_empty()
            && self.queue.is_empty()
            && self.out.is_empty()
            && self.held.is_none()
            && self.tx.is_empty()
            && self.pubsub.is_none()
            && self.at_source.is_empty()
    }

    /// The idle record (see [`Session::is_plain`]); the rest is dropped,
    /// and the box with it (taken by value from a `Box`, its allocation
    /// would live on until the box is assigned again: the whole wait).
    #[allow(clippy::boxed_local)] // the point: free the box here
    pub(super) fn into_idle(self: Box<Self>) -> Idle<S> {
        // Its read buffer, empty, was released as it went idle (`read_more`).
        let session = *self;
        Idle {
            stream: session.stream,
            pool: session.pool,
            view: session.view,
            client: session.client,
            batch_started: session.batch_started,
            slowlog: session.slowlog,
            metrics: session.metrics,
            busy: session.busy,
        }
    }

    /// A session made from its idle record and what the client sent.
    pub(super) fn resume(idle: Idle<S>, read_buf: BytesMut) -> Self {
        let parser = RequestParser::new(limits_of(&idle.view.topology.config));
        Session {
            stream: idle.stream,
            pool: idle.pool,
            view: idle.view,
            client: idle.client,
            parser,
            read_buf,
            queue: Default::default(),
            out: Default::default(),
            out_len: 0,
            held: None,
            redispatching_held: false,
            tx: Transaction::default(),
            pubsub: None,
            // Only push links wake the session through it, and a plain
            // session has none.
            waker: Rc::new(SessionWaker::default()),
            keys: Vec::new(),
            resolver: Default::default(),
            command: UNKNOWN_COMMAND,
            batch_readers: Default::default(),
            slowlog: idle.slowlog,
            slow_node: None,
            batch_started: idle.batch_started,
            metrics: idle.metrics,
            busy: idle.busy,
            at_source: Default::default(),
        }
    }
}

impl<S: ClientStream> Idle<S> {
    /// Waits until the client sends or a signal ends the session; the
    /// session made again, with what it sent. (An `async` block, not an
    /// `async fn`: that would hold `self` twice.)
    #[allow(clippy::manual_async_fn)] // see above: the size is the point
    pub fn wake(mut self) -> impl std::future::Future<Output = (Box<Session<S>>, Result<(), End>)> {
        async move {
            let (read_buf, woken) = loop {
                let entry = &self.client.entry;
                let level = match signal_before_waiting::<S>(entry, true) {
                    Ok(level) => level,
                    Err(end) => break (BytesMut::new(), Err(end)),
                };
                // Polled by hand, not `select!` over two futures: the socket's
                // readiness future alone is larger than the rest of this wait.
                let stream = &self.stream;
                let readable = std::future::poll_fn(|cx| {
                    // A signal first: a killed client's next request, arriving
                    // as the kill does, is not served.
                    if entry.poll_raised(level, cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    stream.poll_ready_to_read(cx).map(Some)
                })
                .await;
                match readable {
                    None => {}
                    Some(Err(e)) => break (BytesMut::new(), Err(End::Io(e))),
                    Some(Ok(())) => {
                        let mut read_buf = BytesMut::new();
                        match read_ready(&mut self.stream, &mut read_buf) {
                            Ok(true) => break (read_buf, Ok(())),
                            Ok(false) => {}
                            Err(end) => break (read_buf, Err(end)),
                        }
                    }
                }
            };
            (Box::new(Session::resume(self, read_buf)), woken)
        }
    }
}
