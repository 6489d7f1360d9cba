//! Several dispatcher threads (docs/DESIGN.md §16). One thread's ceiling is
//! the kernel's cost of an accept, a descriptor passed and a close per
//! connection; a host with many cores can need more connections per second
//! than that. Each thread is a whole [`EventLoop`](super::event_loop) over
//! its own share of the workers: their channels, claims, stamps, health and
//! rotation are its own, so nothing on a connection's path takes a lock.
//!
//! What they share is here:
//! - where each peer lives ([`Shards::owner`]): a bus message to a peer of
//!   another thread is passed to that thread's inbox;
//! - the listening sockets ([`SocketRegistry`]): one socket per key, bound
//!   once, each thread holding a copy of it and accepting from it only
//!   while one of its own workers could take a connection. The kernel's
//!   accept queue is the one queue; a thread with no worker for a key
//!   accepts nothing from it, and passes on what it held.
//!
//! With one thread (the default below 16 CPUs) none of this exists and the
//! loop runs exactly as before.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use super::command::Command;
use crate::channel::wire::ListenerId;
use crate::dispatcher::peer::WorkerId;
use crate::listen::BoundSocket;
use crate::sys::{self, LocalAddr, Waker};

/// How many CPUs' worth of workers one dispatcher thread serves by default:
/// one thread handles about 50,000 to 70,000 new connections per second of
/// its CPU on the reference machine, and a worker answering a minimal HTTP
/// request on a new connection costs about eight times the dispatcher's
/// share (docs/DESIGN.md §16).
pub const CPUS_PER_THREAD: usize = 8;

/// Most dispatcher threads, whatever is asked.
pub const MAX_THREADS: usize = 64;

/// The number of dispatcher threads for `cpus` CPUs when none is asked:
/// one up to 15 CPUs, so that a small cluster keeps one exact rotation.
pub fn default_threads(cpus: usize) -> usize {
    (cpus / CPUS_PER_THREAD).clamp(1, MAX_THREADS)
}

/// One thread's inbox.
pub(super) struct Inbox {
    pub commands: Sender<Command>,
    pub waker: Arc<Waker>,
}

impl Inbox {
    /// Queues `command` for the thread and wakes it (the JS thread's way in).
    pub fn try_send(&self, command: Command) -> crate::error::Result<()> {
        self.commands.send(command).map_err(|_| crate::error::Error::Stopped)?;
        self.waker.wake().map_err(|e| crate::error::Error::io("write", e))
    }

    /// The same, from another dispatcher thread: a thread only stops with
    /// all of them, so there is no one to tell of a failure.
    pub fn send(&self, command: Command) {
        let _ = self.try_send(command);
    }
}

/// What the threads share: their inboxes, where each peer lives, and the
/// listening sockets.
pub(super) struct Shards {
    inboxes: Vec<Inbox>,
    /// Which thread each live peer's channel belongs to.
    owners: Mutex<HashMap<WorkerId, usize>>,
    /// Workers a thread takes before the next one gets any: a small
    /// cluster stays on the first thread, with one exact rotation.
    capacity: usize,
    pub sockets: SocketRegistry,
    /// Per thread: bytes of bus messages other threads have put in its
    /// inbox and it has not taken out yet (`reserve_bus`).
    bus_in_flight: Vec<AtomicUsize>,
}

/// Most bytes of bus messages that may wait in one thread's inbox, from the
/// other threads: a worker flooding a peer of another thread fills this, and
/// what does not fit is dropped with its sender told, as a full peer's queue
/// does (`Peer::push_bus`).
pub const BUS_IN_FLIGHT_BYTES: usize = 16 << 20;

impl Shards {
    pub fn new(inboxes: Vec<Inbox>, cpus: usize) -> Self {
        let capacity = cpus.div_ceil(inboxes.len()).max(1);
        let sockets = SocketRegistry::new(inboxes.len());
        let bus_in_flight = (0..inboxes.len()).map(|_| AtomicUsize::new(0)).collect();
        Shards { inboxes, owners: Mutex::new(HashMap::new()), capacity, sockets, bus_in_flight }
    }

    pub fn len(&self) -> usize {
        self.inboxes.len()
    }

    pub fn inbox(&self, shard: usize) -> &Inbox {
        &self.inboxes[shard]
    }

    /// The thread a new peer's channel goes to: the first with fewer
    /// workers than its share of the CPUs, else the one with fewest. The
    /// primary's and the agent's bus channels go to the first.
    pub fn place(&self, peer: WorkerId) -> usize {
        let mut owners = self.owners.lock();
        let shard = if peer == crate::bus::PRIMARY || peer == crate::bus::AGENT {
            0
        } else {
            let mut counts = vec![0usize; self.inboxes.len()];
            for (id, shard) in owners.iter() {
                if *id != crate::bus::PRIMARY && *id != crate::bus::AGENT {
                    counts[*shard] += 1;
                }
            }
            counts
                .iter()
                .position(|n| *n < self.capacity)
                .unwrap_or_else(|| (0..counts.len()).min_by_key(|i| counts[*i]).unwrap_or(0))
        };
        owners.insert(peer, shard);
        shard
    }

    /// The thread whose worker `peer` is, while it is live.
    pub fn owner(&self, peer: WorkerId) -> Option<usize> {
        self.owners.lock().get(&peer).copied()
    }

    /// The live peers of thread `shard`.
    pub fn peers_of(&self, shard: usize) -> Vec<WorkerId> {
        self.owners.lock().iter().filter(|(_, s)| **s == shard).map(|(id, _)| *id).collect()
    }

    pub fn forget(&self, peer: WorkerId) {
        self.owners.lock().remove(&peer);
    }

    /// Sends `command` to every thread but `except`, made for each.
    pub fn to_others(&self, except: usize, mut command: impl FnMut() -> Command) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if i != except {
                inbox.send(command());
            }
        }
    }

    /// Room for a bus message of `len` bytes in thread `shard`'s inbox:
    /// false when that much already waits there (the message is dropped).
    pub fn reserve_bus(&self, shard: usize, len: usize) -> bool {
        let waiting = &self.bus_in_flight[shard];
        let mut now = waiting.load(Ordering::Acquire);
        loop {
            if now + len > BUS_IN_FLIGHT_BYTES {
                return false;
            }
            match waiting.compare_exchange_weak(now, now + len, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => now = seen,
            }
        }
    }

    /// Thread `shard` took a bus message of `len` bytes out of its inbox.
    pub fn release_bus(&self, shard: usize, len: usize) {
        self.bus_in_flight[shard].fetch_sub(len, Ordering::AcqRel);
    }

    /// Wakes every thread but `except`, to look at its listeners again.
    pub fn wake_others(&self, except: usize) {
        for (i, inbox) in self.inboxes.iter().enumerate() {
            if i != except {
                let _ = inbox.waker.wake();
            }
        }
    }
}

/// Per thread, for one listener: whether it could deal a connection now to
/// a worker that keeps up (credit, loop not busy, nothing left unread too
/// long, not paced), and how good its best such worker is: 0 for any, or
/// under least connections the fewest connections one holds open. A thread
/// whose workers cannot, or whose best is worse than another thread's,
/// leaves the socket to that thread, and takes back for it what a blocked
/// worker left unread (docs/DESIGN.md §16). Written by each thread at each
/// turn, read by the others without a lock: a stale value costs one
/// connection's placement, never the connection.
pub(super) struct Able {
    scores: Vec<AtomicU64>,
}

/// A thread's score while none of its workers can take a connection.
pub(super) const UNABLE: u64 = u64::MAX;

/// From here up, a thread's workers could take a connection but none keeps
/// up (each busy, or with one left unread): the score is this plus the
/// least such worker's lag in microseconds (`lagging_score`), so that a
/// thread whose worker is hung leaves connections to one whose worker is
/// only a few milliseconds behind.
pub(super) const LAGGING: u64 = 1 << 62;

/// The score of a thread whose least-behind worker is `lag` behind.
pub(super) fn lagging_score(lag: std::time::Duration) -> u64 {
    LAGGING + u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).min(LAGGING - 1)
}

impl Able {
    fn new(threads: usize) -> Self {
        Able { scores: (0..threads).map(|_| AtomicU64::new(UNABLE)).collect() }
    }

    /// Sets thread `shard`'s score; true if it went from keeping up to not
    /// (lagging or unable): the others may have left the socket to it.
    pub fn set(&self, shard: usize, score: u64) -> bool {
        self.scores[shard].swap(score, Ordering::AcqRel) < LAGGING && score >= LAGGING
    }

    /// Another thread whose score is below `score` (any able one, for
    /// `UNABLE`), the best, the first after `shard` among equals.
    pub fn better_than(&self, shard: usize, score: u64) -> Option<usize> {
        let n = self.scores.len();
        (1..n)
            .map(|i| (shard + i) % n)
            .map(|t| (t, self.scores[t].load(Ordering::Acquire)))
            .filter(|(_, s)| *s < score)
            .min_by_key(|(_, s)| *s)
            .map(|(t, _)| t)
    }

    /// Another thread with a worker that keeps up, the best.
    pub fn elsewhere(&self, shard: usize) -> Option<usize> {
        self.better_than(shard, LAGGING)
    }
}

/// One listening socket and who holds it.
struct Entry {
    id: ListenerId,
    /// The registry's own copy: a thread's handle is made from a copy of it.
    socket: BoundSocket,
    /// How a thread that joins makes its handle.
    kind: SocketKind,
    /// Per thread: whether it holds a handle for it, and how many of its
    /// workers are members.
    holds: Vec<bool>,
    members: Vec<usize>,
    able: Arc<Able>,
}

/// What a thread's handle for an existing socket is made as.
#[derive(Clone, Copy, Debug)]
pub(super) enum SocketKind {
    /// The one socket, accepted from by the thread (or shared with workers).
    Plain,
    /// SCHED_REUSEPORT: the thread binds slots of its own beside it.
    ReusePort { ipv6_only: bool, backlog: i32, defer_accept: bool },
}

/// The listening sockets, one per key, shared by the threads.
pub(super) struct SocketRegistry {
    threads: usize,
    entries: Mutex<HashMap<String, Entry>>,
    next_listener: AtomicU32,
}

/// A thread's part in a registered socket.
pub(super) struct Joined {
    pub id: ListenerId,
    /// A copy of the socket and how to make a handle of it, for a thread
    /// that joins one another bound; `None` for the thread that bound it.
    pub socket: Option<(BoundSocket, SocketKind)>,
    pub able: Arc<Able>,
}

impl SocketRegistry {
    fn new(threads: usize) -> Self {
        SocketRegistry { threads, entries: Mutex::new(HashMap::new()), next_listener: AtomicU32::new(1) }
    }

    /// The socket for `key`, for thread `shard`: a copy of the one
    /// registered, or the one `bind` makes now (given the listener's id;
    /// it returns a copy for the registry, which removes a unix socket's
    /// path once the last thread lets it go). The registry is locked
    /// meanwhile, so two threads asked for one new key at once bind it once.
    pub fn join(
        &self,
        key: &str,
        shard: usize,
        bind: impl FnOnce(ListenerId) -> crate::error::Result<(BoundSocket, SocketKind)>,
    ) -> crate::error::Result<Joined> {
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.get_mut(key) {
            let fd = sys::dup_cloexec(entry.socket.fd.as_fd()).map_err(|e| crate::error::Error::io("dup", e))?;
            entry.holds[shard] = true;
            // The registry's entry removes a unix socket's path, once the
            // last thread lets it go.
            let socket = BoundSocket { fd, local: entry.socket.local.clone(), owns_path: false };
            return Ok(Joined { id: entry.id, socket: Some((socket, entry.kind)), able: Arc::clone(&entry.able) });
        }
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let (socket, kind) = bind(id)?;
        let mut holds = vec![false; self.threads];
        holds[shard] = true;
        let able = Arc::new(Able::new(self.threads));
        entries.insert(key.to_string(), Entry { id, socket, kind, holds, members: vec![0; self.threads], able: Arc::clone(&able) });
        Ok(Joined { id, socket: None, able })
    }

    /// Thread `shard` now has `members` of its workers in `key`'s rotation.
    /// Every other thread holding the socket is woken when that changes
    /// whether any worker anywhere is a member: one that held connections
    /// for lack of a member passes them on (`EventLoop::pass_on_orphans`).
    pub fn set_members(&self, key: &str, shard: usize, members: usize, shards: &Shards) {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key) else { return };
        if entry.members[shard] == members {
            return;
        }
        entry.members[shard] = members;
        for (i, holds) in entry.holds.iter().enumerate() {
            if *holds && i != shard {
                let _ = shards.inbox(i).waker.wake();
            }
        }
    }

    /// The key of the socket registered as `listener`.
    pub fn key_of(&self, listener: ListenerId) -> Option<String> {
        self.entries.lock().iter().find(|(_, e)| e.id == listener).map(|(k, _)| k.clone())
    }

    /// The next thread after `shard` with a member in `key`'s rotation and
    /// not in `tried` (bit `i` for thread `i`).
    pub fn next_thread(&self, key: &str, shard: usize, tried: u64) -> Option<usize> {
        let entries = self.entries.lock();
        let entry = entries.get(key)?;
        (1..self.threads)
            .map(|i| (shard + i) % self.threads)
            .find(|t| entry.members[*t] > 0 && tried & (1u64 << t) == 0)
    }

    /// Whether a listen by descriptor (`listen({ fd })`) on `key` names
    /// one of the listening sockets any thread holds for another key.
    pub fn names_one_of(&self, addr: &crate::listen::ListenAddr, key: &str) -> bool {
        let entries = self.entries.lock();
        let others = entries.iter().filter(|(k, _)| k.as_str() != key).map(|(_, e)| e.socket.fd.as_fd());
        crate::listen::socket_identity::names_one_of(addr, others)
    }

    /// Another thread with a member in `key`'s rotation, the one with most.
    pub fn members_elsewhere(&self, key: &str, shard: usize) -> Option<usize> {
        let entries = self.entries.lock();
        let entry = entries.get(key)?;
        (0..self.threads).filter(|i| *i != shard && entry.members[*i] > 0).max_by_key(|i| entry.members[*i])
    }

    /// Thread `shard` closed its handle for `key`. The last one closes the
    /// socket for good (and removes a unix socket's path).
    pub fn release(&self, key: &str, shard: usize) {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key) else { return };
        entry.holds[shard] = false;
        entry.members[shard] = 0;
        entry.able.set(shard, UNABLE);
        if entry.holds.iter().any(|h| *h) {
            return;
        }
        if let Some(entry) = entries.remove(key) {
            if let LocalAddr::Unix(path) = &entry.socket.local {
                if entry.socket.owns_path {
                    sys::unlink(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn one_thread_up_to_fifteen_cpus_then_one_per_eight() {
        assert_eq!(default_threads(1), 1);
        assert_eq!(default_threads(2), 1);
        assert_eq!(default_threads(15), 1);
        assert_eq!(default_threads(16), 2);
        assert_eq!(default_threads(64), 8);
        assert_eq!(default_threads(4096), MAX_THREADS);
    }

    fn shards(threads: usize, cpus: usize) -> Shards {
        let inboxes = (0..threads)
            .map(|_| {
                let (commands, _inbox) = crossbeam_channel::unbounded();
                Inbox { commands, waker: Arc::new(Waker::new().unwrap()) }
            })
            .collect();
        Shards::new(inboxes, cpus)
    }

    #[test]
    fn a_thread_defers_only_to_a_better_one_and_an_unable_one_says_so_once() {
        let able = Able::new(3);
        assert_eq!(able.elsewhere(0), None, "none able at first");
        assert!(!able.set(1, 5));
        assert_eq!(able.better_than(0, UNABLE), Some(1));
        assert_eq!(able.better_than(0, 5), None, "equal is not better");
        assert_eq!(able.better_than(0, 6), Some(1));
        assert!(!able.set(2, 2));
        assert_eq!(able.better_than(0, 6), Some(2), "the best");
        assert_eq!(able.better_than(2, 2), None, "not itself");
        assert!(able.set(2, UNABLE), "able to unable: the others are woken");
        assert!(!able.set(2, UNABLE), "once");
        assert_eq!(able.better_than(0, UNABLE), Some(1));
        // Lagging: a hung worker's thread leaves connections to a thread
        // whose worker is a few milliseconds behind, not the other way.
        let hung = lagging_score(std::time::Duration::from_secs(3));
        let behind = lagging_score(std::time::Duration::from_millis(4));
        assert!(able.set(1, behind), "from keeping up to lagging: the others are woken");
        assert!(!able.set(0, 0));
        assert!(able.set(0, hung), "0 stops keeping up");
        assert_eq!(able.better_than(0, hung), Some(1));
        assert_eq!(able.better_than(1, behind), None);
        assert!(behind < hung && hung < UNABLE);
    }

    #[test]
    fn one_socket_per_key_bound_once_and_closed_with_its_last_thread() {
        let s = shards(3, 3);
        let bound = std::cell::Cell::new(0);
        let identity = std::cell::Cell::new(None);
        let bind = |id: ListenerId| {
            bound.set(bound.get() + 1);
            let fd = sys::tcp_listener(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), false, false, 16)
                .map_err(|e| crate::error::Error::io("bind", e))?;
            identity.set(Some(sys::file_identity(fd.as_raw_fd()).unwrap()));
            let local = sys::local_addr(fd.as_fd()).unwrap();
            assert_eq!(id, 1);
            Ok((BoundSocket { fd, local, owns_path: false }, SocketKind::Plain))
        };
        let first = s.sockets.join("k", 0, bind).unwrap();
        assert!(first.socket.is_none(), "bound by thread 0, which has it");
        let second = s.sockets.join("k", 2, |_| unreachable!("bound once")).unwrap();
        let (copy, _) = second.socket.expect("a copy for thread 2");
        assert_eq!((first.id, second.id), (1, 1));
        assert_eq!(bound.get(), 1);
        assert_eq!(identity.get(), Some(sys::file_identity(copy.fd.as_raw_fd()).unwrap()), "one socket, copies of it");
        let addr = crate::listen::ListenAddr::Fd { fd: copy.fd.as_raw_fd() };
        assert!(!s.sockets.names_one_of(&addr, "k"), "its own key's socket");
        assert!(s.sockets.names_one_of(&addr, "other"), "another key's: EEXIST");
        s.sockets.set_members("k", 2, 1, &s);
        assert_eq!(s.sockets.members_elsewhere("k", 0), Some(2));
        assert_eq!(s.sockets.next_thread("k", 0, 0), Some(2));
        assert_eq!(s.sockets.next_thread("k", 0, 1 << 2), None, "tried already");
        s.sockets.release("k", 0);
        assert_eq!(s.sockets.key_of(1).as_deref(), Some("k"), "thread 2 still holds it");
        s.sockets.release("k", 2);
        assert_eq!(s.sockets.key_of(1), None, "gone with its last thread");
    }

    #[test]
    fn a_threads_inbox_holds_a_bounded_amount_of_bus_messages() {
        let s = shards(2, 2);
        let big = 64 * 1024;
        let fits = BUS_IN_FLIGHT_BYTES / big;
        assert!((0..fits).all(|_| s.reserve_bus(1, big)));
        assert!(!s.reserve_bus(1, big), "full: dropped");
        assert!(s.reserve_bus(0, big), "another thread's inbox is its own");
        s.release_bus(1, big);
        assert!(s.reserve_bus(1, big), "room again once one was taken out");
        assert!(!s.reserve_bus(1, 1));
    }

    #[test]
    fn a_small_cluster_stays_on_the_first_thread() {
        // 16 CPUs, 2 threads: 8 workers each before the second gets any.
        let s = shards(2, 16);
        let placed: Vec<usize> = (1..=10).map(|id| s.place(id)).collect();
        assert_eq!(placed, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(s.place(crate::bus::AGENT), 0, "the agent's bus channel is no worker");
    }

    #[test]
    fn past_every_share_workers_go_where_fewest_are() {
        let s = shards(2, 2);
        let placed: Vec<usize> = (1..=6).map(|id| s.place(id)).collect();
        assert_eq!(placed, [0, 1, 0, 1, 0, 1]);
        s.forget(1);
        s.forget(3);
        assert_eq!(s.place(7), 0);
        assert_eq!(s.owner(2), Some(1));
        assert_eq!(s.owner(1), None);
    }
}
