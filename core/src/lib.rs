//! rcluster's native core, free of napi so that it is unit-testable with
//! `cargo test`. The Node bindings (the crate at the repository root) are a
//! thin layer over it.
//!
//! - [`dispatcher`]: the primary's accept-and-dispatch thread.
//! - [`handle`]: one shared listening socket, its policy and the connections held for it.
//! - [`policy`]: who gets the next connection (round-robin, shared), decided purely.
//! - [`peer`]: the primary's view of one worker and its unacknowledged connections.
//! - [`worker_channel`]: a worker's end of its channel.
//! - [`wire`]: the one definition of the messages on that channel.
//! - [`listener`]: binding the sockets workers ask for.
//! - [`node_query`]: reading a worker's listen request as Node words it.
//! - [`socket_identity`]: whether a listen by fd names a socket already shared.
//! - [`sys`]: every system call.
//! - [`untouched`]: whether a dead worker's unacknowledged connection may go to another.
//! - [`error`]: the one error type.

pub mod dispatcher;
pub mod error;
pub mod handle;
pub mod listener;
pub mod node_query;
pub mod peer;
pub mod policy;
pub mod socket_identity;
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
