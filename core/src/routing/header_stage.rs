//! The pre-dispatch header stage: connections whose first bytes the
//! dispatcher waits for before placing them: a PROXY protocol header
//! (`setupPrimary({ routing: { proxyProtocol } })`, parsed by
//! [`crate::routing::proxy_header`]), then, for sticky routing by cookie or
//! query parameter, the head of the first HTTP request (`routing: { sticky }`,
//! read by [`crate::routing::http_key`]), docs/DESIGN.md §8. A connection
//! goes through the steps its listener has, in that order, and comes out
//! once to its listener's queue ([`Passed`]).
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
//! How many connections may wait is bounded per listener
//! ([`HeaderStage::budget`], [`HeaderStage::is_full`]): past that the
//! listener stops accepting and the kernel's queue holds the rest. The stage
//! also counts, per listener, what it closed or gave up on, for `stats()`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::channel::wire::ListenerId;
use crate::dispatcher::peer::Connection;
use crate::routing::proxy_header::{self, Parsed, Trust};
use crate::rejections;
use crate::sys::{self, LocalAddr};

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
enum Stage {
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

/// A connection done with the stage, for its listener's queue.
#[derive(Debug)]
pub struct Passed {
    pub conn: Connection,
    /// Its PROXY header was read and was the last step: `conn.source` is the
    /// client it named (a keyed policy places it by that client). False
    /// after the request-head step (`conn.key` is the value's, or `None`:
    /// none, or it did not come in time).
    pub proxied: bool,
}

/// What became of a connection offered to the stage ([`HeaderStage::admit`]).
#[derive(Debug)]
pub enum Admitted {
    /// It waits in the stage.
    Waiting,
    /// Its listener has no stage: place it now.
    NoStage(Connection),
    /// Closed: its peer is not trusted to send a PROXY header (counted).
    Closed,
    /// It could not be watched (no descriptor or memory for the epoll
    /// instance): accepting should pause. A connection that was to wait
    /// for a PROXY header is closed (counted), as the kernel would under the
    /// same shortage; one that was to wait for its request head comes back,
    /// to be placed without a key.
    NoResources(Option<Connection>),
}

/// What the stage counts per listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connections closed for a missing, malformed or late PROXY header, or
    /// from a peer not trusted to send one.
    pub proxy_rejected: u64,
    /// Connections whose PROXY header or first request head did not come
    /// within the stage's timeout.
    pub expired: u64,
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
    /// Its listener places by client or session: with sticky routing by
    /// cookie or query, the request-head step follows the PROXY header.
    keyed: bool,
    /// PROXY stage: the header's bytes read so far.
    header: Vec<u8>,
}

#[derive(Debug)]
pub struct HeaderStage {
    proxy: Option<ProxyConfig>,
    sticky_http: Option<StickyHttp>,
    /// Most connections of one listener that may wait (`Config::stage_limit`).
    limit: usize,
    /// How many connections all listeners' stages may hold together: half
    /// the descriptor limit, leaving the rest for accepting, the workers'
    /// channels, held queues and the app (`Config::stage_limit`).
    total: usize,
    /// Per listener: what was closed or given up on.
    counts: HashMap<ListenerId, Counts>,
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
    /// epoll_wait's buffer, kept across turns (no allocation per turn).
    epoll_events: Option<sys::EpollEvents>,
    buf: Vec<u8>,
}

impl HeaderStage {
    /// The stage for a dispatcher whose connections start with a PROXY
    /// header (`proxy`) and whose sticky listeners place by a cookie or
    /// query parameter (`sticky_http`); either may be `None`. `limit`: most
    /// connections of one listener waiting at once.
    pub fn new(proxy: Option<ProxyConfig>, sticky_http: Option<StickyHttp>, limit: usize) -> Self {
        HeaderStage {
            proxy,
            sticky_http,
            limit,
            total: sys::open_file_limit().map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX)),
            counts: HashMap::new(),
            epoll: None,
            waiting: HashMap::new(),
            next_token: 0,
            deadlines: Default::default(),
            per_listener: HashMap::new(),
            news: Vec::new(),
            epoll_events: None,
            buf: Vec::new(),
        }
    }

    /// Whether a listener's connections wait here before they are placed:
    /// every listener's with a PROXY header, a keyed one's with sticky
    /// routing by cookie or query.
    pub fn applies_to(&self, keyed: bool) -> bool {
        self.proxy.is_some() || (self.sticky_http.is_some() && keyed)
    }

    /// One of `threads` dispatcher threads' stages (docs/DESIGN.md §16):
    /// each holds its share of a listener's budget and of the descriptors,
    /// so that together they hold what one would.
    pub fn shared_by(mut self, threads: usize) -> Self {
        let threads = threads.max(1);
        self.limit = (self.limit / threads).max(1);
        self.total /= threads;
        self
    }

    /// How many connections each of the `staged` listeners that have a
    /// stage may have waiting in it: `None` without any stage.
    pub fn budget(&self, staged: usize) -> Option<usize> {
        if self.proxy.is_none() && self.sticky_http.is_none() {
            return None;
        }
        Some(self.limit.min(self.total / staged.max(1)).max(1))
    }

    /// Whether a listener (`keyed` or not) has a stage here and it holds
    /// all `budget` lets it: then the listener accepts no more.
    pub fn is_full_for(&self, listener: ListenerId, keyed: bool, budget: Option<usize>) -> bool {
        self.applies_to(keyed) && self.is_full(listener, budget)
    }

    /// Whether `listener` has as many connections waiting as `budget` lets it.
    pub fn is_full(&self, listener: ListenerId, budget: Option<usize>) -> bool {
        budget.is_some_and(|b| self.count(listener) >= b)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many of `listener`'s connections wait here.
    pub fn count(&self, listener: ListenerId) -> usize {
        self.per_listener.get(&listener).copied().unwrap_or(0)
    }

    /// What the stage closed or gave up on of `listener`'s connections.
    pub fn counts(&self, listener: ListenerId) -> Counts {
        self.counts.get(&listener).copied().unwrap_or_default()
    }

    fn counts_mut(&mut self, listener: ListenerId) -> &mut Counts {
        self.counts.entry(listener).or_default()
    }

    /// The descriptor to poll for news: one for every waiting connection.
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().filter(|_| !self.waiting.is_empty()).map(|fd| fd.as_fd())
    }

    /// Takes a just-accepted connection of a listener that places by client
    /// or session (`keyed`) or not, into the first step its listener has.
    pub fn admit(&mut self, conn: Connection, keyed: bool, now: Instant) -> Admitted {
        if let Some(config) = &self.proxy {
            let deadline = now + config.timeout;
            let peer: Option<IpAddr> = match sys::peer_addr(conn.fd.as_fd()) {
                Ok(LocalAddr::Inet(addr)) => Some(addr.ip()),
                _ => None,
            };
            let listener = conn.listener;
            if !config.trust.allows(peer) {
                self.counts_mut(listener).proxy_rejected += 1;
                return Admitted::Closed;
            }
            let token = self.next_token;
            if self.watch(&conn, token, false).is_err() {
                self.counts_mut(listener).proxy_rejected += 1;
                return Admitted::NoResources(None);
            }
            self.add(token, Waiting { conn, deadline, stage: Stage::ProxyHeader, keyed, header: Vec::new() });
            return Admitted::Waiting;
        }
        match &self.sticky_http {
            Some(config) if keyed => {
                let deadline = now + config.timeout;
                match self.wait_for_request(conn, deadline, false) {
                    Ok(()) => Admitted::Waiting,
                    Err(conn) => Admitted::NoResources(Some(conn)),
                }
            }
            _ => Admitted::NoStage(conn),
        }
    }

    /// Puts a connection in the request-head step; `watched` when it is
    /// watched already (after its PROXY header). `Err` gives it back when it
    /// cannot be watched: it is then placed without a key.
    fn wait_for_request(&mut self, conn: Connection, deadline: Instant, watched: bool) -> Result<(), Connection> {
        let token = self.next_token;
        match self.watch(&conn, token, watched) {
            Ok(()) => {
                self.add(token, Waiting { conn, deadline, stage: Stage::RequestHead, keyed: true, header: Vec::new() });
                Ok(())
            }
            Err(_) => Err(conn),
        }
    }

    fn watch(&mut self, conn: &Connection, token: u64, modify: bool) -> std::io::Result<()> {
        if self.epoll.is_none() {
            self.epoll = Some(sys::epoll_create()?);
        }
        let epoll = self.epoll.as_ref().map(|fd| fd.as_fd()).ok_or_else(|| std::io::Error::from_raw_os_error(sys::errno::EBADF))?;
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
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.iter().filter_map(|q| q.front().map(|(at, _)| *at)).min()
    }

    /// Reads what the connections with news (at most `MAX_NEWS_PER_TURN`)
    /// were waiting for, and gives up on those past their deadline. A
    /// connection whose PROXY header was read goes on to its request head
    /// when its listener has that step (it stays watched); every connection
    /// done with the stage is put in `passed`, and is no longer watched.
    /// What was closed or given up on is counted. An error says epoll could
    /// not be asked for news this turn (deadlines were still kept).
    pub fn process(&mut self, now: Instant, passed: &mut Vec<Passed>) -> Option<std::io::Error> {
        if self.waiting.is_empty() {
            return None;
        }
        let mut failed = None;
        let mut news = std::mem::take(&mut self.news);
        news.clear();
        if let Some(epoll) = &self.epoll {
            let events = self.epoll_events.get_or_insert_with(|| sys::EpollEvents::with_capacity(MAX_NEWS_PER_TURN));
            if let Err(e) = sys::epoll_ready_into(epoll.as_fd(), events, &mut news) {
                failed = Some(e);
            }
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; proxy_header::PEEK_LEN.max(crate::routing::http_key::PEEK_LEN)];
        }
        let mut buf = std::mem::take(&mut self.buf);
        for token in news.iter().copied() {
            let Some(w) = self.waiting.get_mut(&token) else { continue };
            let step = match (w.stage, &self.sticky_http) {
                (Stage::ProxyHeader, _) => read_header(w, &mut buf),
                (Stage::RequestHead, Some(sticky)) => read_request_key(&mut w.conn, &mut buf, &sticky.rule),
                (Stage::RequestHead, None) => Step::Done,
            };
            let stage = w.stage;
            match step {
                Step::Wait => {}
                Step::Done => {
                    let next = match (&self.sticky_http, stage) {
                        (Some(sticky), Stage::ProxyHeader) if w.keyed => Some(sticky.timeout),
                        _ => None,
                    };
                    let Some(w) = self.take(token, next.is_some()) else { continue };
                    let conn = match next {
                        // On to the request-head step, without watching it anew.
                        Some(timeout) => match self.wait_for_request(w.conn, now + timeout, true) {
                            Ok(()) => continue,
                            Err(conn) => conn,
                        },
                        None => w.conn,
                    };
                    passed.push(Passed { conn, proxied: stage == Stage::ProxyHeader });
                }
                Step::Close => {
                    if let Some(w) = self.take(token, false) {
                        // A malformed PROXY header, or a client that hung up
                        // before sending one; one that hung up before its
                        // first request is not counted.
                        if stage == Stage::ProxyHeader {
                            self.counts_mut(w.conn.listener).proxy_rejected += 1;
                        }
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
                let Some(mut w) = self.take(token, false) else { continue };
                let counts = self.counts_mut(w.conn.listener);
                counts.expired += 1;
                match stage {
                    // Closed here.
                    Stage::ProxyHeader => {
                        counts.proxy_rejected += 1;
                        rejections::reject("proxyHeader", || "a PROXY header not finished within the timeout".to_string());
                    }
                    // A request head that did not come in time: placed in
                    // turn, as before.
                    Stage::RequestHead => {
                        w.conn.key = None;
                        passed.push(Passed { conn: w.conn, proxied: false });
                    }
                }
            }
        }
        failed
    }

    /// Connections of a listener that closed go with it, and its counts.
    pub fn forget_listener(&mut self, listener: ListenerId) {
        self.counts.remove(&listener);
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
