//! Admission (docs/DESIGN.md §13): a worker that acknowledges slowly, whose
//! event loop is saturated, is given one connection at a time; the others
//! wait in the kernel's listen queue until it is fast again.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use common::*;
use rcluster_core::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Incoming, Mode};

/// Every connection dispatched to `w` until `ms` pass with nothing new, unanswered.
fn received(w: &mut TestWorker, ms: u64) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    while let Some(msg) = w.recv(ms) {
        if let Incoming::Dispatch { fds, .. } = msg {
            out.extend(fds);
        }
    }
    out
}

/// Acknowledges `n` connections after `delay`, as a worker whose turn took that long.
fn acknowledge(w: &mut TestWorker, n: usize, delay: Duration) {
    std::thread::sleep(delay);
    w.channel.reply(&vec![ACCEPTED; n]).unwrap();
}

fn one_worker(admission_target: Option<Duration>) -> (Dispatcher, TestWorker, u16) {
    let d = Dispatcher::start(Config { admission_target, ..Config::default() }).unwrap();
    let w = TestWorker::spawn(&d, 1);
    let (_, port) = w.listen(&d, "k", 0, Mode::RoundRobin);
    (d, w, port)
}

#[test]
fn a_worker_that_acknowledges_slowly_gets_one_connection_at_a_time_until_it_is_fast_again() {
    let window = Config::default().window;
    let (_d, mut w, port) = one_worker(Some(Duration::from_millis(50)));
    let _clients = connect_clients(port, 3 * window);

    assert_eq!(received(&mut w, 200).len(), window, "an idle worker gets the whole window");
    acknowledge(&mut w, window, Duration::from_millis(120));
    for _ in 0..2 {
        assert_eq!(received(&mut w, 200).len(), 1, "slow: one at a time, the next only once it is acknowledged");
        acknowledge(&mut w, 1, Duration::from_millis(120));
    }
    // Acknowledged as soon as it arrives.
    let Some(Incoming::Dispatch { fds, .. }) = w.recv(200) else { panic!("one more connection") };
    assert_eq!(fds.len(), 1);
    acknowledge(&mut w, 1, Duration::ZERO);
    assert_eq!(received(&mut w, 200).len(), window, "fast again: the whole window");
}

#[test]
fn without_admission_a_slow_worker_keeps_the_whole_window() {
    let window = Config::default().window;
    let (_d, mut w, port) = one_worker(None);
    let _clients = connect_clients(port, 3 * window);

    assert_eq!(received(&mut w, 200).len(), window);
    acknowledge(&mut w, window, Duration::from_millis(120));
    assert_eq!(received(&mut w, 200).len(), window);
}
