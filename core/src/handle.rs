//! One listening socket the primary shares among workers, and who takes from it.
//!
//! As in Node's `lib/internal/cluster/`, round-robin and shared handles have
//! the same shape (`add`, `remove`); they differ only in who accepts:
//! - `RoundRobin`: the primary accepts and deals connections out in turn;
//! - `Shared` (SCHED_NONE): each worker gets the listening fd and accepts itself.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::listener::{BoundSocket, SocketType};
use crate::peer::{Connection, Peer, WorkerId};
use crate::sys::{self, LocalAddr};
use crate::wire::ListenerId;

/// What deciding a turn needs to know: the credit window, how long a full
/// worker is waited for, and the time now.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    pub window: usize,
    pub stall: Duration,
    pub now: Instant,
}

/// Most turns a passed-over worker is owed. Debt is repaid as soon as the
/// worker has credit again, which keeps the long-run split exact; the cap keeps
/// a worker that recovers from a long stall from being handed a flood.
pub const MAX_DEBT: u32 = 64;

/// How long a connection that every member refused waits before it is
/// offered again: 5 ms, doubling per round, at most 200 ms. Prompt enough for a
/// worker at `maxConnections` that frees a slot, and never a busy loop.
fn retry_delay(rounds: u32) -> Duration {
    Duration::from_millis((5u64 << rounds.min(6)).min(200))
}

/// Whether a queued connection may be offered now.
pub fn is_due(conn: &Connection, now: Instant) -> bool {
    conn.retry_at.is_none_or(|at| at <= now)
}

/// A worker chosen by `next_in_turn`, to be confirmed with `commit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    idx: usize,
    /// Repays a turn this worker was owed, rather than taking the next turn.
    repays: bool,
}

/// A worker in a handle's rotation.
#[derive(Clone, Copy, Debug)]
struct Member {
    id: WorkerId,
    /// Turns it was passed over for while stalled, to be repaid first.
    owed: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    RoundRobin,
    Shared,
}

#[derive(Debug)]
pub struct ListenHandle {
    pub id: ListenerId,
    pub key: String,
    pub mode: Mode,
    /// Datagram sockets are only ever shared: nothing to accept, even while
    /// no worker reads them (datagrams wait in the socket's buffer then).
    pub socket_type: SocketType,
    socket: BoundSocket,
    /// Workers in rotation, in the order they joined.
    members: Vec<Member>,
    /// Index into `members` of the next worker to try.
    cursor: usize,
    /// Accepted connections not yet given to a worker (no credit anywhere, no
    /// worker at all, or given back by a worker that refused or died), oldest
    /// first.
    pending: VecDeque<Connection>,
    /// After `EMFILE`/`ENFILE`, accepting waits until then instead of spinning.
    pub paused_until: Option<Instant>,
    pub accepted_total: u64,
    /// Connections closed because they waited longer than the queue timeout.
    pub expired_total: u64,
}

impl ListenHandle {
    pub fn new(id: ListenerId, key: String, mode: Mode, socket_type: SocketType, socket: BoundSocket) -> Self {
        debug_assert!(socket_type == SocketType::Stream || mode == Mode::Shared, "datagrams are only shared");
        ListenHandle {
            id,
            key,
            mode,
            socket_type,
            socket,
            members: Vec::new(),
            cursor: 0,
            pending: VecDeque::new(),
            paused_until: None,
            accepted_total: 0,
            expired_total: 0,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.socket.fd.as_raw_fd()
    }

    pub fn local(&self) -> &LocalAddr {
        &self.socket.local
    }

    /// The workers in rotation, in order.
    pub fn members(&self) -> impl Iterator<Item = WorkerId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Connections accepted and not yet given to a worker.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Adds a worker to the rotation. Returns false if it already was a member.
    pub fn add(&mut self, worker: WorkerId) -> bool {
        if self.members.iter().any(|m| m.id == worker) {
            return false;
        }
        self.members.push(Member { id: worker, owed: 0 });
        true
    }

    /// Takes a worker out of the rotation. Returns false if it was not a member.
    /// The owner decides what an empty handle means: closed after a deliberate
    /// close by its last worker (as Node's `remove` does), kept open and
    /// queueing connections after its last worker died.
    pub fn remove(&mut self, worker: WorkerId) -> bool {
        let Some(idx) = self.members.iter().position(|m| m.id == worker) else {
            return false;
        };
        self.members.remove(idx);
        // Keep the cursor on the same next worker.
        if idx < self.cursor {
            self.cursor -= 1;
        }
        if self.cursor >= self.members.len() {
            self.cursor = 0;
        }
        true
    }

    /// The member whose turn it is: the next one not in `exclude` that has
    /// credit, passing over those that stalled (no credit for longer than
    /// `turn.stall`). `None` when the one in turn is full but not stalled: the
    /// dispatcher waits for it rather than skip it, so the rotation stays
    /// exact among healthy workers. A worker that was passed over is owed
    /// those turns and is repaid first, as soon as it has credit again.
    ///
    /// Nothing changes until `commit`, once a connection was really given, so
    /// an empty accept queue does not skew the rotation either.
    pub fn next_in_turn(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn, exclude: &[WorkerId]) -> Option<Pick> {
        let n = self.members.len();
        let eligible = |idx: usize| !exclude.contains(&self.members[idx].id);
        let has_credit = |idx: usize| peers.get(&self.members[idx].id).is_some_and(|p| p.has_credit(turn.window));
        let in_rotation = (0..n).map(|i| (self.cursor + i) % n);
        if let Some(idx) = in_rotation.clone().find(|&idx| self.members[idx].owed > 0 && eligible(idx) && has_credit(idx)) {
            return Some(Pick { idx, repays: true });
        }
        for idx in in_rotation.filter(|&idx| eligible(idx)) {
            if has_credit(idx) {
                return Some(Pick { idx, repays: false });
            }
            let peer = peers.get(&self.members[idx].id)?;
            if !peer.is_stalled(turn.now, turn.stall) {
                return None;
            }
        }
        None
    }

    /// Gives the picked member its connection and moves the turn on. The
    /// eligible members between the turn and the pick were passed over as
    /// stalled (that is how `next_in_turn` reached the pick): each is owed one.
    pub fn commit(&mut self, pick: Pick, exclude: &[WorkerId]) -> WorkerId {
        if pick.repays {
            self.members[pick.idx].owed -= 1;
            return self.members[pick.idx].id;
        }
        let n = self.members.len();
        let mut idx = self.cursor;
        while idx != pick.idx {
            let member = &mut self.members[idx];
            if !exclude.contains(&member.id) {
                member.owed = (member.owed + 1).min(MAX_DEBT);
            }
            idx = (idx + 1) % n;
        }
        self.cursor = (pick.idx + 1) % n;
        self.members[pick.idx].id
    }

    /// Whether every member has refused this connection (true when there is
    /// no member at all).
    pub fn refused_by_all(&self, conn: &Connection) -> bool {
        self.members.iter().all(|m| conn.refused_by.contains(&m.id))
    }

    /// Whether a new connection could be given out now.
    pub fn can_take(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn) -> bool {
        self.next_in_turn(peers, turn, &[]).is_some()
    }

    /// Whether the primary should accept from this socket now: to deal out
    /// (round-robin, some worker has credit), or to hold connections while no
    /// worker listens on it, up to `queue_limit`. A Shared socket with members
    /// is theirs to accept from.
    pub fn wants_accept(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn, queue_limit: usize) -> bool {
        if self.paused_until.is_some() || self.socket_type == SocketType::Datagram {
            return false;
        }
        if self.members.is_empty() {
            return self.pending.len() < queue_limit;
        }
        self.mode == Mode::RoundRobin && self.can_take(peers, turn)
    }

    /// Whether some queued connection could be given out now.
    pub fn pending_can_move(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn) -> bool {
        !self.members.is_empty()
            && self.pending.iter().any(|c| is_due(c, turn.now) && self.next_in_turn(peers, turn, &c.refused_by).is_some())
    }

    /// The next time a queued connection becomes due for another offer, or
    /// runs out of time (`timeout` after it was accepted). Connections already
    /// due wait for credit, which a worker's reply brings: no wake-up for them.
    pub fn next_pending_deadline(&self, timeout: Duration, now: Instant) -> Option<Instant> {
        self.pending
            .iter()
            .flat_map(|c| {
                // An unbounded timeout (Duration::MAX) has no deadline.
                [c.retry_at.filter(|at| *at > now), c.since.checked_add(timeout)]
            })
            .flatten()
            .min()
    }

    /// Puts back a connection `worker` refused, ahead of later ones. Once
    /// every member has refused it, it waits a little (longer each round) and
    /// is offered to them all again: a worker at `maxConnections` gets room
    /// back when a connection closes, and Node's round-robin likewise keeps
    /// handing such a connection around until someone takes it.
    pub fn requeue_refused(&mut self, mut conn: Connection, worker: WorkerId, now: Instant) {
        conn.refused_by.push(worker);
        let conn = self.new_round_if_refused_by_all(conn, now);
        self.pending.push_front(conn);
    }

    /// Starts a new round of offers for a connection every member has refused
    /// (also when the one that had not refused it yet left), after a wait.
    pub fn new_round_if_refused_by_all(&self, mut conn: Connection, now: Instant) -> Connection {
        if !self.members.is_empty() && !conn.refused_by.is_empty() && self.refused_by_all(&conn) {
            conn.refused_by.clear();
            conn.rounds += 1;
            conn.retry_at = Some(now + retry_delay(conn.rounds));
        }
        conn
    }

    pub fn push_pending_front(&mut self, conn: Connection) {
        self.pending.push_front(conn);
    }

    pub fn push_pending_back(&mut self, conn: Connection) {
        self.pending.push_back(conn);
    }

    /// Takes the whole queue, oldest first, for the dispatcher to deal out;
    /// what it cannot give out yet goes back with `restore_pending`.
    pub fn take_pending(&mut self) -> VecDeque<Connection> {
        std::mem::take(&mut self.pending)
    }

    pub fn restore_pending(&mut self, kept: VecDeque<Connection>) {
        debug_assert!(self.pending.is_empty(), "nothing is queued while the dispatcher holds the queue");
        self.pending = kept;
    }

    pub fn accept(&mut self) -> std::io::Result<Connection> {
        let fd = sys::accept(self.fd())?;
        self.accepted_total += 1;
        Ok(Connection::new(self.id, fd, Instant::now()))
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
