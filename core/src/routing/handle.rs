//! One listening socket the primary shares among workers: the socket, its
//! scheduling policy (who takes from it, chosen once), and the connections
//! the primary holds for it. Only its own methods change it.

use std::collections::{HashMap, VecDeque};

use crate::routing::sticky::Claims;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::listen::{BoundSocket, SocketType};
use crate::dispatcher::peer::{Connection, Peer, WorkerId};
use crate::routing::policy::{Ask, Load, Mode, Pick, Policy};
use crate::routing::reuseport::ReusePortSlots;
use crate::sys::{self, LocalAddr};
use crate::channel::wire::ListenerId;

/// Runs `f` with what a policy is told about `peers` at `now`. A worker
/// without a channel any more counts as gone.
pub fn with_ask<R>(peers: &HashMap<WorkerId, Peer>, window: usize, now: Instant, f: impl FnOnce(&Ask<'_>) -> R) -> R {
    let load = |id: WorkerId| peers.get(&id).map_or(Load::gone(), |p| p.load(window));
    f(&Ask { load: &load, now })
}

#[derive(Debug)]
pub struct ListenHandle {
    id: ListenerId,
    key: String,
    /// Datagram sockets are only ever shared: nothing to accept, even while
    /// no worker reads them (datagrams wait in the socket's buffer then).
    socket_type: SocketType,
    socket: BoundSocket,
    policy: Box<dyn Policy>,
    /// Accepted connections not yet given to a worker (no credit anywhere, no
    /// worker at all, or given back by a worker that refused or died), oldest
    /// first.
    pending: VecDeque<Connection>,
    /// After `EMFILE`/`ENFILE`, accepting waits until then instead of spinning.
    paused_until: Option<Instant>,
    accepted_total: u64,
    /// Connections closed because they waited longer than the queue timeout.
    expired_total: u64,
    /// Per member: connections it holds open (taken, and not yet reported
    /// closed) and its server's `maxConnections`, from its close reports.
    open: HashMap<WorkerId, (u64, Option<u32>)>,
    /// Connections closed for a missing, malformed or late PROXY header, or
    /// from a peer not trusted to send one.
    proxy_rejected_total: u64,
    /// SCHED_REUSEPORT: every member's own socket (`socket` is the first).
    reuse: Option<ReusePortSlots>,
    /// Sticky keys (session ids) members said are theirs.
    claims: Claims,
    /// Connections whose PROXY header or first request head did not come
    /// within the stage's timeout.
    stage_expired_total: u64,
}

/// Most sticky keys remembered per listener; past that the least recently
/// used is forgotten (its session then goes where its key hashes, which its
/// owner may not be): a bound on memory, not a working-set size.
pub const MAX_CLAIMS: usize = 1 << 20;

impl ListenHandle {
    /// A handle for a freshly bound socket. A datagram socket always gets the
    /// shared policy, whatever `mode` asks, as in node:cluster.
    pub fn new(id: ListenerId, key: String, mode: Mode, socket: BoundSocket, socket_type: SocketType, stall: Duration) -> Self {
        let mode = match socket_type {
            SocketType::Datagram => Mode::Shared,
            SocketType::Stream => mode,
        };
        ListenHandle {
            id,
            key,
            socket_type,
            socket,
            policy: mode.policy(stall),
            pending: VecDeque::new(),
            paused_until: None,
            accepted_total: 0,
            expired_total: 0,
            open: HashMap::new(),
            proxy_rejected_total: 0,
            reuse: None,
            claims: Claims::new(MAX_CLAIMS),
            stage_expired_total: 0,
        }
    }

    /// Whether who gets a connection depends on its client or session.
    pub fn is_keyed(&self) -> bool {
        self.policy.keyed()
    }

    /// `worker` owns the session whose key is `key`: connections with that
    /// key go to it while it is a member.
    pub fn claim(&mut self, key: u64, worker: WorkerId) {
        if !self.policy.keyed() || !self.open.contains_key(&worker) {
            return;
        }
        self.claims.claim(key, worker);
    }

    pub fn stage_expired_total(&self) -> u64 {
        self.stage_expired_total
    }

    pub fn count_stage_expired(&mut self) {
        self.stage_expired_total += 1;
    }

    /// SCHED_REUSEPORT: a handle whose members get sockets of their own;
    /// `socket` was bound with `SO_REUSEPORT` and is the first of them.
    /// `defer_accept`: the server's clients speak first (reuseport.rs).
    pub fn with_reuse_port(mut self, ipv6_only: bool, backlog: i32, defer_accept: bool) -> std::io::Result<Self> {
        let LocalAddr::Inet(addr) = self.socket.local else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        let first = sys::dup_cloexec(self.socket.fd.as_fd())?;
        self.reuse = Some(ReusePortSlots::new(first, addr, ipv6_only, backlog, defer_accept)?);
        Ok(self)
    }

    /// Whether its sockets hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`; SCHED_REUSEPORT only).
    pub fn defers_accept(&self) -> bool {
        self.reuse.as_ref().is_some_and(ReusePortSlots::defers_accept)
    }

    /// How many sockets it has: 1, or under SCHED_REUSEPORT one per slot.
    pub fn socket_count(&self) -> usize {
        self.reuse.as_ref().map_or(1, ReusePortSlots::len)
    }

    /// The copy of the listening socket a member that accepts by itself gets:
    /// the shared one, or under SCHED_REUSEPORT its own slot's.
    pub fn socket_for(&mut self, worker: WorkerId) -> std::io::Result<std::os::fd::OwnedFd> {
        match &mut self.reuse {
            Some(reuse) => reuse.assign(worker),
            None => sys::dup_cloexec(self.socket.fd.as_fd()),
        }
    }

    /// The sockets the primary watches for connections to accept.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        match &self.reuse {
            Some(reuse) => reuse.orphans().collect(),
            None => vec![self.socket.fd.as_fd()],
        }
    }

    /// Whether the primary accepts for this handle at all: under
    /// SCHED_REUSEPORT only while some socket has no worker.
    fn accepts_for_someone(&self) -> bool {
        self.reuse.as_ref().is_none_or(ReusePortSlots::has_orphans)
    }

    pub fn proxy_rejected_total(&self) -> u64 {
        self.proxy_rejected_total
    }

    pub fn count_proxy_rejected(&mut self) {
        self.proxy_rejected_total += 1;
    }

    /// Queues a connection whose PROXY header was read: a policy that places
    /// connections by client places it by the client the header named.
    pub fn push_proxied(&mut self, mut conn: Connection) {
        if let (true, Some(source)) = (self.policy.keyed(), conn.source) {
            conn.key = Some(crate::routing::sticky::client_key(source.ip()));
        }
        self.pending.push_back(conn);
    }

    /// The policy's name, as `cluster.stats()` shows it.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// How many connections each member holds open, and its cap, by worker id.
    pub fn open_counts(&self) -> Vec<(WorkerId, u64, Option<u32>)> {
        let mut counts: Vec<(WorkerId, u64, Option<u32>)> = self
            .policy
            .members()
            .into_iter()
            .map(|id| {
                let (open, cap) = self.open.get(&id).copied().unwrap_or((0, None));
                (id, open, cap)
            })
            .collect();
        counts.sort_unstable();
        counts
    }

    /// `worker` took one of this listener's connections.
    pub fn opened(&mut self, worker: WorkerId) {
        // Only members have an entry (`add`): a worker out of the rotation
        // is counted no more.
        if let Some(entry) = self.open.get_mut(&worker) {
            entry.0 += 1;
            self.policy.set_open(worker, entry.0, entry.1);
        }
    }

    /// `worker` reports `closed` more of its connections closed, and its
    /// server's `maxConnections` (0: none).
    pub fn closed(&mut self, worker: WorkerId, closed: u32, cap: u32) {
        if let Some(entry) = self.open.get_mut(&worker) {
            entry.0 = entry.0.saturating_sub(u64::from(closed));
            entry.1 = (cap > 0).then_some(cap);
            self.policy.set_open(worker, entry.0, entry.1);
        }
    }

    /// Who should get `conn` now: by its client for a keyed policy.
    fn pick_for(&self, ask: &Ask<'_>, conn: &Connection) -> Option<Pick> {
        let refused_by = &conn.offers.refused_by;
        match conn.key {
            Some(key) => {
                if let Some(owner) = self.claims.owner(key) {
                    if let Some(decided) = self.policy.pick_member(ask, refused_by, owner) {
                        return decided;
                    }
                }
                self.policy.pick_keyed(ask, refused_by, key)
            }
            None => self.policy.pick(ask, refused_by),
        }
    }

    /// Gives a connection just accepted for `pick` to its worker. A policy
    /// that places connections by client picks again, now that the client
    /// is known, and holds it if that client's worker is to be waited for.
    pub fn deal_new(&mut self, conn: Connection, pick: Pick, peers: &mut HashMap<WorkerId, Peer>, window: usize, now: Instant) {
        let pick = match conn.key {
            Some(_) => with_ask(peers, window, now, |ask| self.pick_for(ask, &conn)),
            None => Some(pick),
        };
        match pick {
            Some(pick) => {
                let worker = self.policy.commit(pick, &[]);
                self.claims.used(conn.key);
                peers.get_mut(&worker).expect("members are live peers").push(conn);
            }
            None => self.pending.push_back(conn),
        }
    }

    pub fn id(&self) -> ListenerId {
        self.id
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.fd.as_fd()
    }

    pub fn local(&self) -> &LocalAddr {
        &self.socket.local
    }

    /// Whether each member gets its own copy of the listening socket (the
    /// primary then only accepts while nobody listens).
    pub fn shares_socket(&self) -> bool {
        !self.policy.deals_new_connections()
    }

    /// A stream socket whose members accept from it themselves: they may have
    /// made its file description blocking.
    pub fn is_shared_stream(&self) -> bool {
        self.shares_socket() && self.socket_type == SocketType::Stream
    }

    /// The workers in rotation, in order.
    pub fn members(&self) -> Vec<WorkerId> {
        self.policy.members()
    }

    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted_total
    }

    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }

    /// Adds a worker. Returns false if it already was a member.
    pub fn add(&mut self, worker: WorkerId) -> bool {
        let added = self.policy.add(worker);
        if added {
            self.open.insert(worker, (0, None));
        }
        added
    }

    /// Takes a worker out. Returns false if it was not a member. The owner
    /// decides what an empty handle means: closed after a deliberate close by
    /// its last worker (as Node's `remove` does), kept open and queueing
    /// connections after its last worker died.
    pub fn remove(&mut self, worker: WorkerId) -> bool {
        self.open.remove(&worker);
        // Its sessions went with it.
        self.claims.forget_worker(worker);
        if let Some(reuse) = &mut self.reuse {
            reuse.release(worker);
        }
        self.policy.remove(worker)
    }

    /// Stops accepting until `until` (the process is out of descriptors).
    pub fn pause(&mut self, until: Instant) {
        self.paused_until = Some(until);
    }

    /// Ends a pause whose time has come.
    pub fn resume_if_due(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|t| t <= now) {
            self.paused_until = None;
        }
    }

    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Who should get a new connection now (none refused it yet).
    pub fn pick_new(&self, ask: &Ask<'_>) -> Option<Pick> {
        self.policy.pick(ask, &[])
    }

    /// Whether the primary should accept from this socket now: to deal out
    /// (its policy deals new connections and someone can take one), or to
    /// hold connections while no worker listens on it, up to `queue_limit`.
    pub fn wants_accept(&self, ask: &Ask<'_>, queue_limit: usize) -> bool {
        if self.paused_until.is_some() || self.socket_type == SocketType::Datagram || !self.accepts_for_someone() {
            return false;
        }
        if self.is_empty() {
            return self.pending.len() < queue_limit;
        }
        // A keyed policy accepts before it knows who gets the connection, and
        // may hold it for its client's worker: bounded like a held queue.
        if self.policy.keyed() && self.pending.len() >= queue_limit {
            return false;
        }
        (self.policy.deals_new_connections() || self.reuse.is_some())
            && (self.pick_new(ask).is_some() || self.holds_while_paced(ask, queue_limit))
    }

    /// Whether a connection accepted now, that no worker can take, is held
    /// here newest first (`hold_paced`): some member is paced, i.e. its
    /// event loop is saturated (docs/DESIGN.md §13), and the queue has room.
    /// Otherwise the kernel's queue holds it (§3.4). Some, not every: a
    /// worker below the threshold whose window is full for the moment
    /// (between two acknowledgements) must not send newcomers to the back of
    /// the kernel's first-come queue; once it acknowledges, it is dealt the
    /// newest held connection like any other.
    pub fn holds_while_paced(&self, ask: &Ask<'_>, queue_limit: usize) -> bool {
        self.policy.deals_new_connections()
            && self.pending.len() < queue_limit
            && self.open.keys().any(|&id| (ask.load)(id).paced)
    }

    /// Holds a connection accepted while a worker is paced and none can take
    /// it, ahead of those held before it. Under overload this queue only grows, and a
    /// first-come order would make every newcomer wait for all of it, while
    /// the longest-waiting clients are the likeliest to have given up: so the
    /// newest is served first (adaptive LIFO, as Facebook's servers and
    /// Dropbox's proxy do under overload). The kernel's queue, which is
    /// first-come, holds nothing meanwhile: the primary drains it. A
    /// connection held longer than the queue timeout closes
    /// (`deal_pending`). Outside overload nothing is held, and order is
    /// first-come as before.
    pub fn hold_paced(&mut self, conn: Connection) {
        self.pending.push_front(conn);
    }

    /// Whether this wake-up should accept at all: not while paused or for a
    /// datagram socket, and for a socket whose members accept by themselves,
    /// only to hold connections while it has none.
    pub fn accepts_now(&self) -> bool {
        self.paused_until.is_none()
            && self.socket_type == SocketType::Stream
            && self.accepts_for_someone()
            && (self.is_empty() || self.policy.deals_new_connections() || self.reuse.is_some())
    }

    /// Whether some queued connection could be given out now.
    pub fn pending_can_move(&self, ask: &Ask<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        for c in self.pending.iter().filter(|c| c.offers.is_due(ask.now)) {
            if self.pick_for(ask, c).is_some() {
                return true;
            }
            // One that any member could take found none with credit: no
            // later one will (see `deal_pending`).
            if c.key.is_none() && c.offers.refused_by.is_empty() {
                return false;
            }
        }
        false
    }

    /// The next time a queued connection becomes due for another offer, or
    /// runs out of time (`timeout` after it was accepted). Connections already
    /// due wait for credit, which a worker's reply brings: no wake-up for them.
    pub fn next_pending_deadline(&self, timeout: Duration, now: Instant) -> Option<Instant> {
        self.pending
            .iter()
            .flat_map(|c| {
                // An unbounded timeout (Duration::MAX) has no deadline.
                [c.offers.retry_at.filter(|at| *at > now), c.since.checked_add(timeout)]
            })
            .flatten()
            .min()
    }

    /// Gives out queued connections, oldest first. One waits for a worker
    /// that has not refused it, or for its next round of offers, and keeps its
    /// place; one that waited `timeout` closes here.
    pub fn deal_pending(&mut self, peers: &mut HashMap<WorkerId, Peer>, window: usize, now: Instant, timeout: Duration) {
        if self.pending.is_empty() {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.pending.len());
        // Once a connection that any member could take found none with
        // credit, none of the later ones can find one either: they are only
        // checked for their timeout. Under overload the queue holds up to
        // `queue_limit` connections and this runs at every dispatcher turn.
        let mut no_credit = false;
        for mut conn in std::mem::take(&mut self.pending) {
            if now.saturating_duration_since(conn.since) >= timeout {
                self.expired_total += 1;
                continue;
            }
            if no_credit {
                kept.push_back(conn);
                continue;
            }
            self.policy.new_round_if_refused_by_all(&mut conn.offers, now);
            let pick = if self.is_empty() || !conn.offers.is_due(now) {
                None
            } else {
                with_ask(peers, window, now, |ask| self.pick_for(ask, &conn))
            };
            match pick {
                Some(pick) => {
                    let worker = self.policy.commit(pick, &conn.offers.refused_by);
                    self.claims.used(conn.key);
                    peers.get_mut(&worker).expect("members are live peers").push(conn);
                }
                None => {
                    no_credit = conn.key.is_none()
                        && conn.offers.refused_by.is_empty()
                        && conn.offers.is_due(now)
                        && !self.is_empty();
                    kept.push_back(conn);
                }
            }
        }
        debug_assert!(self.pending.is_empty(), "nothing is queued while the queue is being dealt");
        self.pending = kept;
    }

    /// Puts back a connection `worker` refused, ahead of later ones; once
    /// every member has refused it, it waits for its next round.
    pub fn requeue_refused(&mut self, mut conn: Connection, worker: WorkerId, now: Instant) {
        self.policy.refused(&mut conn.offers, worker, now);
        self.pending.push_front(conn);
    }

    pub fn push_pending_front(&mut self, conn: Connection) {
        self.pending.push_front(conn);
    }

    pub fn push_pending_back(&mut self, conn: Connection) {
        self.pending.push_back(conn);
    }

    pub fn accept(&mut self) -> std::io::Result<Connection> {
        let fd = match &self.reuse {
            Some(reuse) => reuse.accept()?,
            None => sys::accept(self.socket.fd.as_fd())?,
        };
        self.accepted_total += 1;
        let mut conn = Connection::new(self.id, fd, Instant::now());
        if self.policy.keyed() {
            // A unix socket's clients have no address: they go by turn.
            if let Ok(LocalAddr::Inet(peer)) = sys::peer_addr(conn.fd.as_fd()) {
                conn.key = Some(crate::routing::sticky::client_key(peer.ip()));
            }
        }
        Ok(conn)
    }

    /// Called when the handle is dropped for good: a unix socket path is
    /// removed, as libuv does when a pipe server closes.
    pub fn close(self) {
        if let LocalAddr::Unix(path) = &self.socket.local {
            if self.socket.owns_path {
                sys::unlink(path);
            }
        }
        // The socket and every pending connection close as they drop.
    }
}
