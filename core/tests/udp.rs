//! UDP through the dispatcher: bound once in the primary, shared with every
//! worker on the key whatever the requested mode, and freed by the last leave.
mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use rcluster_core::{Config, Dispatcher, Error, Incoming, ListenAddr, ListenRequest, ListenSpec, LocalAddr, Mode};

fn udp_spec(ip: IpAddr, port: u16, ipv6_only: bool, reuse_addr: bool) -> ListenSpec {
    ListenSpec { addr: ListenAddr::Udp { ip, port, ipv6_only, reuse_addr }, backlog: 0 }
}

fn listen(d: &Dispatcher, worker: &TestWorker, key: &str, spec: ListenSpec) -> rcluster_core::Result<(u32, SocketAddr)> {
    // RoundRobin on purpose: a datagram socket is shared whatever was asked.
    let outcome = d.listen(ListenRequest { worker: worker.id, key: key.to_string(), spec, mode: Mode::RoundRobin, defer_accept: false })?;
    let LocalAddr::Inet(addr) = outcome.local else { panic!("a UDP socket has an inet address") };
    Ok((outcome.listener, addr))
}

/// The worker's copy of a shared socket, as a blocking UdpSocket with a deadline.
fn shared_socket(worker: &mut TestWorker, listener: u32) -> UdpSocket {
    match worker.recv(2000) {
        Some(Incoming::Shared { listener: got, fd }) => {
            assert_eq!(got, listener);
            let socket = UdpSocket::from(fd);
            socket.set_nonblocking(false).unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            socket
        }
        other => panic!("expected the shared socket, got {other:?}"),
    }
}

fn errno(result: rcluster_core::Result<(u32, SocketAddr)>) -> Option<i32> {
    match result {
        Err(e @ Error::Io { .. }) => e.errno(),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

fn loopback4() -> IpAddr {
    Ipv4Addr::LOCALHOST.into()
}

#[test]
fn one_udp_socket_is_bound_and_every_worker_on_the_key_receives_it() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    let (id, addr) = listen(&d, &a, "udp", udp_spec(loopback4(), 0, false, false)).unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(listen(&d, &b, "udp", udp_spec(loopback4(), 0, false, false)).unwrap(), (id, addr));

    let sa = shared_socket(&mut a, id);
    let sb = shared_socket(&mut b, id);
    assert_eq!(sa.local_addr().unwrap(), addr);
    assert_eq!(sb.local_addr().unwrap(), addr);

    // One socket: a datagram sent to the port can be read from either copy.
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    client.send_to(b"first", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = sa.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"first"[..], client.local_addr().unwrap()));
    client.send_to(b"second", addr).unwrap();
    let (n, _) = sb.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"second");

    // Nothing is ever accepted or dispatched for it.
    let stats = d.stats().unwrap();
    assert_eq!(stats.listeners.len(), 1);
    assert_eq!(stats.listeners[0].members, vec![1, 2]);
    assert_eq!(stats.listeners[0].accepted, 0);
}

#[test]
fn the_port_stays_bound_until_the_last_worker_leaves() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    let (id, addr) = listen(&d, &a, "udp", udp_spec(loopback4(), 0, false, false)).unwrap();
    listen(&d, &b, "udp", udp_spec(loopback4(), 0, false, false)).unwrap();
    // The workers close their copies: only the primary's holds the port now.
    drop(shared_socket(&mut a, id));
    drop(shared_socket(&mut b, id));

    a.channel.leave(id).unwrap();
    assert!(matches!(a.recv(2000), Some(Incoming::Left { listener }) if listener == id));
    let err = UdpSocket::bind(addr).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "one worker is still on the key");

    b.channel.leave(id).unwrap();
    assert!(matches!(b.recv(2000), Some(Incoming::Left { listener }) if listener == id));
    UdpSocket::bind(addr).expect("the last leave closed the primary's socket");
    assert!(d.stats().unwrap().listeners.is_empty());
}

#[test]
fn a_taken_port_is_eaddrinuse_and_nothing_is_left_behind() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let a = TestWorker::spawn(&d, 1);
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let result = listen(&d, &a, "udp", udp_spec(loopback4(), port, false, false));
    assert_eq!(errno(result), Some(libc::EADDRINUSE));
    assert!(d.stats().unwrap().listeners.is_empty());
}

#[test]
fn reuse_addr_lets_two_keys_bind_the_same_port() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let a = TestWorker::spawn(&d, 1);
    let (_, addr) = listen(&d, &a, "reuse-1", udp_spec(loopback4(), 0, false, true)).unwrap();
    let (_, again) = listen(&d, &a, "reuse-2", udp_spec(loopback4(), addr.port(), false, true)).unwrap();
    assert_eq!(again, addr);
    // Without the flag on both sockets, the port is taken.
    let result = listen(&d, &a, "plain", udp_spec(loopback4(), addr.port(), false, false));
    assert_eq!(errno(result), Some(libc::EADDRINUSE));
}

#[test]
fn ipv6_only_is_einval_on_ipv4_and_leaves_ipv4_free_on_ipv6() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let a = TestWorker::spawn(&d, 1);
    // libuv refuses UV_UDP_IPV6ONLY on an IPv4 address the same way.
    assert_eq!(errno(listen(&d, &a, "v4", udp_spec(loopback4(), 0, true, false))), Some(libc::EINVAL));

    let any6: IpAddr = Ipv6Addr::UNSPECIFIED.into();
    let addr = match listen(&d, &a, "v6only", udp_spec(any6, 0, true, false)) {
        Ok((_, addr)) => addr,
        Err(e) if matches!(e.errno(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)) => {
            eprintln!("skipped: no IPv6 here ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    // IPv6 only: the IPv4 side of the port is still free (a dual-stack
    // socket would hold it).
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, addr.port())).expect("an ipv6Only socket leaves IPv4 free");
}

#[test]
fn a_udp_fd_of_the_primary_is_shared_and_stays_open_after_the_last_leave() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let own = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let spec = ListenSpec { addr: ListenAddr::UdpFd { fd: own.as_raw_fd() }, backlog: 0 };
    let (id, addr) = listen(&d, &a, "fd", spec).unwrap();
    assert_eq!(addr, own.local_addr().unwrap());
    let copy = shared_socket(&mut a, id);
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    client.send_to(b"via fd", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = copy.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"via fd");

    drop(copy);
    a.channel.leave(id).unwrap();
    assert!(matches!(a.recv(2000), Some(Incoming::Left { listener }) if listener == id));
    // The primary's own socket was only copied, never closed.
    own.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    client.send_to(b"still", addr).unwrap();
    let (n, _) = own.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still");
}

#[test]
fn an_fd_that_is_not_a_udp_socket_is_einval() {
    let d = Dispatcher::start(Config::default()).unwrap();
    let a = TestWorker::spawn(&d, 1);
    let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (unix_dgram, _peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
    // (A closed fd is left out: another test's thread may reuse its number.)
    for (what, fd) in [("tcp", tcp.as_raw_fd()), ("unix datagram", unix_dgram.as_raw_fd())] {
        let spec = ListenSpec { addr: ListenAddr::UdpFd { fd }, backlog: 0 };
        assert_eq!(errno(listen(&d, &a, what, spec)), Some(libc::EINVAL), "{what}");
    }
    assert!(d.stats().unwrap().listeners.is_empty());
}
