//! Loop stamps end to end: the dispatcher sends each worker its stamp, and
//! least connections passes over a worker whose stamp says its loop has been
//! busy past the threshold, whatever that stamp holds; and a connection
//! left unread with a worker whose loop then stays busy is taken back for
//! another (`rcluster_core::connection_claims`).
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{sys, Config, Mode};

const MS: u64 = 1_000_000;

/// Two workers under least connections, both holding their stamps.
fn stamped_pair() -> (rcluster_core::Dispatcher, TestWorker, TestWorker, u16) {
    let (d, mut a, mut b, _, port) = two_workers(Config::default(), Mode::LeastConnections);
    // The stamp is the first thing on each channel.
    assert!(a.recv(50).is_none() && b.recv(50).is_none());
    assert!(a.stamp.is_some() && b.stamp.is_some(), "each worker got its stamp");
    (d, a, b, port)
}

#[test]
fn a_worker_busy_past_the_threshold_gets_nothing_while_the_other_can_take_it() {
    let (d, a, mut b, port) = stamped_pair();
    a.stamp.as_ref().unwrap().busy(sys::monotonic_ns() - 50 * MS);
    b.stamp.as_ref().unwrap().idle(sys::monotonic_ns());
    let stats = d.stats().unwrap();
    let reading = stats.workers.iter().find(|w| w.id == 1).unwrap().loop_reading.unwrap();
    assert!(reading.busy && reading.busy_for() >= Duration::from_millis(50), "{reading:?}");
    let _clients = connect_clients(port, 6);
    assert_eq!(b.take_all(300, ACCEPTED).len(), 6, "all six to the idle worker");
    let mut a = a;
    assert!(a.dispatched(100).is_empty());
}

#[test]
fn whatever_a_worker_writes_in_its_stamp_every_connection_is_still_dealt() {
    let (d, mut a, mut b, port) = stamped_pair();
    let now = sys::monotonic_ns();
    // Times from the start of the clock to far in the future, as a worker
    // that lies could stamp them.
    for at in [u64::MAX, 1, 2, 0, now, now + 1_000_000 * MS, 0x5555_5555_5555_5555] {
        let (wa, wb) = (a.stamp.as_ref().unwrap(), b.stamp.as_ref().unwrap());
        wa.busy(at);
        wb.idle(at >> 1);
        let _clients = connect_clients(port, 4);
        let got = a.take_all(150, ACCEPTED).len() + b.take_all(150, ACCEPTED).len();
        assert_eq!(got, 4, "stamped at {at:#x}");
        assert_eq!(d.stats().unwrap().workers.len(), 2);
    }
}

/// Worker A is dealt a client's connection, then its loop blocks before it
/// reads its channel. Returns the dispatcher, both workers and the client.
fn dealt_then_blocked(mode: Mode) -> (rcluster_core::Dispatcher, TestWorker, TestWorker, std::net::TcpStream) {
    let (d, mut a, mut b, _, port) = two_workers(Config::default(), mode);
    assert!(a.recv(50).is_none() && b.recv(50).is_none());
    // B busy, A idle: the connection goes to A (round-robin: A's turn first).
    b.stamp.as_ref().unwrap().busy(sys::monotonic_ns() - 50 * MS);
    a.stamp.as_ref().unwrap().idle(sys::monotonic_ns());
    let mut client = connect_clients(port, 1).pop().unwrap();
    // Dealt: wait until it sits in A's channel, unread.
    let deadline = Instant::now() + Duration::from_secs(2);
    while d.stats().unwrap().workers.iter().find(|w| w.id == 1).unwrap().in_flight == 0 {
        assert!(Instant::now() < deadline, "never dealt to A");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A's loop blocks now (a long handler began); B's waits for I/O.
    a.stamp.as_ref().unwrap().busy(sys::monotonic_ns());
    b.stamp.as_ref().unwrap().idle(sys::monotonic_ns());
    client.write_all(b"ping").unwrap();
    (d, a, b, client)
}

#[test]
fn a_connection_left_with_a_blocked_worker_is_taken_back_and_served_by_another() {
    let (d, mut a, mut b, mut client) = dealt_then_blocked(Mode::LeastConnections);
    // B gets it within a few ms, though A never read its channel.
    let started = Instant::now();
    let (mut taken, revoked) = b.claim_all(300);
    assert_eq!((taken.len(), revoked), (1, 0), "B took it");
    assert!(started.elapsed() < Duration::from_millis(300 + 100));
    assert_eq!(client_index(&mut taken[0]), 0, "B reads the stream from its first byte");
    let mut buf = [0u8; 4];
    taken[0].read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    taken[0].write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    // A's loop turns at last: it finds the connection taken back, refuses
    // it without reading, and nothing is dealt twice.
    a.stamp.as_ref().unwrap().idle(sys::monotonic_ns());
    let (mine, revoked) = a.claim_all(200);
    assert_eq!((mine.len(), revoked), (0, 1));
    assert!(b.claim_all(200).0.is_empty(), "not dealt again after A's refusal");
    let stats = d.stats().unwrap();
    assert_eq!(stats.acks.taken_back, 1);
    assert_eq!(stats.acks.refused, 0, "A's refusal of it is not counted as one");
    for w in &stats.workers {
        assert_eq!(w.in_flight, 0, "worker {}: nothing left unacknowledged", w.id);
    }
}

#[test]
fn round_robin_takes_back_only_after_a_long_busy_loop() {
    let (d, mut a, mut b, _client) = dealt_then_blocked(Mode::RoundRobin);
    let blocked = Instant::now();
    // A scheduler's delay (a few ms) is not a blocked loop for round-robin:
    // nothing is taken back before 10 ms (judged only when this thread
    // itself was not held up past that).
    std::thread::sleep(Duration::from_millis(4));
    let early = d.stats().unwrap().acks.taken_back;
    if blocked.elapsed() < Duration::from_millis(9) {
        assert_eq!(early, 0);
    }
    let (taken, _) = b.claim_all(300);
    assert_eq!(taken.len(), 1, "taken back once A was busy for 10 ms");
    assert_eq!(d.stats().unwrap().acks.taken_back, 1);
    let (mine, revoked) = a.claim_all(100);
    assert_eq!((mine.len(), revoked), (0, 1));
}

#[test]
fn a_worker_that_claimed_first_keeps_its_connection() {
    let (d, mut a, mut b, _client) = dealt_then_blocked(Mode::LeastConnections);
    // A claims as it reads, before the dispatcher's 1 ms is up.
    let (mine, revoked) = a.claim_all(100);
    assert_eq!((mine.len(), revoked), (1, 0));
    std::thread::sleep(Duration::from_millis(20));
    assert!(b.claim_all(100).0.is_empty(), "nothing taken back");
    assert_eq!(d.stats().unwrap().acks.taken_back, 0);
}

#[test]
fn a_worker_that_accepts_what_was_taken_back_from_it_is_not_failed_for_its_reports() {
    // As a worker that wrote over its own claims would: it accepts the
    // connection taken back from it, and confirms reading it.
    let (d, mut a, mut b, _client) = dealt_then_blocked(Mode::LeastConnections);
    let (taken, _) = b.claim_all(300);
    assert_eq!(taken.len(), 1, "B took it");
    let fds = loop {
        match a.recv(500) {
            Some(rcluster_core::Incoming::Dispatch { fds, .. }) => break fds,
            Some(_) => continue,
            None => panic!("A was never sent it"),
        }
    };
    a.channel.reply(&vec![ACCEPTED; fds.len()]).unwrap();
    a.channel.confirm_read(fds.len() as u32).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stats = d.stats().unwrap();
    assert_eq!(stats.workers.len(), 2, "A's channel is still up");
    assert_eq!(stats.acks.taken_back, 1);
}
