//! Shared by the integration tests: a simulated worker on a real channel.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rcluster_core::connection_claims::ClaimTaker;
use rcluster_core::loop_stamp::StampWriter;
use rcluster_core::sys;
use rcluster_core::channel::wire::{ACCEPTED, REJECTED};
use rcluster_core::{
    Dispatcher, Incoming, ListenAddr, ListenRequest, ListenSpec, LocalAddr, Mode, Received, WorkerChannel,
};

pub struct TestWorker {
    pub id: u32,
    pub channel: WorkerChannel,
    /// Its loop stamp, once the primary has sent it (`recv` takes it in, as
    /// the addon does before JS sees anything).
    pub stamp: Option<StampWriter>,
    /// Its connection claims, adopted with the stamp as the addon does.
    pub claims: Option<ClaimTaker>,
}

impl TestWorker {
    pub fn spawn(dispatcher: &Dispatcher, id: u32) -> Self {
        let raw = dispatcher.open_channel(id).unwrap();
        // Stand-in for the fork: the "child" gets its own copy of the worker end,
        // then the primary closes its copy, exactly as after a real spawn.
        // SAFETY: the dispatcher keeps the worker's end open until
        // `release_child_end`, below.
        let copy = sys::dup_cloexec(unsafe { BorrowedFd::borrow_raw(raw) }).unwrap();
        dispatcher.release_child_end(id);
        TestWorker { id, channel: WorkerChannel::new(copy).unwrap(), stamp: None, claims: None }
    }

    pub fn listen(&self, dispatcher: &Dispatcher, key: &str, port: u16, mode: Mode) -> (u32, u16) {
        let outcome = dispatcher
            .listen(ListenRequest {
                worker: self.id,
                key: key.to_string(),
                spec: ListenSpec {
                    addr: ListenAddr::Tcp { ip: Some(Ipv4Addr::LOCALHOST.into()), port, ipv6_only: false },
                    backlog: 0,
                },
                mode,
                defer_accept: false,
            })
            .unwrap();
        let LocalAddr::Inet(addr) = outcome.local else { panic!("not inet") };
        (outcome.listener, addr.port())
    }

    /// Waits up to `ms` for the next message.
    pub fn recv(&mut self, ms: u64) -> Option<Incoming> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            match self.channel.recv().unwrap() {
                Received::Message(Incoming::LoopStamp { fd }) => {
                    self.claims = Some(ClaimTaker::adopt(std::os::fd::AsFd::as_fd(&fd)).unwrap());
                    self.stamp = Some(StampWriter::adopt(fd).unwrap());
                }
                // Received out of descriptors: it goes without, as the addon does.
                Received::Message(Incoming::LoopStampLost) => {}
                Received::Message(m) => return Some(m),
                Received::Closed => return None,
                Received::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let mut pfd =
                        [libc::pollfd { fd: self.channel.raw_fd(), events: libc::POLLIN, revents: 0 }];
                    sys::poll(&mut pfd, left.as_millis() as i32).unwrap();
                }
            }
        }
    }

    /// Every message until `ms` pass with nothing new.
    pub fn recv_all(&mut self, ms: u64) -> Vec<Incoming> {
        let mut out = Vec::new();
        while let Some(m) = self.recv(ms) {
            out.push(m);
        }
        out
    }

    /// Every connection dispatched until `ms` pass with nothing new, left
    /// unanswered.
    pub fn dispatched(&mut self, ms: u64) -> Vec<OwnedFd> {
        let mut out = Vec::new();
        while let Some(msg) = self.recv(ms) {
            if let Incoming::Dispatch { fds, .. } = msg {
                out.extend(fds);
            }
        }
        out
    }

    /// Receives dispatched connections until `ms` pass with nothing new,
    /// answering each batch with `status`. Returns the connections.
    pub fn take_all(&mut self, ms: u64, status: u8) -> Vec<TcpStream> {
        let mut out = Vec::new();
        while let Some(msg) = self.recv(ms) {
            if let Incoming::Dispatch { fds, .. } = msg {
                self.channel.reply(&vec![status; fds.len()]).unwrap();
                if status == ACCEPTED {
                    // As a worker's JS does a turn later: read, so the
                    // primary may close its copies.
                    self.channel.confirm_read(fds.len() as u32).unwrap();
                    out.extend(fds.into_iter().map(stream));
                }
            }
        }
        out
    }

    /// As the addon does: receives dispatches until `ms` pass with nothing
    /// new, claims each connection, accepts (and confirms reading) those it
    /// claimed and refuses those the primary took back. Returns the
    /// connections taken, and how many were taken back.
    pub fn claim_all(&mut self, ms: u64) -> (Vec<TcpStream>, usize) {
        let (mut out, mut revoked) = (Vec::new(), 0);
        while let Some(msg) = self.recv(ms) {
            if let Incoming::Dispatch { fds, first, .. } = msg {
                let claims = self.claims.as_ref().expect("claims come with the stamp");
                let mut statuses = Vec::new();
                let mut taken = 0;
                for (i, fd) in fds.into_iter().enumerate() {
                    if claims.claim(first + i as u64) {
                        statuses.push(ACCEPTED);
                        out.push(stream(fd));
                        taken += 1;
                    } else {
                        statuses.push(REJECTED);
                        revoked += 1;
                    }
                }
                self.channel.reply(&statuses).unwrap();
                self.channel.confirm_read(taken).unwrap();
            }
        }
        (out, revoked)
    }

    pub fn refuse_all(&mut self, ms: u64) -> usize {
        let mut n = 0;
        while let Some(Incoming::Dispatch { fds, .. }) = self.recv(ms) {
            n += fds.len();
            self.channel.reply(&vec![REJECTED; fds.len()]).unwrap();
        }
        n
    }
}

/// The numbers (u32 LE) that bus messages from `from` carry, in order;
/// panics at any other message.
pub fn numbered_from(from: u32, messages: &[Incoming]) -> Vec<u32> {
    messages
        .iter()
        .map(|m| match m {
            Incoming::Bus { from: f, payload, .. } if *f == from => u32::from_le_bytes(payload[..4].try_into().unwrap()),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// A dispatcher with two workers listening on one key ("k", an ephemeral
/// loopback port). Returns the dispatcher, the workers, the listener id and port.
pub fn two_workers(config: rcluster_core::Config, mode: Mode) -> (Dispatcher, TestWorker, TestWorker, u32, u16) {
    let d = Dispatcher::start(config).unwrap();
    let a = TestWorker::spawn(&d, 1);
    let b = TestWorker::spawn(&d, 2);
    let (id, port) = a.listen(&d, "k", 0, mode);
    assert_eq!(b.listen(&d, "k", 0, mode), (id, port), "same key, same socket");
    (d, a, b, id, port)
}

pub fn stream(fd: OwnedFd) -> TcpStream {
    let s = TcpStream::from(fd);
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Connects `n` clients, each sending its index as one byte.
pub fn connect_clients(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut c = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap();
            c.write_all(&[i as u8]).unwrap();
            c
        })
        .collect()
}

/// Reads the one-byte index each client sent.
pub fn client_index(s: &mut TcpStream) -> u8 {
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    b[0]
}

pub fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}

pub fn from_raw(fd: i32) -> OwnedFd {
    // SAFETY: test-only; callers pass a descriptor they own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Polls `done` every 5 ms for up to a second; panics with `what` if it never holds.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting until {what}");
}
