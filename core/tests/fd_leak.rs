//! Its own test binary: it counts the whole process's descriptors.
mod common;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{sys, Config, Incoming, Mode};

#[test]
fn thousands_of_connections_leak_no_descriptor() {
    let (d, mut a, mut b, _, port) = two_workers(Config::default(), Mode::RoundRobin);
    let baseline = sys::open_fd_count().unwrap();
    for _round in 0..40 {
        let clients = connect_clients(port, 50);
        let mut got = 0;
        while got < 50 {
            for w in [&mut a, &mut b] {
                if let Some(Incoming::Dispatch { fds, .. }) = w.recv(5) {
                    w.channel.reply(&vec![ACCEPTED; fds.len()]).unwrap();
                    w.channel.confirm_read(fds.len() as u32).unwrap();
                    got += fds.len();
                }
            }
        }
        drop(clients);
    }
    // The dispatcher closes its copies when the worker confirms it read them.
    for _ in 0..200 {
        if sys::open_fd_count().unwrap() == baseline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(sys::open_fd_count().unwrap(), baseline);
    let stats = d.stats().unwrap();
    assert_eq!(stats.listeners[0].accepted, 2000);
    assert_eq!(stats.workers.iter().map(|w| w.accepted).sum::<u64>(), 2000);
}
