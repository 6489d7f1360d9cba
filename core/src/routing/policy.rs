//! Who gets the next connection of a listener: scheduling policies as types
//! behind one trait, chosen once per listener (as Node's
//! `lib/internal/cluster/` picks `RoundRobinHandle` or `SharedHandle` once).
//!
//! A policy owns everything its kind of routing needs: its members, its
//! decisions, and what only it has. Sticky's claimed sessions live in
//! [`crate::routing::sticky`]; SCHED_REUSEPORT's per-worker sockets in
//! [`crate::routing::reuseport`]. The listener ([`crate::routing::handle`])
//! holds the one socket every listener has and asks the policy the rest.
//!
//! Picking is pure: a policy decides from what the event loop tells it (each
//! member's free credit and since when it has been full, who refused the
//! connection, the time now) and from its own bookkeeping (whose turn it is,
//! the turns it owes). Only the socket methods ([`Policy::accept`],
//! [`Policy::socket_for`], ...) touch a socket, so every picking rule here is
//! tested table by table with constructed `Instant`s.
//!
//! Round-robin and shared are here; least-connections, sticky and
//! reuseport are three more types implementing [`Policy`], in
//! [`crate::routing::least_connections`], [`crate::routing::sticky`] and
//! [`crate::routing::reuseport`].

use std::fmt::Debug;
use std::io;
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::dispatcher::peer::WorkerId;
use crate::sys;

/// Most turns a passed-over worker is owed. Debt is repaid as soon as the
/// worker has credit again, which keeps the long-run split exact; the cap keeps
/// a worker that recovers from a long stall from being handed a flood.
pub const MAX_DEBT: u32 = 64;

/// How long round-robin needs a member's loop to have been busy, besides
/// past the busy threshold, before it passes over it for lagging: longer
/// than a loaded machine keeps a runnable worker off its CPU (a worker that
/// answered, then waited a few milliseconds for a CPU with its loop stamped
/// busy, was passed over and 20 sequential connections split 11/9), far
/// shorter than the slow requests the rule is for.
pub const ROUND_ROBIN_STUCK: Duration = Duration::from_millis(10);

/// What the event loop tells a policy about one member at the time of a pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// How many more connections it may be given now (its window minus what
    /// it holds unacknowledged; 0 while its channel is full or gone).
    pub free: usize,
    /// Since when it has had no credit, as seen at the end of an event-loop
    /// turn; `None` while it has credit.
    pub full_since: Option<Instant>,
    /// Its channel is gone: it will never take anything again.
    pub gone: bool,
    /// It holds so many connections that it is given one per event-loop
    /// turn (docs/DESIGN.md §13).
    pub paced: bool,
    /// Connections it was sent (or is about to be) and has not acknowledged.
    pub unacked: usize,
    /// Connections it was given and has not confirmed reading yet
    /// (acknowledged or not): its loop has yet to run their requests.
    pub unread: usize,
    /// It has left a connection unread (unacknowledged, or taken and not
    /// confirmed read) for longer than `Config::ack_lag`: it is not keeping
    /// up right now.
    pub lagging: bool,
    /// When the oldest connection it has not confirmed reading was sent to it.
    pub unread_since: Option<Instant>,
    /// Its loop stamp (`crate::loop_stamp`) says its event loop has been
    /// busy for longer than the busy threshold (`Config::busy_threshold`).
    pub busy: bool,
    /// How long its event loop has been busy, by its stamp (zero while it
    /// waits for I/O, or without a stamp).
    pub busy_for: Duration,
}

impl Load {
    /// A member with room for `free` more connections.
    pub fn free(free: usize) -> Self {
        Load { free, ..Load::IDLE }
    }

    /// No credit, nothing unacknowledged, not busy: what the constructors start from.
    const IDLE: Load = Load {
        free: 0,
        full_since: None,
        gone: false,
        paced: false,
        unacked: 0,
        unread: 0,
        lagging: false,
        unread_since: None,
        busy: false,
        busy_for: Duration::ZERO,
    };

    /// A member without credit since `since`.
    pub fn full_since(since: Instant) -> Self {
        Load { full_since: Some(since), ..Load::IDLE }
    }

    /// A member whose channel is gone.
    pub fn gone() -> Self {
        Load { gone: true, ..Load::IDLE }
    }

    pub(crate) fn has_credit(&self) -> bool {
        self.free > 0
    }

    /// Could take a connection now and is keeping up: credit, its loop not
    /// busy, nothing left unread too long, not paced, still there.
    pub(crate) fn keeps_up(&self) -> bool {
        !self.gone && self.free > 0 && !self.busy && !self.lagging && !self.paced
    }

    /// Without credit for at least `stall`: its JS is not taking
    /// connections (hung, or busy for long), so its turn may be skipped. One
    /// that only just filled up is waited for instead.
    pub(crate) fn is_stalled(&self, now: Instant, stall: Duration) -> bool {
        self.gone || self.full_since.is_some_and(|since| now.saturating_duration_since(since) >= stall)
    }
}

/// What a pick is asked: the load of a member, and the time now.
pub struct Ask<'a> {
    pub load: &'a dyn Fn(WorkerId) -> Load,
    pub now: Instant,
}

/// A member chosen by [`Policy::pick`], to be confirmed with [`Policy::commit`]
/// once a connection was really given (so an empty accept queue does not skew
/// the rotation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    idx: usize,
    /// Repays a turn this worker was owed, rather than taking the next turn.
    repays: bool,
    /// The member in turn was in the middle of a run and out of credit: its
    /// run ended there, and it is owed nothing for it.
    ends_run: bool,
}

impl Pick {
    /// The member at `idx` of a policy's own list.
    pub(crate) fn at(idx: usize) -> Self {
        Pick { idx, repays: false, ends_run: false }
    }

    pub(crate) fn idx(&self) -> usize {
        self.idx
    }
}

/// A connection's history of offers: who refused it in this round, how many
/// rounds every member refused it, and when it may be offered again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offers {
    /// Workers that refused it (closing server, maxConnections); it is not
    /// offered to them again until every member has refused it.
    pub refused_by: Vec<WorkerId>,
    /// Times every member refused it; each round waits longer before the next.
    pub rounds: u32,
    /// Not offered again before this (after a round of refusals).
    pub retry_at: Option<Instant>,
    /// With several dispatcher threads: those whose members all refused it
    /// in this round (bit `i` for thread `i`); it goes to the next thread
    /// with members before a new round begins (docs/DESIGN.md §16).
    pub threads_tried: u64,
}

impl Offers {
    /// Whether it may be offered now.
    pub fn is_due(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| at <= now)
    }
}

/// How long a connection that every member refused waits before it is
/// offered again: 5 ms, doubling per round, at most 200 ms. Prompt enough for a
/// worker at `maxConnections` that frees a slot, and never a busy loop.
pub fn retry_delay(rounds: u32) -> Duration {
    Duration::from_millis((5u64 << rounds.min(6)).min(200))
}

/// Takes the member `worker` (found by `id`) out of a rotation whose next
/// turn is `cursor`, keeping the cursor on the same next member. Returns
/// false if it was not a member.
pub fn remove_in_turn<M>(members: &mut Vec<M>, cursor: &mut usize, worker: WorkerId, id: impl Fn(&M) -> WorkerId) -> bool {
    let Some(idx) = members.iter().position(|m| id(m) == worker) else {
        return false;
    };
    members.remove(idx);
    if idx < *cursor {
        *cursor -= 1;
    }
    if *cursor >= members.len() {
        *cursor = 0;
    }
    true
}

/// A listener's scheduling policy. Membership has one shape for every policy
/// (`add`, `remove`), as Node's two handle types do; they differ in who
/// accepts new connections, from which sockets, and in who gets a
/// connection the primary holds.
pub trait Policy: Debug + Send {
    /// Whether the primary accepts new connections and deals them out (true),
    /// or each member gets its own copy of a listening socket and accepts by
    /// itself (false; SCHED_NONE, SCHED_REUSEPORT, and every datagram socket).
    fn deals_new_connections(&self) -> bool;

    /// Whether the primary accepts from this listener's sockets now: always
    /// when it deals new connections; otherwise only from a socket no member
    /// accepts from (while there is no member at all, or, under
    /// SCHED_REUSEPORT, from a socket whose worker left).
    fn primary_accepts(&self) -> bool {
        true
    }

    /// The members, in the order they joined.
    fn members(&self) -> Vec<WorkerId>;

    fn is_empty(&self) -> bool;

    /// Whether every member is in `workers` (true when there is none).
    fn all_in(&self, workers: &[WorkerId]) -> bool;

    /// Adds a worker. Returns false if it already was a member.
    fn add(&mut self, worker: WorkerId) -> bool;

    /// Takes a worker out. Returns false if it was not a member. The listener
    /// decides what an empty policy means (closed, or holding connections).
    fn remove(&mut self, worker: WorkerId) -> bool;

    /// Who should get a connection now, leaving out those in `refused_by`;
    /// `None` means keep it for later. Changes nothing until `commit`.
    fn pick(&self, ask: &Ask<'_>, refused_by: &[WorkerId]) -> Option<Pick>;

    /// Who should get a connection whose client or session is `key`
    /// (`None`: it has none). Only a keyed policy looks at the key.
    fn pick_for(&self, ask: &Ask<'_>, refused_by: &[WorkerId], key: Option<u64>) -> Option<Pick> {
        let _ = key;
        self.pick(ask, refused_by)
    }

    /// Confirms a pick once the connection was given; returns its worker.
    fn commit(&mut self, pick: Pick, refused_by: &[WorkerId]) -> WorkerId;

    /// Starts a new round of offers for a connection every member has refused
    /// (also when the one that had not refused it yet left), after a wait that
    /// grows per round: a worker at `maxConnections` gets room back when a
    /// connection closes, and Node's round-robin likewise keeps handing such a
    /// connection around until someone takes it.
    fn new_round_if_refused_by_all(&self, offers: &mut Offers, now: Instant) {
        if !self.is_empty() && !offers.refused_by.is_empty() && self.all_in(&offers.refused_by) {
            offers.refused_by.clear();
            offers.rounds += 1;
            offers.retry_at = Some(now + retry_delay(offers.rounds));
        }
    }

    /// Notes that `worker` refused the connection, starting a new round if
    /// that made every member refuse it.
    fn refused(&self, offers: &mut Offers, worker: WorkerId, now: Instant) {
        offers.refused_by.push(worker);
        self.new_round_if_refused_by_all(offers, now);
    }

    /// How long a worker's event loop may be busy (by its loop stamp) with a
    /// connection of this listener sent to it and not yet read, before the
    /// dispatcher takes that connection back for another member
    /// (`Peer::take_back_stuck`); `None`: never taken back (the policy does
    /// not deal, or placement is by client).
    fn stuck_after(&self, busy_threshold: Duration) -> Option<Duration> {
        let _ = busy_threshold;
        None
    }

    /// The name `cluster.stats()` shows: `rr`, `none`, `lc`, `sticky` or
    /// `reuseport`.
    fn name(&self) -> &'static str;

    /// Whether who gets a connection depends on the connection itself (its
    /// client's address, or a session key in its first request): then it is
    /// accepted first and placed with [`Policy::pick_for`].
    fn keyed(&self) -> bool {
        false
    }

    /// The key of a client at `ip`, for a keyed policy.
    fn client_key(&self, ip: IpAddr) -> Option<u64> {
        let _ = ip;
        None
    }

    /// `worker` said the session `key` is its own (`cluster.worker.stick`).
    fn claim(&mut self, key: u64, worker: WorkerId) {
        let _ = (key, worker);
    }

    /// A connection carrying `key` was placed.
    fn placed(&mut self, key: u64) {
        let _ = key;
    }

    /// `open` is how many connections `worker` holds open on this listener,
    /// and `cap` its server's `maxConnections` (`None`: no limit), as the
    /// worker's close reports say.
    fn set_open(&mut self, worker: WorkerId, open: u64, cap: Option<u32>) {
        let _ = (worker, open, cap);
    }

    /// The copy of a listening socket a member that accepts by itself gets:
    /// by default the listener's own `listening`.
    fn socket_for(&mut self, worker: WorkerId, listening: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        let _ = worker;
        sys::dup_cloexec(listening)
    }

    /// `worker` left: a socket of its own, if it had one, is the primary's
    /// to accept from again. An error says it could not be made ready for
    /// that (the worker left all the same).
    fn release(&mut self, worker: WorkerId) -> io::Result<()> {
        let _ = worker;
        Ok(())
    }

    /// Calls `f` with each socket the primary accepts from when it accepts:
    /// by default the listener's own `listening`.
    fn accept_fds<'a>(&'a self, listening: BorrowedFd<'a>, f: &mut dyn FnMut(BorrowedFd<'a>)) {
        f(listening)
    }

    /// Accepts one connection from those sockets.
    fn accept(&self, listening: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        sys::accept(listening)
    }

    /// How many listening sockets it has: 1 unless it owns more.
    fn socket_count(&self) -> usize {
        1
    }

    /// Whether its sockets hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`).
    fn defers_accept(&self) -> bool {
        false
    }
}

/// Which policy a listener gets, chosen once when its socket is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The primary accepts and deals connections out in turn (`Rotation`).
    RoundRobin,
    /// SCHED_NONE: each worker gets the listening socket and accepts itself.
    Shared,
    /// The primary deals each connection to the worker with the fewest open.
    LeastConnections,
    /// The primary deals each connection by its client's address, the same
    /// client to the same worker.
    Sticky,
    /// Each worker gets a `SO_REUSEPORT` socket of its own and accepts from
    /// it (`crate::routing::reuseport`); the primary deals only what it accepts from
    /// sockets whose worker is gone, in turn.
    ReusePort,
}

impl Mode {
    /// Its name, the one place each is spelled: what `cluster.stats()` shows,
    /// what `NODE_CLUSTER_SCHED_POLICY` takes (the addon exports them to JS).
    pub const fn name(self) -> &'static str {
        match self {
            Mode::RoundRobin => "rr",
            Mode::Shared => "none",
            Mode::LeastConnections => "lc",
            Mode::Sticky => "sticky",
            Mode::ReusePort => "reuseport",
        }
    }

    /// The policy of this kind. `stall` is how long a full member in turn is
    /// waited for before it is passed over (`Config::stall`). A
    /// SCHED_REUSEPORT policy is made with its sockets
    /// (`reuseport::ReusePort::bind`); asked for here, without them, it is
    /// round-robin, as where `SO_REUSEPORT` cannot be had.
    pub fn policy(self, stall: Duration) -> Box<dyn Policy> {
        match self {
            Mode::RoundRobin | Mode::ReusePort => Box::new(RoundRobin::new(stall)),
            Mode::Shared => Box::new(Shared::new(stall)),
            Mode::LeastConnections => Box::new(crate::routing::least_connections::LeastConnections::new()),
            Mode::Sticky => Box::new(crate::routing::sticky::Sticky::new(stall)),
        }
    }
}

/// A worker in a rotation.
#[derive(Clone, Copy, Debug)]
struct Member {
    id: WorkerId,
    /// Turns it was passed over for while stalled, to be repaid first.
    owed: u32,
}

/// Turns among members: the one in turn gets the connection if it has
/// credit; one that is full is waited for (up to `stall`), then passed over
/// and owed that turn, repaid first once it has credit again; one that lags
/// as its turn begins (`Load::lagging`; with more members than CPUs, and
/// busy) is passed over at once and owed likewise. A turn is one connection while
/// there are no more members than CPUs, and a run of several with more
/// (`run_length`).
#[derive(Clone, Debug)]
pub struct Rotation {
    stall: Duration,
    /// In the order they joined.
    members: Vec<Member>,
    /// Index into `members` of the next worker to try.
    cursor: usize,
    /// The CPUs this process may run on: with more members than that, each
    /// takes its turn as a run of several connections (`run_length`).
    cpus: usize,
    /// Connections the member at `cursor` has had in its current run.
    run: usize,
}

/// The CPUs this process may run on (its affinity and cgroup quota, as the
/// standard library reads them), at least 1; on one of several dispatcher
/// threads, its share of them (`set_cpu_share`).
pub(crate) fn available_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    CPU_SHARE.with(|share| share.get()).unwrap_or_else(|| *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
}

thread_local! {
    static CPU_SHARE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// On one of `threads` dispatcher threads (docs/DESIGN.md §16): the
/// policies it makes count its share of the CPUs, as its workers run on
/// about that many, so that about one worker per CPU is dealt a run at a
/// time across all the threads.
pub(crate) fn set_cpu_share(threads: usize) {
    let all = available_cpus();
    CPU_SHARE.with(|share| share.set(Some((all / threads.max(1)).max(1))));
}

/// How many connections in a row a member of `members` gets when the
/// process may run on `cpus` CPUs: 1 while there are no more members than
/// CPUs; with more, enough that about one member per CPU is dealt to at a
/// time (round-robin's runs, and least connections').
pub(crate) fn run_length(members: usize, cpus: usize) -> usize {
    members.div_ceil(cpus.max(1)).max(1)
}

impl Rotation {
    pub fn new(stall: Duration) -> Self {
        Self::with_cpus(stall, available_cpus())
    }

    /// A rotation for a process that may run on `cpus` CPUs.
    pub fn with_cpus(stall: Duration, cpus: usize) -> Self {
        Rotation { stall, members: Vec::new(), cursor: 0, cpus: cpus.max(1), run: 0 }
    }

    /// How many connections in a row each member takes in turn: 1 while
    /// there are no more members than CPUs (strict turns); with more, as
    /// many as keep about one member per CPU dealt to at a time. Dealt one
    /// each, 16 workers on 2 CPUs are each woken for one or two connections
    /// of every 16, most of them waiting for a CPU (docs/DESIGN.md §14).
    fn run_length(&self) -> usize {
        run_length(self.members.len(), self.cpus)
    }

    pub fn members(&self) -> Vec<WorkerId> {
        self.members.iter().map(|m| m.id).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn all_in(&self, workers: &[WorkerId]) -> bool {
        self.members.iter().all(|m| workers.contains(&m.id))
    }

    pub fn add(&mut self, worker: WorkerId) -> bool {
        if self.members.iter().any(|m| m.id == worker) {
            return false;
        }
        self.members.push(Member { id: worker, owed: 0 });
        true
    }

    pub fn remove(&mut self, worker: WorkerId) -> bool {
        let removed = remove_in_turn(&mut self.members, &mut self.cursor, worker, |m| m.id);
        if removed {
            // The member in turn may be another now: it starts afresh.
            self.run = 0;
        }
        removed
    }

    /// The member whose turn it is: an owed one with credit that keeps up
    /// first; else the next one not in `exclude` that has credit, passing
    /// over those that stalled and those that lag (left a connection unread
    /// for `Config::ack_lag`: node:cluster's round-robin hands a worker
    /// nothing while it has not taken the last). `None` when
    /// the one in turn is full but neither stalled nor lagging: it is waited
    /// for rather than skipped, so the rotation stays exact among workers
    /// that keep up. When every member with credit lags, the one that has
    /// lagged the shortest gets it (the first in turn of those, on a tie):
    /// nobody is waited for because all are slow. Lag is judged as a
    /// member's turn begins: a member in the middle of its run keeps it
    /// while it has credit, lagging or not; with more members than CPUs a
    /// member lags only while its loop is busy (`Load::busy`) too.
    pub fn pick(&self, ask: &Ask<'_>, exclude: &[WorkerId]) -> Option<Pick> {
        let n = self.members.len();
        let eligible = |idx: usize| !exclude.contains(&self.members[idx].id);
        let load = |idx: usize| (ask.load)(self.members[idx].id);
        // A run is a turn's worth of connections for one member, not a wait
        // for it: one that runs out of credit mid-run (a full window, or
        // paced) ends its run, and the turn goes on at once.
        let ends_run = n > 1 && self.run > 0 && !load(self.cursor).has_credit();
        let start = if ends_run { (self.cursor + 1) % n } else { self.cursor };
        // Lag is judged when a member's turn begins, not within its run: a
        // run deals to a member that has not run yet by design, so the
        // connections of its own run unread are no sign that it is stuck.
        // A member lags only when its loop stamp says it is busy too, for
        // ROUND_ROBIN_STUCK at least (in a handler, not asleep in its poll or
        // waiting a moment for a CPU). On unread
        // connections alone, a worker that answered and was descheduled
        // before confirming the read (its confirmation goes out a loop turn
        // later) was passed over, and sequential connections to 2 workers
        // split 11/9 now and then on a quiet machine; with more members than
        // CPUs nearly every member would lag, and the answer when all do, the
        // one lagging the shortest, is usually the member just dealt a run:
        // it would get run after run while every other one is owed
        // (docs/DESIGN.md §14).
        let mid_run = |idx: usize| idx == self.cursor && self.run > 0 && !ends_run;
        let lags = |idx: usize, load: &Load| load.lagging && load.busy && load.busy_for >= ROUND_ROBIN_STUCK && !mid_run(idx);
        let in_rotation = (0..n).map(|i| (start + i) % n);
        if let Some(idx) = in_rotation.clone().find(|&idx| {
            self.members[idx].owed > 0 && eligible(idx) && {
                let load = load(idx);
                load.has_credit() && !lags(idx, &load)
            }
        }) {
            return Some(Pick { idx, repays: true, ends_run: false });
        }
        // Of the members in turn that have credit but lag, the one whose
        // oldest unread connection is the youngest: the likeliest to
        // take the next one soon, as node:cluster gives a connection to
        // whichever worker takes its last one first.
        let mut lagging: Option<(Option<Instant>, usize)> = None;
        for idx in in_rotation.filter(|&idx| eligible(idx)) {
            let load = load(idx);
            if load.has_credit() && !lags(idx, &load) {
                return Some(Pick { idx, repays: false, ends_run });
            }
            if load.has_credit() {
                if lagging.is_none_or(|(since, _)| load.unread_since > since) {
                    lagging = Some((load.unread_since, idx));
                }
            } else if !lags(idx, &load) && !load.is_stalled(ask.now, self.stall) {
                // Full for a moment but keeping up: waited for, rather than
                // giving its turn to one that lags.
                return None;
            }
        }
        lagging.map(|(_, idx)| Pick { idx, repays: false, ends_run })
    }

    /// Moves the turn past the pick. The eligible members between the turn
    /// and the pick were passed over as stalled or lagging (that is how
    /// `pick` reached it): each is owed one, up to `MAX_DEBT`.
    pub fn commit(&mut self, pick: Pick, exclude: &[WorkerId]) -> WorkerId {
        if pick.repays {
            self.members[pick.idx].owed -= 1;
            return self.members[pick.idx].id;
        }
        let n = self.members.len();
        if pick.ends_run {
            self.cursor = (self.cursor + 1) % n;
            self.run = 0;
        }
        let mut idx = self.cursor;
        while idx != pick.idx {
            let member = &mut self.members[idx];
            if !exclude.contains(&member.id) {
                member.owed = (member.owed + 1).min(MAX_DEBT);
            }
            idx = (idx + 1) % n;
        }
        // A member reached past others starts a run of its own.
        self.run = if pick.idx == self.cursor { self.run + 1 } else { 1 };
        if self.run >= self.run_length() {
            self.cursor = (pick.idx + 1) % n;
            self.run = 0;
        } else {
            self.cursor = pick.idx;
        }
        self.members[pick.idx].id
    }
}

/// Node's `RoundRobinHandle`: the primary accepts and deals out in turn.
#[derive(Debug)]
pub struct RoundRobin {
    rotation: Rotation,
}

impl RoundRobin {
    pub fn new(stall: Duration) -> Self {
        RoundRobin { rotation: Rotation::new(stall) }
    }
}

/// Node's `SharedHandle`: members accept from their own copy of the socket.
/// The primary only deals out what it holds: connections it accepted while no
/// worker listened, given in turn to the first ones that come back.
#[derive(Debug)]
pub struct Shared {
    rotation: Rotation,
}

impl Shared {
    pub fn new(stall: Duration) -> Self {
        Shared { rotation: Rotation::new(stall) }
    }
}

/// `impl Policy` for a policy whose members take turns in a [`Rotation`]:
/// the membership and turn methods delegate to it; `$own` are the policy's
/// own answers (whether it deals, which sockets it accepts from).
macro_rules! rotation_policy {
    ($ty:ty, name = $name:expr, { $($own:tt)* }) => {
        impl Policy for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn members(&self) -> Vec<WorkerId> {
                self.rotation.members()
            }
            fn is_empty(&self) -> bool {
                self.rotation.is_empty()
            }
            fn all_in(&self, workers: &[WorkerId]) -> bool {
                self.rotation.all_in(workers)
            }
            fn add(&mut self, worker: WorkerId) -> bool {
                self.rotation.add(worker)
            }
            fn remove(&mut self, worker: WorkerId) -> bool {
                self.rotation.remove(worker)
            }
            fn pick(&self, ask: &Ask<'_>, refused_by: &[WorkerId]) -> Option<Pick> {
                self.rotation.pick(ask, refused_by)
            }
            fn commit(&mut self, pick: Pick, refused_by: &[WorkerId]) -> WorkerId {
                self.rotation.commit(pick, refused_by)
            }
            $($own)*
        }
    };
}
pub(crate) use rotation_policy;

rotation_policy!(RoundRobin, name = Mode::RoundRobin.name(), {
    fn deals_new_connections(&self) -> bool {
        true
    }
    /// As long as the lag rule waits (`ROUND_ROBIN_STUCK`): a worker kept
    /// off its CPU for a millisecond or two keeps its turns, so the split
    /// stays exact while workers keep up.
    fn stuck_after(&self, busy_threshold: Duration) -> Option<Duration> {
        Some(busy_threshold.max(ROUND_ROBIN_STUCK))
    }
    fn primary_accepts(&self) -> bool {
        true
    }
});
rotation_policy!(Shared, name = Mode::Shared.name(), {
    fn deals_new_connections(&self) -> bool {
        false
    }
    /// Workers accept from the socket themselves; the primary accepts only
    /// to hold connections while nobody listens.
    fn primary_accepts(&self) -> bool {
        self.rotation.is_empty()
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_has_its_own_name_and_its_policy_gives_it() {
        let modes = [Mode::RoundRobin, Mode::Shared, Mode::LeastConnections, Mode::Sticky, Mode::ReusePort];
        let names: std::collections::HashSet<_> = modes.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), modes.len(), "names are distinct: {names:?}");
        // ReusePort's own policy is made with its sockets (reuseport.rs);
        // without them it is round-robin.
        for mode in modes.into_iter().filter(|m| *m != Mode::ReusePort) {
            assert_eq!(mode.policy(Duration::ZERO).name(), mode.name());
        }
    }
    use std::collections::HashMap;

    const STALL: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A round-robin policy with members 1..=n.
    fn rr(n: u32) -> RoundRobin {
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 64) };
        for id in 1..=n {
            assert!(p.add(id));
        }
        p
    }

    /// Picks and commits `count` connections in a row against fixed loads,
    /// returning who got each (0 for "kept for later").
    fn deal(p: &mut dyn Policy, loads: &HashMap<WorkerId, Load>, now: Instant, count: usize) -> Vec<WorkerId> {
        let load = |id: WorkerId| loads.get(&id).copied().unwrap_or(Load::free(8));
        let ask = Ask { load: &load, now };
        (0..count)
            .map(|_| match p.pick(&ask, &[]) {
                Some(pick) => p.commit(pick, &[]),
                None => 0,
            })
            .collect()
    }

    #[test]
    fn strict_turns_among_members_with_credit() {
        let now = Instant::now();
        let mut p = rr(3);
        assert_eq!(deal(&mut p, &HashMap::new(), now, 7), vec![1, 2, 3, 1, 2, 3, 1]);
    }

    #[test]
    fn a_full_member_in_turn_is_waited_for_until_it_stalls_then_passed_over_and_owed() {
        let t0 = Instant::now();
        // (full since, now, who gets the next two connections)
        let cases: &[(Duration, Duration, [WorkerId; 2])] = &[
            (ms(0), ms(0), [0, 0]),   // just filled up: wait for it
            (ms(0), ms(49), [0, 0]),  // still within the stall limit
            (ms(0), ms(50), [2, 3]),  // stalled: passed over
            (ms(10), ms(100), [2, 3]),
        ];
        for (since, now, expected) in cases {
            let mut p = rr(3);
            let loads = HashMap::from([(1, Load::full_since(t0 + *since))]);
            assert_eq!(deal(&mut p, &loads, t0 + *now, 2), expected.to_vec(), "full since {since:?}, now {now:?}");
        }
    }

    #[test]
    fn with_more_members_than_cpus_each_turn_is_a_run_and_the_split_stays_exact() {
        let now = Instant::now();
        // 5 members on 2 CPUs: runs of 3; 4 on 2: runs of 2; 2 on 2: strict.
        for (members, cpus, expected) in [
            (5u32, 2usize, vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 1]),
            (4, 2, vec![1, 1, 2, 2, 3, 3, 4, 4, 1]),
            (2, 2, vec![1, 2, 1, 2]),
        ] {
            let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, cpus) };
            for id in 1..=members {
                p.add(id);
            }
            assert_eq!(deal(&mut p, &HashMap::new(), now, expected.len()), expected, "{members} members, {cpus} CPUs");
        }
        // A member without credit mid-run is waited for, as in strict turns;
        // one stalled is passed over and owed, and the next starts its run.
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 1) };
        for id in 1..=3 {
            p.add(id);
        }
        let full = HashMap::from([(1, Load::full_since(now))]);
        assert_eq!(deal(&mut p, &full, now, 1), vec![0], "in turn, not started, full: waited for");
        assert_eq!(deal(&mut p, &full, now + STALL, 3), vec![2, 2, 2]);
        assert_eq!(deal(&mut p, &HashMap::new(), now + STALL, 2), vec![1, 3]);
        // Out of credit mid-run (a full window, or paced): the run ends and
        // the next member's begins at once, nobody owed anything.
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 1) };
        for id in 1..=3 {
            p.add(id);
        }
        assert_eq!(deal(&mut p, &HashMap::new(), now, 1), vec![1]);
        let paced = HashMap::from([(1, Load { paced: true, ..Load::full_since(now) })]);
        assert_eq!(deal(&mut p, &paced, now, 3), vec![2, 2, 2]);
        assert_eq!(deal(&mut p, &HashMap::new(), now, 4), vec![3, 3, 3, 1]);
    }

    #[test]
    fn with_runs_lag_is_judged_as_a_turn_begins_and_only_with_a_busy_loop() {
        let now = Instant::now();
        let lagging = Load { lagging: true, unacked: 1, unread: 1, unread_since: Some(now), ..Load::free(7) };
        let stuck = Load { busy: true, busy_for: ms(50), ..lagging };
        let lag1 = HashMap::from([(1, lagging)]);
        let stuck1 = HashMap::from([(1, stuck)]);
        // 3 members on 1 CPU: runs of 3. Member 1 began its run keeping up;
        // what it has not read since, even stuck in a handler, does not end
        // its run.
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 1) };
        for id in 1..=3 {
            p.add(id);
        }
        assert_eq!(deal(&mut p, &HashMap::new(), now, 1), vec![1]);
        assert_eq!(deal(&mut p, &stuck1, now, 8), vec![1, 1, 2, 2, 2, 3, 3, 3]);
        // Its next turn begins with connections unread but its loop waiting
        // for I/O (it has not had a CPU since): its run goes ahead.
        assert_eq!(deal(&mut p, &lag1, now, 9), vec![1, 1, 1, 2, 2, 2, 3, 3, 3]);
        // Busy in a handler too: passed over and owed, the next member's run
        // begins; caught up, it is repaid first and the rotation goes on
        // where it was.
        assert_eq!(deal(&mut p, &stuck1, now, 3), vec![2, 2, 2]);
        assert_eq!(deal(&mut p, &HashMap::new(), now, 5), vec![1, 3, 3, 3, 1]);
        // Every member lagging and busy: nobody is waited for, and runs go on.
        let all_stuck = HashMap::from([(1, stuck), (2, stuck), (3, stuck)]);
        assert_eq!(deal(&mut p, &all_stuck, now, 5), vec![1, 1, 2, 2, 2]);
        // No more members than CPUs: every turn is one connection, and each
        // deal judges. Connections unread with the loop not busy (it
        // answered, then lost its CPU before confirming the read) keep the
        // rotation exact; busy in a handler too, the member is passed over.
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 2) };
        p.add(1);
        p.add(2);
        assert_eq!(deal(&mut p, &HashMap::new(), now, 1), vec![1]);
        assert_eq!(deal(&mut p, &lag1, now, 2), vec![2, 1]);
        // Busy for less than ROUND_ROBIN_STUCK: kept in turn too.
        let briefly = HashMap::from([(1, Load { busy: true, busy_for: ms(5), ..lagging })]);
        assert_eq!(deal(&mut p, &briefly, now, 2), vec![2, 1]);
        assert_eq!(deal(&mut p, &stuck1, now, 3), vec![2, 2, 2]);
        assert_eq!(deal(&mut p, &HashMap::new(), now, 4), vec![1, 1, 1, 2], "two owed turns, then its own");
    }

    #[test]
    fn a_run_ends_when_its_member_leaves() {
        let now = Instant::now();
        let mut p = RoundRobin { rotation: Rotation::with_cpus(STALL, 1) };
        for id in 1..=3 {
            p.add(id);
        }
        assert_eq!(deal(&mut p, &HashMap::new(), now, 1), vec![1]);
        assert!(p.remove(1));
        // 2 members on 1 CPU: runs of 2, from the next member.
        assert_eq!(deal(&mut p, &HashMap::new(), now, 4), vec![2, 2, 3, 3]);
    }

    #[test]
    fn owed_turns_are_repaid_first_once_the_member_has_credit_again() {
        let t0 = Instant::now();
        let mut p = rr(3);
        let stalled = HashMap::from([(1, Load::full_since(t0))]);
        // Worker 1 is passed over on each of two turns: owed two.
        assert_eq!(deal(&mut p, &stalled, t0 + STALL, 4), vec![2, 3, 2, 3]);
        // Back with credit: the two owed turns first, then the rotation resumes
        // where it was.
        assert_eq!(deal(&mut p, &HashMap::new(), t0 + STALL, 5), vec![1, 1, 1, 2, 3]);
    }

    #[test]
    fn a_member_that_lags_is_passed_over_and_owed_but_a_rotation_of_laggards_stays_in_turn() {
        let t0 = Instant::now();
        let lagging = Load { lagging: true, busy: true, busy_for: Duration::from_millis(50), unacked: 1, ..Load::free(7) };
        // Worker 1 left a connection unacknowledged too long, its loop busy:
        // 2 and 3 get the next ones, and 1 is owed its turn.
        let mut p = rr(3);
        let loads = HashMap::from([(1, lagging)]);
        assert_eq!(deal(&mut p, &loads, t0, 4), vec![2, 3, 2, 3]);
        // Still lagging: not repaid yet. Caught up: repaid first.
        assert_eq!(deal(&mut p, &loads, t0, 2), vec![2, 3]);
        assert_eq!(deal(&mut p, &HashMap::new(), t0, 6), vec![1, 1, 1, 1, 2, 3]);
        // Everyone lags equally: the rotation goes on in turn rather than
        // waiting. Unequally: the one lagging the shortest.
        let mut p = rr(2);
        let loads = HashMap::from([(1, lagging), (2, lagging)]);
        assert_eq!(deal(&mut p, &loads, t0, 4), vec![1, 2, 1, 2]);
        let since = |ms: u64| Load { unread_since: Some(t0 + Duration::from_millis(ms)), ..lagging };
        let loads = HashMap::from([(1, since(1)), (2, since(5)), (3, since(3))]);
        let mut p = rr(3);
        assert_eq!(deal(&mut p, &loads, t0 + Duration::from_millis(10), 2), vec![2, 2]);
        // A full member that keeps up is waited for, rather than giving its
        // turn to a laggard.
        let mut p = rr(3);
        let loads = HashMap::from([(1, lagging), (2, Load::full_since(t0))]);
        assert_eq!(deal(&mut p, &loads, t0, 1), vec![0]);
        let mut p = rr(3);
        let loads = HashMap::from([(1, Load::full_since(t0)), (2, lagging)]);
        assert_eq!(deal(&mut p, &loads, t0, 1), vec![0], "the one in turn is waited for");
        // A full member that lags with its loop busy is passed over at once,
        // without waiting to stall; one whose loop is not busy is waited for.
        let mut p = rr(2);
        let loads = HashMap::from([(1, Load { lagging: true, busy: true, busy_for: Duration::from_millis(50), ..Load::full_since(t0) })]);
        assert_eq!(deal(&mut p, &loads, t0, 2), vec![2, 2]);
        let mut p = rr(2);
        let loads = HashMap::from([(1, Load { lagging: true, ..Load::full_since(t0) })]);
        assert_eq!(deal(&mut p, &loads, t0, 1), vec![0]);
    }

    #[test]
    fn debt_is_capped_at_max_debt() {
        let t0 = Instant::now();
        let mut p = rr(2);
        let stalled = HashMap::from([(1, Load::full_since(t0))]);
        let n = MAX_DEBT as usize + 10;
        assert!(deal(&mut p, &stalled, t0 + STALL, n).iter().all(|w| *w == 2));
        let after = deal(&mut p, &HashMap::new(), t0 + STALL, MAX_DEBT as usize + 2);
        let repaid = after.iter().take_while(|w| **w == 1).count();
        // The cap, plus its own turn that comes right after the repayment.
        assert_eq!(repaid, MAX_DEBT as usize + 1);
    }

    #[test]
    fn a_gone_member_counts_as_stalled_and_nobody_with_credit_means_none() {
        let t0 = Instant::now();
        let mut p = rr(2);
        let loads = HashMap::from([(1, Load::gone())]);
        assert_eq!(deal(&mut p, &loads, t0, 2), vec![2, 2]);
        let loads = HashMap::from([(1, Load::gone()), (2, Load::gone())]);
        assert_eq!(deal(&mut p, &loads, t0, 1), vec![0]);
    }

    #[test]
    fn members_that_refused_are_left_out_and_not_owed() {
        let now = Instant::now();
        let mut p = rr(3);
        let load = |_: WorkerId| Load::free(8);
        let ask = Ask { load: &load, now };
        let pick = p.pick(&ask, &[1]).unwrap();
        assert_eq!(p.commit(pick, &[1]), 2);
        // 1 refused, so it was not passed over: it is not owed, and the turn
        // moved on past 2.
        assert_eq!(deal(&mut p, &HashMap::new(), now, 3), vec![3, 1, 2]);
        assert_eq!(p.pick(&ask, &[1, 2, 3]), None);
    }

    #[test]
    fn removing_a_member_keeps_the_turn_on_the_same_next_worker() {
        let now = Instant::now();
        // (remove, after dealing 1, 2: who comes next)
        let cases: &[(WorkerId, [WorkerId; 3])] = &[(1, [3, 2, 3]), (2, [3, 1, 3]), (3, [1, 2, 1])];
        for (gone, expected) in cases {
            let mut p = rr(3);
            assert_eq!(deal(&mut p, &HashMap::new(), now, 2), vec![1, 2]);
            assert!(p.remove(*gone));
            assert!(!p.remove(*gone));
            assert_eq!(deal(&mut p, &HashMap::new(), now, 3), expected.to_vec(), "removed {gone}");
        }
        let mut p = rr(1);
        assert!(p.remove(1));
        assert!(p.is_empty());
        assert_eq!(deal(&mut p, &HashMap::new(), now, 1), vec![0]);
        assert!(p.add(1));
        assert!(!p.add(1));
    }

    #[test]
    fn refusal_rounds_wait_longer_each_round_up_to_200ms() {
        let now = Instant::now();
        let p = rr(2);
        let mut offers = Offers::default();
        assert!(offers.is_due(now));
        p.refused(&mut offers, 1, now);
        assert_eq!(offers, Offers { refused_by: vec![1], rounds: 0, retry_at: None, threads_tried: 0 }, "one left to ask");
        let expected_ms = [10, 20, 40, 80, 160, 200, 200, 200];
        for (round, delay) in expected_ms.iter().enumerate() {
            if round > 0 {
                p.refused(&mut offers, 1, now);
            }
            p.refused(&mut offers, 2, now);
            assert_eq!(offers.rounds, round as u32 + 1);
            assert!(offers.refused_by.is_empty(), "a new round asks everyone again");
            assert_eq!(offers.retry_at, Some(now + ms(*delay)), "round {}", round + 1);
            assert!(!offers.is_due(now + ms(*delay) - ms(1)));
            assert!(offers.is_due(now + ms(*delay)));
        }
        assert_eq!(retry_delay(0), ms(5));
    }

    #[test]
    fn a_new_round_starts_when_the_last_member_that_had_not_refused_leaves() {
        let now = Instant::now();
        let mut p = rr(2);
        let mut offers = Offers::default();
        p.refused(&mut offers, 1, now);
        p.new_round_if_refused_by_all(&mut offers, now);
        assert_eq!(offers.rounds, 0);
        p.remove(2);
        p.new_round_if_refused_by_all(&mut offers, now);
        assert_eq!((offers.rounds, offers.refused_by.len()), (1, 0));
        // Nobody left at all: nothing to start a round with.
        p.remove(1);
        let mut offers = Offers { refused_by: vec![1], ..Offers::default() };
        p.new_round_if_refused_by_all(&mut offers, now);
        assert_eq!(offers.rounds, 0);
    }

    #[test]
    fn only_round_robin_deals_new_connections_and_both_deal_what_is_held() {
        let now = Instant::now();
        for (mode, deals) in [(Mode::RoundRobin, true), (Mode::Shared, false)] {
            let mut p = mode.policy(STALL);
            assert_eq!(p.deals_new_connections(), deals, "{mode:?}");
            p.add(7);
            p.add(9);
            assert_eq!(p.members(), vec![7, 9]);
            assert_eq!(deal(p.as_mut(), &HashMap::new(), now, 3), vec![7, 9, 7], "{mode:?}");
        }
    }
}
