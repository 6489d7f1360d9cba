//! One listener the primary shares among workers: its socket, its
//! scheduling policy (who takes from it, chosen once, and owning whatever
//! else its kind of routing needs), and the one queue of connections the
//! primary holds for it. Only its own methods change it.
//!
//! The event loop asks it one thing before accepting ([`ListenHandle::should_accept`]),
//! and puts connections in its queue one way ([`ListenHandle::hold`], where
//! [`Held`] says why and so where).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::channel::wire::ListenerId;
use crate::dispatcher::events::NONBLOCKING_FAILED;
use crate::dispatcher::peer::{Connection, Peer, WorkerId};
use crate::listen::{BoundSocket, SocketType};
use crate::routing::policy::{Ask, Load, Mode, Pick, Policy};
use crate::sys::{self, LocalAddr};

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
    /// The listening socket every listener has (under SCHED_REUSEPORT the
    /// first of the policy's own).
    socket: BoundSocket,
    /// Who gets what, chosen once; it owns whatever else its kind of
    /// routing needs (sockets, claimed sessions).
    policy: Box<dyn Policy>,
    /// Accepted connections not yet given to a worker (no credit anywhere, no
    /// worker at all, or given back by a worker that refused or died), oldest
    /// first, but for those put ahead (`Held`). Only `hold` adds to it.
    pending: VecDeque<Connection>,
    /// After `EMFILE`/`ENFILE`, accepting waits until then instead of spinning.
    paused_until: Option<Instant>,
    accepted_total: u64,
    /// Connections closed because they waited longer than the queue timeout.
    expired_total: u64,
    /// Per member: connections it holds open (taken, and not yet reported
    /// closed) and its server's `maxConnections`, from its close reports.
    open: HashMap<WorkerId, (u64, Option<u32>)>,
}

/// Why a connection is held in a listener's queue, which says where in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Accepted, or through its header stage, with nobody to take it yet:
    /// behind the others.
    Arrived,
    /// Through its PROXY header, which named its client: behind the others,
    /// and a keyed policy places it by that client.
    Proxied,
    /// Accepted while some member is paced and none could take it: ahead of
    /// the others, newest first (see [`Take::Hold`]).
    Paced,
    /// Sent to a worker that never took it (the worker died, or its channel
    /// gave it back) or handed back by a retiring worker: ahead of the others.
    Returned,
    /// Refused by worker `by` (its server closing, `maxConnections`): ahead
    /// of the others, and not offered to `by` again until every member has
    /// refused it.
    Refused { by: WorkerId, at: Instant },
}

/// What accepting from a listener now is for ([`ListenHandle::should_accept`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// To give to the member picked.
    Deal(Pick),
    /// To hold: while no worker listens (`Held::Arrived`), or, newest first,
    /// while a member is paced, i.e. its event loop is saturated
    /// (docs/DESIGN.md §13), and none can take it (`Held::Paced`). Some
    /// paced, not every one: a worker below the threshold whose window is
    /// full for the moment (between two acknowledgements) must not send
    /// newcomers to the back of the kernel's first-come queue. Under
    /// overload the queue only grows, and a first-come order would make every
    /// newcomer wait for all of it, while the longest-waiting clients are the
    /// likeliest to have given up: so the newest is served first (adaptive
    /// LIFO, as Facebook's servers and Dropbox's proxy do under overload).
    /// Otherwise the kernel's queue holds them (§3.4).
    Hold(Held),
}

impl ListenHandle {
    /// A handle for a freshly bound socket, with the policy `mode` names. A
    /// datagram socket always gets the shared policy, whatever `mode` asks,
    /// as in node:cluster.
    pub fn new(id: ListenerId, key: String, mode: Mode, socket: BoundSocket, socket_type: SocketType, stall: Duration) -> Self {
        let mode = match socket_type {
            SocketType::Datagram => Mode::Shared,
            SocketType::Stream => mode,
        };
        Self::with_policy(id, key, mode.policy(stall), socket, socket_type)
    }

    /// A handle whose policy was made with sockets of its own
    /// (SCHED_REUSEPORT: `reuseport::ReusePort`).
    pub fn with_policy(id: ListenerId, key: String, policy: Box<dyn Policy>, socket: BoundSocket, socket_type: SocketType) -> Self {
        ListenHandle {
            id,
            key,
            socket_type,
            socket,
            policy,
            pending: VecDeque::new(),
            paused_until: None,
            accepted_total: 0,
            expired_total: 0,
            open: HashMap::new(),
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

    /// Whether who gets a connection depends on its client or session.
    pub fn is_keyed(&self) -> bool {
        self.policy.keyed()
    }

    /// The policy's name, as `cluster.stats()` shows it.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Whether each member gets its own copy of a listening socket (the
    /// primary then only accepts from one nobody accepts from).
    pub fn shares_socket(&self) -> bool {
        !self.policy.deals_new_connections()
    }

    /// A stream socket whose members accept from it themselves: they may have
    /// made its file description blocking.
    pub fn is_shared_stream(&self) -> bool {
        self.shares_socket() && self.socket_type == SocketType::Stream
    }

    /// How many listening sockets it has: 1, or under SCHED_REUSEPORT one per slot.
    pub fn socket_count(&self) -> usize {
        self.policy.socket_count()
    }

    /// Whether its sockets hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`; SCHED_REUSEPORT only).
    pub fn defers_accept(&self) -> bool {
        self.policy.defers_accept()
    }

    /// The copy of a listening socket a member that accepts by itself gets:
    /// the shared one, or under SCHED_REUSEPORT its own slot's.
    pub fn socket_for(&mut self, worker: WorkerId) -> std::io::Result<std::os::fd::OwnedFd> {
        self.policy.socket_for(worker, self.socket.fd.as_fd())
    }

    /// Calls `f` with each socket the primary accepts from, to watch it.
    pub fn accept_fds<'a>(&'a self, f: &mut dyn FnMut(BorrowedFd<'a>)) {
        self.policy.accept_fds(self.socket.fd.as_fd(), f)
    }

    /// The workers in rotation, in order.
    pub fn members(&self) -> Vec<WorkerId> {
        self.policy.members()
    }

    pub fn is_empty(&self) -> bool {
        self.policy.is_empty()
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
    /// connections after its last worker died. `warn` hears of a socket of
    /// the worker's own that could not be made ready for the primary.
    pub fn remove(&mut self, worker: WorkerId, warn: &mut dyn FnMut(&'static str, String)) -> bool {
        self.open.remove(&worker);
        if let Err(e) = self.policy.release(worker) {
            warn(NONBLOCKING_FAILED, format!("cannot make a SO_REUSEPORT socket non-blocking: {e}"));
        }
        self.policy.remove(worker)
    }

    /// `worker` owns the session whose key is `key`: connections with that
    /// key go to it while it is a member (sticky routing only).
    pub fn claim(&mut self, key: u64, worker: WorkerId) {
        self.policy.claim(key, worker);
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

    /// Whether the primary should accept one connection from this listener
    /// now, and what for (`None`: leave it in the kernel's queue,
    /// docs/DESIGN.md §3.4). Asked before watching its sockets and before
    /// every accept. Not while paused, for a datagram socket, while
    /// `stage_full` (its header stage holds all it may), or where members
    /// accept by themselves from every socket; with no member, to hold up to
    /// `queue_limit`; else to deal to the member picked, or to hold while
    /// some member is paced (`Take::Hold`).
    pub fn should_accept(&self, ask: &Ask<'_>, queue_limit: usize, stage_full: bool) -> Option<Take> {
        if stage_full || self.paused_until.is_some() || self.socket_type == SocketType::Datagram || !self.policy.primary_accepts() {
            return None;
        }
        let room = self.pending.len() < queue_limit;
        if self.policy.is_empty() {
            return room.then_some(Take::Hold(Held::Arrived));
        }
        // A keyed policy accepts before it knows who gets the connection, and
        // may hold it for its client's worker: bounded like a held queue.
        if self.policy.keyed() && !room {
            return None;
        }
        if let Some(pick) = self.policy.pick(ask, &[]) {
            return Some(Take::Deal(pick));
        }
        let paced = self.policy.deals_new_connections() && room && self.open.keys().any(|&id| (ask.load)(id).paced);
        paced.then_some(Take::Hold(Held::Paced))
    }

    /// Accepts one connection. A keyed policy learns its client's key now (a
    /// unix socket's clients have no address: they go by turn).
    pub fn accept(&mut self) -> std::io::Result<Connection> {
        let fd = self.policy.accept(self.socket.fd.as_fd())?;
        self.accepted_total += 1;
        let mut conn = Connection::new(self.id, fd, Instant::now());
        if self.policy.keyed() {
            if let Ok(LocalAddr::Inet(peer)) = sys::peer_addr(conn.fd.as_fd()) {
                conn.key = self.policy.client_key(peer.ip());
            }
        }
        Ok(conn)
    }

    /// Who should get `conn` now: by its client or session for a keyed policy.
    fn pick_for(&self, ask: &Ask<'_>, conn: &Connection) -> Option<Pick> {
        self.policy.pick_for(ask, &conn.offers.refused_by, conn.key)
    }

    /// How long a member's loop may be busy with one of this listener's
    /// connections unread before it is taken back (`Policy::stuck_after`).
    pub fn stuck_after(&self, busy_threshold: Duration) -> Option<Duration> {
        self.policy.stuck_after(busy_threshold)
    }

    /// Whether a member other than `from` could take a connection now and
    /// is keeping up (credit, loop not busy, nothing left unread too long):
    /// only then is a connection worth taking back from `from`.
    pub fn could_take_elsewhere(&self, ask: &Ask<'_>, from: WorkerId) -> bool {
        self.policy.members().into_iter().filter(|m| *m != from).any(|m| (ask.load)(m).keeps_up())
    }

    /// Whether every member has refused a connection, counting a refusal by
    /// `by` now.
    pub fn refused_by_every_member(&self, offers: &crate::routing::policy::Offers, by: WorkerId) -> bool {
        let mut all = offers.refused_by.clone();
        all.push(by);
        !self.is_empty() && self.policy.all_in(&all)
    }

    /// Fewest connections open on a member that could take one now and
    /// keeps up (as `could_take_elsewhere` judges): how good this listener's
    /// best member is, to compare with another dispatcher thread's
    /// (docs/DESIGN.md §16). `None`: no member could.
    pub fn least_open_keeping_up(&self, ask: &Ask<'_>) -> Option<u64> {
        self.open.iter().filter(|(m, _)| (ask.load)(**m).keeps_up()).map(|(_, (open, _))| *open).min()
    }

    /// How far behind the least-behind member with credit is: how long its
    /// loop has been busy or its oldest connection left unread, whichever
    /// is longer; to compare with another dispatcher thread's when no
    /// member keeps up (docs/DESIGN.md §16). `None`: no member has credit.
    pub fn least_lag(&self, ask: &Ask<'_>) -> Option<Duration> {
        self.policy
            .members()
            .into_iter()
            .map(|m| (ask.load)(m))
            .filter(|load| !load.gone && load.has_credit())
            .map(|load| {
                let unread = load.unread_since.map_or(Duration::ZERO, |at| ask.now.saturating_duration_since(at));
                unread.max(load.busy_for)
            })
            .min()
    }

    /// Gives `conn` to the member `pick` names.
    fn give(&mut self, conn: Connection, pick: Pick, peers: &mut HashMap<WorkerId, Peer>) {
        let worker = self.policy.commit(pick, &conn.offers.refused_by);
        if let Some(key) = conn.key {
            self.policy.placed(key);
        }
        peers.get_mut(&worker).expect("members are live peers").push(conn);
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
            Some(pick) => self.give(conn, pick, peers),
            None => self.hold(conn, Held::Arrived),
        }
    }

    /// Holds a connection in the queue, where `why` says. The one way into
    /// it: what is held is given out by `deal_pending`, or closes there
    /// after the queue timeout.
    pub fn hold(&mut self, mut conn: Connection, why: Held) {
        match why {
            Held::Arrived => self.pending.push_back(conn),
            Held::Proxied => {
                if let Some(key) = conn.source.and_then(|source| self.policy.client_key(source.ip())) {
                    conn.key = Some(key);
                }
                self.pending.push_back(conn);
            }
            Held::Paced | Held::Returned => self.pending.push_front(conn),
            Held::Refused { by, at } => {
                self.policy.refused(&mut conn.offers, by, at);
                self.pending.push_front(conn);
            }
        }
    }

    /// Everything held, oldest first, to be held elsewhere: another
    /// dispatcher thread's handle for the same socket (docs/DESIGN.md §16).
    pub fn take_pending(&mut self) -> Vec<crate::dispatcher::peer::Connection> {
        self.pending.drain(..).collect()
    }

    /// A copy of its listening socket, for another dispatcher thread; the
    /// path of a unix socket stays this one's to remove.
    pub fn copy_socket(&self) -> std::io::Result<BoundSocket> {
        let fd = sys::dup_cloexec(self.socket.fd.as_fd())?;
        Ok(BoundSocket { fd, local: self.socket.local.clone(), owns_path: self.socket.owns_path })
    }

    /// Leaves the removal of its unix socket's path to whoever holds the
    /// copy (`copy_socket`): the last dispatcher thread to close it.
    pub fn disown_path(&mut self) {
        self.socket.owns_path = false;
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
                Some(pick) => self.give(conn, pick, peers),
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

    /// Called when the handle is dropped for good: a unix socket path is
    /// removed, as libuv does when a pipe server closes.
    pub fn close(self) {
        if let LocalAddr::Unix(path) = &self.socket.local {
            if self.socket.owns_path {
                sys::unlink(path);
            }
        }
        // The sockets and every pending connection close as they drop.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const STALL: Duration = Duration::from_millis(50);
    const LIMIT: usize = 2;

    fn handle(mode: Mode, socket_type: SocketType) -> ListenHandle {
        let fd = sys::tcp_listener((Ipv4Addr::LOCALHOST, 0).into(), false, false, 16).unwrap();
        let local = sys::local_addr(fd.as_fd()).unwrap();
        ListenHandle::new(1, "k".into(), mode, BoundSocket { fd, local, owns_path: false }, socket_type, STALL)
    }

    fn conn() -> Connection {
        let fd = sys::tcp_listener((Ipv4Addr::LOCALHOST, 0).into(), false, false, 1).unwrap();
        Connection::new(1, fd, Instant::now())
    }

    /// `should_accept` with every member loaded as `load`.
    fn ask(h: &ListenHandle, load: Load, stage_full: bool) -> Option<Take> {
        let f = |_: WorkerId| load;
        h.should_accept(&Ask { load: &f, now: Instant::now() }, LIMIT, stage_full)
    }

    #[test]
    fn one_question_before_accepting() {
        let free = Load::free(1);
        let full_paced = Load { paced: true, ..Load::full_since(Instant::now()) };
        let deal = |t: Option<Take>| matches!(t, Some(Take::Deal(_)));

        // No member: hold, up to the queue limit, whatever the policy.
        for mode in [Mode::RoundRobin, Mode::Shared, Mode::Sticky] {
            let mut h = handle(mode, SocketType::Stream);
            assert_eq!(ask(&h, free, false), Some(Take::Hold(Held::Arrived)), "{mode:?}");
            assert_eq!(ask(&h, free, true), None, "{mode:?}: its header stage is full");
            h.hold(conn(), Held::Arrived);
            h.hold(conn(), Held::Returned);
            assert_eq!(ask(&h, free, false), None, "{mode:?}: the held queue is full");
        }

        let mut rr = handle(Mode::RoundRobin, SocketType::Stream);
        rr.add(7);
        assert!(deal(ask(&rr, free, false)));
        assert_eq!(ask(&rr, Load::full_since(Instant::now()), false), None, "nobody can take it: the kernel holds it");
        assert_eq!(ask(&rr, full_paced, false), Some(Take::Hold(Held::Paced)), "held newest first while a member is paced");
        rr.pause(Instant::now() + Duration::from_secs(1));
        assert_eq!(ask(&rr, free, false), None, "paused");

        // Members accept by themselves from the one shared socket.
        let mut shared = handle(Mode::Shared, SocketType::Stream);
        shared.add(7);
        assert_eq!(ask(&shared, free, false), None);
        // A datagram socket is never accepted from.
        assert_eq!(ask(&handle(Mode::RoundRobin, SocketType::Datagram), free, false), None);

        // A keyed policy stops at the queue limit even with credit.
        let mut sticky = handle(Mode::Sticky, SocketType::Stream);
        sticky.add(7);
        assert!(deal(ask(&sticky, free, false)));
        sticky.hold(conn(), Held::Arrived);
        sticky.hold(conn(), Held::Arrived);
        assert_eq!(ask(&sticky, free, false), None);
    }

    #[test]
    fn where_a_held_connection_goes_in_the_queue() {
        let mut h = handle(Mode::RoundRobin, SocketType::Stream);
        h.add(7);
        h.add(8);
        let at = Instant::now();
        let tagged = |i: u64| {
            let mut c = conn();
            c.key = Some(i);
            c
        };
        h.hold(tagged(1), Held::Arrived);
        h.hold(tagged(2), Held::Paced);
        h.hold(tagged(3), Held::Arrived);
        h.hold(tagged(4), Held::Refused { by: 7, at });
        h.hold(tagged(5), Held::Returned);
        let order: Vec<u64> = h.pending.iter().filter_map(|c| c.key).collect();
        assert_eq!(order, vec![5, 4, 2, 1, 3]);
        assert_eq!(h.pending[1].offers.refused_by, vec![7], "not offered to the one that refused it");
    }
}
