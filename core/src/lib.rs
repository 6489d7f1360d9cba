//! rcluster's native core, free of napi so that it is unit-testable with
//! `cargo test`. The Node bindings (the crate at the repository root) are a
//! thin layer over it.
//!
//! - [`dispatcher`]: the primary's accept-and-dispatch thread, its view of each
//!   worker ([`dispatcher::peer`]) and what the workers' acknowledgements tell.
//! - [`routing`]: one shared listening socket and who gets its next connection
//!   (round-robin, shared, least connections, sticky, SO_REUSEPORT), and the
//!   header stage (PROXY protocol, sticky keys) before a connection is placed.
//! - [`listen`]: reading a worker's listen request and binding (or inheriting)
//!   the socket it asks for.
//! - [`channel`]: the private channel between the primary and a worker: its
//!   wire format and a worker's end.
//! - [`bus`]: the message bus's messages on the same channels, and their bounded queues.
//! - [`loop_stamp`]: each worker's word saying whether its event loop is busy,
//!   which the dispatcher reads without a system call.
//! - [`connection_claims`]: which connections a worker took and which the
//!   dispatcher took back from it, decided once per connection in memory both share.
//! - [`shared`]: counters and a key/value table every process of the cluster maps.
//! - [`sys`]: every system call, behind one helper each.
//! - [`rejections`]: untrusted input refused, counted per surface and reported.
//! - [`error`]: the one error type.

pub mod bus;
pub mod channel;
pub mod connection_claims;
pub mod dispatcher;
pub mod error;
pub mod listen;
pub mod loop_stamp;
pub mod rejections;
pub mod routing;
pub mod shared;
pub mod sys;

pub use channel::worker_channel::{Incoming, Received, WorkerChannel};
pub use dispatcher::{Config, Dispatcher, Emptied, Event, ListenOutcome, ListenRequest, Stats};
pub use error::{Error, Result};
pub use listen::node_query::{NodeQuery, NodeValue};
pub use listen::{ListenAddr, ListenSpec, SocketType};
pub use routing::policy::Mode;
pub use sys::LocalAddr;
