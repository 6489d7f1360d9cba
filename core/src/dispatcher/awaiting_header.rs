//! Connections whose PROXY protocol header has not fully arrived yet
//! (`setupPrimary({ routing: { proxyProtocol } })`, docs/DESIGN.md §8).
//!
//! A connection accepted from a trusted peer waits here, polled for input,
//! until its first bytes hold a whole header: then exactly the header's bytes
//! are read (stripped) and the connection goes on to its listener's queue
//! with the client's address, for the worker to show as the socket's remote
//! address. One whose header is malformed, or has not arrived within the
//! timeout, or whose peer is not trusted, is closed here and counted; it is
//! never handed on, so a worker never sees an unvouched-for address.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use crate::peer::Connection;
use crate::proxy_header::{self, Parsed, Trust};
use crate::sys::{self, LocalAddr};
use crate::wire::ListenerId;

/// Whether connections carry a PROXY header, and who may send one.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub trust: Trust,
    /// Longest a connection may take to send its whole header.
    pub timeout: Duration,
}

/// What became of a waiting connection.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Header read and stripped; `conn.source` is the client it named.
    Ready(Connection),
    /// Closed: malformed, late, or the client hung up first.
    Rejected(ListenerId),
}

#[derive(Debug, Default)]
pub(super) struct AwaitingHeader {
    waiting: Vec<(Connection, Instant)>,
}

impl AwaitingHeader {
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a just-accepted connection; false (and it closes) if its peer is
    /// not trusted to send a header.
    pub(super) fn admit(&mut self, conn: Connection, config: &ProxyConfig, now: Instant) -> bool {
        let peer: Option<IpAddr> = match sys::peer_addr(conn.fd.as_fd()) {
            Ok(LocalAddr::Inet(addr)) => Some(addr.ip()),
            _ => None,
        };
        if !config.trust.allows(peer) {
            return false;
        }
        self.waiting.push((conn, now + config.timeout));
        true
    }

    /// The fds to poll for input, in order: `process` takes the readiness
    /// of each in the same order.
    pub(super) fn pollfds(&self) -> impl Iterator<Item = libc::pollfd> + '_ {
        self.waiting
            .iter()
            .map(|(conn, _)| libc::pollfd { fd: conn.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|(_, deadline)| *deadline).min()
    }

    /// Reads the headers of the connections `readable` marks (by position in
    /// `pollfds` order), and gives up on those past their deadline.
    pub(super) fn process(&mut self, readable: &[bool], now: Instant) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut buf = vec![0u8; proxy_header::PEEK_LEN];
        let mut kept = Vec::with_capacity(self.waiting.len());
        for (i, (mut conn, deadline)) in std::mem::take(&mut self.waiting).into_iter().enumerate() {
            if readable.get(i).copied().unwrap_or(false) {
                match read_header(&mut conn, &mut buf) {
                    Some(true) => {
                        outcomes.push(Outcome::Ready(conn));
                        continue;
                    }
                    Some(false) => {
                        outcomes.push(Outcome::Rejected(conn.listener));
                        continue;
                    }
                    None => {}
                }
            }
            if now >= deadline {
                outcomes.push(Outcome::Rejected(conn.listener));
            } else {
                kept.push((conn, deadline));
            }
        }
        self.waiting = kept;
        outcomes
    }

    /// Connections of a listener that closed go with it.
    pub(super) fn forget_listener(&mut self, listener: ListenerId) {
        self.waiting.retain(|(conn, _)| conn.listener != listener);
    }
}

/// `Some(true)`: the header was read and stripped; `Some(false)`: the
/// connection is to be closed; `None`: not all of it is here yet.
fn read_header(conn: &mut Connection, buf: &mut [u8]) -> Option<bool> {
    let n = match sys::recv_bytes(conn.fd.as_fd(), buf, true) {
        Ok(0) => return Some(false), // hung up before sending a header
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
        Err(_) => return Some(false),
    };
    match proxy_header::parse(&buf[..n]) {
        Parsed::Incomplete => None,
        Parsed::Invalid => Some(false),
        Parsed::Header { len, source } => {
            // The bytes are there (just peeked), so this reads all of them.
            match sys::recv_bytes(conn.fd.as_fd(), &mut buf[..len], false) {
                Ok(read) if read == len => {
                    conn.source = source;
                    Some(true)
                }
                _ => Some(false),
            }
        }
    }
}
