//! A worker's window (docs/DESIGN.md §13.4): it grows while the worker
//! acknowledges with a full window, up to `max_window`, and falls back to
//! `window` once the worker stops acknowledging for `stall`.

mod common;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{Config, Dispatcher, Mode};

/// The sizes of the next `n` batches `w` is sent, each acknowledged whole
/// well within `stall` (50 ms), as by a worker whose event loop turns.
fn acknowledged_batches(w: &mut TestWorker, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let batch = next_batch(w);
            w.channel.reply(&vec![ACCEPTED; batch.len()]).unwrap();
            batch.len()
        })
        .collect()
}

/// The next batch `w` is sent: however long the dispatcher takes to send
/// its first connection (a loaded machine can hold its thread off the CPU
/// for tens of milliseconds), then whatever follows within 20 ms of the
/// last, so the batch is acknowledged well within `stall`.
fn next_batch(w: &mut TestWorker) -> Vec<std::os::fd::OwnedFd> {
    let mut batch = match w.recv(5000) {
        Some(rcluster_core::Incoming::Dispatch { fds, .. }) => fds,
        other => panic!("expected a dispatch, got {other:?}"),
    };
    batch.extend(w.dispatched(20));
    batch
}

fn one_worker() -> (Dispatcher, TestWorker, u16) {
    // Unpaced, so that only the window limits what it gets.
    let d = Dispatcher::start(Config { pace_above: None, ..Config::default() }).unwrap();
    let w = TestWorker::spawn(&d, 1);
    let (_, port) = w.listen(&d, "k", 0, Mode::RoundRobin);
    (d, w, port)
}

#[test]
fn a_worker_that_keeps_up_with_a_full_window_gets_a_larger_one_up_to_the_maximum() {
    let Config { window, max_window, .. } = Config::default();
    let (_d, mut w, port) = one_worker();
    let _clients = connect_clients(port, 200);
    let sizes = acknowledged_batches(&mut w, 5);
    let expected: Vec<usize> = (1..=5).map(|n| (n * window).min(max_window)).collect();
    assert_eq!(sizes, expected, "each full window acknowledged: one window more, up to {max_window}");
}

#[test]
fn a_worker_that_stops_acknowledging_falls_back_to_the_first_window() {
    let Config { window, stall, .. } = Config::default();
    let (_d, mut w, port) = one_worker();
    let _clients = connect_clients(port, 200);
    for n in 1..=2 {
        let batch = next_batch(&mut w);
        assert_eq!(batch.len(), n * window);
        w.channel.reply(&vec![ACCEPTED; batch.len()]).unwrap();
    }
    let full = next_batch(&mut w);
    assert_eq!(full.len(), 3 * window);
    // Full, and silent for longer than `stall` (a hung worker): back to
    // the first window, whatever it acknowledges late.
    std::thread::sleep(stall * 3);
    w.channel.reply(&vec![ACCEPTED; full.len()]).unwrap();
    assert_eq!(next_batch(&mut w).len(), window);
}

#[test]
fn a_worker_that_needs_less_gives_the_growth_back() {
    let Config { window, .. } = Config::default();
    let (_d, mut w, port) = one_worker();
    let mut clients = connect_clients(port, 2 * window);
    let first = next_batch(&mut w);
    w.channel.reply(&vec![ACCEPTED; first.len()]).unwrap();
    let second = next_batch(&mut w);
    assert_eq!(second.len(), window, "all that was left");
    // Acknowledged with its grown window (16) three-quarters empty: it
    // shrinks back by one window.
    let mut sizes = Vec::new();
    w.channel.reply(&vec![ACCEPTED; second.len()]).unwrap();
    for _ in 0..3 {
        clients.extend(connect_clients(port, 1));
        let one = next_batch(&mut w);
        assert_eq!(one.len(), 1);
        w.channel.reply(&[ACCEPTED]).unwrap();
    }
    clients.extend(connect_clients(port, 4 * window));
    sizes.push(next_batch(&mut w).len());
    assert_eq!(sizes, vec![window], "needing one at a time, the window is back to {window}");
}

#[test]
fn a_worker_holding_half_the_pacing_threshold_does_not_grow_its_window() {
    let Config { window, .. } = Config::default();
    let d = Dispatcher::start(Config { pace_above: Some(40), ..Config::default() }).unwrap();
    let mut w = TestWorker::spawn(&d, 1);
    let (listener, port) = w.listen(&d, "k", 0, Mode::RoundRobin);
    let _clients = connect_clients(port, 200);
    let sizes = acknowledged_batches(&mut w, 3);
    // 8, 16 (grown), then what is left below the threshold of 40.
    assert_eq!(sizes, vec![window, 2 * window, 40 - 3 * window]);
    // It acknowledged that last batch holding 24 (more than half of 40): its
    // window went back to 8. With 16 closed it holds 24, is not paced, and
    // gets a window of 8, though 16 would fit below the threshold.
    w.channel.report_closed(listener, 16, 0).unwrap();
    w.channel.confirm_read(40).unwrap();
    assert_eq!(next_batch(&mut w).len(), window);
}
