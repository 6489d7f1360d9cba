//! Keep-alive hand-back (docs/DESIGN.md §10.4): a retiring worker gives a
//! connection's fd back on its channel, and the dispatcher deals it to
//! another worker as a new connection; the client's next bytes reach it.
mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Emptied, Incoming, Mode};

#[test]
fn a_handed_back_connection_goes_to_another_worker_and_keeps_its_client() {
    let (tx, events) = mpsc::channel();
    let d = Dispatcher::start_with_events(Config::default(), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let mut retiring = TestWorker::spawn(&d, 1);
    let (listener, port) = retiring.listen(&d, "k", 0, Mode::RoundRobin);
    let mut client = connect_clients(port, 1).pop().unwrap();
    let Some(Incoming::Dispatch { mut fds, .. }) = retiring.recv(2000) else { panic!("no dispatch") };
    retiring.channel.reply(&[ACCEPTED]).unwrap();
    let mut conn = stream(fds.pop().unwrap());
    assert_eq!(client_index(&mut conn), 0, "the first request reached the retiring worker");

    let mut next = TestWorker::spawn(&d, 2);
    next.listen(&d, "k", 0, Mode::RoundRobin);
    d.withdraw(1, Emptied::Hold).unwrap();
    retiring.channel.hand_back(listener, conn.as_fd()).unwrap();
    drop(conn); // only the worker's copy: the client sees no close
    client.write_all(&[42]).unwrap();

    let mut moved = next.take_all(500, ACCEPTED);
    assert_eq!(moved.len(), 1, "dealt to the other worker as a new connection");
    assert_eq!(client_index(&mut moved[0]), 42, "the client's next bytes arrive there");
    moved[0].write_all(b"!").unwrap();
    let mut reply = [0u8; 1];
    std::io::Read::read_exact(&mut client, &mut reply).unwrap();
    assert_eq!(&reply, b"!");
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err(), "a hand-back is no channel failure");
    assert!(retiring.recv(200).is_none(), "nothing more for the retiring worker");
}

#[test]
fn fds_from_a_worker_in_any_other_message_still_fail_its_channel() {
    let (tx, events) = mpsc::channel();
    let d = Dispatcher::start_with_events(Config::default(), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let w = TestWorker::spawn(&d, 5);
    w.listen(&d, "k", 0, Mode::RoundRobin);
    // A LEAVE header (kind 5) carrying an fd.
    let leave = [1u8, 5, 0, 0, 1, 0, 0, 0];
    let devnull = std::fs::File::open("/dev/null").unwrap();
    rcluster_core::sys::send_message(w.channel.as_fd(), &leave, &[devnull.as_fd()]).unwrap();
    match events.recv_timeout(Duration::from_secs(2)) {
        Ok(rcluster_core::Event::ChannelFailed { worker: 5, .. }) => {}
        other => panic!("expected ChannelFailed for worker 5, got {other:?}"),
    }
}
