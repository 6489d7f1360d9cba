//! Least connections (`SCHED_LC`): each new connection goes to the member
//! holding the fewest, ties broken in turn.
//!
//! A member's load is what it holds open on this listener (its close reports
//! say how many it closed, `crate::routing::handle`) plus what it was sent and has not
//! acknowledged yet. Counting connections alone, a worker whose event loop is
//! stuck in a 50 ms handler looks like one idle with a keep-alive connection:
//! so a member whose loop stamp (`crate::loop_stamp`) says it has been busy
//! longer than the busy threshold is passed over while another can take the
//! connection, and one busy for less than that comes after those waiting for
//! I/O and those busy for less time (it may be starting a long handler). When every member is busy past
//! the threshold, the one busy the shortest gets it (then the least loaded). Unlike
//! round-robin, nobody is ever waited for: of the members with credit, the
//! least loaded one that is not busy gets the connection.
//!
//! A member at its server's `maxConnections` is left out (Node's worker would
//! only refuse it); when every member is, the connection waits in the kernel's
//! listen queue until one closes something.

use std::time::Duration;

use crate::dispatcher::peer::WorkerId;
use crate::routing::policy::{Ask, Pick, Policy};

#[derive(Clone, Copy, Debug)]
struct Member {
    id: WorkerId,
    /// Connections it holds open on this listener.
    open: u64,
    /// Its server's `maxConnections`, if set.
    cap: Option<u32>,
}

impl Member {
    fn at_cap(&self) -> bool {
        self.cap.is_some_and(|cap| self.open >= u64::from(cap))
    }
}

#[derive(Debug)]
pub struct LeastConnections {
    /// In the order they joined.
    members: Vec<Member>,
    /// Where ties start being broken: just after the last pick.
    cursor: usize,
    /// The CPUs this process may run on: with more members than that, a
    /// member keeps getting connections for a run (`run_length`).
    cpus: usize,
    /// The member being dealt a run (its index) and how many it has had.
    run: Option<(usize, usize)>,
}

impl Default for LeastConnections {
    fn default() -> Self {
        Self::with_cpus(crate::routing::policy::available_cpus())
    }
}

impl LeastConnections {
    pub fn new() -> Self {
        LeastConnections::default()
    }

    /// Least connections for a process that may run on `cpus` CPUs.
    pub fn with_cpus(cpus: usize) -> Self {
        LeastConnections { members: Vec::new(), cursor: 0, cpus: cpus.max(1), run: None }
    }

    /// How many connections in a row a member may take while it stays
    /// near the least loaded: 1 with no more members than CPUs; with more,
    /// as round-robin's runs (`Rotation::run_length`), so that about one
    /// member per CPU is dealt to at a time instead of each of 16 being
    /// woken for one connection while most wait for a CPU (docs/DESIGN.md §14).
    fn run_length(&self) -> usize {
        crate::routing::policy::run_length(self.members.len(), self.cpus)
    }
}

impl Policy for LeastConnections {
    fn deals_new_connections(&self) -> bool {
        true
    }

    /// As soon as it counts as busy: nobody is waited for.
    fn stuck_after(&self, busy_threshold: Duration) -> Option<Duration> {
        Some(busy_threshold)
    }

    fn name(&self) -> &'static str {
        crate::routing::policy::Mode::LeastConnections.name()
    }

    fn members(&self) -> Vec<WorkerId> {
        self.members.iter().map(|m| m.id).collect()
    }

    fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn all_in(&self, workers: &[WorkerId]) -> bool {
        self.members.iter().all(|m| workers.contains(&m.id))
    }

    fn add(&mut self, worker: WorkerId) -> bool {
        if self.members.iter().any(|m| m.id == worker) {
            return false;
        }
        self.members.push(Member { id: worker, open: 0, cap: None });
        self.run = None;
        true
    }

    fn remove(&mut self, worker: WorkerId) -> bool {
        self.run = None;
        crate::routing::policy::remove_in_turn(&mut self.members, &mut self.cursor, worker, |m| m.id)
    }

    fn pick(&self, ask: &Ask<'_>, refused_by: &[WorkerId]) -> Option<Pick> {
        let n = self.members.len();
        // Lowest wins: busy past the threshold last, and those by how long
        // alone; before them, one that has taken everything it was dealt
        // (its loop has turned since: a connection dealt to one that has
        // not would be read in the same turn as the last, and wait for
        // whatever request that one brings, as node:cluster's hand-off never
        // lets happen), then one holding no connection it has not read yet
        // (its loop has yet to run their requests, of unknown length), then
        // the one whose loop has been busy the shortest (a loop busy for a
        // while, even under the threshold, may be in a long handler; one
        // waiting for I/O, zero, takes the connection at once), then open
        // plus unacknowledged; the first in turn wins a tie.
        let mut best: Option<((bool, Duration, bool, bool, Duration, u64), usize)> = None;
        // The member in a run, if it may go on: a candidate, not busy, and
        // holding no more than a run beyond the least loaded.
        let mut run_member: Option<(usize, u64)> = None;
        let run_length = self.run_length();
        for idx in (0..n).map(|i| (self.cursor + i) % n) {
            let member = &self.members[idx];
            if refused_by.contains(&member.id) || member.at_cap() {
                continue;
            }
            let load = (ask.load)(member.id);
            if !load.has_credit() {
                continue;
            }
            let outstanding = member.open.saturating_add(load.unacked as u64);
            // Busy members, all of them past the threshold, by how long alone.
            let busy_for = if load.busy { load.busy_for } else { Duration::ZERO };
            let rank = (load.busy, busy_for, load.unacked > 0, load.unread > 0, load.busy_for, outstanding);
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, idx));
            }
            if self.run.is_some_and(|(at, had)| at == idx && had < run_length) && !load.busy {
                run_member = Some((idx, outstanding));
            }
        }
        let (rank, idx) = best?;
        match run_member {
            Some((at, outstanding)) if !rank.0 && outstanding <= rank.5.saturating_add(run_length as u64) => Some(Pick::at(at)),
            _ => Some(Pick::at(idx)),
        }
    }

    fn commit(&mut self, pick: Pick, _refused_by: &[WorkerId]) -> WorkerId {
        let idx = pick.idx();
        self.cursor = (idx + 1) % self.members.len();
        let run_length = self.run_length();
        self.run = match self.run {
            _ if run_length <= 1 => None,
            Some((at, had)) if at == idx && had + 1 < run_length => Some((at, had + 1)),
            Some((at, _)) if at == idx => None,
            _ => Some((idx, 1)),
        };
        self.members[idx].id
    }

    fn set_open(&mut self, worker: WorkerId, open: u64, cap: Option<u32>) {
        if let Some(member) = self.members.iter_mut().find(|m| m.id == worker) {
            member.open = open;
            member.cap = cap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::policy::Load;
    use std::collections::HashMap;
    use std::time::Instant;

    fn lc(n: u32) -> LeastConnections {
        // As many CPUs as members: no runs (tested on their own below).
        let mut p = LeastConnections::with_cpus(n as usize);
        for id in 1..=n {
            assert!(p.add(id));
        }
        p
    }

    /// Who gets one connection, given each member's (open, free credit, cap).
    fn pick_one(p: &mut LeastConnections, state: &[(WorkerId, u64, usize, Option<u32>)], refused: &[WorkerId]) -> WorkerId {
        let mut loads = HashMap::new();
        for (id, open, free, cap) in state {
            p.set_open(*id, *open, *cap);
            // A window of 8: what is not free is unacknowledged.
            loads.insert(*id, Load { unacked: 8usize.saturating_sub(*free), ..Load::free(*free) });
        }
        let load = |id: WorkerId| loads.get(&id).copied().unwrap_or(Load::free(8));
        let ask = Ask { load: &load, now: Instant::now() };
        match p.pick(&ask, refused) {
            Some(pick) => p.commit(pick, refused),
            None => 0,
        }
    }

    #[test]
    fn the_member_with_the_fewest_open_and_unacknowledged_gets_it() {
        // ((id, open, free credit, cap), ..., refused) -> who gets it (0: nobody)
        type Case = (&'static [(WorkerId, u64, usize, Option<u32>)], &'static [WorkerId], WorkerId);
        let cases: &[Case] = &[
            (&[(1, 5, 8, None), (2, 1, 8, None), (3, 3, 8, None)], &[], 2),
            // Unacknowledged count too: 2 holds 1 open and 6 unread.
            (&[(1, 5, 8, None), (2, 1, 2, None), (3, 3, 8, None)], &[], 3),
            // No credit at all: never chosen, however few it holds.
            (&[(1, 5, 8, None), (2, 0, 0, None), (3, 3, 8, None)], &[], 3),
            // At its maxConnections: left out.
            (&[(1, 5, 8, None), (2, 1, 8, Some(1)), (3, 3, 8, None)], &[], 3),
            (&[(1, 2, 8, Some(2)), (2, 1, 8, Some(1))], &[], 0),
            // Under its cap: still eligible.
            (&[(1, 5, 8, None), (2, 1, 8, Some(2))], &[], 2),
            // Refused it already: left out.
            (&[(1, 5, 8, None), (2, 1, 8, None), (3, 3, 8, None)], &[2], 3),
            (&[(1, 0, 0, None), (2, 0, 0, None)], &[], 0),
        ];
        for (state, refused, expected) in cases {
            let mut p = lc(state.len() as u32);
            assert_eq!(pick_one(&mut p, state, refused), *expected, "{state:?}, refused by {refused:?}");
        }
    }

    /// A member that is `busy_ms` into a busy loop (`None`: waiting for I/O),
    /// with `open` connections, as the event loop would report it with a
    /// threshold of 1 ms.
    fn stamped(open: u64, busy_ms: Option<f64>) -> (u64, Load) {
        let busy_for = busy_ms.map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1000.0));
        (open, Load { busy: busy_for > Duration::from_millis(1), busy_for, ..Load::free(8) })
    }

    /// Who gets one connection, given each member's (open, load).
    fn pick_loaded(p: &mut LeastConnections, state: &[(u64, Load)]) -> WorkerId {
        for (i, (open, _)) in state.iter().enumerate() {
            p.set_open(i as WorkerId + 1, *open, None);
        }
        let load = |id: WorkerId| state[id as usize - 1].1;
        let ask = Ask { load: &load, now: Instant::now() };
        match p.pick(&ask, &[]) {
            Some(pick) => p.commit(pick, &[]),
            None => 0,
        }
    }

    #[test]
    fn a_member_busy_past_the_threshold_is_passed_over_whatever_it_holds() {
        // (each member's (open, busy for ms), who gets it)
        type Case = (&'static [(u64, Option<f64>)], WorkerId);
        let cases: &[Case] = &[
            // Stuck in a 50 ms handler with nothing open: passed over.
            (&[(0, Some(50.0)), (3, None)], 2),
            (&[(3, None), (0, Some(50.0))], 1),
            // Busy for less than the threshold: after any loop waiting for
            // I/O, whatever it holds; among those, the one busy the shortest.
            (&[(0, Some(0.5)), (3, None)], 2),
            (&[(1, Some(0.5)), (1, None)], 2),
            (&[(4, Some(0.5)), (2, Some(0.9))], 1),
            (&[(4, Some(0.5)), (2, Some(0.5))], 2),
            (&[(0, None), (3, None)], 1),
            // Every one busy: the one busy the shortest, however many it holds.
            (&[(0, Some(50.0)), (9, Some(3.0))], 2),
            (&[(9, Some(3.0)), (0, Some(50.0)), (1, Some(30.0))], 1),
            // Busy equally long: the fewest open.
            (&[(4, Some(5.0)), (2, Some(5.0))], 2),
        ];
        for (state, expected) in cases {
            let loads: Vec<(u64, Load)> = state.iter().map(|(open, busy)| stamped(*open, *busy)).collect();
            let mut p = lc(loads.len() as u32);
            assert_eq!(pick_loaded(&mut p, &loads), *expected, "{state:?}");
        }
    }

    #[test]
    fn unread_connections_rank_only_among_members_not_busy() {
        let mut p = lc(2);
        let unread = |load: Load| Load { unread: 1, ..load };
        // Neither busy: the one that has read everything, whatever it holds.
        let loads = [(0, unread(Load::free(8))), (5, Load::free(8))];
        assert_eq!(pick_loaded(&mut p, &loads), 2);
        // Both busy past the threshold: by how long alone, unread or not.
        let loads = [(0, unread(stamped(0, Some(12.0)).1)), (1, stamped(1, Some(140.0)).1)];
        assert_eq!(pick_loaded(&mut p, &loads), 1);
    }

    #[test]
    fn unacknowledged_connections_count_with_open_ones() {
        let mut p = lc(2);
        let loads = [(1, Load { unacked: 3, unread: 3, ..Load::free(5) }), (2, Load { unacked: 1, unread: 1, ..Load::free(7) })];
        assert_eq!(pick_loaded(&mut p, &loads), 2, "1 open + 3 unacknowledged is more than 2 + 1");
        let loads = [(1, Load { unacked: 1, unread: 1, ..Load::free(7) }), (3, Load { unacked: 1, unread: 1, ..Load::free(8) })];
        assert_eq!(pick_loaded(&mut p, &loads), 1, "1 open + 1 unacknowledged is less than 3 + 1");
        // But one that has not even taken what it was dealt (its loop has
        // not turned since) comes after one holding more that has.
        let loads = [(1, Load { unacked: 1, unread: 1, ..Load::free(7) }), (3, Load { unread: 1, ..Load::free(8) })];
        assert_eq!(pick_loaded(&mut p, &loads), 2);
        // A busy member without credit is no candidate either way.
        let loads = [(0, Load { busy: true, busy_for: Duration::from_millis(1), ..Load::free(0) }), (9, stamped(9, Some(80.0)).1)];
        assert_eq!(pick_loaded(&mut p, &loads), 2);
    }

    #[test]
    fn ties_go_in_turn() {
        let mut p = lc(3);
        let even = [(1, 0, 8, None), (2, 0, 8, None), (3, 0, 8, None)];
        let got: Vec<WorkerId> = (0..6).map(|_| pick_one(&mut p, &even, &[])).collect();
        assert_eq!(got, vec![1, 2, 3, 1, 2, 3]);
        // A tie between 1 and 3 after 3 was last: 1 is next in turn.
        let tie = [(1, 1, 8, None), (2, 4, 8, None), (3, 1, 8, None)];
        assert_eq!(pick_one(&mut p, &tie, &[]), 1);
        assert_eq!(pick_one(&mut p, &tie, &[]), 3);
    }

    #[test]
    fn membership_and_counts_follow_the_worker() {
        let mut p = lc(2);
        assert!(!p.add(1));
        assert_eq!(p.name(), "lc");
        assert!(p.deals_new_connections());
        p.set_open(2, 9, None);
        assert!(p.remove(2));
        assert!(!p.remove(2));
        // A worker that comes back starts with nothing open.
        assert!(p.add(2));
        assert_eq!(pick_one(&mut p, &[(1, 1, 8, None)], &[]), 2);
        // Counts for a worker that is not a member are ignored.
        p.set_open(7, 1, None);
        assert_eq!(p.members(), vec![1, 2]);
        assert!(p.remove(1) && p.remove(2) && p.is_empty());
        assert_eq!(pick_one(&mut p, &[], &[]), 0);
    }

    #[test]
    fn with_more_members_than_cpus_a_member_takes_a_run_while_it_stays_near_the_least() {
        // 8 members on 2 CPUs: runs of 4.
        let mut p = LeastConnections::with_cpus(2);
        for id in 1..=8 {
            p.add(id);
        }
        let mut unacked: HashMap<WorkerId, usize> = HashMap::new();
        let mut busy: Option<WorkerId> = None;
        let deal = |p: &mut LeastConnections, unacked: &mut HashMap<WorkerId, usize>, busy: Option<WorkerId>| {
            let snapshot = unacked.clone();
            let load = move |id: WorkerId| {
                let n = snapshot.get(&id).copied().unwrap_or(0);
                let mut l = Load { unacked: n, unread: n, ..Load::free(8 - n) };
                if busy == Some(id) {
                    l.busy = true;
                    l.busy_for = Duration::from_millis(5);
                }
                l
            };
            let ask = Ask { load: &load, now: Instant::now() };
            let pick = p.pick(&ask, &[]).unwrap();
            let id = p.commit(pick, &[]);
            *unacked.entry(id).or_default() += 1;
            id
        };
        let first: Vec<WorkerId> = (0..8).map(|_| deal(&mut p, &mut unacked, busy)).collect();
        assert_eq!(first, vec![1, 1, 1, 1, 2, 2, 2, 2], "runs of 4, each to the least loaded next");
        // A member whose loop turns busy ends its run.
        let next = deal(&mut p, &mut unacked, busy);
        assert_eq!(next, 3);
        busy = Some(3);
        assert_eq!(deal(&mut p, &mut unacked, busy), 4);
        // As many members as CPUs: no runs at all.
        let mut q = LeastConnections::with_cpus(8);
        for id in 1..=8 {
            q.add(id);
        }
        let mut unacked = HashMap::new();
        let seq: Vec<WorkerId> = (0..4).map(|_| deal(&mut q, &mut unacked, None)).collect();
        assert_eq!(seq, vec![1, 2, 3, 4]);
    }
}
