//! The hang detector (docs/DESIGN.md §10.3): a worker that sent heartbeats and
//! stops is withdrawn by the dispatcher thread itself and reported once.
mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Event, Mode};

#[test]
fn a_silent_worker_is_withdrawn_and_reported_once_one_that_never_beat_is_not_watched() {
    let (tx, events) = mpsc::channel();
    let config = Config { hang_timeout: Some(Duration::from_millis(200)), ..Config::default() };
    let d = Dispatcher::start_with_events(config, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let mut hung = TestWorker::spawn(&d, 1);
    let mut quiet = TestWorker::spawn(&d, 2);
    hung.listen(&d, "k", 0, Mode::RoundRobin);
    let (_, port) = quiet.listen(&d, "k", 0, Mode::RoundRobin);
    let started = Instant::now();
    hung.channel.heartbeat().unwrap();

    match events.recv_timeout(Duration::from_secs(3)) {
        Ok(Event::Hung { worker: 1, silent }) => assert!(silent > Duration::from_millis(200), "{silent:?}"),
        other => panic!("expected Hung for worker 1, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(events.recv_timeout(Duration::from_millis(500)).is_err(), "once, and never for a worker that sent no heartbeat");

    let _clients = connect_clients(port, 6);
    let mut served = quiet.take_all(500, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..6).collect::<BTreeSet<u8>>(), "every new connection went to the other worker");
    assert!(hung.recv(200).is_none(), "nothing more for the hung worker");
}
