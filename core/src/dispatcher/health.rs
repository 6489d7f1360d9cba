//! The hang detector (docs/DESIGN.md §10.3): a worker's event loop sends a
//! heartbeat on its channel from a timer; this thread, not the primary's JS
//! (which may be busy itself), notices when one stops. A worker is watched
//! from its first heartbeat on, so a worker still starting up (or one that
//! sends none: health checks off) is never called hung.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dispatcher::peer::WorkerId;

#[derive(Debug)]
struct Beat {
    last: Instant,
    /// Reported already: it stays out of rotation, whatever it sends later;
    /// the primary's JS replaces and kills it.
    hung: bool,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    beats: HashMap<WorkerId, Beat>,
}

impl Health {
    pub(super) fn beat(&mut self, id: WorkerId, now: Instant) {
        self.beats.entry(id).and_modify(|b| b.last = now).or_insert(Beat { last: now, hung: false });
    }

    pub(super) fn forget(&mut self, id: WorkerId) {
        self.beats.remove(&id);
    }

    /// Workers silent for longer than `timeout`, newly: each is returned once,
    /// with how long it has been silent.
    pub(super) fn newly_hung(&mut self, timeout: Duration, now: Instant) -> Vec<(WorkerId, Duration)> {
        let mut hung = Vec::new();
        for (id, beat) in &mut self.beats {
            let silent = now.saturating_duration_since(beat.last);
            if !beat.hung && silent > timeout {
                beat.hung = true;
                hung.push((*id, silent));
            }
        }
        hung
    }

    /// When the next watched worker would count as hung.
    pub(super) fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.beats.values().filter(|b| !b.hung).map(|b| b.last + timeout).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_hung_once_silent_past_the_timeout_and_reported_once() {
        let t0 = Instant::now();
        let timeout = Duration::from_millis(100);
        let mut health = Health::default();
        assert!(health.newly_hung(timeout, t0 + Duration::from_secs(10)).is_empty(), "no beat yet: not watched");
        health.beat(1, t0);
        health.beat(2, t0);
        assert_eq!(health.next_deadline(timeout), Some(t0 + timeout));
        health.beat(2, t0 + Duration::from_millis(80));
        assert!(health.newly_hung(timeout, t0 + Duration::from_millis(100)).is_empty(), "not past the timeout");
        let hung = health.newly_hung(timeout, t0 + Duration::from_millis(150));
        assert_eq!(hung, vec![(1, Duration::from_millis(150))]);
        assert!(health.newly_hung(timeout, t0 + Duration::from_millis(160)).is_empty(), "reported once");
        assert_eq!(health.next_deadline(timeout), Some(t0 + Duration::from_millis(180)));
        health.forget(2);
        assert_eq!(health.next_deadline(timeout), None);
    }
}
