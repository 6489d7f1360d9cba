//! The message bus through a real dispatcher thread: relaying, broadcast,
//! order, a target that is gone, and a reader that never reads.

mod common;

use common::TestWorker;
use rcluster_core::bus::{AGENT, BROADCAST, PRIMARY, QUEUE_MESSAGES};
use rcluster_core::{Config, Dispatcher, Incoming, WorkerChannel};

fn bus_messages(worker: &mut TestWorker, ms: u64) -> Vec<Incoming> {
    worker.recv_all(ms)
}

#[test]
fn a_message_reaches_its_target_with_the_real_sender_in_order() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    for i in 0..100u32 {
        a.channel.send_bus(2, &i.to_le_bytes()).unwrap();
    }
    assert_eq!(common::numbered_from(1, &bus_messages(&mut b, 300)), (0..100).collect::<Vec<_>>());
    assert!(bus_messages(&mut a, 50).is_empty());
}

#[test]
fn a_broadcast_reaches_every_worker_and_the_agent_but_not_the_primary() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut primary = TestWorker { id: PRIMARY, channel: WorkerChannel::new(d.open_local_channel(PRIMARY).unwrap()).unwrap(), stamp: None, claims: None };
    let mut agent = TestWorker::spawn(&d, AGENT);
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    primary.channel.send_bus(BROADCAST, b"hi").unwrap();
    for w in [&mut agent, &mut a, &mut b] {
        let got = bus_messages(w, 200);
        assert!(matches!(&got[..], [Incoming::Bus { from: PRIMARY, payload, .. }] if payload == b"hi"), "{got:?}");
    }
    assert!(bus_messages(&mut primary, 50).is_empty());
    a.channel.send_bus(PRIMARY, b"up").unwrap();
    assert!(matches!(&bus_messages(&mut primary, 200)[..], [Incoming::Bus { from: 1, payload, .. }] if payload == b"up"));
}

#[test]
fn a_target_that_is_gone_is_reported_at_once() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let b = TestWorker::spawn(&d, 2);
    a.channel.send_bus(9, b"?").unwrap();
    assert!(matches!(&bus_messages(&mut a, 200)[..], [Incoming::PeerGone { peer: 9 }]));
    drop(b);
    assert!(matches!(&bus_messages(&mut a, 300)[..], [Incoming::PeerGone { peer: 2 }]));
}

#[test]
fn a_peer_that_never_reads_costs_messages_to_it_only() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let _stuck = TestWorker::spawn(&d, 2);
    let mut c = TestWorker::spawn(&d, 3);
    let payload = vec![7u8; 100];
    let total = QUEUE_MESSAGES + 5000;
    let mut dropped = 0;
    for i in 0..total {
        a.channel.send_bus(2, &payload).unwrap();
        if i % 512 == 0 {
            // Keep a's own channel drained so the dispatcher never waits on it.
            dropped += bus_messages(&mut a, 0).iter().filter(|m| matches!(m, Incoming::BusDropped { target: 2 })).count();
        }
    }
    common::wait_until("the drops are reported", || {
        dropped += bus_messages(&mut a, 20).iter().filter(|m| matches!(m, Incoming::BusDropped { target: 2 })).count();
        dropped > 0
    });
    // The dispatcher is not stuck: others still get their messages.
    a.channel.send_bus(3, b"still here").unwrap();
    assert!(matches!(&bus_messages(&mut c, 300)[..], [Incoming::Bus { from: 1, .. }]));
}

#[test]
fn with_the_bridge_on_the_primary_hears_other_peers_broadcasts_but_not_its_own() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut primary = TestWorker { id: PRIMARY, channel: WorkerChannel::new(d.open_local_channel(PRIMARY).unwrap()).unwrap(), stamp: None, claims: None };
    let mut a = TestWorker::spawn(&d, 1);
    d.set_bus_bridge(true).unwrap();
    a.channel.send_bus(BROADCAST, b"out").unwrap();
    let got = bus_messages(&mut primary, 200);
    assert!(matches!(&got[..], [Incoming::Bus { from: 1, target: BROADCAST, payload }] if payload == b"out"), "{got:?}");
    primary.channel.send_bus(BROADCAST, b"in").unwrap();
    assert!(matches!(&bus_messages(&mut a, 200)[..], [Incoming::Bus { from: PRIMARY, .. }, Incoming::Bus { from: 1, .. }] | [Incoming::Bus { from: 1, .. }, Incoming::Bus { from: PRIMARY, .. }]));
    assert!(bus_messages(&mut primary, 100).is_empty(), "its own broadcast does not come back");
}
