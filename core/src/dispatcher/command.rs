//! The JS thread's side of the dispatcher: the handle it holds and the
//! commands it sends to the dispatcher thread.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::event_loop::EventLoop;
use super::events::{self, Event};
use super::{Config, Emptied, ListenOutcome, ListenRequest, Stats};
use crate::error::{Error, Result};
use crate::dispatcher::peer::WorkerId;
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
    /// Starts the thread; nothing hears its events.
    pub fn start(config: Config) -> Result<Self> {
        Self::start_with_events(config, events::discard())
    }

    /// Starts the thread; `events` is called on it for each [`Event`], and
    /// must not block. It is dropped when the thread ends (on `Drop`).
    pub fn start_with_events(config: Config, events: impl FnMut(Event) + Send + 'static) -> Result<Self> {
        let waker = Arc::new(Waker::new().map_err(|e| Error::io("eventfd", e))?);
        let (commands, inbox) = crossbeam_channel::unbounded();
        let event_loop =
            EventLoop::new(config, inbox, Arc::clone(&waker), Box::new(events)).map_err(|e| Error::io("epoll", e))?;
        let thread = std::thread::Builder::new()
            .name("rcluster-dispatch".into())
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
        Ok(Dispatcher { commands, waker, thread: Some(thread), child_ends: Mutex::new(HashMap::new()) })
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::Stopped)?;
        self.waker.wake().map_err(|e| Error::io("write", e))
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
        self.send(Command::AddPeer(worker, primary_end, stamp))?;
        Ok(raw)
    }

    /// Creates a channel for a bus peer in this process (the primary's own JS,
    /// id `bus::PRIMARY`) and returns its end, which the caller owns.
    pub fn open_local_channel(&self, peer: WorkerId) -> Result<OwnedFd> {
        let (primary_end, local_end) = sys::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        self.send(Command::AddPeer(peer, primary_end, None))?;
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

    /// Broadcasts from workers and the agent reach the primary's bus channel
    /// too (`on`), or only them (the default: the primary's JS is spared).
    pub fn set_bus_bridge(&self, on: bool) -> Result<()> {
        self.send(Command::BusBridge(on))
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

