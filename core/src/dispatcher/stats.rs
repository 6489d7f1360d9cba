//! What the dispatcher reports about its listeners and workers.

use std::collections::HashMap;

use crate::dispatcher::ack_stats::AckStats;
use crate::loop_stamp::Reading;
use crate::routing::handle::ListenHandle;
use crate::routing::header_stage::Counts;
use crate::dispatcher::peer::{Peer, WorkerId};
use crate::channel::wire::ListenerId;

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub listeners: Vec<ListenerStats>,
    pub workers: Vec<WorkerStats>,
    /// Accept-to-acknowledgement times and refusals, since the dispatcher started.
    pub acks: AckStats,
}

#[derive(Clone, Debug)]
pub struct ListenerStats {
    pub id: ListenerId,
    pub key: String,
    pub members: Vec<WorkerId>,
    pub accepted: u64,
    pub pending: usize,
    /// Connections closed after waiting longer than `Config::queue_timeout`.
    pub expired: u64,
    /// Its scheduling policy: `rr`, `none`, `lc` or `sticky`.
    pub policy: &'static str,
    /// Per member: connections it holds open and its `maxConnections`, by
    /// worker id.
    pub open: Vec<(WorkerId, u64, Option<u32>)>,
    /// Connections closed for their PROXY header (or an untrusted peer).
    pub proxy_rejected: u64,
    /// Its listening sockets: 1, or one per slot under SCHED_REUSEPORT.
    pub sockets: usize,
    /// Whether they hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`).
    pub defer_accept: bool,
    /// Connections waiting in its header stage (a PROXY header, or the
    /// first request's head for sticky routing by cookie or query) now,
    /// and how many may (`None`: it has no stage).
    pub stage_waiting: usize,
    pub stage_budget: Option<usize>,
    /// Connections whose PROXY header or first request head did not arrive
    /// within the stage's timeout.
    pub stage_expired: u64,
}

/// What the header stage says of one listener.
pub(super) struct StageStats {
    pub waiting: usize,
    /// `None`: the listener has no stage.
    pub budget: Option<usize>,
    pub counts: Counts,
}

#[derive(Clone, Debug)]
pub struct WorkerStats {
    pub id: WorkerId,
    pub in_flight: usize,
    pub accepted: u64,
    /// What its loop stamp says now (`None`: it has not stamped yet).
    pub loop_reading: Option<Reading>,
}


impl Stats {
    /// A snapshot of the dispatcher thread's state, sorted by id.
    pub(super) fn collect(
        handles: &HashMap<ListenerId, ListenHandle>,
        peers: &HashMap<WorkerId, Peer>,
        acks: &AckStats,
        stage: &dyn Fn(&ListenHandle) -> StageStats,
    ) -> Stats {
        let mut listeners: Vec<ListenerStats> = handles
            .values()
            .map(|h| (h, stage(h)))
            .map(|(h, stage)| ListenerStats {
                id: h.id(),
                key: h.key().to_string(),
                members: h.members(),
                accepted: h.accepted_total(),
                pending: h.pending_len(),
                expired: h.expired_total(),
                policy: h.policy_name(),
                open: h.open_counts(),
                proxy_rejected: stage.counts.proxy_rejected,
                sockets: h.socket_count(),
                defer_accept: h.defers_accept(),
                stage_waiting: stage.waiting,
                stage_budget: stage.budget,
                stage_expired: stage.counts.expired,
            })
            .collect();
        listeners.sort_by_key(|l| l.id);
        let now_ns = crate::sys::monotonic_ns();
        let mut workers: Vec<WorkerStats> = peers
            .values()
            // The primary's and the agent's bus channels are no workers.
            .filter(|p| p.id != crate::bus::PRIMARY && p.id != crate::bus::AGENT)
            .map(|p| WorkerStats {
                id: p.id,
                in_flight: p.in_flight(),
                accepted: p.accepted_total(),
                loop_reading: p.loop_reading(now_ns),
            })
            .collect();
        workers.sort_by_key(|w| w.id);
        Stats { listeners, workers, acks: acks.clone() }
    }

    /// One report from every dispatcher thread's: each worker is one
    /// thread's; a listener's figures are summed over the threads that hold
    /// it (its socket is one, but for SCHED_REUSEPORT's slots of their own).
    pub(super) fn merge(parts: Vec<Stats>) -> Stats {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else { return Stats::default() };
        for part in parts {
            out.workers.extend(part.workers);
            out.acks.add(&part.acks);
            for l in part.listeners {
                match out.listeners.iter_mut().find(|o| o.id == l.id) {
                    None => out.listeners.push(l),
                    Some(o) => {
                        o.members.extend(l.members);
                        o.accepted += l.accepted;
                        o.pending += l.pending;
                        o.expired += l.expired;
                        o.open.extend(l.open);
                        o.proxy_rejected += l.proxy_rejected;
                        o.sockets = if o.policy == crate::routing::policy::Mode::ReusePort.name() {
                            o.sockets + l.sockets
                        } else {
                            o.sockets.max(l.sockets)
                        };
                        o.stage_waiting += l.stage_waiting;
                        o.stage_budget = match (o.stage_budget, l.stage_budget) {
                            (Some(a), Some(b)) => Some(a + b),
                            (a, b) => a.or(b),
                        };
                        o.stage_expired += l.stage_expired;
                    }
                }
            }
        }
        out.listeners.sort_by_key(|l| l.id);
        for l in &mut out.listeners {
            l.members.sort_unstable();
            l.open.sort_by_key(|o| o.0);
        }
        out.workers.sort_by_key(|w| w.id);
        out
    }
}
