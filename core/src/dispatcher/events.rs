//! What the dispatcher thread tells the primary's JS about things only it
//! sees (docs/DESIGN.md §1, "Events from the dispatcher"). Events go out
//! through a callback the thread calls inline; the callback must not block
//! (the binding's hands them to a non-blocking napi threadsafe function), so a
//! slow or busy JS thread never delays a connection.

use std::time::Duration;

use crate::dispatcher::peer::WorkerId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The dispatcher dropped a live worker's channel because the worker broke
    /// the protocol or reading the channel failed. The worker may well still
    /// be running, but it gets no more connections; those it had not
    /// acknowledged went to other workers. A worker that simply hung up (it
    /// exited or closed its end) is not reported: its exit is.
    ChannelFailed { worker: WorkerId, reason: String },
    /// A worker that sends heartbeats sent none for longer than the hang
    /// timeout (its event loop is blocked). The dispatcher has already taken
    /// it out of every rotation; its channel stays open.
    Hung { worker: WorkerId, silent: Duration },
}

/// Where events go. Called on the dispatcher thread; must return at once.
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// A sink that drops every event, for a dispatcher nobody listens to.
pub fn discard() -> EventSink {
    Box::new(|_| {})
}
