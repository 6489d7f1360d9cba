//! Sticky routing (`SCHED_STICKY`): the same client goes to the same worker.
//!
//! A client's key (a hash of its address, [`client_key`]) is placed by
//! rendezvous hashing over *slots*, not workers: each slot scores the key,
//! and the best-scoring occupied slot gets it. A worker that dies or leaves
//! empties its slot, which moves only the keys that slot won (each to its
//! second-best); the next worker to join takes the first empty slot, so a
//! replacement (after a crash, a restart or a rolling reload) gets back
//! exactly the clients its predecessor had.
//!
//! The slot a key belongs to is waited for while its worker is only briefly
//! full, as round-robin waits for the worker in turn; once that worker is
//! stalled, gone, or has refused the connection, the key's next-best slot
//! takes it, so a hung worker breaks the stickiness of its own clients only.
//!
//! Sessions a worker claimed (`cluster.worker.stick(key)`) go to that
//! worker while it is a member, whatever their key hashes to ([`Claims`],
//! kept here by the policy). The keys themselves come from the client's
//! address ([`client_key`], at accept or from a PROXY header) or from the
//! first request's cookie or query parameter (`crate::routing::http_key`,
//! read in `crate::routing::header_stage`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

/// Most sticky keys remembered per listener; past that the least recently
/// used is forgotten (its session then goes where its key hashes, which its
/// owner may not be): a bound on memory, not a working-set size.
pub const MAX_CLAIMS: usize = 1 << 20;

use crate::dispatcher::peer::WorkerId;
use crate::routing::policy::{Ask, Pick, Policy};

/// The key of a client: a hash of its IP address (not its port, which
/// changes with every connection).
pub fn client_key(ip: IpAddr) -> u64 {
    // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; it is
    // the same client as a.b.c.d on an IPv4 socket.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    match ip {
        IpAddr::V4(v4) => fnv1a(&v4.octets()),
        IpAddr::V6(v6) => fnv1a(&v6.octets()),
    }
}

/// FNV-1a: stable across processes and Rust versions (unlike std's
/// `DefaultHasher`), so a restarted primary places clients as before.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The score of `slot` for `key` (splitmix64 of both): the highest-scoring
/// slot wins the key.
fn score(key: u64, slot: usize) -> u64 {
    let mut z = key ^ (slot as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug)]
pub struct Sticky {
    stall: Duration,
    /// Who holds each slot; `None` for a slot whose worker left and that no
    /// worker has taken over yet.
    slots: Vec<Option<WorkerId>>,
    /// Where connections without a key start looking: just after the last.
    cursor: usize,
    /// Sticky keys (session ids) members said are theirs.
    claims: Claims,
}

impl Sticky {
    pub fn new(stall: Duration) -> Self {
        Sticky { stall, slots: Vec::new(), cursor: 0, claims: Claims::new(MAX_CLAIMS) }
    }

    /// The occupied slots in the order `key` prefers them.
    fn preference(&self, key: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.slots.len()).filter(|s| self.slots[*s].is_some()).collect();
        order.sort_by_key(|s| std::cmp::Reverse(score(key, *s)));
        order
    }

    /// The slot `key` belongs to while every slot's worker is healthy.
    pub fn home_slot(&self, key: u64) -> Option<usize> {
        self.preference(key).first().copied()
    }

    /// Who gets a connection for a session `worker` said is its own: that
    /// worker, or wait for it, or (`None`: not a member, gone or stalled)
    /// whoever the key hashes to.
    pub fn pick_member(&self, ask: &Ask<'_>, refused_by: &[WorkerId], worker: WorkerId) -> Option<Option<Pick>> {
        let slot = self.slots.iter().position(|s| *s == Some(worker))?;
        if refused_by.contains(&worker) {
            return None;
        }
        let load = (ask.load)(worker);
        if load.has_credit() {
            Some(Some(Pick::at(slot)))
        } else if load.is_stalled(ask.now, self.stall) {
            None
        } else {
            Some(None)
        }
    }

    /// Who should get a connection whose client or session hashes to `key`.
    pub fn pick_keyed(&self, ask: &Ask<'_>, refused_by: &[WorkerId], key: u64) -> Option<Pick> {
        for slot in self.preference(key) {
            let id = self.slots[slot].expect("preference lists occupied slots");
            if refused_by.contains(&id) {
                continue;
            }
            let load = (ask.load)(id);
            if load.has_credit() {
                return Some(Pick::at(slot));
            }
            if !load.is_stalled(ask.now, self.stall) {
                // Its worker will have room in a moment: keep the client there.
                return None;
            }
        }
        None
    }
}

impl Policy for Sticky {
    fn deals_new_connections(&self) -> bool {
        true
    }

    /// Its connections without a key (placed as least connections places
    /// them) are taken back as least connections' are; keyed ones never
    /// (`Peer::take_back_stuck` leaves them).
    fn stuck_after(&self, busy_threshold: std::time::Duration) -> Option<std::time::Duration> {
        Some(busy_threshold)
    }

    fn name(&self) -> &'static str {
        crate::routing::policy::Mode::Sticky.name()
    }

    fn keyed(&self) -> bool {
        true
    }

    fn client_key(&self, ip: IpAddr) -> Option<u64> {
        Some(client_key(ip))
    }

    /// Only a member's claim counts.
    fn claim(&mut self, key: u64, worker: WorkerId) {
        if self.slots.contains(&Some(worker)) {
            self.claims.claim(key, worker);
        }
    }

    fn placed(&mut self, key: u64) {
        self.claims.used(Some(key));
    }

    /// A claimed session goes to its owner, or waits for it; otherwise, or
    /// once the owner cannot take it, where its key hashes.
    fn pick_for(&self, ask: &Ask<'_>, refused_by: &[WorkerId], key: Option<u64>) -> Option<Pick> {
        let Some(key) = key else { return self.pick(ask, refused_by) };
        if let Some(owner) = self.claims.owner(key) {
            if let Some(decided) = self.pick_member(ask, refused_by, owner) {
                return decided;
            }
        }
        self.pick_keyed(ask, refused_by, key)
    }

    fn members(&self) -> Vec<WorkerId> {
        self.slots.iter().flatten().copied().collect()
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    fn all_in(&self, workers: &[WorkerId]) -> bool {
        self.slots.iter().flatten().all(|id| workers.contains(id))
    }

    fn add(&mut self, worker: WorkerId) -> bool {
        if self.slots.contains(&Some(worker)) {
            return false;
        }
        match self.slots.iter().position(Option::is_none) {
            Some(free) => self.slots[free] = Some(worker),
            None => self.slots.push(Some(worker)),
        }
        true
    }

    fn remove(&mut self, worker: WorkerId) -> bool {
        // Its sessions go with it.
        self.claims.forget_worker(worker);
        match self.slots.iter().position(|s| *s == Some(worker)) {
            Some(slot) => {
                self.slots[slot] = None;
                true
            }
            None => false,
        }
    }

    /// Without a key (asked whether accepting is worthwhile, or for a
    /// connection that has none: a unix socket's, or a request without the
    /// cookie or parameter): the next member in turn that has credit and
    /// whose event loop is not busy past the threshold (its loop stamp,
    /// `Load::busy`), as least connections passes such a worker over; if
    /// every one is, the one busy the shortest.
    fn pick(&self, ask: &Ask<'_>, refused_by: &[WorkerId]) -> Option<Pick> {
        let n = self.slots.len();
        let mut busiest_last: Option<(Duration, usize)> = None;
        for slot in (0..n).map(|i| (self.cursor + i) % n) {
            let Some(id) = self.slots[slot] else { continue };
            let load = (ask.load)(id);
            if refused_by.contains(&id) || !load.has_credit() {
                continue;
            }
            if !load.busy {
                return Some(Pick::at(slot));
            }
            if busiest_last.is_none_or(|(busy_for, _)| load.busy_for < busy_for) {
                busiest_last = Some((load.busy_for, slot));
            }
        }
        busiest_last.map(|(_, slot)| Pick::at(slot))
    }

    fn commit(&mut self, pick: Pick, _refused_by: &[WorkerId]) -> WorkerId {
        self.cursor = (pick.idx() + 1) % self.slots.len();
        self.slots[pick.idx()].expect("a pick names an occupied slot")
    }
}

/// Sticky keys (session ids) members said are theirs
/// (`cluster.worker.stick`), at most `cap`: past that the claim used least
/// recently (claimed, or a connection carrying its key placed) is
/// forgotten, never one in use. A worker claiming keys without end thus
/// only ever pushes out the stalest sessions, its own flood first, and
/// another worker's live session stays where it is.
#[derive(Debug)]
pub struct Claims {
    cap: usize,
    /// Key: its owner and the stamp of its last use.
    owners: HashMap<u64, (WorkerId, u64)>,
    /// `(stamp, key)` in order of use; an entry whose stamp is no longer
    /// its key's (used again since, or forgotten) is skipped.
    order: VecDeque<(u64, u64)>,
    clock: u64,
}

impl Claims {
    pub fn new(cap: usize) -> Self {
        Claims { cap: cap.max(1), owners: HashMap::new(), order: VecDeque::new(), clock: 0 }
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    pub fn owner(&self, key: u64) -> Option<WorkerId> {
        self.owners.get(&key).map(|(worker, _)| *worker)
    }

    /// `worker` owns `key` from now on.
    pub fn claim(&mut self, key: u64, worker: WorkerId) {
        if !self.owners.contains_key(&key) {
            while self.owners.len() >= self.cap && self.evict_oldest() {}
        }
        let stamp = self.tick();
        self.owners.insert(key, (worker, stamp));
        self.order.push_back((stamp, key));
        self.compact();
    }

    /// A connection carrying `key` was placed: its claim, if any, is in use.
    pub fn used(&mut self, key: Option<u64>) {
        let Some(key) = key else { return };
        if !self.owners.contains_key(&key) {
            return;
        }
        let stamp = self.tick();
        if let Some(entry) = self.owners.get_mut(&key) {
            entry.1 = stamp;
        }
        self.order.push_back((stamp, key));
        self.compact();
    }

    /// A worker that leaves takes its sessions with it.
    pub fn forget_worker(&mut self, worker: WorkerId) {
        self.owners.retain(|_, (owner, _)| *owner != worker);
        self.compact();
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Forgets the claim used least recently; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((stamp, key)) = self.order.pop_front() {
            if self.owners.get(&key).is_some_and(|(_, s)| *s == stamp) {
                self.owners.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops the skipped entries of `order` once they outnumber the live
    /// ones: amortized, each use costs O(log n).
    fn compact(&mut self) {
        if self.order.len() <= 2 * self.owners.len() + 1024 {
            return;
        }
        let mut live: Vec<(u64, u64)> = self.owners.iter().map(|(key, (_, stamp))| (*stamp, *key)).collect();
        live.sort_unstable();
        self.order = live.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::policy::Load;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const STALL: Duration = Duration::from_millis(50);

    fn sticky(n: u32) -> Sticky {
        let mut p = Sticky::new(STALL);
        for id in 1..=n {
            assert!(p.add(id));
        }
        p
    }

    fn keys(n: u32) -> Vec<u64> {
        (0..n).map(|i| client_key(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 + i)))).collect()
    }

    /// Who gets each key, all members having credit unless `loads` says.
    fn place(p: &mut Sticky, keys: &[u64], loads: &HashMap<WorkerId, Load>, now: Instant) -> Vec<WorkerId> {
        let load = |id: WorkerId| loads.get(&id).copied().unwrap_or(Load::free(8));
        let ask = Ask { load: &load, now };
        keys.iter()
            .map(|k| match p.pick_keyed(&ask, &[], *k) {
                Some(pick) => p.commit(pick, &[]),
                None => 0,
            })
            .collect()
    }

    #[test]
    fn the_same_client_always_goes_to_the_same_worker_and_clients_spread() {
        let now = Instant::now();
        let mut p = sticky(4);
        let ks = keys(400);
        let first = place(&mut p, &ks, &HashMap::new(), now);
        assert_eq!(place(&mut p, &ks, &HashMap::new(), now), first);
        for id in 1..=4 {
            let share = first.iter().filter(|w| **w == id).count();
            assert!((60..=140).contains(&share), "worker {id} got {share} of 400 clients");
        }
    }

    #[test]
    fn a_departure_moves_only_its_own_clients_and_its_replacement_gets_them_back() {
        let now = Instant::now();
        let mut p = sticky(4);
        let ks = keys(400);
        let before = place(&mut p, &ks, &HashMap::new(), now);
        assert!(p.remove(3));
        let during = place(&mut p, &ks, &HashMap::new(), now);
        for (b, d) in before.iter().zip(&during) {
            if *b == 3 {
                assert_ne!(*d, 3);
            } else {
                assert_eq!(b, d, "a client of a surviving worker moved");
            }
        }
        // Worker 9 replaces 3 and takes over its slot, and so its clients.
        assert!(p.add(9));
        let after = place(&mut p, &ks, &HashMap::new(), now);
        let expected: Vec<WorkerId> = before.iter().map(|w| if *w == 3 { 9 } else { *w }).collect();
        assert_eq!(after, expected);
        assert_eq!(p.members(), vec![1, 2, 9, 4]);
    }

    #[test]
    fn a_briefly_full_home_is_waited_for_a_stalled_or_refusing_one_is_not() {
        let t0 = Instant::now();
        let mut p = sticky(3);
        let key = keys(1)[0];
        let home = place(&mut p, &[key], &HashMap::new(), t0)[0];
        // (home's load, now, refused by home) -> goes home, waits (0), or elsewhere (-1)
        let cases: &[(Load, Duration, bool, i64)] = &[
            (Load::free(1), Duration::ZERO, false, home as i64),
            (Load::full_since(t0), Duration::from_millis(49), false, 0),
            (Load::full_since(t0), STALL, false, -1),
            (Load::gone(), Duration::ZERO, false, -1),
            (Load::free(8), Duration::ZERO, true, -1),
        ];
        for (load, now, refused, expected) in cases {
            let loads = HashMap::from([(home, *load)]);
            let f = |id: WorkerId| loads.get(&id).copied().unwrap_or(Load::free(8));
            let ask = Ask { load: &f, now: t0 + *now };
            let refused_by: Vec<WorkerId> = if *refused { vec![home] } else { vec![] };
            let got = p.pick_keyed(&ask, &refused_by, key).map(|pick| p.commit(pick, &refused_by));
            match expected {
                0 => assert_eq!(got, None, "{load:?} at {now:?}"),
                -1 => assert!(got.is_some_and(|w| w != home), "{load:?} at {now:?}: {got:?}"),
                w => assert_eq!(got, Some(*w as WorkerId)),
            }
        }
    }

    #[test]
    fn membership_by_slots() {
        let mut p = sticky(2);
        assert!(!p.add(2));
        assert!(p.keyed() && p.deals_new_connections());
        assert_eq!(p.name(), "sticky");
        assert!(p.remove(1));
        assert!(!p.remove(1));
        assert!(!p.is_empty());
        assert!(p.all_in(&[2]));
        assert!(p.remove(2));
        assert!(p.is_empty());
        let load = |_: WorkerId| Load::free(8);
        let ask = Ask { load: &load, now: Instant::now() };
        assert_eq!(p.pick_keyed(&ask, &[], 1), None);
        assert_eq!(p.pick(&ask, &[]), None);
        // The first to come back takes the first slot.
        assert!(p.add(5));
        assert_eq!(p.home_slot(12345), Some(0));
    }

    #[test]
    fn connections_without_a_key_go_in_turn_and_a_claimed_session_to_its_owner() {
        let now = Instant::now();
        let mut p = sticky(3);
        let load = |_: WorkerId| Load::free(8);
        let ask = Ask { load: &load, now };
        let got: Vec<WorkerId> = (0..4).map(|_| {
            let pick = p.pick(&ask, &[]).unwrap();
            p.commit(pick, &[])
        }).collect();
        assert_eq!(got, vec![1, 2, 3, 1]);
        // (owner's load, refused by it) -> its pick, wait, or hash instead
        let t0 = now;
        let cases: &[(Load, bool, Option<Option<WorkerId>>)] = &[
            (Load::free(1), false, Some(Some(2))),
            (Load::full_since(t0), false, Some(None)),
            (Load::full_since(t0 - STALL), false, None),
            (Load::gone(), false, None),
            (Load::free(8), true, None),
        ];
        for (owner, refused, expected) in cases {
            let f = |id: WorkerId| if id == 2 { *owner } else { Load::free(8) };
            let ask = Ask { load: &f, now };
            let refused_by: Vec<WorkerId> = if *refused { vec![2] } else { vec![] };
            let got = p.pick_member(&ask, &refused_by, 2).map(|o| o.map(|pick| p.commit(pick, &refused_by)));
            assert_eq!(got, *expected, "{owner:?}, refused {refused}");
        }
        assert_eq!(p.pick_member(&ask, &[], 9), None, "not a member");
    }

    #[test]
    fn the_policy_keeps_members_claims_and_forgets_them_with_their_worker() {
        let now = Instant::now();
        let mut p = sticky(3);
        let load = |_: WorkerId| Load::free(8);
        let ask = Ask { load: &load, now };
        let key = keys(1)[0];
        let home = p.pick_for(&ask, &[], Some(key)).map(|pick| p.commit(pick, &[])).unwrap();
        let owner = if home == 1 { 2 } else { 1 };
        p.claim(key, 9); // not a member: ignored
        assert_eq!(p.pick_for(&ask, &[], Some(key)).map(|pick| p.commit(pick, &[])), Some(home));
        p.claim(key, owner);
        assert_eq!(p.pick_for(&ask, &[], Some(key)).map(|pick| p.commit(pick, &[])), Some(owner), "to its owner");
        assert!(p.remove(owner));
        assert_eq!(p.claims.owner(key), None, "its sessions went with it");
    }

    #[test]
    fn an_ipv4_client_is_the_same_key_on_a_dual_stack_socket() {
        let v4: IpAddr = "127.0.0.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.7".parse().unwrap();
        assert_eq!(client_key(v4), client_key(mapped));
        assert_ne!(client_key(v4), client_key("127.0.0.8".parse().unwrap()));
    }
    #[test]
    fn claims_past_the_cap_forget_the_least_recently_used() {
        let mut claims = Claims::new(4);
        claims.claim(1, 1);
        claims.claim(2, 2);
        claims.used(Some(1));
        for key in 100..110 {
            claims.claim(key, 3);
            claims.used(Some(1));
            claims.used(Some(2));
        }
        assert_eq!(claims.len(), 4);
        assert_eq!(claims.owner(1), Some(1), "a session in use stays");
        assert_eq!(claims.owner(2), Some(2));
        assert_eq!(claims.owner(100), None, "the flood's oldest went");
        assert_eq!(claims.owner(109), Some(3));
        for _ in 0..10_000 {
            claims.used(Some(1));
        }
        assert!(claims.order.len() <= 2 * claims.len() + 1025, "the use order stays bounded");
        claims.forget_worker(3);
        assert_eq!(claims.len(), 2);
    }

    #[test]
    fn keyless_connections_pass_over_a_busy_loop_like_least_connections() {
        let busy = |ms: u64| Load { busy: true, busy_for: Duration::from_millis(ms), ..Load::free(8) };
        // (each member's load, who gets a connection without a key)
        let cases: &[(&[Load], WorkerId)] = &[
            (&[Load::free(8), Load::free(8)], 1),
            (&[busy(50), Load::free(8)], 2),
            (&[busy(50), busy(5), busy(20)], 2),
            (&[busy(5), Load::free(0)], 1),
        ];
        for (loads, expected) in cases {
            let p = sticky(loads.len() as u32);
            let load = |id: WorkerId| loads[id as usize - 1];
            let ask = Ask { load: &load, now: Instant::now() };
            let got = p.pick_for(&ask, &[], None).map(|pick| p.slots[pick.idx()].unwrap());
            assert_eq!(got, Some(*expected), "{loads:?}");
        }
    }
}
