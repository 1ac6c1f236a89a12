//! Variant (b): raw `io-uring` crate completion loop. One ring per worker
//! thread (SINGLE_ISSUER + DEFER_TASKRUN by default), multishot accept,
//! one single-shot RECV always armed per socket, SENDs of batched output,
//! and exactly one io_uring_enter per loop iteration (submit_and_wait(1)).
//! Same forwarding logic as fwd_epoll: requests of all clients are
//! appended to one backend output buffer, a FIFO of (client, gen) matches
//! replies to clients.
use std::collections::VecDeque;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;
use uring_spike::{config, frame_reply, frame_request, reuseport_listener, Frame, READ_BUF};

const OP_ACCEPT: u64 = 0;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const BACKEND: u64 = (1 << 30) - 1;

#[inline]
fn ud(op: u64, idx: u64) -> u64 {
    op << 32 | idx
}

/// Read buffer with start/end cursors, same policy as fwd_epoll.
struct RBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}
impl RBuf {
    fn new() -> Self {
        RBuf { buf: vec![0; READ_BUF], start: 0, end: 0 }
    }
    fn append(&mut self, data: &[u8]) {
        self.prepare();
        while self.buf.len() - self.end < data.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }
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

struct Conn {
    fd: RawFd,
    gen: u32,
    rb: RBuf,
    out: Vec<u8>,
    sending: Vec<u8>,
    sent: usize,
    send_inflight: bool,
    recv_inflight: bool,
    closing: bool,
    dirty: bool,
}
impl Conn {
    fn new(fd: RawFd, gen: u32) -> Self {
        Conn {
            fd,
            gen,
            rb: RBuf::new(),
            out: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            send_inflight: false,
            recv_inflight: false,
            closing: false,
            dirty: true,
        }
    }
}

/// Provided-buffer ring for multishot recv (URING_RECV=multi).
struct BufRing {
    base: *mut types::BufRingEntry,
    entries: u16,
    tail: u16,
    bufs: Vec<u8>,
    size: usize,
}
const BGID: u16 = 1;
impl BufRing {
    fn new(ring: &IoUring, entries: u16, size: usize) -> Self {
        let bytes = entries as usize * std::mem::size_of::<types::BufRingEntry>();
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE, -1, 0)
        };
        assert!(base != libc::MAP_FAILED);
        let mut br = BufRing { base: base as *mut types::BufRingEntry, entries, tail: 0,
            bufs: vec![0; entries as usize * size], size };
        unsafe { ring.submitter().register_buf_ring(base as u64, entries, BGID).expect("register_buf_ring") };
        for bid in 0..entries {
            br.add(bid);
        }
        br.publish();
        br
    }
    fn add(&mut self, bid: u16) {
        let i = (self.tail & (self.entries - 1)) as usize;
        unsafe {
            let e = &mut *self.base.add(i);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }
    fn publish(&self) {
        unsafe {
            let t = types::BufRingEntry::tail(self.base) as *const std::sync::atomic::AtomicU16;
            (*t).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }
    fn get(&self, bid: u16, len: usize) -> &[u8] {
        &self.bufs[bid as usize * self.size..bid as usize * self.size + len]
    }
}

struct Worker {
    poll_first: bool,
    br: Option<BufRing>,
    ring: IoUring,
    lfd: RawFd,
    backend: Conn,
    clients: Slab<Conn>,
    pending: VecDeque<(u32, u32)>,
    next_gen: u32,
    dirty: Vec<u32>,
    backend_dirty: bool,
}

impl Worker {
    fn push(&mut self, e: squeue::Entry) {
        unsafe {
            while self.ring.submission().push(&e).is_err() {
                self.ring.submit().expect("submit");
            }
        }
    }

    fn mark(&mut self, idx: u32) {
        let c = &mut self.clients[idx as usize];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    /// Arm recv / send for a connection as needed; returns whether the
    /// connection can be freed (closing and nothing in flight).
    fn arm(&mut self, idx: u64) -> bool {
        let multi = self.br.is_some();
        let pf = self.poll_first;
        let c = if idx == BACKEND { &mut self.backend } else { &mut self.clients[idx as usize] };
        c.dirty = false;
        let mut sqes: [Option<squeue::Entry>; 2] = [None, None];
        if !c.send_inflight && !c.out.is_empty() && !c.closing {
            std::mem::swap(&mut c.out, &mut c.sending);
            c.out.clear();
            c.sent = 0;
            c.send_inflight = true;
            sqes[0] = Some(
                opcode::Send::new(types::Fd(c.fd), c.sending.as_ptr(), c.sending.len() as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(ud(OP_SEND, idx)),
            );
        }
        if !c.recv_inflight && !c.closing && multi {
            c.recv_inflight = true;
            sqes[1] = Some(opcode::RecvMulti::new(types::Fd(c.fd), BGID).build().user_data(ud(OP_RECV, idx)));
        } else if !c.recv_inflight && !c.closing {
            c.rb.prepare();
            c.recv_inflight = true;
            let free = c.rb.buf.len() - c.rb.end;
            sqes[1] = Some(
                opcode::Recv::new(types::Fd(c.fd), unsafe { c.rb.buf.as_mut_ptr().add(c.rb.end) }, free as u32)
                    .ioprio(if pf { 1u16 /* IORING_RECVSEND_POLL_FIRST */ } else { 0 })
                    .build()
                    .user_data(ud(OP_RECV, idx)),
            );
        }
        let free = c.closing && !c.send_inflight && !c.recv_inflight;
        for e in sqes.into_iter().flatten() {
            self.push(e);
        }
        free
    }

    fn close_client(&mut self, idx: u32) {
        let c = self.clients.remove(idx as usize);
        unsafe { libc::close(c.fd) };
    }

    fn on_client_recv(&mut self, idx: u32, res: i32) {
        let c = &mut self.clients[idx as usize];
        c.recv_inflight = false;
        if res > 0 {
            c.rb.end += res as usize;
            self.on_client_data(idx, 0);
        } else {
            self.on_client_data(idx, -1);
        }
    }

    /// Parses the requests now in the client's read buffer; `st` < 0 = EOF/error.
    fn on_client_data(&mut self, idx: u32, st: i32) {
        let c = &mut self.clients[idx as usize];
        if st < 0 {
            c.closing = true;
            self.mark(idx);
            return;
        }
        let mut any = false;
        loop {
            match frame_request(&c.rb.buf[c.rb.start..c.rb.end]) {
                Frame::Complete(len) => {
                    self.backend.out.extend_from_slice(&c.rb.buf[c.rb.start..c.rb.start + len]);
                    self.pending.push_back((idx, c.gen));
                    c.rb.start += len;
                    any = true;
                }
                Frame::Incomplete => break,
                Frame::Invalid => {
                    c.closing = true;
                    break;
                }
            }
        }
        if any {
            self.backend_dirty = true;
        }
        self.mark(idx);
    }

    fn on_backend_recv(&mut self, res: i32) {
        assert!(res > 0, "backend recv {}", res);
        self.backend.recv_inflight = false;
        self.backend.rb.end += res as usize;
        self.on_backend_data(0);
    }

    fn on_backend_data(&mut self, st: i32) {
        assert!(st >= 0, "backend recv {}", st);
        self.backend_dirty = true;
        let b = &mut self.backend;
        loop {
            match frame_reply(&b.rb.buf[b.rb.start..b.rb.end]) {
                Frame::Complete(len) => {
                    let (ci, cg) = self.pending.pop_front().expect("unexpected reply");
                    if let Some(c) = self.clients.get_mut(ci as usize) {
                        if c.gen == cg && !c.closing {
                            c.out.extend_from_slice(&b.rb.buf[b.rb.start..b.rb.start + len]);
                            if !c.dirty {
                                c.dirty = true;
                                self.dirty.push(ci);
                            }
                        }
                    }
                    b.rb.start += len;
                }
                Frame::Incomplete => break,
                Frame::Invalid => panic!("bad reply"),
            }
        }
    }

    fn on_send(&mut self, idx: u64, res: i32) {
        let c = if idx == BACKEND { &mut self.backend } else { &mut self.clients[idx as usize] };
        if res < 0 {
            assert!(idx != BACKEND, "backend send {}", res);
            c.send_inflight = false;
            c.closing = true;
            self.mark(idx as u32);
            return;
        }
        c.sent += res as usize;
        if c.sent < c.sending.len() {
            let e = opcode::Send::new(
                types::Fd(c.fd),
                unsafe { c.sending.as_ptr().add(c.sent) },
                (c.sending.len() - c.sent) as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud(OP_SEND, idx));
            self.push(e);
        } else {
            c.send_inflight = false;
            if idx == BACKEND {
                self.backend_dirty = true;
            } else {
                self.mark(idx as u32);
            }
        }
    }

    fn arm_accept(&mut self) {
        let e = opcode::AcceptMulti::new(types::Fd(self.lfd)).build().user_data(ud(OP_ACCEPT, 0));
        self.push(e);
    }

    fn run(&mut self) {
        self.arm_accept();
        self.arm(BACKEND);
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("submit_and_wait: {e}"),
            }
            cqes.clear();
            cqes.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            let mut recycled = false;
            for &(u, res, flags) in &cqes {
                let op = u >> 32;
                let idx = u & 0xffff_ffff;
                match op {
                    OP_ACCEPT => {
                        if res >= 0 {
                            let one: libc::c_int = 1;
                            unsafe {
                                libc::setsockopt(
                                    res,
                                    libc::IPPROTO_TCP,
                                    libc::TCP_NODELAY,
                                    &one as *const _ as *const libc::c_void,
                                    4,
                                )
                            };
                            self.next_gen = self.next_gen.wrapping_add(1);
                            let i = self.clients.insert(Conn::new(res, self.next_gen)) as u32;
                            self.dirty.push(i);
                        }
                        if !cqueue::more(flags) {
                            self.arm_accept();
                        }
                    }
                    OP_RECV if self.br.is_some() => {
                        let more = cqueue::more(flags);
                        let bid = cqueue::buffer_select(flags);
                        let c = if idx == BACKEND { &mut self.backend } else { &mut self.clients[idx as usize] };
                        if let Some(bid) = bid {
                            let br = self.br.as_mut().unwrap();
                            if res > 0 {
                                c.rb.append(br.get(bid, res as usize));
                            }
                            br.add(bid);
                            recycled = true;
                        }
                        // keep recv_inflight set while the multishot stays armed;
                        // handlers clear it, so restore it
                        let res2 = if res > 0 { 0 } else { res };
                        if res == -libc::ENOBUFS {
                            c.recv_inflight = false;
                            if idx == BACKEND { self.backend_dirty = true } else { self.mark(idx as u32) }
                            continue;
                        }
                        if idx == BACKEND {
                            self.on_backend_data(res2);
                            self.backend.recv_inflight = more;
                        } else {
                            self.on_client_data(idx as u32, if res > 0 { 0 } else { -1 });
                            if let Some(c) = self.clients.get_mut(idx as usize) { c.recv_inflight = more; }
                        }
                    }
                    OP_RECV if idx == BACKEND => self.on_backend_recv(res),
                    OP_RECV => self.on_client_recv(idx as u32, res),
                    OP_SEND => self.on_send(idx, res),
                    _ => unreachable!(),
                }
            }
            if recycled {
                self.br.as_ref().unwrap().publish();
            }
            // Flush: client sends/recvs first, then one backend send with
            // the requests of every client gathered in this iteration.
            let mut d = std::mem::take(&mut self.dirty);
            for &i in &d {
                if self.arm(i as u64) {
                    self.close_client(i);
                }
            }
            d.clear();
            self.dirty = d;
            if self.backend_dirty {
                self.backend_dirty = false;
                self.arm(BACKEND);
            }
        }
    }
}

fn main() {
    let cfg = config();
    let mode = std::env::var("URING_MODE").unwrap_or_else(|_| "defer".into());
    let mut hs = Vec::new();
    for _ in 0..cfg.workers {
        let l = reuseport_listener(cfg.listen);
        let backend = cfg.backend;
        let mode = mode.clone();
        hs.push(std::thread::spawn(move || {
            let mut b = IoUring::builder();
            match mode.as_str() {
                "defer" => {
                    b.setup_single_issuer().setup_defer_taskrun();
                }
                "coop" => {
                    b.setup_single_issuer().setup_coop_taskrun();
                }
                _ => {}
            }
            let ring = b.build(1024).expect("io_uring setup");
            let bs = TcpStream::connect(backend).expect("connect backend");
            bs.set_nodelay(true).unwrap();
            let bfd = bs.into_raw_fd();
            let lfd = l.as_raw_fd();
            let br = if std::env::var("URING_RECV").as_deref() == Ok("multi") {
                Some(BufRing::new(&ring, 1024, 8192))
            } else {
                None
            };
            let mut w = Worker {
                poll_first: std::env::var("URING_POLLFIRST").as_deref() == Ok("1"),
                br,
                ring,
                lfd,
                backend: Conn::new(bfd, 0),
                clients: Slab::new(),
                pending: VecDeque::new(),
                next_gen: 0,
                dirty: Vec::new(),
                backend_dirty: false,
            };
            w.run();
            drop(l);
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
}
