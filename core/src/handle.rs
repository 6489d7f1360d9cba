//! One listening socket the primary shares among workers, and who takes from it.
//!
//! As in Node's `lib/internal/cluster/`, round-robin and shared handles have
//! the same shape (`add`, `remove`); they differ only in who accepts:
//! - `RoundRobin`: the primary accepts and deals connections out in turn;
//! - `Shared` (SCHED_NONE): each worker gets the listening fd and accepts itself.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::listener::BoundSocket;
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
    socket: BoundSocket,
    /// Workers in rotation, in the order they joined.
    members: Vec<Member>,
    /// Index into `members` of the next worker to try.
    cursor: usize,
    /// Accepted connections not yet given to a worker (no credit anywhere, or
    /// given back by a worker that refused or died), oldest first.
    pending: VecDeque<Connection>,
    /// Connections every member refused, each with when it may be offered
    /// again; in that order, since every wait is the same length.
    retrying: VecDeque<(Instant, Connection)>,
    /// After `EMFILE`/`ENFILE`, accepting waits until then instead of spinning.
    pub paused_until: Option<Instant>,
    pub accepted_total: u64,
}

impl ListenHandle {
    pub fn new(id: ListenerId, key: String, mode: Mode, socket: BoundSocket) -> Self {
        ListenHandle {
            id,
            key,
            mode,
            socket,
            members: Vec::new(),
            cursor: 0,
            pending: VecDeque::new(),
            retrying: VecDeque::new(),
            paused_until: None,
            accepted_total: 0,
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

    /// Connections accepted and not yet given to a worker, waiting or retrying.
    pub fn pending_len(&self) -> usize {
        self.pending.len() + self.retrying.len()
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
    /// The owner closes the handle once no member is left, as Node's `remove` does.
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

    /// Whether every member has refused this connection: then it waits and
    /// is offered to them all again (`push_retry`), as Node's round-robin keeps
    /// passing it on until some worker has room.
    pub fn refused_by_all(&self, conn: &Connection) -> bool {
        self.members.iter().all(|m| conn.refused_by.contains(&m.id))
    }

    /// Whether a new connection could be given out now.
    pub fn can_take(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn) -> bool {
        self.next_in_turn(peers, turn, &[]).is_some()
    }

    /// Whether the oldest queued connection could be given out now.
    pub fn pending_can_move(&self, peers: &HashMap<WorkerId, Peer>, turn: &Turn) -> bool {
        self.pending.front().is_some_and(|c| self.next_in_turn(peers, turn, &c.refused_by).is_some())
    }

    pub fn push_pending_front(&mut self, conn: Connection) {
        self.pending.push_front(conn);
    }

    pub fn pop_pending(&mut self) -> Option<Connection> {
        self.pending.pop_front()
    }

    /// Parks a connection every member refused until `at`, then every member
    /// may be offered it again. Its client stays connected meanwhile.
    pub fn push_retry(&mut self, mut conn: Connection, at: Instant) {
        conn.refused_by.clear();
        self.retrying.push_back((at, conn));
    }

    /// Moves the connections whose wait is over to the back of the queue.
    pub fn release_due_retries(&mut self, now: Instant) {
        while self.retrying.front().is_some_and(|(at, _)| *at <= now) {
            let (_, conn) = self.retrying.pop_front().expect("checked above");
            self.pending.push_back(conn);
        }
    }

    /// When the next parked connection may be offered again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retrying.front().map(|(at, _)| *at)
    }


    pub fn accept(&mut self) -> std::io::Result<Connection> {
        let fd = sys::accept(self.fd())?;
        self.accepted_total += 1;
        Ok(Connection { listener: self.id, fd, refused_by: Vec::new() })
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
