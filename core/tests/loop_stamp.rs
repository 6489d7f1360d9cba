//! Loop stamps end to end: the dispatcher sends each worker its stamp, and
//! least connections passes over a worker whose stamp says its loop has been
//! busy past the threshold, whatever that stamp holds.
mod common;

use std::time::Duration;

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
