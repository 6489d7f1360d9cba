//! What the dispatcher thread tells the primary's JS about things only it
//! sees (docs/DESIGN.md §1, "Events from the dispatcher"). Events go out
//! through a callback the thread calls inline; the callback must not block
//! (the binding's hands them to a non-blocking napi threadsafe function), so a
//! slow or busy JS thread never delays a connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dispatcher::peer::WorkerId;
use crate::rejections::REPORT_EVERY;

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
    /// Something went wrong that the primary should hear of but that needs
    /// no action from it (`process.emitWarning(message, { code })`). `code`
    /// names what, as `RCLUSTER_<WHAT>` (the constants below).
    Warning { code: &'static str, message: String },
}

/// Accepting from a listening socket failed other than for lack of
/// descriptors (which pauses accepting silently, docs/DESIGN.md §3.4).
pub const ACCEPT_FAILED: &str = "RCLUSTER_ACCEPT_FAILED";
/// SCHED_REUSEPORT was asked for where the system has no `SO_REUSEPORT`:
/// the listener uses round-robin.
pub const REUSEPORT_UNAVAILABLE: &str = "RCLUSTER_REUSEPORT_UNAVAILABLE";
/// A socket the workers shared could not be made non-blocking again before
/// the primary accepts from it.
pub const NONBLOCKING_FAILED: &str = "RCLUSTER_NONBLOCKING_FAILED";
/// A new worker's channel could not be watched: the worker gets nothing.
pub const CHANNEL_UNUSABLE: &str = "RCLUSTER_CHANNEL_UNUSABLE";
/// The dispatcher's `poll`, or the header stage's `epoll_wait`, failed.
pub const POLL_FAILED: &str = "RCLUSTER_POLL_FAILED";
/// A descriptor systemd passed (`LISTEN_FDS`) was skipped.
pub const LISTEN_FDS_IGNORED: &str = "RCLUSTER_LISTEN_FDS_IGNORED";

/// Where events go. Called on the dispatcher thread; must return at once.
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// A sink that drops every event, for a dispatcher nobody listens to.
pub fn discard() -> EventSink {
    Box::new(|_| {})
}

/// Lets a warning that could repeat at every turn or every connection (a
/// failing accept, a failing `poll`) through at most once per
/// [`REPORT_EVERY`] per code and scope (a listener, say), as
/// `crate::rejections` does for refused input: a flood costs a lookup, not
/// a JS callback per occurrence.
#[derive(Debug, Default)]
pub struct WarningLimiter {
    last: HashMap<(&'static str, u64), Instant>,
}

impl WarningLimiter {
    /// Whether a warning `code` about `scope` may go out `now`.
    pub fn allow(&mut self, code: &'static str, scope: u64, now: Instant) -> bool {
        match self.last.get(&(code, scope)) {
            Some(at) if now.saturating_duration_since(*at) < REPORT_EVERY => false,
            _ => {
                self.last.insert((code, scope), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_warning_goes_out_once_per_period_per_code_and_scope() {
        let mut limiter = WarningLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.allow(ACCEPT_FAILED, 1, t0));
        assert!(!limiter.allow(ACCEPT_FAILED, 1, t0 + Duration::from_secs(9)));
        assert!(limiter.allow(ACCEPT_FAILED, 2, t0), "another listener");
        assert!(limiter.allow(POLL_FAILED, 1, t0), "another code");
        assert!(limiter.allow(ACCEPT_FAILED, 1, t0 + REPORT_EVERY));
    }
}
