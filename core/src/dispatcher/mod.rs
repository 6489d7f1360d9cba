//! The primary's native dispatcher: one thread that owns every shared
//! listening socket and every worker channel, accepts connections and deals
//! them out. The primary's JS thread only sends it commands (new worker, listen,
//! remove), so a busy JS event loop never delays a connection (docs/DESIGN.md §2).
//!
//! - [`command`]: the JS thread's handle ([`Dispatcher`]) and the commands it sends;
//! - [`event_loop`]: the thread itself, which only does I/O and feeds each
//!   listener's scheduling policy ([`crate::routing::policy`]);
//! - [`stats`]: what `stats()` reports;
//! - [`events`]: what the thread tells the JS thread unasked;
//! - [`health`], [`bus_relay`], [`ack_stats`], [`peer`], [`untouched`]: the
//!   hang detector, the bus relay, acknowledgement times, one worker's
//!   channel, and whether a connection was read from;
//! - [`shards`]: what several dispatcher threads share, when a host's
//!   cores need more than one.
//!
//! Who gets each connection, and the header stage a connection may pass
//! through first, are [`crate::routing`]'s.

use std::time::Duration;

use crate::listen::ListenSpec;
use crate::dispatcher::peer::WorkerId;
use crate::routing::policy::Mode;
use crate::sys::LocalAddr;
use crate::channel::wire::ListenerId;

pub mod ack_stats;
mod bus_relay;
mod command;
mod event_loop;
pub mod events;
mod health;
pub mod peer;
pub mod shards;
mod stats;
pub mod untouched;

pub use crate::routing::header_stage::{ProxyConfig, StickyHttp};
pub use command::Dispatcher;
pub use events::{Event, EventSink};
pub use stats::{ListenerStats, Stats, WorkerStats};

#[derive(Clone, Debug)]
pub struct Config {
    /// Most connections a worker may hold unacknowledged. A hung worker
    /// strands at most this many; the others keep serving (docs/DESIGN.md §3.2).
    pub window: usize,
    /// How far a worker's window may grow while it keeps up with more than
    /// `window` connections per turn of its event loop (`Peer::on_acknowledgement`).
    pub max_window: usize,
    /// Most connections accepted from one listener per wake-up, so one busy
    /// port cannot starve the others or the command queue.
    pub accept_batch: usize,
    /// How long round-robin waits for the worker whose turn it is when that
    /// worker's window is full, before passing over it. A healthy worker frees
    /// its window within one event-loop turn, so the rotation stays exact; a
    /// hung one costs this wait once, then is passed over until it replies.
    pub stall: Duration,
    /// How long a worker may leave a connection unread (unacknowledged, or
    /// taken and not confirmed read after its loop's next turn) before
    /// round-robin passes over it in its turn (and owes it that turn): as
    /// node:cluster hands a worker nothing while it has not taken the last,
    /// so a worker stuck in a long handler strands about one connection, not
    /// a window of them (docs/DESIGN.md §15). A worker that keeps up
    /// confirms well within it, so the rotation stays exact. With more
    /// workers than CPUs it is judged as a run begins, and with a busy loop
    /// (`Rotation::pick`, docs/DESIGN.md §14).
    pub ack_lag: Duration,
    /// How long a worker's event loop may have been busy, by its loop stamp
    /// (`crate::loop_stamp`), before least connections (and sticky's keyless
    /// connections) pass over it (`routing: { busyThreshold }`); round-robin
    /// with more workers than CPUs counts a worker lagging only when busy.
    pub busy_threshold: Duration,
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
    /// Connections start with a PROXY protocol header, read and stripped
    /// here (`setupPrimary({ routing: { proxyProtocol } })`); `None`: they
    /// do not.
    pub proxy: Option<ProxyConfig>,
    /// Listening sockets inherited from systemd (`LISTEN_FDS`): a listen on
    /// the address of one of them gets it instead of a new socket.
    pub inherited: std::sync::Arc<crate::listen::inherited::Inherited>,
    /// Sticky routing by a cookie or query parameter of the first request
    /// (`routing: { sticky }`); `None`: by the client's address.
    pub sticky_http: Option<StickyHttp>,
    /// A worker that sends heartbeats and then sends none for this long is
    /// withdrawn from every rotation and reported (`Event::Hung`). `None`:
    /// no hang detection.
    pub hang_timeout: Option<Duration>,
    /// Pacing (docs/DESIGN.md §13): a worker holding this many open
    /// connections or more is given a new one only once it has confirmed
    /// reading the last ones, about one per turn of its event loop; while a
    /// worker is paced and none has credit, the dispatcher holds new
    /// connections, newest first. `None`: never paced.
    pub pace_above: Option<u64>,
    /// Most connections of one listener that may wait in the header stages
    /// (a PROXY header, or the first request's head for sticky routing by
    /// cookie or query) at once; past that the listener stops accepting and
    /// the kernel's queue holds the rest, as HAProxy's `maxconn` and nginx's
    /// `worker_connections` do. All listeners' stages together are further
    /// held to half the process's descriptor limit (`RLIMIT_NOFILE`), shared
    /// evenly among the listeners that have a stage (docs/DESIGN.md §8).
    pub stage_limit: usize,
    /// How many dispatcher threads share the workers (`super::shards`,
    /// docs/DESIGN.md §16); `None`: one per `shards::CPUS_PER_THREAD` CPUs
    /// (`shards::default_threads`), so one below 16 CPUs.
    pub threads: Option<usize>,
    /// How many CPUs the workers share (`None`: what this process may run
    /// on, `std::thread::available_parallelism`): the default thread count
    /// comes from it, and each thread takes its share of the first workers
    /// before the next thread gets any (`shards::Shards::place`).
    pub cpus: Option<usize>,
}

/// Most connections a worker may hold unacknowledged, at first: its window
/// grows (up to `DEFAULT_MAX_WINDOW`) while it acknowledges with a full
/// window, and falls back when it needs less or stops acknowledging
/// (`Peer::on_acknowledgement`).
pub const DEFAULT_WINDOW: usize = 8;

/// How far a worker's window may grow. Under connection churn (50 clients,
/// `Connection: close`) a fixed window held rcluster RR to 1.6x node:cluster
/// RR at 8, 1.75x at 16, 1.84x at 24, 1.87x at 32 (docs/DESIGN.md §13.4).
pub const DEFAULT_MAX_WINDOW: usize = 32;

/// How many open connections a worker holds before it is paced. Under
/// churn (short connections) and at ordinary concurrency a worker never gets
/// there; with 1000 busy keep-alive connections it gets there within the
/// first turn (docs/DESIGN.md §13.4).
pub const DEFAULT_PACE_ABOVE: u64 = 64;

/// How long a worker's loop may be busy before least connections passes over
/// it, by default (`Config::busy_threshold`): longer than a fast request's
/// handler, far shorter than a slow one's.
pub const DEFAULT_BUSY_THRESHOLD: Duration = Duration::from_millis(1);

/// Most connections of one listener waiting in a header stage, by default.
pub const DEFAULT_STAGE_LIMIT: usize = 1024;
/// How long a connection may wait in the primary for a worker, by default
/// (`Config::queue_timeout`, `setupPrimary({ queueTimeout })`).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Config {
    fn default() -> Self {
        Config {
            window: DEFAULT_WINDOW,
            max_window: DEFAULT_MAX_WINDOW,
            accept_batch: 64,
            stall: Duration::from_millis(50),
            ack_lag: Duration::from_millis(1),
            busy_threshold: DEFAULT_BUSY_THRESHOLD,
            exhausted_pause: Duration::from_millis(50),
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            queue_limit: 1024,
            proxy: None,
            inherited: Default::default(),
            sticky_http: None,
            hang_timeout: None,
            pace_above: Some(DEFAULT_PACE_ABOVE),
            stage_limit: DEFAULT_STAGE_LIMIT,
            threads: None,
            cpus: None,
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
    /// The scheduling policy, if this request binds the socket. A datagram
    /// socket is always `Shared`, whatever the policy, as in node:cluster.
    pub mode: Mode,
    /// The server's clients write first (an HTTP, HTTPS or TLS server), so
    /// its sockets may hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`, under SCHED_REUSEPORT: core/src/routing/reuseport.rs).
    pub defer_accept: bool,
}

#[derive(Clone, Debug)]
pub struct ListenOutcome {
    pub listener: ListenerId,
    pub local: LocalAddr,
    /// True when this request bound the socket (the first worker on the key).
    pub created: bool,
    /// Whether the worker accepts from a socket of its own (SCHED_NONE,
    /// UDP, SCHED_REUSEPORT) rather than being dealt connections: what the
    /// listener really got, which may differ from what was asked (no
    /// `SO_REUSEPORT` here, or not a TCP address).
    pub shared: bool,
}

