//! Its own test binary: it lowers this process's descriptor limit.
mod common;

use std::net::Ipv4Addr;

use common::*;
use rcluster_core::{sys, Config, Dispatcher, ListenAddr, ListenRequest, ListenSpec, Mode};

fn set_fd_limit(limit: libc::rlim_t) {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `rl` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

#[test]
fn a_shared_listen_that_cannot_copy_the_socket_fails_cleanly() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let worker = TestWorker::spawn(&d, 1);
    let request = ListenRequest {
        worker: worker.id,
        key: "k".into(),
        spec: ListenSpec {
            addr: ListenAddr::Tcp { ip: Some(Ipv4Addr::LOCALHOST.into()), port: 0, ipv6_only: false },
            backlog: 0,
        },
        mode: Mode::Shared,
        defer_accept: false,
    };
    // Room for exactly one more descriptor: new fds take the lowest free
    // number, so with the limit just above it the bind gets that number and
    // the copy for the worker finds none.
    let lowest_free = {
        let probe = sys::dup_cloexec(std::os::fd::AsFd::as_fd(&std::io::stdin())).unwrap();
        use std::os::fd::AsRawFd;
        probe.as_raw_fd() as libc::rlim_t
    };
    let mut original = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `original` is a valid rlimit for getrlimit to write.
    unsafe { assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut original), 0) };
    set_fd_limit(lowest_free + 1);
    let failed = d.listen(request.clone());
    set_fd_limit(original.rlim_cur);

    assert_eq!(failed.unwrap_err().errno(), Some(libc::EMFILE));
    let stats = d.stats().unwrap();
    assert!(stats.listeners.is_empty(), "the socket bound for the failed request was closed: {stats:?}");

    // With descriptors back, the same request works.
    let outcome = d.listen(request).unwrap();
    assert_eq!(d.stats().unwrap().listeners[0].members, vec![1]);
    assert!(outcome.created);
}
