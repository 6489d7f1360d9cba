//! The JS thread's side of the dispatcher: the handle it holds and the
//! commands it sends to the dispatcher thread.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::event_loop::EventLoop;
use super::events::{self, Event, EventSink};
use super::shards::{self, Inbox, Shards};
use super::{Config, Emptied, ListenOutcome, ListenRequest, Stats};
use crate::error::{Error, Result};
use crate::channel::wire::ListenerId;
use crate::dispatcher::peer::{Connection, WorkerId};
use crate::loop_stamp::StampReader;
use crate::sys::{self, Waker};

/// What the JS thread asks of the dispatcher thread.
pub(super) enum Command {
    /// A peer's channel, and for a worker its loop stamp (read here, and
    /// the file the worker maps).
    AddPeer(WorkerId, OwnedFd, Option<(StampReader, OwnedFd)>),
    RemovePeer(WorkerId),
    Withdraw(WorkerId, Emptied),
    Listen(ListenRequest, Sender<Result<ListenOutcome>>),
    Stats(Sender<Stats>),
    /// Whether broadcasts from the other peers reach the primary's JS too
    /// (it carries them to other machines: `bus.redis`).
    BusBridge(bool),
    /// From another dispatcher thread (`super::shards`): connections of a
    /// listener it has no worker for any more, to deal here.
    Adopt(ListenerId, Vec<Connection>),
    /// From another thread: a bus message, already re-encoded, for peer
    /// `to` here (or every peer here, for a broadcast), sent by `from`.
    Bus { from: WorkerId, to: WorkerId, message: Vec<u8> },
    /// From another thread: a notice (dropped, gone) for peer `to` here.
    BusNotice { to: WorkerId, notice: Vec<u8> },
    /// From another thread: its peer `gone` is gone.
    PeerGone(WorkerId),
    Stop,
}

/// The JS thread's handle on the dispatcher threads.
pub struct Dispatcher {
    /// Their inboxes, and what they share.
    shards: Arc<Shards>,
    threads: Vec<JoinHandle<()>>,
    /// Worker ends of channels whose process is being spawned. The primary
    /// closes its copy right after the spawn, or it would never see the
    /// worker's end hang up when the worker dies (docs/DESIGN.md §1).
    child_ends: Mutex<HashMap<WorkerId, OwnedFd>>,
}

impl Dispatcher {
    /// Starts the threads; nothing hears their events.
    pub fn start(config: Config) -> Result<Self> {
        Self::start_with_events(config, events::discard())
    }

    /// Starts the threads (`Config::threads`); `events` is called on one of
    /// them for each [`Event`], and must not block. It is dropped when the
    /// last thread ends (on `Drop`).
    pub fn start_with_events(config: Config, events: impl FnMut(Event) + Send + 'static) -> Result<Self> {
        let cpus = config.cpus.unwrap_or_else(crate::routing::policy::available_cpus).max(1);
        let count = config.threads.unwrap_or_else(|| shards::default_threads(cpus)).clamp(1, shards::MAX_THREADS);
        let mut inboxes = Vec::with_capacity(count);
        let mut receivers = Vec::with_capacity(count);
        for _ in 0..count {
            let waker = Arc::new(Waker::new().map_err(|e| Error::io("eventfd", e))?);
            let (commands, inbox) = crossbeam_channel::unbounded();
            inboxes.push(Inbox { commands, waker });
            receivers.push(inbox);
        }
        let shards = Arc::new(Shards::new(inboxes, cpus));
        // One thread calls `events` as it is; several share it.
        let sinks: Vec<EventSink> = if count == 1 {
            vec![Box::new(events)]
        } else {
            let shared = Arc::new(Mutex::new(events));
            (0..count)
                .map(|_| {
                    let shared = Arc::clone(&shared);
                    Box::new(move |event| (shared.lock())(event)) as EventSink
                })
                .collect()
        };
        // Made first: if a thread cannot start, dropping it stops those
        // that did.
        let mut dispatcher = Dispatcher { shards: Arc::clone(&shards), threads: Vec::with_capacity(count), child_ends: Mutex::new(HashMap::new()) };
        for ((i, inbox), sink) in receivers.into_iter().enumerate().zip(sinks) {
            let waker = Arc::clone(&shards.inbox(i).waker);
            let shared = (count > 1).then(|| (i, Arc::clone(&shards)));
            let event_loop =
                EventLoop::new(config.clone(), inbox, waker, sink, shared).map_err(|e| Error::io("epoll", e))?;
            let name = if count == 1 { "rcluster-dispatch".to_string() } else { format!("rcluster-disp-{i}") };
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    // A dispatcher that died quietly would leave the primary up
                    // with nobody accepting: an outage that looks healthy. A broken
                    // invariant here takes the primary down loudly instead, as a
                    // failed internal assertion does in Node.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run())).is_err() {
                        // On stderr, not a warning event: the process aborts on
                        // the next line, so no JS would ever run to emit one.
                        eprintln!("rcluster: the dispatcher thread panicked; aborting the primary");
                        std::process::abort();
                    }
                })
                .map_err(|e| Error::io("pthread_create", e))?;
            dispatcher.threads.push(thread);
        }
        Ok(dispatcher)
    }

    /// How many dispatcher threads run.
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// Sends `command` to the thread that owns `peer`'s channel (the first,
    /// for one that has none: it answers that).
    fn send_for(&self, peer: WorkerId, command: Command) -> Result<()> {
        let shard = self.shards.owner(peer).unwrap_or(0);
        self.send_to(shard, command)
    }

    fn send_to(&self, shard: usize, command: Command) -> Result<()> {
        self.shards.inbox(shard).try_send(command)
    }

    /// Creates the private channel of a worker about to be spawned and returns
    /// the raw fd of the worker's end, to be passed as an extra stdio slot. The
    /// dispatcher owns that fd until `release_child_end`.
    pub fn open_channel(&self, worker: WorkerId) -> Result<RawFd> {
        let (primary_end, worker_end) = sys::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        let raw = worker_end.as_raw_fd();
        {
            let mut child_ends = self.child_ends.lock();
            // Checked before inserting: replacing the entry would close the
            // end a live worker is being spawned with.
            if child_ends.contains_key(&worker) {
                return Err(Error::InvalidArgument(format!("worker {worker} already has a channel")));
            }
            child_ends.insert(worker, worker_end);
        }
        // Without a stamp (out of descriptors or memory) the worker is only
        // seen through its acknowledgements, as before stamps existed.
        let stamp = StampReader::create().ok();
        let shard = self.shards.place(worker);
        self.send_to(shard, Command::AddPeer(worker, primary_end, stamp))?;
        Ok(raw)
    }

    /// Creates a channel for a bus peer in this process (the primary's own JS,
    /// id `bus::PRIMARY`) and returns its end, which the caller owns.
    pub fn open_local_channel(&self, peer: WorkerId) -> Result<OwnedFd> {
        let (primary_end, local_end) = sys::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        let shard = self.shards.place(peer);
        self.send_to(shard, Command::AddPeer(peer, primary_end, None))?;
        Ok(local_end)
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
        self.send_for(request.worker, Command::Listen(request, reply))?;
        answer.recv().map_err(|_| Error::Stopped)?
    }

    /// Forgets a worker (it exited or disconnected). Connections it had not
    /// acknowledged go to the other workers. Idempotent.
    pub fn remove_worker(&self, worker: WorkerId) -> Result<()> {
        self.release_child_end(worker);
        let shard = self.shards.owner(worker);
        // Forgotten first: a bus message for it from now on is answered
        // "gone" by its sender's thread.
        self.shards.forget(worker);
        match shard {
            Some(shard) => self.send_to(shard, Command::RemovePeer(worker)),
            None => Ok(()),
        }
    }

    /// Takes a worker out of every rotation, as Node's `removeHandlesForWorker`
    /// does when the primary disconnects it: it gets no new connections.
    /// A listener it was the last member of closes now (`Emptied::Close`), or
    /// stays open and holds connections for a replacement on its way
    /// (`Emptied::Hold`, as after a worker's death). Unlike `remove_worker`,
    /// the worker stays connected: what it was already sent, it still answers.
    pub fn withdraw(&self, worker: WorkerId, emptied: Emptied) -> Result<()> {
        self.send_for(worker, Command::Withdraw(worker, emptied))
    }

    /// Broadcasts from workers and the agent reach the primary's bus channel
    /// too (`on`), or only them (the default: the primary's JS is spared).
    pub fn set_bus_bridge(&self, on: bool) -> Result<()> {
        (0..self.shards.len()).try_for_each(|i| self.send_to(i, Command::BusBridge(on)))
    }

    /// What every thread reports, merged.
    pub fn stats(&self) -> Result<Stats> {
        let (reply, answer) = crossbeam_channel::bounded(self.shards.len());
        for i in 0..self.shards.len() {
            self.send_to(i, Command::Stats(reply.clone()))?;
        }
        let mut parts = Vec::with_capacity(self.shards.len());
        for _ in 0..self.shards.len() {
            parts.push(answer.recv().map_err(|_| Error::Stopped)?);
        }
        Ok(Stats::merge(parts))
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        let stopping: Vec<bool> = (0..self.shards.len()).map(|i| self.send_to(i, Command::Stop).is_ok()).collect();
        for (thread, stopping) in self.threads.drain(..).zip(stopping) {
            if stopping {
                let _ = thread.join();
            }
        }
    }
}

