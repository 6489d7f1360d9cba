//! The dispatcher thread: one epoll loop over the waker, every worker's
//! channel and the listening sockets that want accepting. It does the I/O and
//! feeds each listener's scheduling policy; the policies decide who gets what.
//!
//! Every descriptor is registered once (level-triggered) and changed only
//! when what it is watched for changes: a channel that filled up is watched
//! for room to write, a listening socket only while it should be accepted
//! from. A `poll` set rebuilt at every turn cost a wait-queue entry per
//! descriptor per turn, so the loop's cost grew with the worker count.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::bus_relay;
use super::command::Command;
use super::events::{self, Event, EventSink, WarningLimiter};
use super::health::Health;
use super::shards::{self, Able, Shards, SocketKind, UNABLE};
use super::stats::StageStats;
use super::{Config, Emptied, ListenOutcome, ListenRequest, Stats};
use crate::channel::wire::{ListenerId, ToPrimary, ACCEPTED, MAX_MESSAGE_LEN};
use crate::connection_claims::ClaimBook;
use crate::dispatcher::ack_stats::AckStats;
use crate::dispatcher::peer::{Connection, Peer, PeerState, WorkerId};
use crate::dispatcher::untouched;
use crate::error::{Error, Result};
use crate::listen;
use crate::listen::socket_identity;
use crate::routing::handle::{with_ask, Held, ListenHandle, Take};
use crate::routing::header_stage::{Admitted, HeaderStage, Passed};
use crate::routing::policy::Mode;
use crate::routing::reuseport::{self, ReusePort};
use crate::sys::{self, Recv, Waker};

/// What an epoll token stands for: the kind in the high 32 bits, the
/// worker's or listener's id in the low ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Waker,
    Peer(WorkerId),
    Handle(ListenerId),
    /// The epoll instance watching every connection in a header stage.
    Stages,
}

impl Slot {
    fn token(self) -> u64 {
        let (kind, id) = match self {
            Slot::Waker => (0u64, 0u32),
            Slot::Peer(id) => (1, id),
            Slot::Handle(id) => (2, id),
            Slot::Stages => (3, 0),
        };
        kind << 32 | u64::from(id)
    }

    /// `None` for a token this loop never registered.
    fn of_token(token: u64) -> Option<Slot> {
        let id = (token & u64::from(u32::MAX)) as u32;
        match token >> 32 {
            0 => Some(Slot::Waker),
            1 => Some(Slot::Peer(id)),
            2 => Some(Slot::Handle(id)),
            3 => Some(Slot::Stages),
            _ => None,
        }
    }
}

/// Most events one wait reports; more stay for the next turn.
const MAX_EVENTS_PER_TURN: usize = 256;

/// What the last wait said about a listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    /// Not watched (no worker could take a connection then, or paused):
    /// worth trying, since credit may be back now.
    NotPolled,
    /// Watched and found with nothing to accept: skipped.
    Idle,
    Readable,
}

pub(super) struct EventLoop {
    config: Config,
    inbox: Receiver<Command>,
    waker: Arc<Waker>,
    peers: HashMap<WorkerId, Peer>,
    handles: HashMap<ListenerId, ListenHandle>,
    keys: HashMap<String, ListenerId>,
    next_listener: ListenerId,
    /// The loop's epoll instance, and its buffer of events.
    epoll: OwnedFd,
    epoll_events: sys::EpollEvents,
    /// What the last wait reported, by token.
    ready: Vec<(u64, sys::PollEvents)>,
    /// Each channel registered, and whether for room to write too.
    watched_peers: HashMap<WorkerId, bool>,
    /// The listening sockets registered now, and those that should be
    /// (rebuilt each turn; kept for their allocation).
    watched_sockets: Vec<(RawFd, ListenerId)>,
    wanted_sockets: Vec<(RawFd, ListenerId)>,
    /// The header stages' epoll, once registered (it lives as long as the loop).
    watched_stages: bool,
    readiness: HashMap<ListenerId, Readiness>,
    events: EventSink,
    /// Broadcasts go to the primary's bus channel too (`Command::BusBridge`).
    bus_bridge: bool,
    /// Where connections wait for their first bytes before they are placed.
    stage: HeaderStage,
    /// What came out of the stage this turn, for the listeners' queues
    /// (kept to reuse its allocation).
    passed: Vec<Passed>,
    /// Warnings that could repeat at every turn or connection: one per 10 s.
    warnings: WarningLimiter,
    acks: AckStats,
    health: Health,
    /// Where workers' messages are read into, allocated once: a bus message
    /// may be large, and zeroing that much at every read showed in profiles.
    read_buf: Box<[u8]>,
    /// Which dispatcher thread this is, and what it shares with the others
    /// (`None`: it is the only one, docs/DESIGN.md §16).
    shard: usize,
    shards: Option<Arc<Shards>>,
    /// With several threads: per listener, which threads could deal a
    /// connection now to a worker that keeps up (`shards::Able`), and the
    /// listeners this thread leaves to others this turn for that reason.
    able: HashMap<ListenerId, Arc<Able>>,
    deferring: Vec<(ListenerId, usize)>,
    /// Per listener, connections this thread accepted in its current turn.
    turn_taken: HashMap<ListenerId, usize>,
    /// When the other threads were last asked to look at their workers
    /// again for a connection left with a blocked worker here.
    last_poke: Option<Instant>,
}

impl EventLoop {
    pub(super) fn new(
        config: Config,
        inbox: Receiver<Command>,
        waker: Arc<Waker>,
        events: EventSink,
        shared: Option<(usize, Arc<Shards>)>,
    ) -> std::io::Result<Self> {
        let (shard, shards) = match shared {
            Some((shard, shards)) => (shard, Some(shards)),
            None => (0, None),
        };
        let threads = shards.as_ref().map_or(1, |s| s.len());
        let stage = HeaderStage::new(config.proxy.clone(), config.sticky_http.clone(), config.stage_limit).shared_by(threads);
        let epoll = sys::epoll_create()?;
        sys::epoll_watch_level(epoll.as_fd(), waker.as_fd(), Slot::Waker.token(), false, false)?;
        Ok(EventLoop {
            config,
            inbox,
            waker,
            peers: HashMap::new(),
            handles: HashMap::new(),
            keys: HashMap::new(),
            next_listener: 1,
            epoll,
            epoll_events: sys::EpollEvents::with_capacity(MAX_EVENTS_PER_TURN),
            ready: Vec::new(),
            watched_peers: HashMap::new(),
            watched_sockets: Vec::new(),
            wanted_sockets: Vec::new(),
            watched_stages: false,
            readiness: HashMap::new(),
            events,
            bus_bridge: false,
            stage,
            passed: Vec::new(),
            warnings: WarningLimiter::default(),
            acks: AckStats::default(),
            health: Health::default(),
            read_buf: vec![0u8; MAX_MESSAGE_LEN].into_boxed_slice(),
            shard,
            shards,
            able: HashMap::new(),
            deferring: Vec::new(),
            turn_taken: HashMap::new(),
            last_poke: None,
        })
    }

    /// Tells the primary's JS of a warning (`process.emitWarning`).
    fn warn(&mut self, code: &'static str, message: String) {
        (self.events)(Event::Warning { code, message });
    }

    pub(super) fn run(mut self) {
        if let Some(shards) = self.shards.as_deref() {
            crate::routing::policy::set_cpu_share(shards.len());
        }
        // Skipped while the config was made, before anyone could hear.
        for message in self.config.inherited.warnings().to_vec() {
            self.warn(events::LISTEN_FDS_IGNORED, message);
        }
        loop {
            self.update_watches();
            let timeout = self.poll_timeout();
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            if let Err(e) = sys::epoll_wait_into(self.epoll.as_fd(), &mut self.epoll_events, timeout, &mut ready) {
                self.ready = ready;
                if self.warnings.allow(events::POLL_FAILED, 0, Instant::now()) {
                    self.warn(events::POLL_FAILED, format!("epoll_wait failed: {e}"));
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            // Every watched socket is idle unless reported below.
            self.readiness.clear();
            for (_, id) in &self.watched_sockets {
                self.readiness.insert(*id, Readiness::Idle);
            }
            // Commands first, as the waker came first in the poll set: a
            // worker added or removed by them is seen by what follows.
            if ready.iter().any(|(token, _)| *token == Slot::Waker.token()) {
                self.waker.drain();
                if !self.run_commands() {
                    return;
                }
            }
            for (token, revents) in ready.iter().copied() {
                match Slot::of_token(token) {
                    Some(Slot::Peer(id)) => self.on_peer_event(id, revents),
                    // A handle may have several sockets (SCHED_REUSEPORT):
                    // readable if any is.
                    Some(Slot::Handle(id)) => {
                        self.readiness.insert(id, Readiness::Readable);
                    }
                    // Read below, after the channels: connections with news
                    // are asked epoll for there, and those past their
                    // deadline are found without it.
                    Some(Slot::Stages) | Some(Slot::Waker) | None => {}
                }
            }
            self.ready = ready;
            self.read_headers();
            self.reap_dead_peers();
            self.check_health();
            self.take_back_stuck();
            self.pass_on_orphans();
            self.dispatch();
            self.flush();
            self.reap_dead_peers();
            self.pass_on_orphans();
            let now = Instant::now();
            for peer in self.peers.values_mut() {
                peer.track_fullness(self.config.window, self.config.stall, now);
            }
        }
    }

    /// Brings the registrations up to date with what should be watched
    /// this turn: channels for room to write while they are full, listening
    /// sockets while they should be accepted from, the stages' epoll once it
    /// exists. Only changes cost a system call.
    fn update_watches(&mut self) {
        self.refresh_able(Instant::now());
        let epoll = self.epoll.as_fd();
        for peer in self.peers.values() {
            let writable = peer.wants_writable();
            if self.watched_peers.get(&peer.id) != Some(&writable) {
                let modify = self.watched_peers.contains_key(&peer.id);
                match sys::epoll_watch_level(epoll, peer.channel_fd(), Slot::Peer(peer.id).token(), writable, modify) {
                    Ok(()) => {
                        self.watched_peers.insert(peer.id, writable);
                    }
                    // Out of kernel memory: tried again next turn.
                    Err(e) => {
                        if self.warnings.allow(events::POLL_FAILED, 2, Instant::now()) {
                            let message = format!("cannot watch worker {}'s channel: {e}", peer.id);
                            (self.events)(Event::Warning { code: events::POLL_FAILED, message });
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        let mut wanted = std::mem::take(&mut self.wanted_sockets);
        wanted.clear();
        let budget = self.stage_budget();
        for handle in self.handles.values_mut() {
            handle.resume_if_due(now);
            // Only watch a listening socket while it should be accepted
            // from: otherwise the kernel's queue holds its connections (never
            // close a connection because everyone is busy, docs/DESIGN.md
            // §3.4). While its header stage is full, a listener accepts no
            // more. Only its own: every other listener has a budget of its own.
            let stage_full = self.stage.is_full_for(handle.id(), handle.is_keyed(), budget);
            let wants = !served_elsewhere(self.shards.as_deref(), self.shard, handle)
                && !self.deferring.iter().any(|(id, _)| *id == handle.id())
                && with_ask(&self.peers, self.config.window, now, |ask| {
                    handle.should_accept(ask, self.config.queue_limit, stage_full).is_some()
                });
            if wants {
                let id = handle.id();
                handle.accept_fds(&mut |fd| wanted.push((fd.as_raw_fd(), id)));
            }
        }
        // The listening sockets are few (one per listener, or per orphaned
        // SCHED_REUSEPORT slot): lists beat sets here. Each socket is open
        // while its listener is; `close_handle` forgets them first.
        let mut i = 0;
        while i < self.watched_sockets.len() {
            if wanted.contains(&self.watched_sockets[i]) {
                i += 1;
            } else {
                sys::epoll_forget(epoll, self.watched_sockets[i].0);
                self.watched_sockets.swap_remove(i);
            }
        }
        for entry in wanted.iter().copied() {
            if self.watched_sockets.contains(&entry) {
                continue;
            }
            let (fd, id) = entry;
            let Some(handle) = self.handles.get(&id) else { continue };
            let mut result = Ok(());
            // With several threads holding one listening socket, a new
            // connection wakes one of those watching it, not all.
            let exclusive = self.shards.is_some();
            handle.accept_fds(&mut |socket| {
                if socket.as_raw_fd() == fd {
                    result = if exclusive {
                        sys::epoll_watch_exclusive(epoll, socket, Slot::Handle(id).token())
                    } else {
                        sys::epoll_watch_level(epoll, socket, Slot::Handle(id).token(), false, false)
                    };
                }
            });
            match result {
                Ok(()) => self.watched_sockets.push(entry),
                // Watched already: a socket forgotten and wanted again
                // within one turn never happens, but costs nothing to allow.
                Err(e) if e.raw_os_error() == Some(sys::errno::EEXIST) => self.watched_sockets.push(entry),
                // Not watched: `Readiness::NotPolled` has it tried every turn.
                Err(e) => {
                    if self.warnings.allow(events::POLL_FAILED, 3, now) {
                        let message = format!("cannot watch a listening socket: {e}");
                        (self.events)(Event::Warning { code: events::POLL_FAILED, message });
                    }
                }
            }
        }
        self.wanted_sockets = wanted;
        if !self.watched_stages {
            if let Some(fd) = self.stage.poll_fd() {
                // Registered once: the stage keeps its epoll for good.
                match sys::epoll_watch_level(epoll, fd, Slot::Stages.token(), false, false) {
                    Ok(()) => self.watched_stages = true,
                    Err(e) => {
                        if self.warnings.allow(events::POLL_FAILED, 4, now) {
                            let message = format!("cannot watch the header stage: {e}");
                            (self.events)(Event::Warning { code: events::POLL_FAILED, message });
                        }
                    }
                }
            }
        }
    }

    /// With several threads: tells the others whether this thread could
    /// deal each listener's next connection to a worker that keeps up, and
    /// notes the listeners whose connections it leaves to another thread
    /// for now, because its workers cannot and that thread's can
    /// (`shards::Able`). One that stops being able wakes the others: they
    /// may have left the socket to it.
    fn refresh_able(&mut self, now: Instant) {
        self.deferring.clear();
        let Some(shards) = self.shards.as_deref() else { return };
        let budget = self.stage_budget();
        for handle in self.handles.values() {
            let Some(able) = self.able.get(&handle.id()) else { continue };
            let stage_full = self.stage.is_full_for(handle.id(), handle.is_keyed(), budget);
            let least_connections = handle.policy_name() == Mode::LeastConnections.name();
            let (take, score) = with_ask(&self.peers, self.config.window, now, |ask| {
                let take = handle.should_accept(ask, self.config.queue_limit, stage_full);
                let lagging = || handle.least_lag(ask).map_or(UNABLE, shards::lagging_score);
                let score = match take {
                    Some(Take::Deal(_)) if least_connections => handle.least_open_keeping_up(ask).unwrap_or_else(lagging),
                    Some(Take::Deal(_)) if handle.could_take_elsewhere(ask, NO_WORKER) => 0,
                    Some(Take::Deal(_)) => lagging(),
                    _ => UNABLE,
                };
                (take, score)
            });
            if able.set(self.shard, score) {
                shards.wake_others(self.shard);
            }
            if take.is_some() {
                if let Some(other) = able.better_than(self.shard, score) {
                    self.deferring.push((handle.id(), other));
                }
            }
        }
    }

    /// Stops watching a worker's channel, before it is dropped: the worker's
    /// end may outlive it (an open file stays registered while any copy of
    /// it is open).
    fn forget_peer(&mut self, peer: &Peer) {
        if self.watched_peers.remove(&peer.id).is_some() {
            sys::epoll_forget(self.epoll.as_fd(), peer.channel_fd().as_raw_fd());
        }
    }

    /// How many connections each listener with a header stage may have
    /// waiting in it (`Config::stage_limit`): `None` without stages.
    fn stage_budget(&self) -> Option<usize> {
        if self.config.proxy.is_none() && self.config.sticky_http.is_none() {
            return None;
        }
        let staged = self.handles.values().filter(|h| self.stage.applies_to(h.is_keyed())).count();
        self.stage.budget(staged)
    }

    /// Connections done with the header stage go to their listener's queue.
    fn read_headers(&mut self) {
        if self.stage.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut passed = std::mem::take(&mut self.passed);
        if let Some(e) = self.stage.process(now, &mut passed) {
            if self.warnings.allow(events::POLL_FAILED, 1, now) {
                self.warn(events::POLL_FAILED, format!("epoll_wait failed: {e}"));
            }
        }
        for Passed { conn, proxied } in passed.drain(..) {
            if let Some(handle) = self.handles.get_mut(&conn.listener) {
                handle.hold(conn, if proxied { Held::Proxied } else { Held::Arrived });
            }
        }
        self.passed = passed;
    }

    /// How long to sleep in poll: not at all while queued connections can
    /// move; otherwise until the next pause ends or a full worker turns stalled
    /// (then the rotation may pass over it), or indefinitely.
    fn poll_timeout(&self) -> i32 {
        let now = Instant::now();
        let movable = with_ask(&self.peers, self.config.window, now, |ask| {
            self.handles.values().any(|h| h.pending_can_move(ask))
        });
        if movable {
            return 0;
        }
        let stall = self.config.stall;
        let wake_ups = self
            .handles
            .values()
            .filter_map(|h| h.paused_until())
            .chain(self.handles.values().filter_map(|h| h.next_pending_deadline(self.config.queue_timeout, now)))
            .chain(self.stage.next_deadline())
            .chain(self.peers.values().filter_map(|p| p.stalls_at(stall)).filter(|t| *t > now))
            // Round-robin passes over a worker once it lags: look again then.
            .chain(self.peers.values().filter_map(Peer::lags_at).filter(|t| *t > now))
            // A connection left with a blocked worker is taken back then;
            // one due and not taken (no other worker could take it this
            // turn) is looked at again a millisecond on.
            .chain(self.next_take_back(now).map(|t| t.max(now + Duration::from_millis(1))))
            .chain(self.config.hang_timeout.and_then(|t| self.health.next_deadline(t)))
            // A listener left to another thread is looked at again within a
            // millisecond: that thread's score may be stale, and it wakes
            // this one only when its workers stop keeping up.
            .chain((!self.deferring.is_empty()).then(|| now + Duration::from_millis(1)));
        match wake_ups.min() {
            None => -1,
            Some(at) => at.saturating_duration_since(now).as_millis().clamp(1, i32::MAX as u128) as i32,
        }
    }

    /// Runs queued commands; false means stop.
    fn run_commands(&mut self) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::AddPeer(id, channel, stamp) => match Peer::new(id, channel) {
                    Ok(mut peer) => {
                        peer.pace_above(self.config.pace_above);
                        peer.allow_window(self.config.window, self.config.max_window);
                        peer.judge_by(self.config.busy_threshold, self.config.ack_lag);
                        if let Some((reader, fd)) = stamp {
                            // Without its claims (out of memory for the
                            // mapping) nothing is ever taken back from it.
                            let claims = ClaimBook::map(fd.as_fd()).ok();
                            peer.set_loop_stamp(reader, claims, fd);
                        }
                        if let Some(mut old) = self.peers.insert(id, peer) {
                            // Ids are never reused; if one were, the old channel is dead to us.
                            old.mark_dead();
                            self.forget_peer(&old);
                        }
                    }
                    Err(e) => self.warn(events::CHANNEL_UNUSABLE, format!("cannot use the channel of worker {id}: {e}")),
                },
                Command::RemovePeer(id) => {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.mark_dead();
                    }
                    // Now, not at the end of the turn: a Stats command queued
                    // behind this one (stats() in an 'exit' listener) must not
                    // list the worker.
                    self.reap_dead_peers();
                }
                Command::Withdraw(id, emptied) => self.withdraw(id, emptied),
                Command::Listen(request, reply) => {
                    let _ = reply.send(self.listen(request));
                }
                Command::Stats(reply) => {
                    let budget = self.stage_budget();
                    let stage = &self.stage;
                    let of = |h: &ListenHandle| StageStats {
                        waiting: stage.count(h.id()),
                        budget: budget.filter(|_| stage.applies_to(h.is_keyed())),
                        counts: stage.counts(h.id()),
                    };
                    let _ = reply.send(Stats::collect(&self.handles, &self.peers, &self.acks, &of));
                }
                Command::BusBridge(on) => self.bus_bridge = on,
                Command::Adopt(listener, conns) => match self.handles.get_mut(&listener) {
                    Some(handle) => {
                        for conn in conns.into_iter().rev() {
                            handle.hold(conn, Held::Returned);
                        }
                    }
                    // Its handle here closed meanwhile (the last member here
                    // left): on to a thread that has members; with none, the
                    // socket is closing, and they close with it.
                    None => {
                        if let Some(shards) = self.shards.clone() {
                            let key = conns.first().and_then(|_| shards.sockets.key_of(listener));
                            if let Some(target) = key.as_deref().and_then(|k| shards.sockets.members_elsewhere(k, self.shard)) {
                                shards.inbox(target).send(Command::Adopt(listener, conns));
                            }
                        }
                    }
                },
                Command::Bus { from, to, message } => {
                    if let Some(shards) = self.shards.as_deref() {
                        shards.release_bus(self.shard, message.len());
                    }
                    bus_relay::deliver_here(&mut self.peers, self.shards.as_deref(), from, to, message, self.bus_bridge)
                }
                Command::BusNotice { to, notice } => {
                    if let Some(peer) = self.peers.get_mut(&to) {
                        peer.push_bus(notice);
                    }
                }
                Command::PeerGone(gone) => bus_relay::peer_gone(&mut self.peers, None, self.shard, gone),
                Command::Stop => return false,
            }
        }
        true
    }

    fn listen(&mut self, request: ListenRequest) -> Result<ListenOutcome> {
        if !self.peers.get(&request.worker).is_some_and(|p| p.state() != PeerState::Dead) {
            return Err(Error::InvalidArgument(format!("worker {} has no open channel", request.worker)));
        }
        let (id, created) = match self.keys.get(&request.key) {
            Some(id) => (*id, false),
            None => {
                let elsewhere = self.shards.as_deref().is_some_and(|s| s.sockets.names_one_of(&request.spec.addr, &request.key));
                if elsewhere || socket_identity::names_one_of(&request.spec.addr, self.handles.values().map(ListenHandle::fd)) {
                    return Err(Error::io("bind", std::io::Error::from_raw_os_error(sys::errno::EEXIST)));
                }
                let (id, handle, created) = match self.shards.clone() {
                    None => {
                        let id = self.next_listener;
                        let handle = self.bind_handle(id, &request)?;
                        self.next_listener += 1;
                        (id, handle, true)
                    }
                    Some(shards) => self.join_handle(&shards, &request)?,
                };
                self.handles.insert(id, handle);
                self.keys.insert(request.key.clone(), id);
                (id, created)
            }
        };
        let handle = self.handles.get_mut(&id).expect("a key always names a live handle");
        // SCHED_NONE: the worker gets its own copy of the listening socket.
        // If that fails, it does not become a member, and a socket bound just
        // for it is closed again rather than left holding the port.
        let shared_fd = if handle.shares_socket() {
            match handle.socket_for(request.worker) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    if created {
                        self.close_handle(id);
                    }
                    return Err(Error::io("dup", e));
                }
            }
        } else {
            None
        };
        handle.add(request.worker);
        let outcome = ListenOutcome { listener: id, local: handle.local().clone(), created, shared: handle.shares_socket() };
        self.publish_members(id);
        if let Some(fd) = shared_fd {
            let peer = self.peers.get_mut(&request.worker).expect("checked above");
            peer.push_shared(id, fd);
            // Sent before the reply goes out on the IPC channel; the worker
            // copes with either order anyway.
            let flushed = peer.flush();
            debug_assert!(flushed.returned.is_empty(), "nothing was queued for dispatch");
        }
        Ok(outcome)
    }

    /// Binds the socket for a new key and makes its handle. SCHED_REUSEPORT
    /// binds with `SO_REUSEPORT` (each member gets a socket of its own);
    /// where that cannot be (not TCP, or no `SO_REUSEPORT` here) the listener
    /// gets round-robin instead.
    fn bind_handle(&mut self, id: ListenerId, request: &ListenRequest) -> Result<ListenHandle> {
        let stall = self.config.stall;
        let socket_type = request.spec.socket_type();
        let new = |mode, socket| ListenHandle::new(id, request.key.clone(), mode, socket, socket_type, stall);
        if let Some(socket) = self.inherited_socket(&request.spec) {
            // One socket, systemd's: SCHED_REUSEPORT has nothing to add to it
            // (`Mode::policy` makes it round-robin).
            return Ok(new(request.mode, socket?));
        }
        if request.mode == Mode::ReusePort {
            match reuseport::bind_first(&request.spec) {
                Some(Ok((socket, ipv6_only))) => {
                    let backlog = if request.spec.backlog > 0 { request.spec.backlog } else { listen::DEFAULT_BACKLOG };
                    let policy = ReusePort::new(stall, &socket, ipv6_only, backlog, request.defer_accept)
                        .map_err(|e| Error::io("dup", e))?;
                    return Ok(ListenHandle::with_policy(id, request.key.clone(), Box::new(policy), socket, socket_type));
                }
                Some(Err(e)) if !reuseport::is_unsupported(&e) => return Err(Error::io("bind", e)),
                Some(Err(e)) => self.warn(
                    events::REUSEPORT_UNAVAILABLE,
                    format!("SO_REUSEPORT is not available ({e}); {} uses round-robin", request.key),
                ),
                None => {}
            }
        }
        // SCHED_REUSEPORT here (not TCP, or no SO_REUSEPORT) is round-robin.
        let socket = listen::bind(&request.spec).map_err(|e| Error::io("bind", e))?;
        Ok(new(request.mode, socket))
    }

    /// With several dispatcher threads: this thread's handle for the key's
    /// one socket, bound now if no thread has it yet (`SocketRegistry::join`).
    fn join_handle(&mut self, shards: &Shards, request: &ListenRequest) -> Result<(ListenerId, ListenHandle, bool)> {
        let stall = self.config.stall;
        let socket_type = request.spec.socket_type();
        let mut made = None;
        let joined = shards.sockets.join(&request.key, self.shard, |id| {
            let mut handle = self.bind_handle(id, request)?;
            // Each thread binds SCHED_REUSEPORT slots of its own, alike.
            let kind = if handle.policy_name() == Mode::ReusePort.name() {
                let ipv6_only = matches!(request.spec.addr, listen::ListenAddr::Tcp { ipv6_only: true, .. })
                    && matches!(handle.local(), sys::LocalAddr::Inet(std::net::SocketAddr::V6(_)));
                let backlog = if request.spec.backlog > 0 { request.spec.backlog } else { listen::DEFAULT_BACKLOG };
                SocketKind::ReusePort { ipv6_only, backlog, defer_accept: request.defer_accept }
            } else {
                SocketKind::Plain
            };
            // The registry keeps a copy, and removes a unix socket's path
            // once the last thread closes it.
            let socket = handle.copy_socket().map_err(|e| Error::io("dup", e))?;
            handle.disown_path();
            made = Some(handle);
            Ok((socket, kind))
        })?;
        self.able.insert(joined.id, Arc::clone(&joined.able));
        let handle = match (made, joined.socket) {
            (Some(handle), _) => return Ok((joined.id, handle, true)),
            (None, Some((socket, SocketKind::Plain))) => {
                ListenHandle::new(joined.id, request.key.clone(), request.mode, socket, socket_type, stall)
            }
            (None, Some((socket, SocketKind::ReusePort { ipv6_only, backlog, defer_accept }))) => {
                let policy =
                    ReusePort::joining(stall, &socket, ipv6_only, backlog, defer_accept).map_err(|e| Error::io("bind", e))?;
                ListenHandle::with_policy(joined.id, request.key.clone(), Box::new(policy), socket, socket_type)
            }
            (None, None) => unreachable!("the registry gives a copy to every thread but the one that bound it"),
        };
        Ok((joined.id, handle, false))
    }

    /// Tells the other dispatcher threads how many of this one's workers
    /// are in `listener`'s rotation now.
    fn publish_members(&self, listener: ListenerId) {
        let Some(shards) = self.shards.as_deref() else { return };
        if let Some(handle) = self.handles.get(&listener) {
            shards.sockets.set_members(handle.key(), self.shard, handle.members().len(), shards);
        }
    }

    /// With several dispatcher threads: what this one holds for a listener
    /// none of its workers is a member of any more (they died, or left) goes
    /// to a thread that has members, to be dealt there (`Command::Adopt`).
    fn pass_on_orphans(&mut self) {
        let Some(shards) = self.shards.clone() else { return };
        for handle in self.handles.values_mut() {
            if !handle.is_empty() || handle.pending_len() == 0 {
                continue;
            }
            if let Some(target) = shards.sockets.members_elsewhere(handle.key(), self.shard) {
                let conns = handle.take_pending();
                shards.inbox(target).send(Command::Adopt(handle.id(), conns));
            }
        }
    }

    /// A socket inherited from systemd for this listen, if one is bound to
    /// its address: a copy of it, listening (`LISTEN_FDS`).
    fn inherited_socket(&self, spec: &listen::ListenSpec) -> Option<Result<listen::BoundSocket>> {
        let (fd, _name) = self.config.inherited.find(&spec.addr)?;
        let as_fd = listen::ListenSpec { addr: listen::ListenAddr::Fd { fd: fd.as_raw_fd() }, backlog: spec.backlog };
        Some(listen::bind(&as_fd).map_err(|e| Error::io("listen", e)))
    }

    fn on_peer_event(&mut self, id: WorkerId, revents: sys::PollEvents) {
        if sys::is_writable(revents) {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.on_writable();
            }
        }
        if sys::is_readable_or_closed(revents) {
            self.read_peer(id);
        }
    }

    /// Reads every message a worker sent. End of file means the worker is
    /// gone: this is how a worker's death is seen while the primary's JS is busy.
    fn read_peer(&mut self, id: WorkerId) {
        let mut buf = std::mem::take(&mut self.read_buf);
        self.read_peer_into(id, &mut buf);
        self.read_buf = buf;
    }

    fn read_peer_into(&mut self, id: WorkerId, buf: &mut [u8]) {
        let mut fds: Vec<OwnedFd> = Vec::new();
        // A peer flooding the bus must not keep this thread from the others:
        // the rest is read at the next turn (poll is level-triggered).
        for _ in 0..bus_relay::MAX_READS_PER_TURN {
            let Some(peer) = self.peers.get_mut(&id) else { return };
            let received = sys::recv_message(peer.channel_fd(), buf, &mut fds);
            let failure = match received {
                Ok(Recv::WouldBlock) => return,
                Ok(Recv::Closed) => None,
                Ok(Recv::Message(n)) if fds.is_empty() && bus_relay::is_bus(&buf[..n]) => {
                    match bus_relay::relay(&mut self.peers, self.shards.as_deref(), self.shard, id, &buf[..n], self.bus_bridge) {
                        Ok(()) => continue,
                        Err(e) => Some(e.to_string()),
                    }
                }
                Ok(Recv::Message(n)) if fds.is_empty() => match ToPrimary::decode(&buf[..n]) {
                    Ok(ToPrimary::Reply { statuses }) => {
                        self.on_reply(id, statuses);
                        continue;
                    }
                    Ok(ToPrimary::Leave { listener }) => {
                        self.on_leave(id, listener);
                        continue;
                    }
                    Ok(ToPrimary::Read { count, closes }) => {
                        for (listener, closed, cap) in closes.iter() {
                            self.on_closed(id, listener, closed, cap);
                        }
                        if self.peers.get_mut(&id).is_some_and(|peer| peer.confirm_read(count)) {
                            continue;
                        }
                        Some("confirmed reading more connections than it took".to_string())
                    }
                    Ok(ToPrimary::Stick { key }) => {
                        // Only a sticky listener's policy keeps it.
                        for handle in self.handles.values_mut() {
                            handle.claim(key, id);
                        }
                        continue;
                    }
                    Ok(ToPrimary::Closed { listener, closed, cap }) => {
                        self.on_closed(id, listener, closed, cap);
                        continue;
                    }
                    Ok(ToPrimary::Heartbeat) => {
                        self.health.beat(id, Instant::now());
                        continue;
                    }
                    Ok(ToPrimary::HandBack { .. }) => Some("a hand-back without its connection".to_string()),
                    Err(e) => Some(crate::channel::wire::refuse_frame(id, e.to_string())),
                },
                Ok(Recv::Message(n)) if fds.len() == 1 => match ToPrimary::decode(&buf[..n]) {
                    Ok(ToPrimary::HandBack { listener }) => {
                        let fd = fds.pop().expect("one fd");
                        self.on_hand_back(listener, fd);
                        continue;
                    }
                    _ => Some(crate::channel::wire::refuse_frame(id, "a worker sent file descriptors".to_string())),
                },
                Ok(Recv::Message(_) | Recv::FdsLost(_)) => Some(crate::channel::wire::refuse_frame(id, "a worker sent file descriptors".to_string())),
                // A message longer than any of the protocol's (MSG_TRUNC).
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(crate::channel::wire::refuse_frame(id, e.to_string())),
                Err(e) => Some(e.to_string()),
            };
            fds.clear();
            match failure {
                Some(why) => self.channel_failed(id, why),
                None => {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.mark_dead();
                    }
                }
            }
            return;
        }
    }

    /// Worker `id` reports `closed` more of the connections it took for
    /// `listener` closed, and its server's `maxConnections` (0: none).
    fn on_closed(&mut self, id: WorkerId, listener: ListenerId, closed: u32, cap: u32) {
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.closed(closed);
        }
        if let Some(handle) = self.handles.get_mut(&listener) {
            handle.closed(id, closed, cap);
        }
    }

    fn on_reply(&mut self, id: WorkerId, statuses: &[u8]) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        peer.on_acknowledgement(self.config.window);
        let mut refused = Vec::new();
        let mut overacknowledged = false;
        for status in statuses {
            let Some(conn) = peer.take_acknowledged() else {
                overacknowledged = true;
                break;
            };
            if conn.taken_back && *status != ACCEPTED {
                // Another worker has it; this one closed its copy unread
                // (an honest one refuses it). Ours closes here.
                continue;
            }
            // Accepted though taken back: only a worker that wrote over its
            // own claims does that (its claim found no `REVOKED` there). It
            // took it, and will confirm reading it and report it closed, so
            // it is counted as taken like any other: its reports stay
            // consistent and its channel is not failed for them.
            if *status == ACCEPTED {
                peer.count_accepted();
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.opened(id);
                }
                self.acks.accepted(now.saturating_duration_since(conn.since));
                // The worker owns a socket for it now; our copy closes once
                // it confirms having read it (`Read`).
                peer.keep_taken(conn);
            } else {
                self.acks.refused();
                refused.push(conn);
            }
        }
        for conn in refused.into_iter().rev() {
            let Some(conn) = self.pass_on_refused(conn, id) else { continue };
            // A connection whose socket closed meanwhile closes with it.
            if let Some(handle) = self.handles.get_mut(&conn.listener) {
                handle.hold(conn, Held::Refused { by: id, at: now });
            }
        }
        if overacknowledged {
            self.channel_failed(id, "acknowledged more connections than it was sent".to_string());
        }
    }

    /// With several dispatcher threads: a connection every member of this
    /// thread has now refused (`maxConnections`, a closing server) goes to
    /// the next thread with members that has not had it in this round, to be
    /// offered to its workers at once; once every thread has, its new round
    /// begins here, after the usual wait (`policy::retry_delay`). `None`:
    /// passed on.
    fn pass_on_refused(&mut self, mut conn: Connection, by: WorkerId) -> Option<Connection> {
        let Some(shards) = self.shards.clone() else { return Some(conn) };
        let handle = self.handles.get(&conn.listener)?;
        if !handle.refused_by_every_member(&conn.offers, by) {
            return Some(conn);
        }
        let tried = conn.offers.threads_tried | 1u64 << self.shard;
        match shards.sockets.next_thread(handle.key(), self.shard, tried) {
            Some(next) => {
                conn.offers.refused_by.clear();
                conn.offers.threads_tried = tried;
                let listener = conn.listener;
                shards.inbox(next).send(Command::Adopt(listener, vec![conn]));
                None
            }
            None => {
                conn.offers.threads_tried = 0;
                Some(conn)
            }
        }
    }

    /// Drops a live worker's channel for a protocol error or a failed read,
    /// and says so: the worker may still be running, silent, and only the
    /// primary's JS can kill it (reaping re-dispatches what it held).
    fn channel_failed(&mut self, id: WorkerId, reason: String) {
        let Some(peer) = self.peers.get_mut(&id) else { return };
        if peer.state() == PeerState::Dead {
            return;
        }
        peer.mark_dead();
        // Left on stderr, not made a warning: this is written while the
        // primary's JS may be blocked (its 'unhealthy' event comes once it
        // runs), and a test reads it as proof that the dispatcher saw the
        // failure meanwhile (__test__/guarantees/channel-failed.test.js).
        eprintln!("rcluster: dropping worker {id}'s channel: {reason}");
        (self.events)(Event::ChannelFailed { worker: id, reason });
    }

    /// An idle keep-alive connection of a retiring worker: dealt to another
    /// worker as a new connection, ahead of those waiting. Without its socket
    /// (every worker left it) it closes, as the retiring worker would have.
    fn on_hand_back(&mut self, listener: ListenerId, fd: OwnedFd) {
        if let Some(handle) = self.handles.get_mut(&listener) {
            handle.hold(Connection::new(listener, fd, Instant::now()), Held::Returned);
        }
    }

    /// A worker whose heartbeats stopped is taken out of every rotation at
    /// once, here, without waiting for the primary's JS (a socket it was the
    /// last worker of holds connections for its replacement), then reported.
    fn check_health(&mut self) {
        let Some(timeout) = self.config.hang_timeout else { return };
        for (id, silent) in self.health.newly_hung(timeout, Instant::now()) {
            if !self.peers.contains_key(&id) {
                continue;
            }
            // The primary's JS warns of it (RCLUSTER_HEARTBEAT_MISSED) when
            // it hears of `Hung`.
            self.withdraw(id, Emptied::Hold);
            (self.events)(Event::Hung { worker: id, silent });
        }
    }

    /// A worker's server is closing: take the worker out of that rotation and
    /// confirm with `LEFT`, after which nothing more for it is sent (the worker
    /// refuses, and we re-dispatch, whatever arrives before that).
    fn on_leave(&mut self, id: WorkerId, listener: ListenerId) {
        let events = &mut self.events;
        let mut warn = |code, message| events(Event::Warning { code, message });
        let last = match self.handles.get_mut(&listener) {
            Some(handle) => handle.remove(id, &mut warn) && handle.is_empty(),
            None => false,
        };
        if last {
            self.close_handle(listener);
        } else {
            self.publish_members(listener);
        }
        let flooded = self.peers.get_mut(&id).is_some_and(|peer| !peer.push_left(listener));
        if flooded {
            self.channel_failed(id, "sent LEAVE faster than it reads the replies".to_string());
        }
    }

    fn withdraw(&mut self, id: WorkerId, emptied: Emptied) {
        let events = &mut self.events;
        let mut warn = |code, message| events(Event::Warning { code, message });
        let mut changed = Vec::new();
        let now_empty: Vec<ListenerId> = self
            .handles
            .values_mut()
            .filter_map(|handle| {
                let removed = handle.remove(id, &mut warn);
                if removed {
                    changed.push(handle.id());
                }
                (removed && handle.is_empty()).then_some(handle.id())
            })
            .collect();
        for listener in changed {
            self.publish_members(listener);
        }
        for listener in now_empty {
            match emptied {
                Emptied::Close => self.close_handle(listener),
                Emptied::Hold => self.hold(listener),
            }
        }
    }

    /// Keeps a socket no worker listens on any more open: from now on this
    /// thread accepts from it and holds the connections (`dispatch`).
    fn hold(&mut self, listener: ListenerId) {
        let Some(handle) = self.handles.get(&listener) else { return };
        if handle.is_shared_stream() {
            // The workers shared its file description and may have made it
            // blocking; a blocking accept would stall every socket.
            if let Err(e) = sys::set_nonblocking(handle.fd(), true) {
                let message = format!("cannot make {} non-blocking: {e}", handle.key());
                self.warn(events::NONBLOCKING_FAILED, message);
            }
        }
    }

    fn close_handle(&mut self, listener: ListenerId) {
        // Its sockets are forgotten while still open: a SCHED_NONE or
        // SCHED_REUSEPORT socket lives on in workers, and would stay
        // registered (and ready) after our copy closed.
        let epoll = self.epoll.as_fd();
        self.watched_sockets.retain(|(fd, id)| {
            if *id == listener {
                sys::epoll_forget(epoll, *fd);
            }
            *id != listener
        });
        if let Some(handle) = self.handles.remove(&listener) {
            self.keys.remove(handle.key());
            self.stage.forget_listener(listener);
            if let Some(shards) = self.shards.as_deref() {
                // The socket stays open while another thread holds it.
                shards.sockets.release(handle.key(), self.shard);
            }
            self.able.remove(&listener);
            self.turn_taken.remove(&listener);
            handle.close();
        }
    }

    /// Removes dead workers. What they were sent but never acknowledged goes
    /// back to the front of its listener's queue for another worker.
    fn reap_dead_peers(&mut self) {
        let dead: Vec<WorkerId> =
            self.peers.values().filter(|p| p.state() == PeerState::Dead).map(|p| p.id).collect();
        for id in dead {
            let mut peer = self.peers.remove(&id).expect("listed above");
            self.forget_peer(&peer);
            self.health.forget(id);
            // Unlike Node, a socket whose last worker died stays open: its
            // connections wait (up to the queue timeout) for a replacement to
            // listen on the same key. Only a deliberate close by every worker
            // (LEAVE) frees the port.
            self.withdraw(id, Emptied::Hold);
            bus_relay::peer_gone(&mut self.peers, self.shards.as_deref(), self.shard, id);
            let sent = peer.sent_count();
            for (i, conn) in peer.take_all().into_iter().enumerate().rev() {
                // Taken back: another worker has it already.
                if conn.taken_back {
                    continue;
                }
                // One it was sent may have been read (acknowledgements come a
                // turn late): only an untouched one is served again.
                if i < sent && !untouched::is_untouched(conn.fd.as_fd()) {
                    continue; // closes here, as it did in the worker
                }
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.hold(conn, Held::Returned);
                }
            }
        }
    }

    /// The shortest time any listener's policy lets a connection wait for a
    /// worker whose loop is busy before it is taken back (`None`: never).
    fn stuck_after(&self) -> Option<Duration> {
        self.handles.values().filter_map(|h| h.stuck_after(self.config.busy_threshold)).min()
    }

    /// When the next connection left with a blocked worker will be due to
    /// be taken back (`take_back_stuck`).
    fn next_take_back(&self, now: Instant) -> Option<Instant> {
        let stuck_after = self.stuck_after()?;
        let now_ns = sys::monotonic_ns();
        self.peers.values().filter_map(|p| p.stuck_at(stuck_after, now_ns, now)).min()
    }

    /// Takes back the connections left with a worker whose event loop has
    /// been busy too long to read them (a long handler that began just after
    /// they were dealt, or a hang), when another member could take them now:
    /// they go to the front of their listener's queue as refused by that
    /// worker, and are dealt again below (docs/DESIGN.md §15). The worker
    /// never sees them: it finds them revoked when its loop turns.
    fn take_back_stuck(&mut self) {
        let Some(stuck_after) = self.stuck_after() else { return };
        let now = Instant::now();
        let now_ns = sys::monotonic_ns();
        let window = self.config.window;
        let busy_threshold = self.config.busy_threshold;
        let due: Vec<WorkerId> =
            self.peers.values().filter(|p| p.stuck_at(stuck_after, now_ns, now).is_some_and(|t| t <= now)).map(|p| p.id).collect();
        for id in due {
            // Out of the map while it changes: the others are what a policy
            // is asked about (this one counts as gone, and is left out anyway).
            let mut peer = self.peers.remove(&id).expect("listed above");
            let handles = &self.handles;
            let peers = &self.peers;
            let able = &self.able;
            let shard = self.shard;
            // A member here, or with several threads another thread's.
            let taker_here = |listener: ListenerId| {
                handles.get(&listener).is_some_and(|h| with_ask(peers, window, now, |ask| h.could_take_elsewhere(ask, id)))
            };
            let taker_elsewhere = |listener: ListenerId| able.get(&listener).and_then(|a| a.elsewhere(shard));
            let mut may_take = |listener: ListenerId, busy_for: Duration| {
                handles.get(&listener).is_some_and(|h| h.stuck_after(busy_threshold).is_some_and(|after| busy_for >= after))
                    && (taker_here(listener) || taker_elsewhere(listener).is_some())
            };
            let taken = peer.take_back_stuck(&mut may_take, now);
            // Due, and no worker here or flagged elsewhere could take it:
            // the other threads' flags may be stale (a thread sets its own
            // at its turns only), so they are asked to look again, at most
            // every 10 ms while this lasts.
            let stale_flags = taken.is_empty() && self.shards.is_some();
            let mut passed: Vec<(usize, Connection)> = Vec::new();
            let mut kept = Vec::new();
            for conn in taken {
                match (taker_here(conn.listener), taker_elsewhere(conn.listener)) {
                    (false, Some(thread)) => passed.push((thread, conn)),
                    _ => kept.push(conn),
                }
            }
            self.peers.insert(id, peer);
            if stale_flags && self.last_poke.is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_millis(10)) {
                self.last_poke = Some(now);
                if let Some(shards) = self.shards.as_deref() {
                    shards.wake_others(self.shard);
                }
            }
            for conn in kept.into_iter().rev() {
                self.acks.taken_back();
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.hold(conn, Held::Refused { by: id, at: now });
                }
            }
            // Dealt by the thread whose worker can take them.
            if let Some(shards) = self.shards.as_deref() {
                for (thread, conn) in passed {
                    self.acks.taken_back();
                    shards.inbox(thread).send(Command::Adopt(conn.listener, vec![conn]));
                }
            }
        }
    }

    /// Gives queued connections out first, then accepts new ones, in turn,
    /// to workers with credit. A socket nobody listens on any more has its
    /// connections accepted and held for the next worker.
    fn dispatch(&mut self) {
        let now = Instant::now();
        let window = self.config.window;
        let budget = self.stage_budget();
        let mut accepted_from = Vec::new();
        // Asked again after the wait: the wait may have been woken for a
        // listener whose connections this thread now leaves to another; with
        // the kernel waking one thread per connection, that one is told.
        self.refresh_able(now);
        if let Some(shards) = self.shards.as_deref() {
            for (id, other) in &self.deferring {
                if self.readiness.get(id) == Some(&Readiness::Readable) {
                    let _ = shards.inbox(*other).waker.wake();
                }
            }
        }
        for handle in self.handles.values_mut() {
            handle.deal_pending(&mut self.peers, window, now, self.config.queue_timeout);
            let readiness = self.readiness.get(&handle.id()).copied().unwrap_or(Readiness::NotPolled);
            if readiness == Readiness::Idle
                || served_elsewhere(self.shards.as_deref(), self.shard, handle)
                || self.deferring.iter().any(|(id, _)| *id == handle.id())
            {
                continue;
            }
            let keyed = handle.is_keyed();
            let staged = self.stage.applies_to(keyed);
            let accepted_before = handle.accepted_total();
            for _ in 0..self.config.accept_batch {
                // Asked before each accept (not after): a socket not polled
                // because its stage is full is still tried here, and must
                // not take one more each turn.
                let stage_full = staged && self.stage.is_full(handle.id(), budget);
                let take = with_ask(&self.peers, window, now, |ask| {
                    handle.should_accept(ask, self.config.queue_limit, stage_full)
                });
                let Some(take) = take else { break };
                match handle.accept() {
                    Ok(conn) => match self.stage.admit(conn, keyed, now) {
                        Admitted::Waiting | Admitted::Closed => {}
                        Admitted::NoResources(conn) => {
                            // One that was to wait for its request head is
                            // placed in turn, without a key.
                            if let Some(conn) = conn {
                                handle.hold(conn, Held::Arrived);
                            }
                            handle.pause(Instant::now() + self.config.exhausted_pause);
                            break;
                        }
                        Admitted::NoStage(conn) => match take {
                            Take::Deal(pick) => handle.deal_new(conn, pick, &mut self.peers, window, now),
                            Take::Hold(why) => handle.hold(conn, why),
                        },
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if sys::is_transient_accept_error(&e) => continue,
                    Err(e) => {
                        // Out of descriptors pauses silently (§3.4); any
                        // other failure is told, once per listener per 10 s.
                        if !sys::is_resource_exhausted(&e) && self.warnings.allow(events::ACCEPT_FAILED, u64::from(handle.id()), now) {
                            let message = format!("accept on {} failed: {e}", handle.key());
                            (self.events)(Event::Warning { code: events::ACCEPT_FAILED, message });
                        }
                        handle.pause(Instant::now() + self.config.exhausted_pause);
                        break;
                    }
                }
            }
            if self.shards.is_some() && handle.accepted_total() != accepted_before {
                // A turn is as many connections as the thread has members:
                // with turns of that length, one connection at a time goes
                // round every worker of every thread in turn.
                let taken = self.turn_taken.entry(handle.id()).or_insert(0);
                *taken += (handle.accepted_total() - accepted_before) as usize;
                if *taken >= handle.members().len().max(1) {
                    *taken = 0;
                    accepted_from.push(handle.id());
                }
            }
        }
        // With several threads on one socket, the kernel wakes the first of
        // them waiting in the socket's queue: the same one, while the load is
        // light. A thread that has taken its turn goes to the back of that
        // queue (its watch is dropped here and added again at the next
        // turn), so the threads take turns, as the workers of one thread do.
        if !accepted_from.is_empty() {
            let epoll = self.epoll.as_fd();
            self.watched_sockets.retain(|(fd, id)| {
                let keep = !accepted_from.contains(id);
                if !keep {
                    sys::epoll_forget(epoll, *fd);
                }
                keep
            });
        }
    }

    fn flush(&mut self) {
        for peer in self.peers.values_mut() {
            let flushed = peer.flush();
            for conn in flushed.returned.into_iter().rev() {
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.hold(conn, Held::Returned);
                }
            }
        }
    }
}

/// Whether a listener this thread holds no member of is served by another
/// dispatcher thread's workers: then this thread leaves its socket alone
/// (and passes on what it held, `EventLoop::pass_on_orphans`).
/// Not SCHED_REUSEPORT's: the sockets a thread accepts from there are its
/// own slots whose workers are gone, which no other thread accepts from.
fn served_elsewhere(shards: Option<&Shards>, shard: usize, handle: &ListenHandle) -> bool {
    match shards {
        Some(shards) => {
            handle.is_empty()
                && handle.policy_name() != Mode::ReusePort.name()
                && shards.sockets.members_elsewhere(handle.key(), shard).is_some()
        }
        None => false,
    }
}

/// No worker has this id (bus ids stop below it): what `could_take_elsewhere`
/// is asked to leave out when any member will do.
const NO_WORKER: WorkerId = WorkerId::MAX;
