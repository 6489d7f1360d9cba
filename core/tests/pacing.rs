//! Pacing (docs/DESIGN.md §13): a worker holding `pace_above` open
//! connections gets the next one only once it has confirmed reading the last
//! ones; while a worker is paced and none can take one, the dispatcher holds
//! new connections and gives out the newest first.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Mode};

/// Acknowledges `fds` as taken, and confirms them read if `read`.
fn take(w: &mut TestWorker, fds: &[OwnedFd], read: bool) {
    w.channel.reply(&vec![ACCEPTED; fds.len()]).unwrap();
    if read {
        w.channel.confirm_read(u32::try_from(fds.len()).unwrap()).unwrap();
    }
}

fn one_worker(pace_above: Option<u64>) -> (Dispatcher, TestWorker, u32, u16) {
    let d = Dispatcher::start(Config { pace_above, ..Config::default() }).unwrap();
    let w = TestWorker::spawn(&d, 1);
    let (listener, port) = w.listen(&d, "k", 0, Mode::RoundRobin);
    (d, w, listener, port)
}

/// The first byte a client reads: which connection of `clients` the server
/// wrote to (tests write each accepted connection's index).
fn answered(clients: &mut [TcpStream]) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        if c.read(&mut b).is_ok_and(|n| n == 1) {
            out.push(i);
        }
    }
    out
}

#[test]
fn a_worker_holding_the_threshold_gets_one_connection_per_confirmed_turn() {
    let window = Config::default().window;
    assert!(window > 4);
    let (_d, mut w, _listener, port) = one_worker(Some(4));
    let _clients = connect_clients(port, window + 4);

    // Up to the threshold (4, less than the window) at once, not beyond.
    let first = w.dispatched(200);
    assert_eq!(first.len(), 4, "a worker is given up to the threshold at once, however large its window");
    take(&mut w, &first, false);
    // It holds 4 open now: nothing until it confirms reading them.
    assert!(w.dispatched(200).is_empty(), "paced: nothing while what it took is unconfirmed");
    w.channel.confirm_read(4).unwrap();
    for n in 0..3 {
        let next = w.dispatched(200);
        assert_eq!(next.len(), 1, "one connection per confirmation ({n})");
        take(&mut w, &next, false);
        assert!(w.dispatched(100).is_empty(), "the next only after the next confirmation ({n})");
        w.channel.confirm_read(1).unwrap();
    }
}

#[test]
fn a_worker_whose_connections_closed_is_no_longer_paced() {
    let window = Config::default().window;
    assert!(window > 4);
    let (_d, mut w, listener, port) = one_worker(Some(4));
    let _clients = connect_clients(port, 3 * window);

    let first = w.dispatched(200);
    assert_eq!(first.len(), 4);
    take(&mut w, &first, false);
    assert!(w.dispatched(200).is_empty(), "paced");
    // All of them closed: back under the threshold, as many at once as
    // the threshold leaves room for, unconfirmed reads or not.
    w.channel.report_closed(listener, 4, 0).unwrap();
    assert_eq!(w.dispatched(200).len(), 4, "fewer open than the threshold: up to it at once again");
}

#[test]
fn without_pacing_a_busy_worker_keeps_the_whole_window() {
    let window = Config::default().window;
    let (_d, mut w, _listener, port) = one_worker(None);
    let _clients = connect_clients(port, 3 * window);

    let first = w.dispatched(200);
    assert_eq!(first.len(), window);
    take(&mut w, &first, false);
    assert!(w.dispatched(200).len() >= window, "acknowledged: the whole window again, however many it holds");
}

#[test]
fn while_every_worker_is_paced_the_newest_connection_is_served_first() {
    let (_d, mut w, _listener, port) = one_worker(Some(1));
    let mut clients = connect_clients(port, 1);
    let first = w.dispatched(200);
    assert_eq!(first.len(), 1);
    take(&mut w, &first, false);
    // Paced, with its one connection unconfirmed: the next ones are held
    // by the dispatcher (not left in the kernel's queue), newest first.
    for _ in 0..4 {
        clients.extend(connect_clients(port, 1));
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(w.dispatched(200).is_empty(), "nothing while it has not confirmed reading");
    w.channel.confirm_read(1).unwrap();
    let next = w.dispatched(200);
    assert_eq!(next.len(), 1);
    stream(next.into_iter().next().unwrap()).write_all(b"x").unwrap();
    assert_eq!(answered(&mut clients[1..]), vec![3], "the newest held connection goes first");
}
