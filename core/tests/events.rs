//! Events the dispatcher thread reports to the primary (docs/DESIGN.md §1).
mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Event, Incoming, Mode};

fn with_events(config: Config) -> (Dispatcher, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let d = Dispatcher::start_with_events(config, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    (d, rx)
}

/// Sends one raw datagram on a worker's channel, as a buggy worker might.
/// False if the primary has hung up already.
fn send_junk(w: &TestWorker, bytes: &[u8]) -> bool {
    // SAFETY: the buffer is valid for its length; the fd is the worker's open channel.
    let n = unsafe { libc::send(w.channel.raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    n == bytes.len() as isize
}

#[test]
fn junk_on_a_channel_reports_channel_failed_once_and_its_connections_move_on() {
    let (d, events) = with_events(Config::default());
    let mut doomed = TestWorker::spawn(&d, 1);
    let mut survivor = TestWorker::spawn(&d, 2);
    doomed.listen(&d, "k", 0, Mode::RoundRobin);
    let (_, port) = survivor.listen(&d, "k", 0, Mode::RoundRobin);

    let _clients = connect_clients(port, 12);
    let mut held = 0;
    while let Some(Incoming::Dispatch { fds, .. }) = doomed.recv(200) {
        held += fds.len(); // kept, never acknowledged
    }
    assert!(held > 0);
    assert!(send_junk(&doomed, b"\xffnot a message"));
    // More junk, if the primary has not hung up yet: still one event.
    send_junk(&doomed, b"\xffmore junk");

    let first = events.recv_timeout(Duration::from_secs(2)).expect("an event");
    assert!(
        matches!(&first, Event::ChannelFailed { worker: 1, reason } if !reason.is_empty()),
        "expected ChannelFailed for worker 1, got {first:?}"
    );
    assert!(doomed.recv(1000).is_none(), "the primary hung up on the worker");

    let mut served = survivor.take_all(500, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..12).collect::<BTreeSet<u8>>(), "every client reached the survivor");
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err(), "exactly one event");
}

#[test]
fn acknowledging_more_than_was_sent_is_a_channel_failure() {
    let (d, events) = with_events(Config::default());
    let mut w = TestWorker::spawn(&d, 7);
    w.listen(&d, "k", 0, Mode::RoundRobin);
    w.channel.reply(&[ACCEPTED]).unwrap();
    match events.recv_timeout(Duration::from_secs(2)) {
        Ok(Event::ChannelFailed { worker: 7, .. }) => {}
        other => panic!("expected ChannelFailed for worker 7, got {other:?}"),
    }
}

#[test]
fn a_worker_that_hangs_up_is_no_event() {
    let (d, events) = with_events(Config::default());
    let gone = TestWorker::spawn(&d, 1);
    let mut other = TestWorker::spawn(&d, 2);
    gone.listen(&d, "k", 0, Mode::RoundRobin);
    let (_, port) = other.listen(&d, "k", 0, Mode::RoundRobin);
    drop(gone);
    wait_until("the worker that hung up is forgotten", || d.stats().unwrap().workers.len() == 1);
    // The dispatcher still works, and stayed quiet.
    let _clients = connect_clients(port, 2);
    assert_eq!(other.take_all(300, ACCEPTED).len(), 2);
    drop(d);
    assert!(events.recv().is_err(), "no event, and the sink was dropped with the dispatcher");
}

#[test]
fn a_worker_that_floods_leave_without_reading_the_replies_is_a_channel_failure() {
    use rcluster_core::channel::wire::ToPrimary;
    let (d, events) = with_events(Config::default());
    let w = TestWorker::spawn(&d, 3);
    let (listener, _) = w.listen(&d, "k", 0, Mode::RoundRobin);
    let mut leave = Vec::new();
    ToPrimary::Leave { listener }.encode(&mut leave);
    // Never reading a LEFT: without a bound, the primary would queue them all.
    let mut sent = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if send_junk(&w, &leave) {
            sent += 1;
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            std::thread::sleep(Duration::from_millis(1)); // the primary reads on
        } else {
            break; // it hung up
        }
    }
    assert!(sent > rcluster_core::dispatcher::peer::MAX_QUEUED_CONTROL, "the primary hung up after {sent} LEAVEs");
    match events.recv_timeout(Duration::from_secs(2)) {
        Ok(Event::ChannelFailed { worker: 3, reason }) => assert!(reason.contains("LEAVE"), "{reason}"),
        other => panic!("expected ChannelFailed for worker 3, got {other:?}"),
    }
}

#[test]
fn a_listen_fds_descriptor_skipped_at_adoption_is_warned_of_once_the_thread_runs() {
    use std::os::fd::IntoRawFd;
    let file = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: the descriptor is handed over and not used again here.
    let inherited = unsafe { rcluster_core::listen::inherited::Inherited::adopt(&[(file.into_raw_fd(), None)]) };
    let (d, events) = with_events(Config { inherited: std::sync::Arc::new(inherited), ..Config::default() });
    match events.recv_timeout(Duration::from_secs(2)) {
        Ok(Event::Warning { code, message }) => {
            assert_eq!(code, rcluster_core::dispatcher::events::LISTEN_FDS_IGNORED);
            assert!(message.contains("is not a bound socket"), "{message}");
        }
        other => panic!("expected a warning, got {other:?}"),
    }
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err(), "once");
    drop(d);
}
