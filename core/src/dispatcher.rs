//! The primary's native dispatcher: one thread that owns every shared
//! listening socket and every worker channel, accepts connections and deals
//! them out. The primary's JS thread only sends it commands (new worker, listen,
//! remove), so a busy JS event loop never delays a connection (docs/DESIGN.md §2).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::handle::{is_due, ListenHandle, Mode, Turn};
use crate::listener::{self, ListenSpec, SocketType};
use crate::peer::{Peer, PeerState, WorkerId};
use crate::sys::{self, LocalAddr, Recv, Waker};
use crate::wire::{ListenerId, ToPrimary, ACCEPTED, MAX_MESSAGE_LEN};

#[derive(Clone, Debug)]
pub struct Config {
    /// Most connections a worker may hold unacknowledged. A hung worker
    /// strands at most this many; the others keep serving (docs/DESIGN.md §3.2).
    pub window: usize,
    /// Most connections accepted from one listener per wake-up, so one busy
    /// port cannot starve the others or the command queue.
    pub accept_batch: usize,
    /// How long round-robin waits for the worker whose turn it is when that
    /// worker's window is full, before passing over it. A healthy worker frees
    /// its window within one event-loop turn, so the rotation stays exact; a
    /// hung one costs this wait once, then is passed over until it replies.
    pub stall: Duration,
    /// How long accepting pauses after `EMFILE`/`ENFILE`: the kernel's listen
    /// queue holds connections meanwhile, and the thread does not spin.
    pub exhausted_pause: Duration,
    /// Longest a connection may wait in the primary for a worker to take it:
    /// while no worker listens on its socket (they all died; replacements are
    /// coming), or while every worker refuses it (`maxConnections`). Then it
    /// is closed, never leaked.
    pub queue_timeout: Duration,
    /// Most connections held per socket while no worker listens on it; past
    /// that, the kernel's listen queue holds the rest.
    pub queue_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window: 8,
            accept_batch: 64,
            stall: Duration::from_millis(50),
            exhausted_pause: Duration::from_millis(50),
            queue_timeout: Duration::from_secs(30),
            queue_limit: 1024,
        }
    }
}

/// What becomes of a socket whose last worker leaves its rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emptied {
    /// Closed, and the port freed: a deliberate close by every worker.
    Close,
    /// Kept open; the primary holds its connections for the next worker to
    /// listen on it (up to `Config::queue_timeout`).
    Hold,
}

/// A worker's request to listen, already parsed.
#[derive(Clone, Debug)]
pub struct ListenRequest {
    pub worker: WorkerId,
    /// Node's handle key: `address:port:addressType:fd:index`. Requests with
    /// the same key share one socket.
    pub key: String,
    pub spec: ListenSpec,
    /// For a stream socket. A datagram socket is always `Shared`, whatever
    /// the scheduling policy, as in node:cluster.
    pub mode: Mode,
}

#[derive(Clone, Debug)]
pub struct ListenOutcome {
    pub listener: ListenerId,
    pub local: LocalAddr,
    /// True when this request bound the socket (the first worker on the key).
    pub created: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub listeners: Vec<ListenerStats>,
    pub workers: Vec<WorkerStats>,
}

#[derive(Clone, Debug)]
pub struct ListenerStats {
    pub id: ListenerId,
    pub key: String,
    pub members: Vec<WorkerId>,
    pub accepted: u64,
    pub pending: usize,
    /// Connections closed after waiting longer than `Config::queue_timeout`.
    pub expired: u64,
}

#[derive(Clone, Debug)]
pub struct WorkerStats {
    pub id: WorkerId,
    pub in_flight: usize,
    pub accepted: u64,
}

enum Command {
    AddPeer(WorkerId, OwnedFd),
    RemovePeer(WorkerId),
    Withdraw(WorkerId, Emptied),
    Listen(ListenRequest, Sender<Result<ListenOutcome>>),
    Stats(Sender<Stats>),
    Stop,
}

/// The JS thread's handle on the dispatcher thread.
pub struct Dispatcher {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    /// Worker ends of channels whose process is being spawned. The primary
    /// closes its copy right after the spawn, or it would never see the
    /// worker's end hang up when the worker dies (docs/DESIGN.md §1).
    child_ends: Mutex<HashMap<WorkerId, OwnedFd>>,
}

impl Dispatcher {
    pub fn start(config: Config) -> Result<Self> {
        let waker = Arc::new(Waker::new().map_err(|e| Error::io("eventfd", e))?);
        let (commands, inbox) = crossbeam_channel::unbounded();
        let event_loop = EventLoop::new(config, inbox, Arc::clone(&waker));
        let thread = std::thread::Builder::new()
            .name("rcluster-dispatch".into())
            .spawn(move || {
                // A dispatcher that died quietly would leave the primary up
                // with nobody accepting: an outage that looks healthy. A broken
                // invariant here takes the primary down loudly instead, as a
                // failed internal assertion does in Node.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run())).is_err() {
                    eprintln!("rcluster: the dispatcher thread panicked; aborting the primary");
                    std::process::abort();
                }
            })
            .map_err(|e| Error::io("spawn the dispatcher thread", e))?;
        Ok(Dispatcher { commands, waker, thread: Some(thread), child_ends: Mutex::new(HashMap::new()) })
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Stopped)?;
        self.waker.wake().map_err(|e| Error::io("wake the dispatcher", e))
    }

    /// Creates the private channel of a worker about to be spawned and returns
    /// the raw fd of the worker's end, to be passed as an extra stdio slot. The
    /// dispatcher owns that fd until `release_child_end`.
    pub fn open_channel(&self, worker: WorkerId) -> Result<RawFd> {
        let (primary_end, worker_end) = sys::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        let raw = worker_end.as_raw_fd();
        if self.child_ends.lock().insert(worker, worker_end).is_some() {
            return Err(Error::InvalidArgument(format!("worker {worker} already has a channel")));
        }
        self.send(Command::AddPeer(worker, primary_end))?;
        Ok(raw)
    }

    /// Closes the primary's copy of a worker's end, once the spawn has
    /// duplicated it into the child (or the spawn failed).
    pub fn release_child_end(&self, worker: WorkerId) {
        self.child_ends.lock().remove(&worker);
    }

    /// Binds (or joins) the socket for `request.key` and puts the worker in its
    /// rotation. Blocks the caller only for the round trip to the dispatcher thread.
    pub fn listen(&self, request: ListenRequest) -> Result<ListenOutcome> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Listen(request, reply))?;
        answer.recv().map_err(|_| Error::Stopped)?
    }

    /// Forgets a worker (it exited or disconnected). Connections it had not
    /// acknowledged go to the other workers. Idempotent.
    pub fn remove_worker(&self, worker: WorkerId) -> Result<()> {
        self.release_child_end(worker);
        self.send(Command::RemovePeer(worker))
    }

    /// Takes a worker out of every rotation, as Node's `removeHandlesForWorker`
    /// does when the primary disconnects it: it gets no new connections.
    /// A listener it was the last member of closes now (`Emptied::Close`), or
    /// stays open and holds connections for a replacement on its way
    /// (`Emptied::Hold`, as after a worker's death). Unlike `remove_worker`,
    /// the worker stays connected: what it was already sent, it still answers.
    pub fn withdraw(&self, worker: WorkerId, emptied: Emptied) -> Result<()> {
        self.send(Command::Withdraw(worker, emptied))
    }

    pub fn stats(&self) -> Result<Stats> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.send(Command::Stats(reply))?;
        answer.recv().map_err(|_| Error::Stopped)
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if self.send(Command::Stop).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Waker,
    Peer(WorkerId),
    Handle(ListenerId),
}

struct EventLoop {
    config: Config,
    inbox: Receiver<Command>,
    waker: Arc<Waker>,
    peers: HashMap<WorkerId, Peer>,
    handles: HashMap<ListenerId, ListenHandle>,
    keys: HashMap<String, ListenerId>,
    next_listener: ListenerId,
    pollfds: Vec<libc::pollfd>,
    slots: Vec<Slot>,
}

impl EventLoop {
    fn new(config: Config, inbox: Receiver<Command>, waker: Arc<Waker>) -> Self {
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
        }
    }

    fn run(mut self) {
        let mut readable: HashMap<ListenerId, bool> = HashMap::new();
        loop {
            self.build_pollset();
            let timeout = self.poll_timeout();
            if let Err(e) = sys::poll(&mut self.pollfds, timeout) {
                eprintln!("rcluster: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            readable.clear();
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
                        readable.insert(id, revents != 0);
                    }
                }
            }
            self.reap_dead_peers();
            self.dispatch(&readable);
            self.flush();
            self.reap_dead_peers();
            let now = Instant::now();
            for peer in self.peers.values_mut() {
                peer.track_fullness(self.config.window, now);
            }
        }
    }

    fn turn(&self) -> Turn {
        Turn { window: self.config.window, stall: self.config.stall, now: Instant::now() }
    }

    fn build_pollset(&mut self) {
        self.pollfds.clear();
        self.slots.clear();
        let turn = self.turn();
        let now = turn.now;
        self.pollfds.push(libc::pollfd { fd: self.waker.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        self.slots.push(Slot::Waker);
        for peer in self.peers.values() {
            let mut events = libc::POLLIN;
            if peer.wants_writable() {
                events |= libc::POLLOUT;
            }
            self.pollfds.push(libc::pollfd { fd: peer.channel_fd(), events, revents: 0 });
            self.slots.push(Slot::Peer(peer.id));
        }
        for handle in self.handles.values_mut() {
            if handle.paused_until.is_some_and(|t| t <= now) {
                handle.paused_until = None;
            }
            // Only watch a listening socket while some worker can take a
            // connection, or to hold connections while no worker listens:
            // otherwise the kernel's queue holds them (never close a
            // connection because everyone is busy, docs/DESIGN.md §3.4).
            if handle.wants_accept(&self.peers, &turn, self.config.queue_limit) {
                self.pollfds.push(libc::pollfd { fd: handle.fd(), events: libc::POLLIN, revents: 0 });
                self.slots.push(Slot::Handle(handle.id));
            }
        }
    }

    /// How long to sleep in poll: not at all while queued connections can
    /// move; otherwise until the next pause ends or a full worker turns stalled
    /// (then the rotation may pass over it), or indefinitely.
    fn poll_timeout(&self) -> i32 {
        let turn = self.turn();
        if self.handles.values().any(|h| h.pending_can_move(&self.peers, &turn)) {
            return 0;
        }
        let wake_ups = self
            .handles
            .values()
            .filter_map(|h| h.paused_until)
            .chain(self.handles.values().filter_map(|h| h.next_pending_deadline(self.config.queue_timeout, turn.now)))
            .chain(self.peers.values().filter_map(|p| p.stalls_at(turn.stall)).filter(|t| *t > turn.now));
        match wake_ups.min() {
            None => -1,
            Some(at) => at.saturating_duration_since(turn.now).as_millis().clamp(1, i32::MAX as u128) as i32,
        }
    }

    /// Runs queued commands; false means stop.
    fn run_commands(&mut self) -> bool {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::AddPeer(id, channel) => match Peer::new(id, channel) {
                    Ok(peer) => {
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
                }
                Command::Withdraw(id, emptied) => self.withdraw(id, emptied),
                Command::Listen(request, reply) => {
                    let _ = reply.send(self.listen(request));
                }
                Command::Stats(reply) => {
                    let _ = reply.send(self.stats());
                }
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
                let socket = listener::bind(&request.spec).map_err(|e| Error::io("bind", e))?;
                let id = self.next_listener;
                self.next_listener += 1;
                // There is nothing to accept on a datagram socket: it is only
                // ever shared (and, not being RoundRobin, never polled).
                let socket_type = request.spec.socket_type();
                let mode = match socket_type {
                    SocketType::Datagram => Mode::Shared,
                    SocketType::Stream => request.mode,
                };
                self.handles.insert(id, ListenHandle::new(id, request.key.clone(), mode, socket_type, socket));
                self.keys.insert(request.key, id);
                (id, true)
            }
        };
        let handle = self.handles.get_mut(&id).expect("a key always names a live handle");
        // SCHED_NONE: the worker gets its own copy of the listening socket.
        // If that fails, it does not become a member, and a socket bound just
        // for it is closed again rather than left holding the port.
        let shared_fd = match handle.mode {
            Mode::RoundRobin => None,
            Mode::Shared => match sys::dup_cloexec(handle.fd()) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    if created {
                        self.close_handle(id);
                    }
                    return Err(Error::io("dup", e));
                }
            },
        };
        handle.add(request.worker);
        let outcome = ListenOutcome { listener: id, local: handle.local().clone(), created };
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
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let mut fds: Vec<OwnedFd> = Vec::new();
        loop {
            let Some(peer) = self.peers.get_mut(&id) else { return };
            let received = sys::recv_message(peer.channel_fd(), &mut buf, &mut fds);
            let failure = match received {
                Ok(Recv::WouldBlock) => return,
                Ok(Recv::Closed) => None,
                Ok(Recv::Message(n)) if fds.is_empty() => match ToPrimary::decode(&buf[..n]) {
                    Ok(ToPrimary::Reply { statuses }) => {
                        self.on_reply(id, statuses);
                        continue;
                    }
                    Ok(ToPrimary::Leave { listener }) => {
                        self.on_leave(id, listener);
                        continue;
                    }
                    Err(e) => Some(e.to_string()),
                },
                Ok(Recv::Message(_) | Recv::FdsLost(_)) => Some("a worker sent file descriptors".to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failure {
                eprintln!("rcluster: dropping worker {id}'s channel: {why}");
            }
            fds.clear();
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.mark_dead();
            }
            return;
        }
    }

    fn on_reply(&mut self, id: WorkerId, statuses: &[u8]) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&id) else { return };
        let mut refused = Vec::new();
        for status in statuses {
            let Some(conn) = peer.take_acknowledged() else {
                eprintln!("rcluster: worker {id} acknowledged more connections than it was sent");
                peer.mark_dead();
                break;
            };
            if *status == ACCEPTED {
                peer.accepted_total += 1;
                // The worker owns a socket for it now: our copy closes here.
                drop(conn);
            } else {
                refused.push(conn);
            }
        }
        for conn in refused.into_iter().rev() {
            // A connection whose socket closed meanwhile closes with it.
            if let Some(handle) = self.handles.get_mut(&conn.listener) {
                handle.requeue_refused(conn, id, now);
            }
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
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.push_left(listener);
        }
    }

    fn withdraw(&mut self, id: WorkerId, emptied: Emptied) {
        let now_empty: Vec<ListenerId> = self
            .handles
            .values_mut()
            .filter_map(|handle| (handle.remove(id) && handle.is_empty()).then_some(handle.id))
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
        if handle.mode == Mode::Shared && handle.socket_type == SocketType::Stream {
            // The workers shared its file description and may have made it
            // blocking; a blocking accept would stall every socket.
            if let Err(e) = sys::set_nonblocking(handle.fd(), true) {
                eprintln!("rcluster: cannot make {} non-blocking: {e}", handle.key);
            }
        }
    }

    fn close_handle(&mut self, listener: ListenerId) {
        if let Some(handle) = self.handles.remove(&listener) {
            self.keys.remove(&handle.key);
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
            // Unlike Node, a socket whose last worker died stays open: its
            // connections wait (up to the queue timeout) for a replacement to
            // listen on the same key. Only a deliberate close by every worker
            // (LEAVE) frees the port.
            self.withdraw(id, Emptied::Hold);
            for conn in peer.take_all().into_iter().rev() {
                if let Some(handle) = self.handles.get_mut(&conn.listener) {
                    handle.push_pending_front(conn);
                }
            }
        }
    }

    /// Gives queued connections out first, then accepts new ones, in turn,
    /// to workers with credit. A socket nobody listens on any more has its
    /// connections accepted and held for the next worker.
    fn dispatch(&mut self, readable: &HashMap<ListenerId, bool>) {
        let turn = self.turn();
        let timeout = self.config.queue_timeout;
        for handle in self.handles.values_mut() {
            // Oldest first; a connection waits for a worker that has not
            // refused it, or for its next round of offers. What cannot go yet
            // keeps its place; what waited too long closes here.
            let mut kept = VecDeque::new();
            for conn in handle.take_pending() {
                if turn.now.saturating_duration_since(conn.since) >= timeout {
                    handle.expired_total += 1;
                    continue;
                }
                let conn = handle.new_round_if_refused_by_all(conn, turn.now);
                let pick = if handle.is_empty() || !is_due(&conn, turn.now) {
                    None
                } else {
                    handle.next_in_turn(&self.peers, &turn, &conn.refused_by)
                };
                match pick {
                    Some(pick) => {
                        let worker = handle.commit(pick, &conn.refused_by);
                        self.peers.get_mut(&worker).expect("members are live peers").push(conn);
                    }
                    None => kept.push_back(conn),
                }
            }
            handle.restore_pending(kept);
            // A socket polled and found idle is skipped; one not polled (no
            // worker could take a connection then, or paused) is tried, since
            // credit may be back now.
            if readable.get(&handle.id) == Some(&false) || handle.paused_until.is_some() {
                continue;
            }
            let holding = handle.is_empty();
            if handle.socket_type == SocketType::Datagram || (!holding && handle.mode != Mode::RoundRobin) {
                continue;
            }
            for _ in 0..self.config.accept_batch {
                let pick = if holding {
                    if handle.pending_len() >= self.config.queue_limit {
                        break;
                    }
                    None
                } else {
                    match handle.next_in_turn(&self.peers, &turn, &[]) {
                        Some(pick) => Some(pick),
                        None => break,
                    }
                };
                match handle.accept() {
                    Ok(conn) => match pick {
                        Some(pick) => {
                            let worker = handle.commit(pick, &[]);
                            self.peers.get_mut(&worker).expect("members are live peers").push(conn);
                        }
                        None => handle.push_pending_back(conn),
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if sys::is_transient_accept_error(&e) => continue,
                    Err(e) => {
                        if !sys::is_resource_exhausted(&e) {
                            eprintln!("rcluster: accept on {} failed: {e}", handle.key);
                        }
                        handle.paused_until = Some(Instant::now() + self.config.exhausted_pause);
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

    fn stats(&self) -> Stats {
        let mut listeners: Vec<ListenerStats> = self
            .handles
            .values()
            .map(|h| ListenerStats {
                id: h.id,
                key: h.key.clone(),
                members: h.members().collect(),
                accepted: h.accepted_total,
                pending: h.pending_len(),
                expired: h.expired_total,
            })
            .collect();
        listeners.sort_by_key(|l| l.id);
        let mut workers: Vec<WorkerStats> = self
            .peers
            .values()
            .map(|p| WorkerStats { id: p.id, in_flight: p.in_flight(), accepted: p.accepted_total })
            .collect();
        workers.sort_by_key(|w| w.id);
        Stats { listeners, workers }
    }
}
