mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use common::*;
use rcluster_core::channel::wire::{ACCEPTED, REJECTED};
use rcluster_core::{Config, Dispatcher, Emptied, Incoming, Mode};

#[test]
fn round_robin_splits_connections_exactly_evenly() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut workers: Vec<TestWorker> = (1..=3).map(|id| TestWorker::spawn(&d, id)).collect();
    let (_, port) = workers[0].listen(&d, "k", 0, Mode::RoundRobin);
    for w in &workers[1..] {
        assert_eq!(w.listen(&d, "k", 0, Mode::RoundRobin).1, port, "same key, same socket");
    }
    // One connection at a time, each taken before the next, so credit never
    // runs out and the rotation alone decides.
    let mut counts = [0usize; 3];
    for _ in 0..30 {
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let (idx, fds) = loop {
            let got = workers.iter_mut().enumerate().find_map(|(i, w)| match w.recv(20) {
                Some(Incoming::Dispatch { fds, .. }) => Some((i, fds)),
                _ => None,
            });
            if let Some(hit) = got {
                break hit;
            }
        };
        workers[idx].channel.reply(&vec![ACCEPTED; fds.len()]).unwrap();
        // As a worker's JS does a turn later: a worker that never confirms
        // reading what it took lags, and is passed over.
        workers[idx].channel.confirm_read(fds.len() as u32).unwrap();
        counts[idx] += fds.len();
    }
    assert_eq!(counts, [10, 10, 10]);
    // The last reply may still be in the socket when the stats command arrives.
    let settled = (0..200).find_map(|_| {
        let stats = d.stats().unwrap();
        if stats.workers.iter().all(|w| w.in_flight == 0) {
            return Some(stats);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        None
    });
    let stats = settled.expect("replies were processed");
    assert_eq!(stats.listeners[0].accepted, 30);
    assert!(stats.workers.iter().all(|w| w.accepted == 10));
}

#[test]
fn a_worker_that_never_replies_gets_at_most_the_window() {
    let window = 8;
    let (_dispatcher, mut hung, mut healthy, _, port) = two_workers(Config { window, ..Config::default() }, Mode::RoundRobin);

    let _clients = connect_clients(port, 40);
    let served = healthy.take_all(300, ACCEPTED);
    let mut stranded = 0;
    while let Some(Incoming::Dispatch { fds, .. }) = hung.recv(50) {
        stranded += fds.len(); // received, never acknowledged
    }
    // It is dealt its turns until the first of them has waited `ack_lag`
    // unacknowledged, then passed over: at most the window, maybe fewer.
    assert!((1..=window).contains(&stranded), "stranded {stranded}");
    assert_eq!(served.len(), 40 - stranded);
}

#[test]
fn connections_a_dead_worker_never_acknowledged_go_to_another_worker() {
    let (d, mut doomed, mut survivor, _, port) = two_workers(Config::default(), Mode::RoundRobin);

    let _clients = connect_clients(port, 12);
    let mut received_by_doomed = 0;
    while let Some(Incoming::Dispatch { fds, .. }) = doomed.recv(200) {
        received_by_doomed += fds.len(); // dropped unanswered: the worker "dies" holding them
    }
    assert!(received_by_doomed > 0);
    drop(doomed);

    let mut served = survivor.take_all(500, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..12).collect::<BTreeSet<u8>>(), "every client reached the survivor, data intact");
    assert_eq!(d.stats().unwrap().workers.len(), 1, "the dead worker was forgotten");
}

#[test]
fn taken_connections_free_the_window_at_once_yet_unread_ones_outlive_their_taker() {
    let window = 2;
    let (_d, mut doomed, mut survivor, _, port) = two_workers(Config { window, ..Config::default() }, Mode::RoundRobin);

    let _clients = connect_clients(port, 12);
    // Takes every batch at once, as a worker's channel does, but never gets
    // to read them (its JS spins, then it is SIGKILLed).
    let mut held = Vec::new();
    while let Some(Incoming::Dispatch { fds, .. }) = doomed.recv(200) {
        doomed.channel.reply(&vec![ACCEPTED; fds.len()]).unwrap();
        held.extend(fds);
    }
    assert!(held.len() > window, "taking frees the window: it got {} with a window of {window}", held.len());
    drop(held);
    drop(doomed);

    let mut served = survivor.take_all(500, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..12).collect::<BTreeSet<u8>>(), "what the dead worker took unread reached the survivor");
}

#[test]
fn refused_connections_go_to_another_worker() {
    let (_dispatcher, mut refuser, mut taker, _, port) = two_workers(Config::default(), Mode::RoundRobin);
    let _clients = connect_clients(port, 6);
    let mut served = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        refused += refuser.refuse_all(20);
        served.extend(taker.take_all(20, ACCEPTED));
    }
    assert!(refused >= 1);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen.len(), 6);
}

#[test]
fn a_connection_every_worker_refuses_is_offered_again_until_one_takes_it() {
    let (_dispatcher, mut a, mut b, _, port) = two_workers(Config::default(), Mode::RoundRobin);
    let mut client = connect_clients(port, 1).remove(0);
    // Both at maxConnections for a while: the connection keeps being offered,
    // in rounds that wait longer each time, never in a busy loop.
    let mut refusals = 0;
    for _ in 0..3 {
        refusals += a.refuse_all(60) + b.refuse_all(60);
    }
    assert!(refusals >= 2, "offered to both workers, got {refusals} refusals");
    assert!(refusals <= 24, "offers are paced, not looped: {refusals} refusals");
    // Then a slot frees up in one of them.
    let mut served = a.take_all(400, ACCEPTED);
    served.extend(b.take_all(400, ACCEPTED));
    assert_eq!(served.len(), 1, "served exactly once");
    assert_eq!(client_index(&mut served[0]), 0, "the client's bytes are intact");
    served[0].write_all(b"!").unwrap();
    let mut buf = [0u8; 1];
    client.read_exact(&mut buf).unwrap();
}

#[test]
fn a_connection_refused_until_the_queue_timeout_is_closed_not_leaked() {
    let config = Config { queue_timeout: std::time::Duration::from_millis(300), ..Config::default() };
    let (d, mut a, mut b, _, port) = two_workers(config, Mode::RoundRobin);
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    let mut refusals = 0;
    for _ in 0..10 {
        refusals += a.refuse_all(50) + b.refuse_all(50);
    }
    assert!(refusals >= 2);
    let mut buf = [0u8; 1];
    client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    // The workers' copies closed with each refusal; end of file means the
    // primary closed its own too.
    assert_eq!(client.read(&mut buf).unwrap_or(0), 0, "the client sees the connection closed");
    assert_eq!(d.stats().unwrap().listeners[0].expired, 1);
}

#[test]
fn connections_wait_while_no_worker_listens_and_go_to_the_replacement() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let only = TestWorker::spawn(&d, 1);
    let (id, port) = only.listen(&d, "k", 0, Mode::RoundRobin);
    drop(only); // dies without closing its server
    wait_until("the dispatcher saw the worker hang up", || d.stats().unwrap().workers.is_empty());
    let _clients = connect_clients(port, 20);
    let mut replacement = TestWorker::spawn(&d, 2);
    let (again, same_port) = replacement.listen(&d, "k", 0, Mode::RoundRobin);
    assert_eq!((again, same_port), (id, port), "the replacement joins the socket that stayed open");
    let mut served = replacement.take_all(300, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..20).collect::<BTreeSet<u8>>(), "every waiting client is served");
}

#[test]
fn shared_sockets_also_hold_connections_for_the_replacement() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let only = TestWorker::spawn(&d, 1);
    let (id, port) = only.listen(&d, "k", 0, Mode::Shared);
    drop(only);
    wait_until("the dispatcher saw the worker hang up", || d.stats().unwrap().workers.is_empty());
    let _clients = connect_clients(port, 5);
    wait_until("the primary holds the 5 connections", || d.stats().unwrap().listeners[0].pending == 5);
    let mut replacement = TestWorker::spawn(&d, 2);
    assert_eq!(replacement.listen(&d, "k", 0, Mode::Shared), (id, port));
    assert!(matches!(replacement.recv(1000), Some(Incoming::Shared { .. })), "it gets the socket itself");
    let mut served = replacement.take_all(300, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..5).collect::<BTreeSet<u8>>(), "and what waited in the primary, dispatched");
}

#[test]
fn connections_nobody_takes_within_the_queue_timeout_are_closed_and_the_port_stays() {
    let config = Config { queue_timeout: std::time::Duration::from_millis(200), ..Config::default() };
    let d = Dispatcher::start(config).unwrap();
    let only = TestWorker::spawn(&d, 1);
    let (_, port) = only.listen(&d, "k", 0, Mode::RoundRobin);
    drop(only);
    wait_until("the dispatcher saw the worker hang up", || d.stats().unwrap().workers.is_empty());
    let mut clients = connect_clients(port, 3);
    for client in &mut clients {
        let mut buf = [0u8; 1];
        client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(client.read(&mut buf).unwrap_or(0), 0, "closed after the timeout");
    }
    assert_eq!(d.stats().unwrap().listeners[0].expired, 3);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok(), "the port is still held");
}

#[test]
fn a_withdrawn_worker_gets_nothing_new_and_the_last_one_out_closes_the_port() {
    let (d, mut a, mut b, _, port) = two_workers(Config::default(), Mode::RoundRobin);
    d.withdraw(1, Emptied::Close).unwrap();
    let _clients = connect_clients(port, 4);
    assert_eq!(b.take_all(200, ACCEPTED).len(), 4, "every connection goes to the worker still in rotation");
    assert!(a.recv(100).is_none(), "nothing reaches the withdrawn worker");

    d.withdraw(2, Emptied::Close).unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(refused, "the port closes once no worker is left in rotation");
    assert_eq!(d.stats().unwrap().workers.len(), 2, "both workers are still connected");
}

#[test]
fn leave_is_confirmed_and_the_last_leave_frees_the_port() {
    let (_dispatcher, mut a, mut b, id, port) = two_workers(Config::default(), Mode::RoundRobin);

    a.channel.leave(id).unwrap();
    assert!(matches!(a.recv(1000), Some(Incoming::Left { listener }) if listener == id));
    let _clients = connect_clients(port, 5);
    assert_eq!(b.take_all(200, ACCEPTED).len(), 5);
    assert!(a.recv(100).is_none(), "nothing reaches a worker that left");

    b.channel.leave(id).unwrap();
    assert!(matches!(b.recv(1000), Some(Incoming::Left { .. })));
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "port closed");
    assert!(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok(), "port free");
}

#[test]
fn the_same_key_twice_in_a_different_socket_is_eaddrinuse() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let a = TestWorker::spawn(&d, 1);
    let (_, port) = a.listen(&d, "k0", 0, Mode::RoundRobin);
    let err = d
        .listen(rcluster_core::ListenRequest {
            worker: 1,
            key: "k1".into(),
            spec: rcluster_core::ListenSpec {
                addr: rcluster_core::ListenAddr::Tcp { ip: Some(Ipv4Addr::LOCALHOST.into()), port, ipv6_only: false },
                backlog: 0,
            },
            mode: Mode::RoundRobin,
            defer_accept: false,
        })
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EADDRINUSE));
}

#[test]
fn shared_mode_hands_each_worker_the_listening_socket() {
    let (_dispatcher, mut a, mut b, id, port) = two_workers(Config::default(), Mode::Shared);
    for w in [&mut a, &mut b] {
        let Some(Incoming::Shared { listener, fd }) = w.recv(1000) else { panic!("no shared socket") };
        assert_eq!(listener, id);
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        // The worker accepts on it itself; the primary never does.
        rcluster_core::sys::set_nonblocking(fd.as_fd(), false).unwrap();
        let conn = rcluster_core::sys::accept(fd.as_fd()).unwrap();
        assert!(conn.as_raw_fd() >= 0);
    }
}

#[test]
fn a_reply_for_connections_never_sent_marks_the_worker_broken() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut w = TestWorker::spawn(&d, 1);
    w.listen(&d, "k", 0, Mode::RoundRobin);
    w.channel.reply(&[ACCEPTED, REJECTED]).unwrap();
    assert!(w.recv(1000).is_none(), "the primary hung up on the worker");
    for _ in 0..100 {
        if d.stats().unwrap().workers.is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the broken worker was not removed");
}

#[test]
fn a_burst_of_connections_is_split_exactly_evenly() {
    // More connections at once than the two windows hold: the rotation waits
    // for the worker in turn instead of passing over it, so the split is exact.
    let d = Dispatcher::start(Config::default()).unwrap();
    let workers: Vec<TestWorker> = (1..=2).map(|id| TestWorker::spawn(&d, id)).collect();
    let (_, port) = workers[0].listen(&d, "k", 0, Mode::RoundRobin);
    workers[1].listen(&d, "k", 0, Mode::RoundRobin);
    let threads: Vec<_> = workers
        .into_iter()
        .map(|mut w| std::thread::spawn(move || w.take_all(500, ACCEPTED).len()))
        .collect();
    let _clients = connect_clients(port, 51);
    let counts: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 51);
    assert_eq!(counts, [26, 25]);
}

#[test]
fn a_worker_passed_over_while_stalled_is_repaid_so_the_split_stays_exact() {
    let config = Config { stall: std::time::Duration::from_millis(20), ..Config::default() };
    let (_dispatcher, mut slow, mut fast, _, port) = two_workers(config, Mode::RoundRobin);
    let clients = std::thread::spawn(move || {
        // 60 while `slow` is stalled, 60 after it is back.
        let mut held = Vec::new();
        for _ in 0..2 {
            for _ in 0..60 {
                held.extend(connect_clients(port, 1));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        held
    });
    let fast_thread = std::thread::spawn(move || fast.take_all(700, ACCEPTED).len());
    std::thread::sleep(std::time::Duration::from_millis(300)); // stalled: replies to nothing
    let slow_count = slow.take_all(700, ACCEPTED).len();
    let fast_count = fast_thread.join().unwrap();
    drop(clients.join().unwrap());
    assert_eq!(slow_count + fast_count, 120);
    assert_eq!((slow_count, fast_count), (60, 60), "the stalled worker caught up on the turns it missed");
}

#[test]
fn a_worker_withdrawn_for_a_replacement_leaves_its_socket_open_and_holding() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut retiring = TestWorker::spawn(&d, 1);
    let (id, port) = retiring.listen(&d, "k", 0, Mode::RoundRobin);
    d.withdraw(1, Emptied::Hold).unwrap();
    // Its own server closing later is no deliberate close of the last worker.
    retiring.channel.leave(id).unwrap();
    assert!(matches!(retiring.recv(1000), Some(Incoming::Left { .. })));
    let _clients = connect_clients(port, 3);
    wait_until("the primary holds the 3 connections", || d.stats().unwrap().listeners[0].pending == 3);
    assert!(retiring.recv(100).is_none(), "nothing reaches the retiring worker");

    let mut replacement = TestWorker::spawn(&d, 2);
    assert_eq!(replacement.listen(&d, "k", 0, Mode::RoundRobin), (id, port));
    let mut served = replacement.take_all(300, ACCEPTED);
    let seen: BTreeSet<u8> = served.iter_mut().map(client_index).collect();
    assert_eq!(seen, (0..3).collect::<BTreeSet<u8>>());
}

#[test]
fn stats_right_after_remove_worker_never_lists_it() {
    // The primary removes a worker at its 'exit' and an 'exit' listener may
    // call stats() at once; the worker's channel may not have hung up yet
    // (here it stays open), so only the removal itself can take it out.
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut alive = Vec::new();
    for id in 1..=200 {
        alive.push(TestWorker::spawn(&d, id));
        d.remove_worker(id).unwrap();
        let listed: Vec<u32> = d.stats().unwrap().workers.iter().map(|w| w.id).collect();
        assert!(!listed.contains(&id), "worker {id} listed after its removal: {listed:?}");
    }
}
