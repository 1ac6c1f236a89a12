//! Variant (a): tokio readiness (epoll) loop. One current_thread runtime +
//! LocalSet per worker thread, spawn_local per client session, one task per
//! worker's shared backend connection.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use slab::Slab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use uring_spike::{config, frame_reply, frame_request, reuseport_listener, Frame, READ_BUF};

struct Client {
    gen: u32,
    out: Vec<u8>,
    notify: Rc<Notify>,
}

struct State {
    backend_out: Vec<u8>,
    /// FIFO of (client slot, generation) awaiting a reply from the backend.
    pending: VecDeque<(u32, u32)>,
    clients: Slab<Client>,
    next_gen: u32,
    backend_notify: Rc<Notify>,
}

/// Read buffer with start/end cursors, same policy in both variants.
struct RBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}
impl RBuf {
    fn new() -> Self {
        RBuf { buf: vec![0; READ_BUF], start: 0, end: 0 }
    }
    /// Make room before a read: compact or grow.
    fn prepare(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < 4096 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < 4096 {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
    }
}

async fn client_session(mut sock: TcpStream, st: Rc<RefCell<State>>) {
    let _ = sock.set_nodelay(true);
    let notify = Rc::new(Notify::new());
    let (idx, gen) = {
        let mut s = st.borrow_mut();
        s.next_gen = s.next_gen.wrapping_add(1);
        let gen = s.next_gen;
        let idx = s.clients.insert(Client { gen, out: Vec::new(), notify: notify.clone() }) as u32;
        (idx, gen)
    };
    let mut rb = RBuf::new();
    let mut wbuf: Vec<u8> = Vec::new();
    'outer: loop {
        rb.prepare();
        tokio::select! {
            biased;
            _ = notify.notified() => {
                std::mem::swap(&mut st.borrow_mut().clients[idx as usize].out, &mut wbuf);
                if !wbuf.is_empty() {
                    if sock.write_all(&wbuf).await.is_err() { break 'outer; }
                    wbuf.clear();
                }
            }
            r = sock.read(&mut rb.buf[rb.end..]) => {
                let n = match r { Ok(0) | Err(_) => break 'outer, Ok(n) => n };
                rb.end += n;
                let mut s = st.borrow_mut();
                let mut any = false;
                loop {
                    match frame_request(&rb.buf[rb.start..rb.end]) {
                        Frame::Complete(len) => {
                            s.backend_out.extend_from_slice(&rb.buf[rb.start..rb.start + len]);
                            s.pending.push_back((idx, gen));
                            rb.start += len;
                            any = true;
                        }
                        Frame::Incomplete => break,
                        Frame::Invalid => break 'outer,
                    }
                }
                if any { s.backend_notify.notify_one(); }
            }
        }
    }
    st.borrow_mut().clients.remove(idx as usize);
}

async fn backend_task(mut sock: TcpStream, st: Rc<RefCell<State>>) {
    let bn = st.borrow().backend_notify.clone();
    let mut rb = RBuf::new();
    let mut wbuf: Vec<u8> = Vec::new();
    loop {
        std::mem::swap(&mut st.borrow_mut().backend_out, &mut wbuf);
        if !wbuf.is_empty() {
            sock.write_all(&wbuf).await.expect("backend write");
            wbuf.clear();
            continue;
        }
        rb.prepare();
        tokio::select! {
            biased;
            r = sock.read(&mut rb.buf[rb.end..]) => {
                let n = r.expect("backend read");
                assert!(n > 0, "backend closed");
                rb.end += n;
                let mut s = st.borrow_mut();
                loop {
                    match frame_reply(&rb.buf[rb.start..rb.end]) {
                        Frame::Complete(len) => {
                            let (ci, cg) = s.pending.pop_front().expect("unexpected reply");
                            if let Some(c) = s.clients.get_mut(ci as usize) {
                                if c.gen == cg {
                                    if c.out.is_empty() { c.notify.notify_one(); }
                                    c.out.extend_from_slice(&rb.buf[rb.start..rb.start + len]);
                                }
                            }
                            rb.start += len;
                        }
                        Frame::Incomplete => break,
                        Frame::Invalid => panic!("bad reply"),
                    }
                }
            }
            _ = bn.notified() => {}
        }
    }
}

fn main() {
    let cfg = config();
    let mut hs = Vec::new();
    for _ in 0..cfg.workers {
        let l = reuseport_listener(cfg.listen);
        let backend = cfg.backend;
        hs.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
            let ls = tokio::task::LocalSet::new();
            ls.block_on(&rt, async move {
                l.set_nonblocking(true).unwrap();
                let l = TcpListener::from_std(l).unwrap();
                let b = TcpStream::connect(backend).await.expect("connect backend");
                b.set_nodelay(true).unwrap();
                let st = Rc::new(RefCell::new(State {
                    backend_out: Vec::new(),
                    pending: VecDeque::new(),
                    clients: Slab::new(),
                    next_gen: 0,
                    backend_notify: Rc::new(Notify::new()),
                }));
                tokio::task::spawn_local(backend_task(b, st.clone()));
                loop {
                    let (s, _) = l.accept().await.unwrap();
                    tokio::task::spawn_local(client_session(s, st.clone()));
                }
            });
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
}
