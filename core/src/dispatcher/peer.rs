//! The primary's view of one worker: its end of the private channel, the
//! connections it has been sent but not yet acknowledged, and its state.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};


use crate::bus::BusQueue;
use crate::connection_claims::ClaimBook;
use crate::loop_stamp::{Reading, StampReader};
use crate::routing::policy::{Load, Offers};
use crate::sys::{self, MAX_FDS_PER_MESSAGE};
use crate::channel::wire::{ListenerId, ToWorker};

pub type WorkerId = u32;

/// A connection the primary has accepted and still holds a copy of.
#[derive(Debug)]
pub struct Connection {
    pub listener: ListenerId,
    pub fd: OwnedFd,
    /// When it was accepted: it waits in the primary at most the dispatcher's
    /// `queue_timeout` from then (while no worker listens, or all refuse).
    pub since: Instant,
    /// Who refused it, and when it may be offered again.
    pub offers: Offers,
    /// Its client's key, for a policy that places connections by client
    /// (sticky); `None` otherwise.
    pub key: Option<u64>,
    /// The client a PROXY protocol header named, which the worker shows as
    /// the socket's remote address.
    pub source: Option<SocketAddr>,
    /// When it was last given to a worker (`Peer::push`): how long that
    /// worker has left it unread.
    pub dealt: Option<Instant>,
    /// Its number on the channel it was last sent on, which names its slot
    /// in that worker's claims (`crate::connection_claims`).
    pub seq: Option<u64>,
    /// Taken back from the worker it was sent to, which never claimed it
    /// (`Peer::take_back_stuck`): a copy went to another worker, and this
    /// entry only waits for the first worker's reply to close.
    pub taken_back: bool,
}

impl Connection {
    pub fn new(listener: ListenerId, fd: OwnedFd, since: Instant) -> Self {
        Connection {
            listener,
            fd,
            since,
            offers: Offers::default(),
            key: None,
            source: None,
            dealt: None,
            seq: None,
            taken_back: false,
        }
    }
}

/// A control message waiting for the channel to become writable.
#[derive(Debug)]
enum Control {
    Shared { listener: ListenerId, fd: OwnedFd },
    Left { listener: ListenerId },
    /// The file of its loop stamp (`crate::loop_stamp`).
    LoopStamp { fd: OwnedFd },
}

/// Where a worker stands, as the dispatcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Takes connections while it has credit.
    Ready,
    /// Its channel was full at the last send; waits for `POLLOUT`.
    Blocked,
    /// Its channel hung up or failed: it takes nothing more.
    Dead,
}

/// Outcome of a flush, for the dispatcher to act on.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Connections that could not be sent (the channel is full); the
    /// dispatcher gives them to other workers. They were never delivered.
    pub returned: Vec<Connection>,
}

/// How often a worker holding an unacknowledged connection whose loop reads
/// as waiting is looked at again (`Peer::stuck_at`).
const RECHECK: Duration = Duration::from_millis(1);

/// How many control messages (LEFT, shared sockets) may wait for a worker
/// that does not read its channel. An honest worker has at most one per
/// listener it leaves; a worker past this is flooding the primary.
pub const MAX_QUEUED_CONTROL: usize = 1024;

#[derive(Debug)]
pub struct Peer {
    pub id: WorkerId,
    channel: OwnedFd,
    state: PeerState,
    /// Sent (or about to be sent) and not yet acknowledged, in send order.
    /// The primary keeps its copy of each fd until the worker's reply, so a
    /// worker that dies before taking a connection does not take it down too.
    in_flight: VecDeque<Connection>,
    /// Taken by the worker (acknowledged) but not yet confirmed read, oldest
    /// first. They no longer count against its window, so acknowledging at
    /// once keeps the rotation moving; the primary keeps its copies until the
    /// worker confirms, an event-loop turn later, that their waiting bytes
    /// were read (`Read`), so a worker that dies before that takes only the
    /// connections its JS read (docs/DESIGN.md §11).
    taken: VecDeque<Connection>,
    /// How many entries at the back of `in_flight` have not been sent yet.
    unsent: usize,
    control: VecDeque<Control>,
    /// Since when this worker has had no credit (seen at the end of a
    /// dispatcher turn); `None` while it has credit.
    full_since: Option<Instant>,
    /// Connections this worker acknowledged, over its life.
    accepted_total: u64,
    /// Bus messages for this peer that its channel had no room for yet.
    bus: BusQueue,
    /// Connections it acknowledged taking and has not reported closed, on
    /// every listener.
    open: u64,
    /// Pacing (docs/DESIGN.md §13): holding this many open connections or
    /// more, the worker is given a new one only once it has confirmed
    /// reading the last ones, about one per turn of its event loop. `None`:
    /// never paced.
    pace_above: Option<u64>,
    /// How far this worker's window has grown beyond the dispatcher's
    /// (`on_acknowledgement`), and how far it may.
    grown: usize,
    max_growth: usize,
    /// Its loop stamp, if it has one (`crate::loop_stamp`): read, never trusted.
    stamp: Option<StampReader>,
    /// Its connection claims, if it has a stamp file (`crate::connection_claims`).
    claims: Option<ClaimBook>,
    /// The number the next connection sent on its channel gets.
    next_seq: u64,
    /// Busy longer than this by its loop stamp, it counts as busy
    /// (`Load::busy`; `routing: { busyThreshold }`).
    busy_threshold: Duration,
    /// A connection it left unread (unacknowledged, or taken and not
    /// confirmed read) this long makes it lag (`Load::lagging`; `Config::ack_lag`).
    ack_lag: Duration,
}

impl Peer {
    pub fn new(id: WorkerId, channel: OwnedFd) -> io::Result<Self> {
        sys::set_nonblocking(channel.as_fd(), true)?;
        Ok(Peer {
            id,
            channel,
            state: PeerState::Ready,
            in_flight: VecDeque::new(),
            taken: VecDeque::new(),
            unsent: 0,
            control: VecDeque::new(),
            full_since: None,
            accepted_total: 0,
            bus: BusQueue::default(),
            open: 0,
            pace_above: None,
            grown: 0,
            max_growth: 0,
            stamp: None,
            claims: None,
            next_seq: 0,
            busy_threshold: Duration::MAX,
            ack_lag: Duration::MAX,
        })
    }

    /// Gives this worker its loop stamp: the primary reads `reader` and
    /// writes `claims`, and `fd` goes to the worker before anything else on
    /// its channel.
    pub fn set_loop_stamp(&mut self, reader: StampReader, claims: Option<ClaimBook>, fd: OwnedFd) {
        self.stamp = Some(reader);
        self.claims = claims;
        self.control.push_front(Control::LoopStamp { fd });
    }

    /// When a connection it was sent and has not acknowledged could next be
    /// due to be taken back once its loop has been busy for `stuck_after`
    /// (`take_back_stuck`), if any. Its loop may turn busy at any moment
    /// without telling the dispatcher, so while it reads as waiting (or
    /// descheduled) the answer is a millisecond on: the dispatcher looks
    /// again then, unless the reply comes first.
    pub fn stuck_at(&self, stuck_after: Duration, now_ns: u64, now: Instant) -> Option<Instant> {
        if !self.claims.as_ref().is_some_and(ClaimBook::enabled) {
            return None;
        }
        let oldest = self.sent_unacknowledged().find(|c| !c.taken_back && c.key.is_none())?;
        let lagging_at = oldest.dealt? + self.ack_lag;
        match self.loop_reading(now_ns) {
            Some(r) if r.busy => {
                let busy_since = now.checked_sub(r.age).unwrap_or(now);
                Some(lagging_at.max(busy_since + stuck_after))
            }
            Some(_) => Some(lagging_at.max(now + RECHECK)),
            None => None,
        }
    }

    /// Connections it was sent and has not acknowledged, oldest first.
    fn sent_unacknowledged(&self) -> impl Iterator<Item = &Connection> {
        self.in_flight.range(..self.in_flight.len() - self.unsent)
    }

    /// Takes back what this worker was sent and has not read while its event
    /// loop is busy (in a long handler, or hung): each connection left
    /// unacknowledged for `Config::ack_lag` that `may_take(listener,
    /// busy_for)` allows and that the worker has not claimed yet. Each
    /// comes back as a copy for another worker; the entry here stays,
    /// marked, until the worker's reply (which refuses it: the worker closes
    /// its copy unread). Only connections without a client key: a keyed one
    /// belongs where its key sends it.
    pub fn take_back_stuck(&mut self, may_take: &mut dyn FnMut(ListenerId, Duration) -> bool, now: Instant) -> Vec<Connection> {
        let Some(claims) = self.claims.as_ref().filter(|c| c.enabled()) else { return Vec::new() };
        let busy_for = self.loop_reading(sys::monotonic_ns()).map_or(Duration::ZERO, |r| r.busy_for());
        if busy_for.is_zero() {
            return Vec::new();
        }
        let sent = self.in_flight.len() - self.unsent;
        let mut out = Vec::new();
        for conn in self.in_flight.range_mut(..sent) {
            let due = conn.dealt.is_some_and(|t| now.saturating_duration_since(t) >= self.ack_lag);
            if conn.taken_back || conn.key.is_some() || !due || !may_take(conn.listener, busy_for) {
                continue;
            }
            let Some(seq) = conn.seq else { continue };
            // The copy first: out of descriptors, the worker keeps it.
            let Ok(fd) = sys::dup_cloexec(conn.fd.as_fd()) else { break };
            if !claims.revoke(seq) {
                continue; // claimed meanwhile: the worker reads it; `fd` closes
            }
            conn.taken_back = true;
            // The same connection to the queue: its offers and client, not
            // where it was dealt.
            let mut copy = Connection::new(conn.listener, fd, conn.since);
            copy.offers = conn.offers.clone();
            copy.source = conn.source;
            out.push(copy);
        }
        out
    }

    /// Sets how long a busy loop (`busy_threshold`) or an unread connection
    /// (`ack_lag`) may last before the policies see it.
    pub fn judge_by(&mut self, busy_threshold: Duration, ack_lag: Duration) {
        self.busy_threshold = busy_threshold;
        self.ack_lag = ack_lag;
    }

    /// What its loop stamp says at `now_ns` (`None`: no stamp yet).
    pub fn loop_reading(&self, now_ns: u64) -> Option<Reading> {
        self.stamp.as_ref().and_then(|s| s.read(now_ns))
    }

    /// When the oldest connection it was sent and has not confirmed reading
    /// (acknowledged or not) was sent, if any. A worker confirms what it
    /// took after its loop's next turn, the one that runs those connections'
    /// first requests: one busy in a long handler confirms nothing.
    fn oldest_unread(&self) -> Option<Instant> {
        match self.taken.front() {
            Some(conn) => conn.dealt,
            None if self.in_flight.len() > self.unsent => self.in_flight.front().and_then(|c| c.dealt),
            None => None,
        }
    }

    /// When this worker will start lagging (`Load::lagging`) if it confirms
    /// reading nothing before then.
    pub fn lags_at(&self) -> Option<Instant> {
        self.oldest_unread().and_then(|t| t.checked_add(self.ack_lag))
    }

    pub fn channel_fd(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }

    pub fn state(&self) -> PeerState {
        self.state
    }

    pub fn accepted_total(&self) -> u64 {
        self.accepted_total
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether this worker may be given one more connection: alive, channel
    /// not full, and fewer than `window` connections unacknowledged (or, while
    /// paced, none unconfirmed). The window is what keeps a hung worker from
    /// swallowing its share of the traffic (docs/DESIGN.md §3.2).
    pub fn has_credit(&self, window: usize) -> bool {
        self.state == PeerState::Ready && self.free(window) > 0
    }

    /// How many more connections it may be given now.
    fn free(&self, window: usize) -> usize {
        if self.paced() {
            usize::from(self.in_flight.is_empty() && self.taken.is_empty())
        } else {
            // Not past the pacing threshold with what is still unacknowledged
            // either: a worker taking on a burst (1000 connections at once)
            // stops at the threshold, however large its window has grown.
            let below_pace = self.pace_above.map_or(usize::MAX, |above| {
                usize::try_from(above.saturating_sub(self.open)).unwrap_or(usize::MAX)
            });
            (window + self.grown).min(below_pace).saturating_sub(self.in_flight.len())
        }
    }

    /// Lets this worker's window grow up to `max_window` (the dispatcher's
    /// `window` is where it starts and where it falls back).
    pub fn allow_window(&mut self, window: usize, max_window: usize) {
        self.max_growth = max_window.saturating_sub(window);
    }

    /// An acknowledgement arrived. A worker that acknowledges while its
    /// window is full is keeping up but gets more connections per turn of
    /// its event loop than the window holds, so the rotation would wait for
    /// it: its window grows by `window`, up to the maximum. One that
    /// acknowledges with its window three-quarters empty needs less: it
    /// shrinks by `window`, down to `window`. So the window follows what the
    /// worker takes in a turn, and a worker that hangs strands no more than
    /// its recent need (and, once it is full for `stall`, no more than
    /// `window` next time: `track_fullness`). Under churn (docs/DESIGN.md
    /// §13.4) a fixed window of 8 held rcluster RR to 1.6x node:cluster RR.
    pub fn on_acknowledgement(&mut self, window: usize) {
        // It made progress: however soon it is full again, it is full since
        // now, not since before (`track_fullness` runs once a dispatcher
        // turn, after this turn has refilled it).
        self.full_since = None;
        // A worker holding half the pacing threshold or more is serving many
        // connections at once (long turns): a larger window only lets more
        // of them in per turn, which is what pacing restrains; measured under
        // the classic demo's overload, growth there raised latency by a third.
        if self.pace_above.is_some_and(|above| self.open.saturating_mul(2) >= above) {
            self.grown = 0;
            return;
        }
        let current = window + self.grown;
        // Exactly full: more than full means the window was just cut back.
        if self.in_flight.len() == current {
            self.grown = (self.grown + window).min(self.max_growth);
        } else if self.in_flight.len() * 4 <= current {
            self.grown = self.grown.saturating_sub(window);
        }
    }

    /// Sets the open-connection count from which this worker is paced.
    pub fn pace_above(&mut self, open: Option<u64>) {
        self.pace_above = open;
    }

    /// Pacing (docs/DESIGN.md §13): with this many connections open, a
    /// worker whose requests keep its event loop busy makes every turn longer
    /// for all of them with each one more it takes, so it gets the next one
    /// only once it has confirmed reading the last (`Read`, sent after the
    /// turn that follows the one that took them): one connection per turn,
    /// as node:cluster's hand-off (one per round trip) does by construction.
    /// An idle worker turns in microseconds, so pacing costs it nothing; a
    /// saturated one holds fewer connections, each served sooner, and the
    /// dispatcher holds the rest (`ListenHandle::hold_paced`).
    pub fn paced(&self) -> bool {
        self.pace_above.is_some_and(|above| self.open >= above)
    }

    /// The worker reported `count` of its connections closed.
    pub fn closed(&mut self, count: u32) {
        self.open = self.open.saturating_sub(u64::from(count));
    }

    /// Notes when the worker ran out of credit, or got it back. One without
    /// credit for `stall` (hung, or busy for long) loses what its window had
    /// grown.
    pub fn track_fullness(&mut self, window: usize, stall: Duration, now: Instant) {
        if self.has_credit(window) {
            self.full_since = None;
        } else if self.full_since.is_none() {
            self.full_since = Some(now);
        } else if self.full_since.is_some_and(|since| now.saturating_duration_since(since) >= stall) {
            self.grown = 0;
        }
    }

    /// What a scheduling policy is told about this worker.
    pub fn load(&self, window: usize) -> Load {
        let busy_for = self.loop_reading(sys::monotonic_ns()).map_or(Duration::ZERO, |r| r.busy_for());
        let unread_since = self.oldest_unread();
        Load {
            free: if self.state == PeerState::Ready { self.free(window) } else { 0 },
            paced: self.paced(),
            full_since: self.full_since,
            gone: self.state == PeerState::Dead,
            unacked: self.in_flight.len(),
            unread: self.in_flight.len() + self.taken.len(),
            lagging: unread_since.is_some_and(|t| t.elapsed() >= self.ack_lag),
            unread_since,
            busy: busy_for > self.busy_threshold,
            busy_for,
        }
    }

    /// When this worker will count as stalled (without credit for `stall`),
    /// if it is full.
    pub fn stalls_at(&self, stall: Duration) -> Option<Instant> {
        self.full_since.map(|since| since + stall)
    }

    /// Whether the dispatcher should wait for this channel to become writable.
    pub fn wants_writable(&self) -> bool {
        self.state == PeerState::Blocked
    }

    pub fn mark_dead(&mut self) {
        self.state = PeerState::Dead;
    }

    pub fn on_writable(&mut self) {
        if self.state == PeerState::Blocked {
            self.state = PeerState::Ready;
        }
    }

    /// Queues a connection; it is sent at the next `flush`.
    pub fn push(&mut self, mut conn: Connection) {
        debug_assert!(self.state == PeerState::Ready);
        conn.dealt = Some(Instant::now());
        conn.seq = None; // numbered when sent
        self.in_flight.push_back(conn);
        self.unsent += 1;
    }

    pub fn push_shared(&mut self, listener: ListenerId, fd: OwnedFd) {
        self.control.push_back(Control::Shared { listener, fd });
    }

    /// Queues the reply to a LEAVE. False, with nothing queued, when this
    /// worker already has `MAX_QUEUED_CONTROL` messages waiting: it asks
    /// faster than it reads, and the queue must not grow without limit.
    #[must_use]
    pub fn push_left(&mut self, listener: ListenerId) -> bool {
        if self.control.len() >= MAX_QUEUED_CONTROL {
            return false;
        }
        self.control.push_back(Control::Left { listener });
        true
    }

    /// Queues a bus message for the next `flush`; false if this peer's bus
    /// queue is full (the message is dropped). A dead peer takes and drops all.
    pub fn push_bus(&mut self, message: Vec<u8>) -> bool {
        self.state == PeerState::Dead || self.bus.push(message)
    }

    /// Takes the acknowledged connection at the front of the queue.
    pub fn take_acknowledged(&mut self) -> Option<Connection> {
        if self.in_flight.len() == self.unsent {
            return None; // a reply for something never sent
        }
        self.in_flight.pop_front()
    }

    /// Counts a connection the worker acknowledged taking.
    pub fn count_accepted(&mut self) {
        self.accepted_total += 1;
        self.open += 1;
    }

    /// Keeps the copy of a connection the worker acknowledged taking until
    /// it confirms having read it (`confirm_read`).
    pub fn keep_taken(&mut self, conn: Connection) {
        self.taken.push_back(conn);
    }

    /// The worker confirmed the oldest `count` connections it took as read:
    /// the copies close. False if it had taken fewer (nothing closes then).
    pub fn confirm_read(&mut self, count: u32) -> bool {
        let count = count as usize;
        if count > self.taken.len() {
            return false;
        }
        self.taken.drain(..count);
        true
    }

    /// How many of the connections `take_all` returns (the first ones) were
    /// sent to the worker, rather than still queued for it.
    pub fn sent_count(&self) -> usize {
        self.taken.len() + self.in_flight.len() - self.unsent
    }

    /// Everything this worker still holds, for re-dispatch after it died:
    /// what it took and did not confirm, then what it was sent, then what
    /// was still queued for it.
    pub fn take_all(&mut self) -> Vec<Connection> {
        self.unsent = 0;
        self.control.clear();
        self.bus.clear();
        self.taken.drain(..).chain(self.in_flight.drain(..)).collect()
    }

    /// Sends queued control messages, then queued connections, batched per
    /// listener. A full channel leaves control messages queued and hands the
    /// unsent connections back; a broken one marks the peer dead.
    pub fn flush(&mut self) -> Flushed {
        if self.state == PeerState::Dead {
            return Flushed::default();
        }
        while let Some(ctrl) = self.control.front() {
            let sent = match ctrl {
                Control::Shared { listener, fd } => sys::send_message(
                    self.channel.as_fd(),
                    &ToWorker::Shared { listener: *listener }.encode(),
                    &[fd.as_fd()],
                ),
                Control::Left { listener } => {
                    sys::send_message(self.channel.as_fd(), &ToWorker::Left { listener: *listener }.encode(), &[])
                }
                Control::LoopStamp { fd } => {
                    sys::send_message(self.channel.as_fd(), &ToWorker::LoopStamp.encode(), &[fd.as_fd()])
                }
            };
            match sent {
                Ok(()) => {
                    self.control.pop_front();
                }
                Err(e) => {
                    self.on_send_error(&e);
                    return self.return_unsent();
                }
            }
        }
        while let Some(message) = self.bus.front() {
            match sys::send_message(self.channel.as_fd(), message, &[]) {
                Ok(()) => self.bus.pop(),
                Err(e) => {
                    self.on_send_error(&e);
                    return self.return_unsent();
                }
            }
        }
        while self.unsent > 0 {
            let start = self.in_flight.len() - self.unsent;
            let first = self.next_seq;
            let listener = self.in_flight[start].listener;
            let source = self.in_flight[start].source;
            // A connection with its client's address goes alone, with it.
            let fds: Vec<BorrowedFd<'_>> = if source.is_some() {
                vec![self.in_flight[start].fd.as_fd()]
            } else {
                self.in_flight
                    .range(start..)
                    .take_while(|c| c.listener == listener && c.source.is_none())
                    .take(MAX_FDS_PER_MESSAGE)
                    .map(|c| c.fd.as_fd())
                    .collect()
            };
            let count = u8::try_from(fds.len()).expect("MAX_FDS_PER_MESSAGE fits in the header's count byte");
            let msg = match source {
                Some(source) => ToWorker::DispatchFrom { listener, source, seq: first }.encode(),
                None => ToWorker::Dispatch { listener, count, first }.encode(),
            };
            let n = fds.len();
            // Unclaimed before the worker can see them.
            if let Some(claims) = &self.claims {
                for seq in first..first + n as u64 {
                    claims.deal(seq);
                }
            }
            let sent = sys::send_message(self.channel.as_fd(), &msg, &fds);
            drop(fds);
            match sent {
                Ok(()) => {
                    for (i, conn) in self.in_flight.range_mut(start..start + n).enumerate() {
                        conn.seq = Some(first + i as u64);
                    }
                    self.next_seq += n as u64;
                    self.unsent -= n;
                }
                Err(e) => {
                    self.on_send_error(&e);
                    return self.return_unsent();
                }
            }
        }
        Flushed::default()
    }

    fn on_send_error(&mut self, err: &io::Error) {
        self.state = if sys::is_full(err) { PeerState::Blocked } else { PeerState::Dead };
    }

    fn return_unsent(&mut self) -> Flushed {
        let keep = self.in_flight.len() - self.unsent;
        self.unsent = 0;
        Flushed { returned: self.in_flight.drain(keep..).collect() }
    }
}
