//! Connections whose first bytes the dispatcher waits for before placing
//! them: a PROXY protocol header (`setupPrimary({ routing: { proxyProtocol } })`),
//! or, for sticky routing by cookie or query parameter, the head of the
//! first HTTP request (`routing: { sticky }`), docs/DESIGN.md §8.
//!
//! A request head is only peeked at: the worker gets every byte. One that
//! does not come in time, or has no such value, places the connection
//! without a key (in turn); only a client that hangs up is dropped.
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

/// Sticky routing by an HTTP cookie or query parameter.
#[derive(Clone, Debug)]
pub struct StickyHttp {
    pub rule: crate::http_key::Rule,
    /// Longest the first request's head is waited for.
    pub timeout: Duration,
}

/// What a connection waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    ProxyHeader,
    RequestHead,
}

/// What became of a waiting connection.
#[derive(Debug)]
pub(super) enum Outcome {
    /// What it waited for is done: a PROXY header read and stripped
    /// (`conn.source` is the client it named), or a request head peeked at
    /// (`conn.key` is the value's, or `None`).
    Ready(Connection, Stage),
    /// Closed: a malformed or late PROXY header, or a client that hung up
    /// before sending one.
    Rejected(ListenerId),
    /// The client hung up before its first request: nothing to count.
    Gone,
}

/// How long a connection whose bytes so far are incomplete is left alone:
/// they stay in the socket (peeked, not read), so it would poll readable at
/// once and the thread would spin until the rest arrives.
const INCOMPLETE_BACKOFF: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Waiting {
    conn: Connection,
    deadline: Instant,
    stage: Stage,
    /// Incomplete at the last look: not polled for input before then.
    quiet_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub(super) struct AwaitingHeader {
    waiting: Vec<Waiting>,
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
        self.waiting.push(Waiting { conn, deadline: now + config.timeout, stage: Stage::ProxyHeader, quiet_until: None });
        true
    }

    /// Takes a connection to be placed by its first request's cookie or
    /// query parameter.
    pub(super) fn admit_request(&mut self, conn: Connection, config: &StickyHttp, now: Instant) {
        self.waiting.push(Waiting { conn, deadline: now + config.timeout, stage: Stage::RequestHead, quiet_until: None });
    }

    /// The fds to poll, one per waiting connection, in order: `process`
    /// takes the readiness of each in the same order. One left alone for now
    /// is polled for nothing (a hang-up still shows).
    pub(super) fn pollfds(&self, now: Instant) -> impl Iterator<Item = libc::pollfd> + '_ {
        self.waiting.iter().map(move |w| libc::pollfd {
            fd: w.conn.fd.as_raw_fd(),
            events: if w.quiet_until.is_some_and(|t| t > now) { 0 } else { libc::POLLIN },
            revents: 0,
        })
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().flat_map(|w| [Some(w.deadline), w.quiet_until]).flatten().min()
    }

    /// Reads what the connections `readable` marks (by position in
    /// `pollfds` order) were waiting for, and gives up on those past their
    /// deadline: a PROXY header is then rejected, a request head placed
    /// without a key.
    pub(super) fn process(&mut self, readable: &[bool], now: Instant, sticky: Option<&StickyHttp>) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut buf = vec![0u8; proxy_header::PEEK_LEN.max(crate::http_key::PEEK_LEN)];
        let mut kept = Vec::with_capacity(self.waiting.len());
        for (i, w) in std::mem::take(&mut self.waiting).into_iter().enumerate() {
            let Waiting { mut conn, deadline, stage, mut quiet_until } = w;
            let due = quiet_until.is_none_or(|t| t <= now);
            if readable.get(i).copied().unwrap_or(false) || (due && quiet_until.is_some()) {
                let done = match (stage, sticky) {
                    (Stage::ProxyHeader, _) => read_header(&mut conn, &mut buf).map(|ok| ok.then_some(())),
                    (Stage::RequestHead, Some(sticky)) => read_request_key(&mut conn, &mut buf, &sticky.rule),
                    (Stage::RequestHead, None) => Some(Some(())),
                };
                match done {
                    Some(Some(())) => {
                        outcomes.push(Outcome::Ready(conn, stage));
                        continue;
                    }
                    Some(None) => {
                        outcomes.push(if stage == Stage::ProxyHeader { Outcome::Rejected(conn.listener) } else { Outcome::Gone });
                        continue;
                    }
                    None => quiet_until = Some(now + INCOMPLETE_BACKOFF),
                }
            }
            if now >= deadline {
                outcomes.push(match stage {
                    Stage::ProxyHeader => Outcome::Rejected(conn.listener),
                    Stage::RequestHead => {
                        conn.key = None;
                        Outcome::Ready(conn, stage)
                    }
                });
            } else {
                kept.push(Waiting { conn, deadline, stage, quiet_until });
            }
        }
        self.waiting = kept;
        outcomes
    }

    /// Connections of a listener that closed go with it.
    pub(super) fn forget_listener(&mut self, listener: ListenerId) {
        self.waiting.retain(|w| w.conn.listener != listener);
    }
}

/// `Some(Some(()))`: the head is here, and `conn.key` is its value's (or
/// `None`: no such value); `Some(None)`: the client hung up; `None`: wait.
fn read_request_key(conn: &mut Connection, buf: &mut [u8], rule: &crate::http_key::Rule) -> Option<Option<()>> {
    use crate::http_key::{find, Found, PEEK_LEN};
    let n = match sys::recv_bytes(conn.fd.as_fd(), &mut buf[..PEEK_LEN], true) {
        Ok(0) => return Some(None),
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
        Err(_) => return Some(None),
    };
    match find(rule, &buf[..n]) {
        Found::Incomplete => None,
        Found::Key(value) => {
            conn.key = Some(crate::sticky::fnv1a(value));
            Some(Some(()))
        }
        Found::NoKey => {
            conn.key = None;
            Some(Some(()))
        }
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
