//! Several dispatcher threads (docs/DESIGN.md §16), through real threads,
//! channels and loopback sockets: two workers on two threads share one
//! listening socket; what a dead worker's thread held is dealt by the other
//! thread; the bus crosses threads; the port closes with its last member.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::{client_index, connect_clients, TestWorker};
use rcluster_core::bus::{BROADCAST, PRIMARY};
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Emptied, Incoming, Mode, WorkerChannel};

/// Two threads, and 2 CPUs: each takes one worker.
fn two_threads() -> Config {
    Config { threads: Some(2), cpus: Some(2), ..Config::default() }
}

fn two_workers_two_threads(mode: Mode) -> (Dispatcher, TestWorker, TestWorker, u32, u16) {
    let d = Dispatcher::start(two_threads()).unwrap();
    assert_eq!(d.threads(), 2);
    let a = TestWorker::spawn(&d, 1);
    let b = TestWorker::spawn(&d, 2);
    let (id, port) = a.listen(&d, "k", 0, mode);
    assert_eq!(b.listen(&d, "k", 0, mode), (id, port), "one key, one socket, whichever thread binds it");
    (d, a, b, id, port)
}

/// Takes connections on both workers at once until `n` arrived or 5 s pass.
fn take_on_both(a: &mut TestWorker, b: &mut TestWorker, n: usize) -> (Vec<std::net::TcpStream>, Vec<std::net::TcpStream>) {
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_a.len() + on_b.len() < n && Instant::now() < deadline {
        on_a.extend(a.take_all(20, ACCEPTED));
        on_b.extend(b.take_all(20, ACCEPTED));
    }
    (on_a, on_b)
}

#[test]
fn the_threads_deal_one_socket_to_workers_of_both() {
    let (d, mut a, mut b, id, port) = two_workers_two_threads(Mode::RoundRobin);
    let n = 60;
    let clients = connect_clients(port, n);
    let (mut on_a, mut on_b) = take_on_both(&mut a, &mut b, n);
    assert_eq!(on_a.len() + on_b.len(), n, "every connection reached a worker");
    assert!(!on_a.is_empty() && !on_b.is_empty(), "both threads dealt: {} and {}", on_a.len(), on_b.len());
    let mut seen: BTreeSet<u8> = on_a.iter_mut().map(client_index).collect();
    seen.extend(on_b.iter_mut().map(client_index));
    assert_eq!(seen.len(), n, "each client exactly once");
    let stats = d.stats().unwrap();
    let listener = stats.listeners.iter().find(|l| l.id == id).expect("one listener");
    assert_eq!(stats.listeners.len(), 1, "one listener, not one per thread");
    assert_eq!(listener.members, vec![1, 2]);
    assert_eq!(listener.accepted, n as u64);
    assert_eq!(stats.workers.iter().map(|w| w.id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(stats.acks.count, n as u64, "acknowledgements summed over the threads");
    drop(clients);
}

#[test]
fn what_a_dead_workers_thread_held_is_dealt_by_the_other() {
    let (d, mut a, b, _id, port) = two_workers_two_threads(Mode::RoundRobin);
    // Worker 2 takes nothing; its thread deals it a window, then holds.
    let n = 40;
    let clients = connect_clients(port, n);
    let mut on_a = a.take_all(200, ACCEPTED);
    assert!(on_a.len() < n, "worker 2's thread took some: {}", on_a.len());
    // It dies unanswering: what its thread sent it and held goes to worker 1's.
    drop(b);
    d.remove_worker(2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_a.len() < n && Instant::now() < deadline {
        on_a.extend(a.take_all(50, ACCEPTED));
    }
    let seen: BTreeSet<u8> = on_a.iter_mut().map(client_index).collect();
    assert_eq!(seen.len(), n, "no connection lost with the worker or its thread");
    drop(clients);
}

#[test]
fn connections_wait_for_a_replacement_on_either_thread() {
    let (d, a, b, _id, port) = two_workers_two_threads(Mode::RoundRobin);
    drop(a);
    d.remove_worker(1).unwrap();
    drop(b);
    d.remove_worker(2).unwrap();
    // No worker anywhere: a thread holds them.
    let clients = connect_clients(port, 10);
    std::thread::sleep(Duration::from_millis(100));
    // The replacement lands on either thread; it gets them all.
    let mut c = TestWorker::spawn(&d, 3);
    c.listen(&d, "k", port, Mode::RoundRobin);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 10 && Instant::now() < deadline {
        got.extend(c.take_all(50, ACCEPTED));
    }
    let seen: BTreeSet<u8> = got.iter_mut().map(client_index).collect();
    assert_eq!(seen.len(), 10);
    drop(clients);
}

#[test]
fn the_port_stays_open_until_the_last_thread_lets_it_go() {
    let (d, mut a, b, _id, port) = two_workers_two_threads(Mode::RoundRobin);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    d.withdraw(2, Emptied::Close).unwrap();
    let _ = d.stats().unwrap(); // the withdrawal ran
    // Still listening: worker 1's thread holds the socket.
    assert!(TcpListener::bind(addr).is_err(), "the port is still in use");
    let clients = connect_clients(port, 5);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 5 && Instant::now() < deadline {
        got.extend(a.take_all(50, ACCEPTED));
    }
    assert_eq!(got.len(), 5, "the other thread's worker serves them all");
    drop((clients, got));
    d.withdraw(1, Emptied::Close).unwrap();
    let _ = d.stats().unwrap();
    assert!(TcpListener::bind(addr).is_ok(), "closed with its last member");
    drop(b);
}

fn bus(worker: &mut TestWorker, ms: u64) -> Vec<Incoming> {
    worker.recv_all(ms)
}

#[test]
fn the_bus_crosses_threads_in_order() {
    let d = Dispatcher::start(two_threads()).unwrap();
    let mut primary =
        TestWorker { id: PRIMARY, channel: WorkerChannel::new(d.open_local_channel(PRIMARY).unwrap()).unwrap(), stamp: None, claims: None };
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    for i in 0..100u32 {
        a.channel.send_bus(2, &i.to_le_bytes()).unwrap();
    }
    assert_eq!(common::numbered_from(1, &bus(&mut b, 300)), (0..100).collect::<Vec<_>>());
    b.channel.send_bus(BROADCAST, b"all").unwrap();
    for w in [&mut a, &mut b] {
        let got = bus(w, 200);
        assert!(matches!(&got[..], [Incoming::Bus { from: 2, payload, .. }] if payload == b"all"), "{got:?}");
    }
    assert!(bus(&mut primary, 50).is_empty(), "not the primary, as with one thread");
    b.channel.send_bus(PRIMARY, b"up").unwrap();
    assert!(matches!(&bus(&mut primary, 200)[..], [Incoming::Bus { from: 2, payload, .. }] if payload == b"up"));
    // Gone, on the other thread: the sender hears it at once.
    drop(b);
    assert!(matches!(&bus(&mut a, 300)[..], [Incoming::PeerGone { peer: 2 }]));
    a.channel.send_bus(2, b"?").unwrap();
    assert!(matches!(&bus(&mut a, 200)[..], [Incoming::PeerGone { peer: 2 }]));
}

#[test]
fn a_connection_every_worker_of_one_thread_refuses_is_offered_on_the_other() {
    // Worker 1 (thread 0) refuses everything, as a server at its
    // maxConnections does; worker 2 (thread 1) takes them.
    let (_d, mut a, mut b, _id, port) = two_workers_two_threads(Mode::RoundRobin);
    let n = 20;
    let clients = connect_clients(port, n);
    let mut on_b = Vec::new();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_b.len() < n && Instant::now() < deadline {
        refused += a.refuse_all(10);
        on_b.extend(b.take_all(10, ACCEPTED));
    }
    let seen: BTreeSet<u8> = on_b.iter_mut().map(client_index).collect();
    assert_eq!(seen.len(), n, "every connection reached the thread whose worker has room ({refused} refusals)");
    drop(clients);
}

const MS: u64 = 1_000_000;

/// Two workers on two threads, each holding its loop stamp.
fn stamped_two_threads(mode: Mode) -> (Dispatcher, TestWorker, TestWorker, u16) {
    let (d, mut a, mut b, _, port) = two_workers_two_threads(mode);
    assert!(a.recv(50).is_none() && b.recv(50).is_none());
    assert!(a.stamp.is_some() && b.stamp.is_some(), "each worker got its stamp");
    (d, a, b, port)
}

#[test]
fn a_thread_whose_worker_is_busy_leaves_new_connections_to_the_other() {
    for mode in [Mode::LeastConnections, Mode::RoundRobin] {
        let (_d, mut a, mut b, port) = stamped_two_threads(mode);
        a.stamp.as_ref().unwrap().busy(rcluster_core::sys::monotonic_ns() - 50 * MS);
        b.stamp.as_ref().unwrap().idle(rcluster_core::sys::monotonic_ns());
        // Let both threads see the stamps at a turn.
        std::thread::sleep(Duration::from_millis(20));
        let _clients = connect_clients(port, 6);
        let on_b = b.take_all(300, ACCEPTED).len();
        let on_a = a.dispatched(100).len();
        assert_eq!(on_b, 6, "{mode:?}: all six served by the thread whose worker is idle");
        match mode {
            // Least connections passes over a busy worker at once.
            Mode::LeastConnections => assert_eq!(on_a, 0),
            // Round-robin deals a busy worker its turn until it lags, as one
            // thread does; that one is taken back for the other thread (B
            // served it) after 10 ms: at most one was sent to A.
            _ => assert!(on_a <= 1, "{on_a} sent to the busy worker"),
        }
    }
}

#[test]
fn a_connection_left_with_a_blocked_worker_is_taken_back_for_the_other_thread() {
    let (d, mut a, mut b, port) = stamped_two_threads(Mode::LeastConnections);
    // B busy, A idle: the client goes to A.
    b.stamp.as_ref().unwrap().busy(rcluster_core::sys::monotonic_ns() - 50 * MS);
    a.stamp.as_ref().unwrap().idle(rcluster_core::sys::monotonic_ns());
    std::thread::sleep(Duration::from_millis(20));
    let _client = connect_clients(port, 1);
    let deadline = Instant::now() + Duration::from_secs(2);
    while d.stats().unwrap().workers.iter().find(|w| w.id == 1).unwrap().in_flight == 0 {
        assert!(Instant::now() < deadline, "never dealt to A");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A's loop blocks before it reads; B's is idle: B's thread gets it.
    a.stamp.as_ref().unwrap().busy(rcluster_core::sys::monotonic_ns());
    b.stamp.as_ref().unwrap().idle(rcluster_core::sys::monotonic_ns());
    let (mut taken, revoked) = b.claim_all(300);
    assert_eq!((taken.len(), revoked), (1, 0), "B took it");
    assert_eq!(client_index(&mut taken[0]), 0);
    a.stamp.as_ref().unwrap().idle(rcluster_core::sys::monotonic_ns());
    let (mine, revoked) = a.claim_all(200);
    assert_eq!((mine.len(), revoked), (0, 1), "A finds it taken back");
    assert_eq!(d.stats().unwrap().acks.taken_back, 1);
}

#[test]
fn at_light_load_the_threads_take_turns() {
    // One connection at a time: without turns, the thread the kernel wakes
    // first (the same one, while it is idle) would take every connection.
    let (_d, mut a, mut b, _id, port) = two_workers_two_threads(Mode::RoundRobin);
    let (mut on_a, mut on_b) = (0, 0);
    for _ in 0..20 {
        let client = connect_clients(port, 1);
        let (x, y) = take_on_both(&mut a, &mut b, 1);
        on_a += x.len();
        on_b += y.len();
        drop((client, x, y));
    }
    assert_eq!(on_a + on_b, 20);
    assert!(on_a >= 7 && on_b >= 7, "turns: {on_a} and {on_b}");
}

#[test]
fn a_flood_to_a_peer_of_another_thread_that_never_reads_costs_only_its_messages() {
    // Workers 1 and 3 on thread 0, 2 (never reading) on thread 1.
    let d = Dispatcher::start(two_threads()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let _stuck = TestWorker::spawn(&d, 2);
    let mut c = TestWorker::spawn(&d, 3);
    let payload = vec![7u8; 60 * 1024];
    // Well past what the target's queue (32 MiB) and the inbox (16 MiB) hold.
    let mut dropped = 0;
    for i in 0..1500 {
        a.channel.send_bus(2, &payload).unwrap();
        if i % 64 == 0 {
            dropped += bus(&mut a, 0).iter().filter(|m| matches!(m, Incoming::BusDropped { target: 2 })).count();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while dropped == 0 && Instant::now() < deadline {
        dropped += bus(&mut a, 20).iter().filter(|m| matches!(m, Incoming::BusDropped { target: 2 })).count();
    }
    assert!(dropped > 0, "the sender hears of the drops, across threads");
    // Both threads still relay: 3 (thread 0) hears 1, and 1 hears 3.
    a.channel.send_bus(3, b"still here").unwrap();
    assert!(matches!(&bus(&mut c, 300)[..], [Incoming::Bus { from: 1, .. }]));
    c.channel.send_bus(1, b"and here").unwrap();
    let got = bus(&mut a, 300);
    assert!(got.iter().any(|m| matches!(m, Incoming::Bus { from: 3, .. })), "{} messages", got.len());
    assert_eq!(d.stats().unwrap().workers.len(), 3);
}
