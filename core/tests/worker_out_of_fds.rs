//! Its own test binary: it lowers this process's descriptor limit.
mod common;

use std::os::fd::AsRawFd;

use common::*;
use rcluster_core::channel::wire::ACCEPTED;
use rcluster_core::{sys, Config, Incoming, Mode};

fn fd_limit() -> libc::rlimit {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid rlimit for getrlimit to write.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0) };
    rl
}

fn set_fd_limit(rl: &libc::rlimit) {
    // SAFETY: `rl` is a valid rlimit for setrlimit to read.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, rl), 0) };
}

#[test]
fn a_worker_out_of_fds_refuses_what_it_could_not_receive_and_gets_it_again_later() {
    let (_dispatcher, mut a, mut b, _, port) = two_workers(Config::default(), Mode::RoundRobin);
    // Receiving needs descriptors this process no longer has: the limit is
    // set to the lowest free number, so every new fd fails with EMFILE. (The
    // dispatcher thread shares the limit, so connect and let it accept first.)
    let mut clients = connect_clients(port, 4);
    for _ in 0..200 {
        if _dispatcher.stats().unwrap().workers.iter().map(|w| w.in_flight).sum::<usize>() == 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let original = fd_limit();
    let lowest_free = sys::dup_cloexec(std::os::fd::AsFd::as_fd(&std::io::stdin())).unwrap().as_raw_fd() as libc::rlim_t;
    set_fd_limit(&libc::rlimit { rlim_cur: lowest_free, rlim_max: original.rlim_max });
    let mut lost = 0;
    for w in [&mut a, &mut b] {
        while let Some(msg) = w.recv(100) {
            match msg {
                Incoming::DispatchLost { count, .. } => {
                    lost += count;
                    w.channel.reply(&vec![rcluster_core::channel::wire::REJECTED; count]).unwrap();
                }
                other => panic!("expected lost dispatches, got {other:?}"),
            }
            if lost == 4 {
                break;
            }
        }
    }
    set_fd_limit(&original);
    assert_eq!(lost, 4, "each worker learned how many connections it missed");

    // With descriptors back, the same connections arrive, intact.
    let mut served = a.take_all(500, ACCEPTED);
    served.extend(b.take_all(500, ACCEPTED));
    let mut seen: Vec<u8> = served.iter_mut().map(client_index).collect();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3]);
    drop(clients.drain(..));
}
