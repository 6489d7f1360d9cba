//! The dispatcher thread: one `poll` loop over the waker, every worker's
//! channel and the listening sockets that want accepting. It does the I/O and
//! feeds each listener's scheduling policy; the policies decide who gets what.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::bus_relay;
use super::awaiting_header::{AwaitingHeader, Outcome, Refused, Stage};
use super::command::Command;
use super::events::{Event, EventSink};
use super::health::Health;
use super::{Config, Emptied, ListenOutcome, ListenRequest, Stats};
use crate::dispatcher::ack_stats::AckStats;
use crate::error::{Error, Result};
use crate::routing::handle::{with_ask, ListenHandle};
use crate::listen;
use crate::routing::policy::Mode;
use crate::listen::socket_identity;
use crate::dispatcher::untouched;
use crate::dispatcher::peer::{Connection, Peer, PeerState, WorkerId};
use crate::sys::{self, Recv, Waker};
use crate::channel::wire::{ListenerId, ToPrimary, ACCEPTED, MAX_MESSAGE_LEN};

/// What one entry of the poll set stands for.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Waker,
    Peer(WorkerId),
    Handle(ListenerId),
    /// The epoll instance watching every connection in a header stage.
    Stages,
}

/// What the last `poll` said about a listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Readiness {
    /// Not in the poll set (no worker could take a connection then, or
    /// paused): worth trying, since credit may be back now.
    NotPolled,
    /// Polled and found with nothing to accept: skipped.
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
    pollfds: Vec<libc::pollfd>,
    slots: Vec<Slot>,
    readiness: HashMap<ListenerId, Readiness>,
    events: EventSink,
    /// Broadcasts go to the primary's bus channel too (`Command::BusBridge`).
    bus_bridge: bool,
    awaiting: AwaitingHeader,
    /// How many connections all listeners' header stages may hold together:
    /// half the descriptor limit, leaving the rest for accepting, the
    /// workers' channels, held queues and the app (`Config::stage_limit`).
    stage_total: usize,
    acks: AckStats,
    health: Health,
    /// Where workers' messages are read into, allocated once: a bus message
    /// may be large, and zeroing that much at every read showed in profiles.
    read_buf: Box<[u8]>,
}

impl EventLoop {
    pub(super) fn new(config: Config, inbox: Receiver<Command>, waker: Arc<Waker>, events: EventSink) -> Self {
        EventLoop {
            config,
            inbox,
            waker,
            peers: HashMap::new(),
            handles: HashMap::new(),
            keys: HashMap::new(),
            next_listener: 1,
            pollfds: Vec::new(),
            slots: Vec::new(),
            readiness: HashMap::new(),
            events,
            bus_bridge: false,
            awaiting: AwaitingHeader::default(),
            stage_total: sys::open_file_limit().map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX)),
            acks: AckStats::default(),
            health: Health::default(),
            read_buf: vec![0u8; MAX_MESSAGE_LEN].into_boxed_slice(),
        }
    }

    pub(super) fn run(mut self) {
        loop {
            self.build_pollset();
            let timeout = self.poll_timeout();
            if let Err(e) = sys::poll(&mut self.pollfds, timeout) {
                eprintln!("rcluster: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            self.readiness.clear();
            for i in 0..self.pollfds.len() {
                let revents = self.pollfds[i].revents;
                match self.slots[i] {
                    Slot::Waker => {
                        if revents != 0 {
                            self.waker.drain();
                            if !self.run_commands() {
                                return;
                            }
                        }
                    }
                    Slot::Peer(id) => {
                        if revents != 0 {
                            self.on_peer_event(id, revents);
                        }
                    }
                    Slot::Handle(id) => {
                        // A handle may have several sockets (SCHED_REUSEPORT):
                        // readable if any is.
                        let readiness = if revents != 0 { Readiness::Readable } else { Readiness::Idle };
                        let entry = self.readiness.entry(id).or_insert(readiness);
                        if readiness == Readiness::Readable {
                            *entry = readiness;
                        }
                    }
                    // Read below, after the channels: connections with news
                    // are asked epoll for there, and those past their
                    // deadline are found without it.
                    Slot::Stages => {}
                }
            }
            self.read_headers();
            self.reap_dead_peers();
            self.check_health();
            self.dispatch();
            self.flush();
            self.reap_dead_peers();
            let now = Instant::now();
            for peer in self.peers.values_mut() {
                peer.track_fullness(self.config.window, self.config.stall, now);
            }
        }
    }

    fn build_pollset(&mut self) {
        self.pollfds.clear();
        self.slots.clear();
        let now = Instant::now();
        self.pollfds.push(libc::pollfd { fd: self.waker.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 });
        self.slots.push(Slot::Waker);
        for peer in self.peers.values() {
            let mut events = libc::POLLIN;
            if peer.wants_writable() {
                events |= libc::POLLOUT;
            }
            self.pollfds.push(libc::pollfd { fd: peer.channel_fd().as_raw_fd(), events, revents: 0 });
            self.slots.push(Slot::Peer(peer.id));
        }
        let budget = self.stage_budget();
        for handle in self.handles.values_mut() {
            handle.resume_if_due(now);
            // While its header stage is full, a listener accepts no more:
            // the kernel's queue holds them. Only its own: every other
            // listener has a budget of its own.
            if budget.is_some_and(|b| self.awaiting.count(handle.id()) >= b && self.config.stage_of(handle)) {
                continue;
            }
            // Only watch a listening socket while some worker can take a
            // connection, or to hold connections while no worker listens:
            // otherwise the kernel's queue holds them (never close a
            // connection because everyone is busy, docs/DESIGN.md §3.4).
            let wants = with_ask(&self.peers, self.config.window, now, |ask| {
                handle.wants_accept(ask, self.config.queue_limit)
            });
            if wants {
                for fd in handle.poll_fds() {
                    self.pollfds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                    self.slots.push(Slot::Handle(handle.id()));
                }
            }
        }
        if let Some(fd) = self.awaiting.poll_fd() {
            self.pollfds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            self.slots.push(Slot::Stages);
        }
    }

    /// How many connections each listener with a header stage may have
    /// waiting in it (`Config::stage_limit`): `None` without stages.
    fn stage_budget(&self) -> Option<usize> {
        if self.config.proxy.is_none() && self.config.sticky_http.is_none() {
            return None;
        }
        let staged = self.handles.values().filter(|h| self.config.stage_of(h)).count().max(1);
        Some(self.config.stage_limit.min(self.stage_total / staged).max(1))
    }

    /// Connections whose PROXY header arrived go on to their listener's
    /// queue (or to wait for their first request, for sticky routing by
    /// cookie or query); those given up on are counted there.
    fn read_headers(&mut self) {
        if self.awaiting.len() == 0 {
            return;
        }
        let now = Instant::now();
        let handles = &self.handles;
        let keyed = |listener| handles.get(&listener).is_some_and(ListenHandle::is_keyed);
        for outcome in self.awaiting.process(now, self.config.sticky_http.as_ref(), keyed) {
            match outcome {
                Outcome::Ready(conn, Stage::ProxyHeader) => {
                    let Some(handle) = self.handles.get_mut(&conn.listener) else { continue };
                    let conn = match &self.config.sticky_http {
                        Some(sticky) if handle.is_keyed() => match self.awaiting.admit_request_next(conn, sticky, now) {
                            Ok(()) => continue,
                            Err(conn) => conn,
                        },
                        _ => conn,
                    };
                    handle.push_proxied(conn);
                }
                Outcome::Ready(conn, Stage::RequestHead) => {
                    if let Some(handle) = self.handles.get_mut(&conn.listener) {
                        handle.push_pending_back(conn);
                    }
                }
                Outcome::Rejected(listener) => {
                    if let Some(handle) = self.handles.get_mut(&listener) {
                        handle.count_proxy_rejected();
                    }
                }
                Outcome::Expired(listener, conn) => {
                    let Some(handle) = self.handles.get_mut(&listener) else { continue };
                    handle.count_stage_expired();
                    match conn {
                        // A request head that did not come in time: placed
                        // in turn, as before.
                        Some(conn) => handle.push_pending_back(conn),
                        None => {
                            handle.count_proxy_rejected();
                            crate::rejections::reject("proxyHeader", || {
                                "a PROXY header not finished within the timeout".to_string()
                            });
                        }
                    }
                }
                Outcome::Gone => {}
            }
        }
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
            .chain(self.awaiting.next_deadline())
            .chain(self.peers.values().filter_map(|p| p.stalls_at(stall)).filter(|t| *t > now))
            .chain(self.config.hang_timeout.and_then(|t| self.health.next_deadline(t)));
        match wake_ups.min() {
            None => -1,
            Some(at) => at.saturating_duration_since(now).as_millis().clamp(1, i32::MAX as u128) as i32,
        }
    }

    /// Runs queued commands; false means stop.
    fn run_commands(&mut self) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::AddPeer(id, channel) => match Peer::new(id, channel) {
                    Ok(mut peer) => {
                        peer.pace_above(self.config.pace_above);
                        peer.allow_window(self.config.window, self.config.max_window);
                        if let Some(mut old) = self.peers.insert(id, peer) {
                            // Ids are never reused; if one were, the old channel is dead to us.
                            old.mark_dead();
                        }
                    }
                    Err(e) => eprintln!("rcluster: cannot use the channel of worker {id}: {e}"),
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
                    let (awaiting, handles, config) = (&self.awaiting, &self.handles, &self.config);
                    let stage = |id| {
                        let staged = handles.get(&id).is_some_and(|h| config.stage_of(h));
                        (awaiting.count(id), budget.filter(|_| staged))
                    };
                    let _ = reply.send(Stats::collect(&self.handles, &self.peers, &self.acks, &stage));
                }
                Command::BusBridge(on) => self.bus_bridge = on,
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
                if socket_identity::names_one_of(&request.spec.addr, self.handles.values().map(ListenHandle::fd)) {
                    return Err(Error::io("bind", std::io::Error::from_raw_os_error(libc::EEXIST)));
                }
                let id = self.next_listener;
                let handle = self.bind_handle(id, &request)?;
                self.next_listener += 1;
                self.handles.insert(id, handle);
                self.keys.insert(request.key, id);
                (id, true)
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
    fn bind_handle(&self, id: ListenerId, request: &ListenRequest) -> Result<ListenHandle> {
        let new = |mode, socket| {
            ListenHandle::new(id, request.key.clone(), mode, socket, request.spec.socket_type(), self.config.stall)
        };
        if let Some(socket) = self.inherited_socket(&request.spec) {
            // One socket, systemd's: SCHED_REUSEPORT has nothing to add to it.
            let mode = if request.mode == Mode::ReusePort { Mode::RoundRobin } else { request.mode };
            return Ok(new(mode, socket?));
        }
        if request.mode == Mode::ReusePort {
            match crate::routing::reuseport::bind_first(&request.spec) {
                Some(Ok((socket, ipv6_only))) => {
                    return new(Mode::ReusePort, socket)
                        .with_reuse_port(
                            ipv6_only,
                            if request.spec.backlog > 0 { request.spec.backlog } else { listen::DEFAULT_BACKLOG },
                            request.defer_accept,
                        )
                        .map_err(|e| Error::io("dup", e));
                }
                Some(Err(e)) if !crate::routing::reuseport::is_unsupported(&e) => return Err(Error::io("bind", e)),
                Some(Err(e)) => eprintln!("rcluster: SO_REUSEPORT is not available ({e}); {} uses round-robin", request.key),
                None => {}
            }
            let socket = listen::bind(&request.spec).map_err(|e| Error::io("bind", e))?;
            return Ok(new(Mode::RoundRobin, socket));
        }
        let socket = listen::bind(&request.spec).map_err(|e| Error::io("bind", e))?;
        Ok(new(request.mode, socket))
    }

    /// A socket inherited from systemd for this listen, if one is bound to
    /// its address: a copy of it, listening (`LISTEN_FDS`).
    fn inherited_socket(&self, spec: &listen::ListenSpec) -> Option<Result<listen::BoundSocket>> {
        let (fd, _name) = self.config.inherited.find(&spec.addr)?;
        let as_fd = listen::ListenSpec { addr: listen::ListenAddr::Fd { fd: fd.as_raw_fd() }, backlog: spec.backlog };
        Some(listen::bind(&as_fd).map_err(|e| Error::io("listen", e)))
    }

    fn on_peer_event(&mut self, id: WorkerId, revents: libc::c_short) {
        if revents & libc::POLLOUT != 0 {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.on_writable();
            }
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
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
                    match bus_relay::relay(&mut self.peers, id, &buf[..n], self.bus_bridge) {
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
            // A connection whose socket closed meanwhile closes with it.
            if let Some(handle) = self.handles.get_mut(&conn.listener) {
                handle.requeue_refused(conn, id, now);
            }
        }
        if overacknowledged {
            self.channel_failed(id, "acknowledged more connections than it was sent".to_string());
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
        eprintln!("rcluster: dropping worker {id}'s channel: {reason}");
        (self.events)(Event::ChannelFailed { worker: id, reason });
    }

    /// An idle keep-alive connection of a retiring worker: dealt to another
    /// worker as a new connection, ahead of those waiting. Without its socket
    /// (every worker left it) it closes, as the retiring worker would have.
    fn on_hand_back(&mut self, listener: ListenerId, fd: OwnedFd) {
        if let Some(handle) = self.handles.get_mut(&listener) {
            handle.push_pending_front(Connection::new(listener, fd, Instant::now()));
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
            eprintln!("rcluster: worker {id} sent no heartbeat for {} ms: withdrawn", silent.as_millis());
            self.withdraw(id, Emptied::Hold);
            (self.events)(Event::Hung { worker: id, silent });
        }
    }

    /// A worker's server is closing: take the worker out of that rotation and
    /// confirm with `LEFT`, after which nothing more for it is sent (the worker
    /// refuses, and we re-dispatch, whatever arrives before that).
    fn on_leave(&mut self, id: WorkerId, listener: ListenerId) {
        let last = match self.handles.get_mut(&listener) {
            Some(handle) => handle.remove(id) && handle.is_empty(),
            None => false,
        };
        if last {
            self.close_handle(listener);
        }
        let flooded = self.peers.get_mut(&id).is_some_and(|peer| !peer.push_left(listener));
        if flooded {
            self.channel_failed(id, "sent LEAVE faster than it reads the replies".to_string());
        }
    }

    fn withdraw(&mut self, id: WorkerId, emptied: Emptied) {
        let now_empty: Vec<ListenerId> = self
            .handles
            .values_mut()
            .filter_map(|handle| (handle.remove(id) && handle.is_empty()).then_some(handle.id()))
            .collect();
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
                eprintln!("rcluster: cannot make {} non-blocking: {e}", handle.key());
            }
        }
    }

    fn close_handle(&mut self, listener: ListenerId) {
        if let Some(handle) = self.handles.remove(&listener) {
            self.keys.remove(handle.key());
            self.awaiting.forget_listener(listener);
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
            self.health.forget(id);
            // Unlike Node, a socket whose last worker died stays open: its
            // connections wait (up to the queue timeout) for a replacement to
            // listen on the same key. Only a deliberate close by every worker
            // (LEAVE) frees the port.
            self.withdraw(id, Emptied::Hold);
            bus_relay::peer_gone(&mut self.peers, id);
            let sent = peer.sent_count();
            for (i, conn) in peer.take_all().into_iter().enumerate().rev() {
                // One it was sent may have been read (acknowledgements come a
                // turn late): only an untouched one is served again.
                if i < sent && !untouched::is_untouched(conn.fd.as_fd()) {
                    continue; // closes here, as it did in the worker
                }
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.push_pending_front(conn);
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
        for handle in self.handles.values_mut() {
            handle.deal_pending(&mut self.peers, window, now, self.config.queue_timeout);
            let staged = self.config.stage_of(handle);
            let readiness = self.readiness.get(&handle.id()).copied().unwrap_or(Readiness::NotPolled);
            if readiness == Readiness::Idle || !handle.accepts_now() {
                continue;
            }
            let holding = handle.is_empty();
            for _ in 0..self.config.accept_batch {
                // Checked before each accept (not after): a socket not polled
                // because its stage is full is still tried here, and must
                // not take one more each turn.
                if staged && budget.is_some_and(|b| self.awaiting.count(handle.id()) >= b) {
                    break;
                }
                let pick = if holding {
                    if handle.pending_len() >= self.config.queue_limit {
                        break;
                    }
                    None
                } else {
                    match with_ask(&self.peers, window, now, |ask| {
                        handle.pick_new(ask).map(Some).or_else(|| {
                            // `None`: held, newest first.
                            handle.holds_while_paced(ask, self.config.queue_limit).then_some(None)
                        })
                    }) {
                        Some(pick) => pick,
                        None => break,
                    }
                };
                match handle.accept() {
                    Ok(conn) if self.config.proxy.is_some() => {
                        let proxy = self.config.proxy.as_ref().expect("checked by the guard");
                        match self.awaiting.admit(conn, proxy, now) {
                            Ok(()) => {}
                            Err(Refused::Untrusted) => handle.count_proxy_rejected(),
                            Err(Refused::NoResources) => {
                                handle.count_proxy_rejected();
                                handle.pause(Instant::now() + self.config.exhausted_pause);
                                break;
                            }
                        }
                    }
                    Ok(conn) if self.config.sticky_http.is_some() && handle.is_keyed() => {
                        let sticky = self.config.sticky_http.as_ref().expect("checked by the guard");
                        if let Err(conn) = self.awaiting.admit_request(conn, sticky, now) {
                            // Cannot be watched: placed in turn, without a key.
                            handle.push_pending_back(conn);
                            handle.pause(Instant::now() + self.config.exhausted_pause);
                            break;
                        }
                    }
                    Ok(conn) => match pick {
                        Some(pick) => handle.deal_new(conn, pick, &mut self.peers, window, now),
                        None if holding => handle.push_pending_back(conn),
                        None => handle.hold_paced(conn),
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if sys::is_transient_accept_error(&e) => continue,
                    Err(e) => {
                        if !sys::is_resource_exhausted(&e) {
                            eprintln!("rcluster: accept on {} failed: {e}", handle.key());
                        }
                        handle.pause(Instant::now() + self.config.exhausted_pause);
                        break;
                    }
                }
            }
        }
    }

    fn flush(&mut self) {
        for peer in self.peers.values_mut() {
            let flushed = peer.flush();
            for conn in flushed.returned.into_iter().rev() {
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.push_pending_front(conn);
                }
            }
        }
    }
}
