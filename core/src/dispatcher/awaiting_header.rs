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
//!
//! Waiting costs the dispatcher nothing per connection and per turn: the
//! connections are watched through one epoll instance, edge-triggered (one
//! descriptor in the thread's `poll` set however many wait, and a connection
//! whose bytes so far are incomplete is reported again only when more
//! arrive), and their deadlines are kept in arrival order (every connection
//! of a stage has the same timeout), so a turn looks only at connections
//! with news and those whose time is up. A PROXY header's bytes are read
//! as they come (every byte before a header's end is the header's), so a
//! header sent byte by byte costs one look per byte; a request head can only
//! be peeked at, and is looked at again only when more of it arrives.
//!
//! How many connections may wait is bounded per listener by its owner
//! (`event_loop`): [`AwaitingHeader::count`] says how many of a listener's
//! wait here.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::dispatcher::peer::Connection;
use crate::routing::proxy_header::{self, Parsed, Trust};
use crate::rejections;
use crate::sys::{self, LocalAddr};
use crate::channel::wire::ListenerId;

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
    pub rule: crate::routing::http_key::Rule,
    /// Longest the first request's head is waited for.
    pub timeout: Duration,
}

/// What a connection waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    ProxyHeader,
    RequestHead,
}

impl Stage {
    fn index(self) -> usize {
        match self {
            Stage::ProxyHeader => 0,
            Stage::RequestHead => 1,
        }
    }
}

/// What became of a waiting connection.
#[derive(Debug)]
pub(super) enum Outcome {
    /// What it waited for is done: a PROXY header read and stripped
    /// (`conn.source` is the client it named), or a request head peeked at
    /// (`conn.key` is the value's, or `None`).
    Ready(Connection, Stage),
    /// Closed: a malformed PROXY header, or a client that hung up before
    /// sending one.
    Rejected(ListenerId),
    /// Its time was up. A PROXY header never finished: closed (`None`). A
    /// request head never finished: the connection is placed without a key.
    Expired(ListenerId, Option<Connection>),
    /// The client hung up before its first request: nothing to count.
    Gone,
}

/// Why a connection could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its peer is not trusted to send a PROXY header.
    Untrusted,
    /// It could not be watched (no descriptor or memory for the epoll
    /// instance): closed, as the kernel would under the same shortage.
    NoResources,
}

/// Most connections with news looked at per turn: the rest stay in epoll's
/// ready list for the next turn, so a burst of them cannot hold up the
/// workers' channels and the other listeners.
const MAX_NEWS_PER_TURN: usize = 256;

#[derive(Debug)]
struct Waiting {
    conn: Connection,
    deadline: Instant,
    stage: Stage,
    /// PROXY stage: the header's bytes read so far.
    header: Vec<u8>,
}

#[derive(Debug, Default)]
pub(super) struct AwaitingHeader {
    /// Created with the first waiting connection.
    epoll: Option<OwnedFd>,
    waiting: HashMap<u64, Waiting>,
    next_token: u64,
    /// Per stage, `(deadline, token)` in deadline order. A token no longer
    /// waiting (done, or moved on to the next stage under another token) is
    /// skipped when it comes to the front.
    deadlines: [VecDeque<(Instant, u64)>; 2],
    /// How many connections of each listener wait.
    per_listener: HashMap<ListenerId, usize>,
    news: Vec<u64>,
    buf: Vec<u8>,
}

impl AwaitingHeader {
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// How many of `listener`'s connections wait here.
    pub(super) fn count(&self, listener: ListenerId) -> usize {
        self.per_listener.get(&listener).copied().unwrap_or(0)
    }

    /// The descriptor to poll for news: one for every waiting connection.
    pub(super) fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().filter(|_| !self.waiting.is_empty()).map(|fd| fd.as_fd())
    }

    /// Takes a just-accepted connection; refused (and it closes) if its peer
    /// is not trusted to send a header, or it cannot be watched.
    pub(super) fn admit(&mut self, conn: Connection, config: &ProxyConfig, now: Instant) -> Result<(), Refused> {
        let peer: Option<IpAddr> = match sys::peer_addr(conn.fd.as_fd()) {
            Ok(LocalAddr::Inet(addr)) => Some(addr.ip()),
            _ => None,
        };
        if !config.trust.allows(peer) {
            return Err(Refused::Untrusted);
        }
        self.insert(conn, Stage::ProxyHeader, now + config.timeout, false)
    }

    /// Takes a connection to be placed by its first request's cookie or
    /// query parameter. `Err` gives it back when it cannot be watched: it is
    /// then placed without a key.
    pub(super) fn admit_request(&mut self, conn: Connection, config: &StickyHttp, now: Instant) -> Result<(), Connection> {
        self.insert_request(conn, now + config.timeout, false)
    }

    fn insert_request(&mut self, conn: Connection, deadline: Instant, watched: bool) -> Result<(), Connection> {
        let token = self.next_token;
        match self.watch(&conn, token, watched) {
            Ok(()) => {
                self.add(token, Waiting { conn, deadline, stage: Stage::RequestHead, header: Vec::new() });
                Ok(())
            }
            Err(_) => Err(conn),
        }
    }

    fn insert(&mut self, conn: Connection, stage: Stage, deadline: Instant, watched: bool) -> Result<(), Refused> {
        let token = self.next_token;
        self.watch(&conn, token, watched).map_err(|_| Refused::NoResources)?;
        self.add(token, Waiting { conn, deadline, stage, header: Vec::new() });
        Ok(())
    }

    fn watch(&mut self, conn: &Connection, token: u64, modify: bool) -> std::io::Result<()> {
        if self.epoll.is_none() {
            self.epoll = Some(sys::epoll_create()?);
        }
        let epoll = self.epoll.as_ref().map(|fd| fd.as_fd()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EBADF))?;
        sys::epoll_watch(epoll, conn.fd.as_fd(), token, modify)
    }

    fn add(&mut self, token: u64, waiting: Waiting) {
        self.next_token += 1;
        *self.per_listener.entry(waiting.conn.listener).or_insert(0) += 1;
        self.deadlines[waiting.stage.index()].push_back((waiting.deadline, token));
        self.waiting.insert(token, waiting);
    }

    /// Takes a connection out of waiting; `keep_watched` when it goes on
    /// waiting under another token (the next stage).
    fn take(&mut self, token: u64, keep_watched: bool) -> Option<Waiting> {
        let w = self.waiting.remove(&token)?;
        if let Some(count) = self.per_listener.get_mut(&w.conn.listener) {
            *count -= 1;
            if *count == 0 {
                self.per_listener.remove(&w.conn.listener);
            }
        }
        if !keep_watched {
            if let Some(epoll) = &self.epoll {
                sys::epoll_unwatch(epoll.as_fd(), w.conn.fd.as_fd());
            }
        }
        Some(w)
    }

    /// The earliest deadline of a waiting connection.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().filter_map(|q| q.front().map(|(at, _)| *at)).min()
    }

    /// Moves a connection whose PROXY header was read on to wait for its
    /// first request's head (sticky routing by cookie or query), without
    /// watching it anew. `Err` gives it back when that fails.
    pub(super) fn admit_request_next(&mut self, conn: Connection, config: &StickyHttp, now: Instant) -> Result<(), Connection> {
        self.insert_request(conn, now + config.timeout, true)
    }

    /// Reads what the connections with news (at most `MAX_NEWS_PER_TURN`)
    /// were waiting for, and gives up on those past their deadline. A
    /// connection that is `Ready` after its PROXY header stays watched when
    /// `keep_for_next_stage` says it goes on to the request-head stage (then
    /// `admit_request_next` takes it); every other connection that leaves
    /// is no longer watched.
    pub(super) fn process(
        &mut self,
        now: Instant,
        sticky: Option<&StickyHttp>,
        keep_for_next_stage: impl Fn(ListenerId) -> bool,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        if self.waiting.is_empty() {
            return outcomes;
        }
        let mut news = std::mem::take(&mut self.news);
        news.clear();
        if let Some(epoll) = &self.epoll {
            if let Err(e) = sys::epoll_ready(epoll.as_fd(), MAX_NEWS_PER_TURN, &mut news) {
                eprintln!("rcluster: epoll_wait failed: {e}");
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; proxy_header::PEEK_LEN.max(crate::routing::http_key::PEEK_LEN)];
        }
        let mut buf = std::mem::take(&mut self.buf);
        for token in news.iter().copied() {
            let Some(w) = self.waiting.get_mut(&token) else { continue };
            let step = match (w.stage, sticky) {
                (Stage::ProxyHeader, _) => read_header(w, &mut buf),
                (Stage::RequestHead, Some(sticky)) => read_request_key(&mut w.conn, &mut buf, &sticky.rule),
                (Stage::RequestHead, None) => Step::Done,
            };
            let stage = w.stage;
            match step {
                Step::Wait => {}
                Step::Done => {
                    let next = stage == Stage::ProxyHeader && sticky.is_some() && keep_for_next_stage(w.conn.listener);
                    if let Some(w) = self.take(token, next) {
                        outcomes.push(Outcome::Ready(w.conn, stage));
                    }
                }
                Step::Close => {
                    if let Some(w) = self.take(token, false) {
                        outcomes.push(if stage == Stage::ProxyHeader { Outcome::Rejected(w.conn.listener) } else { Outcome::Gone });
                    }
                }
            }
        }
        self.news = news;
        self.buf = buf;
        for stage in [Stage::ProxyHeader, Stage::RequestHead] {
            while let Some(&(deadline, token)) = self.deadlines[stage.index()].front() {
                let live = self.waiting.get(&token).is_some_and(|w| w.stage == stage);
                if live && deadline > now {
                    break;
                }
                self.deadlines[stage.index()].pop_front();
                if !live {
                    continue;
                }
                if let Some(mut w) = self.take(token, false) {
                    let listener = w.conn.listener;
                    outcomes.push(match stage {
                        Stage::ProxyHeader => Outcome::Expired(listener, None),
                        Stage::RequestHead => {
                            w.conn.key = None;
                            Outcome::Expired(listener, Some(w.conn))
                        }
                    });
                }
            }
        }
        outcomes
    }

    /// Connections of a listener that closed go with it.
    pub(super) fn forget_listener(&mut self, listener: ListenerId) {
        let tokens: Vec<u64> = self.waiting.iter().filter(|(_, w)| w.conn.listener == listener).map(|(t, _)| *t).collect();
        for token in tokens {
            self.take(token, false);
        }
    }
}

/// What a look at a waiting connection found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Not all of it has arrived: wait for more.
    Wait,
    /// What it waited for is done.
    Done,
    /// Malformed, or the client hung up: it closes.
    Close,
}

/// Looks at the first request's head (peeked: the worker gets every byte);
/// on `Done`, `conn.key` is its value's (or `None`: no such value).
fn read_request_key(conn: &mut Connection, buf: &mut [u8], rule: &crate::routing::http_key::Rule) -> Step {
    use crate::routing::http_key::{find, Found, PEEK_LEN};
    let n = match sys::recv_bytes(conn.fd.as_fd(), &mut buf[..PEEK_LEN], true) {
        Ok(0) => return Step::Close,
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Step::Wait,
        Err(_) => return Step::Close,
    };
    let head = &buf[..n];
    match find(rule, head) {
        Found::Incomplete => Step::Wait,
        Found::Key(value) => {
            conn.key = Some(crate::routing::sticky::fnv1a(value));
            Step::Done
        }
        Found::NoKey => {
            conn.key = None;
            Step::Done
        }
        Found::Unreadable => {
            // Placed in turn all the same (TLS, say, is no HTTP we can read).
            rejections::reject("stickyKey", || format!("a first request without a readable head: {}", rejections::describe_bytes(head)));
            conn.key = None;
            Step::Done
        }
    }
}

/// Reads what has arrived of a PROXY header: every byte before the
/// header's end is the header's, so it is read (not peeked at) and kept,
/// and the socket is reported again only when more arrives. Once the
/// header is whole, exactly its remaining bytes are read: what follows is
/// the worker's. On `Done`, `conn.source` is the client it names.
fn read_header(w: &mut Waiting, buf: &mut [u8]) -> Step {
    let have = w.header.len();
    let room = proxy_header::PEEK_LEN.saturating_sub(have);
    if room == 0 {
        return Step::Close; // cannot happen: the parser decides by then
    }
    let n = match sys::recv_bytes(w.conn.fd.as_fd(), &mut buf[..room], true) {
        Ok(0) => return Step::Close, // hung up before sending a header
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Step::Wait,
        Err(_) => return Step::Close,
    };
    w.header.extend_from_slice(&buf[..n]);
    let (take, step) = match proxy_header::parse(&w.header) {
        Parsed::Incomplete => (n, Step::Wait),
        Parsed::Invalid => {
            rejections::reject("proxyHeader", || format!("a malformed PROXY header: {}", rejections::describe_bytes(&w.header)));
            return Step::Close;
        }
        Parsed::Header { len, source } => {
            w.conn.source = source;
            (len.saturating_sub(have), Step::Done)
        }
    };
    // The bytes are there (just peeked), so this reads all of them.
    match sys::recv_bytes(w.conn.fd.as_fd(), &mut buf[..take], false) {
        Ok(read) if read == take => step,
        _ => Step::Close,
    }
}
