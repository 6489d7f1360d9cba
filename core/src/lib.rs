//! rcluster's native core, free of napi so that it is unit-testable with
//! `cargo test`. The Node bindings (the crate at the repository root) are a
//! thin layer over it.
//!
//! - [`bus`]: the message bus's messages on the same channels, and their bounded queues.
//! - [`dispatcher`]: the primary's accept-and-dispatch thread.
//! - [`ack_stats`]: accept-to-acknowledgement times and refusals.
//! - [`handle`]: one shared listening socket, its policy and the connections held for it.
//! - [`policy`]: who gets the next connection (round-robin, shared), decided purely;
//!   [`least_connections`] and [`sticky`] are two more policies.
//! - [`peer`]: the primary's view of one worker and its unacknowledged connections.
//! - [`worker_channel`]: a worker's end of its channel.
//! - [`wire`]: the one definition of the messages on that channel.
//! - [`listener`]: binding the sockets workers ask for.
//! - [`node_query`]: reading a worker's listen request as Node words it.
//! - [`shared_memory`]: counters and a key/value table every process of the cluster maps.
//! - [`socket_identity`]: whether a listen by fd names a socket already shared.
//! - [`sys`]: every system call.
//! - [`untouched`]: whether a dead worker's unacknowledged connection may go to another.
//! - [`error`]: the one error type.
//! - [`rejections`]: untrusted input refused, counted per surface and reported.

pub mod ack_stats;
pub mod bus;
pub mod dispatcher;
pub mod error;
pub mod handle;
pub mod http_key;
pub mod inherited;
pub mod least_connections;
pub mod listener;
pub mod node_query;
pub mod peer;
pub mod policy;
pub mod proxy_header;
pub mod rejections;
pub mod reuseport;
pub mod shared_memory;
pub mod socket_identity;
pub mod sticky;
pub mod sys;
pub mod untouched;
pub mod wire;
pub mod worker_channel;

pub use dispatcher::{Config, Dispatcher, Emptied, Event, ListenOutcome, ListenRequest, Stats};
pub use error::{Error, Result};
pub use policy::Mode;
pub use listener::{ListenAddr, ListenSpec, SocketType};
pub use node_query::{NodeQuery, NodeValue};
pub use sys::LocalAddr;
pub use worker_channel::{Incoming, Received, WorkerChannel};
