//! `SCHED_REUSEPORT`: each worker accepts from a listening socket of its own,
//! all bound to the same address with `SO_REUSEPORT`, and the kernel spreads
//! new connections over them (as Deno's `serve --parallel`, Bun and nginx do).
//!
//! The primary creates every one of these sockets and keeps a copy, so none
//! closes when its worker dies: its queue of not-yet-accepted connections
//! survives. Each socket is a *slot*. While a slot has no worker (its worker
//! died, or closed its server while others still listen), the primary
//! accepts from it and deals those connections to the workers that are
//! listening, over their channels, until the next worker to listen takes the
//! slot over. So nothing queued on a dying or retiring worker's socket is
//! dropped, without needing the kernel's `tcp_migrate_req`: the socket is
//! never closed while the port is in use. All slots close together when the
//! last worker closes its server, as Node frees a port.
//!
//! For a server whose clients speak first (HTTP, HTTPS, TLS) the sockets get
//! `TCP_DEFER_ACCEPT`, as nginx's `listen ... deferred`: the kernel queues a
//! connection only once its first bytes are in. A worker accepts from its
//! own socket in its JS event loop, and a connection accepted before its
//! request arrives costs that loop a turn for nothing: it must watch the new
//! socket and come back when the request lands. With the request already
//! there, one turn accepts and reads. Under connection churn this halves
//! context switches (docs/DESIGN.md §8). The price is that a connection which
//! never sends reaches the server only after about a second (the kernel then
//! queues it anyway), which no client-speaks-first server can tell apart
//! from a slow client; a server whose protocol has it speak first never gets
//! this (see `defer_accept`).
//!
//! [`ReusePort`] is the policy: it owns the slots, and answers the listener
//! which sockets the primary accepts from ([`Policy::accept_fds`]) and
//! which socket a worker gets ([`Policy::socket_for`]); what the primary
//! accepts it deals in turn ([`Rotation`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::dispatcher::peer::WorkerId;
use crate::listen::BoundSocket;
use crate::routing::policy::{rotation_policy, Ask, Mode, Pick, Policy, Rotation};
use crate::sys::{self, LocalAddr};

/// `SCHED_REUSEPORT`'s policy: members accept from sockets of their own;
/// the primary deals in turn what it accepts from the ones without a worker.
#[derive(Debug)]
pub struct ReusePort {
    rotation: Rotation,
    slots: ReusePortSlots,
}

impl ReusePort {
    /// The policy for `socket`, bound with `SO_REUSEPORT` (`bind_first`):
    /// it becomes the first slot. `defer_accept`: the server's clients speak
    /// first (see the module's comment).
    pub fn new(stall: Duration, socket: &BoundSocket, ipv6_only: bool, backlog: i32, defer_accept: bool) -> io::Result<Self> {
        let LocalAddr::Inet(addr) = socket.local else {
            return Err(io::Error::from_raw_os_error(sys::errno::EINVAL));
        };
        let first = sys::dup_cloexec(socket.fd.as_fd())?;
        let slots = ReusePortSlots::new(first, addr, ipv6_only, backlog, defer_accept)?;
        Ok(ReusePort { rotation: Rotation::new(stall), slots })
    }

    /// The policy of another dispatcher thread for the group `socket` began
    /// (docs/DESIGN.md §16): its slots are its own, bound beside the others
    /// as its workers come, none of them shared with the first thread.
    pub fn joining(stall: Duration, socket: &BoundSocket, ipv6_only: bool, backlog: i32, defer_accept: bool) -> io::Result<Self> {
        let LocalAddr::Inet(addr) = socket.local else {
            return Err(io::Error::from_raw_os_error(sys::errno::EINVAL));
        };
        let slots = ReusePortSlots { addr, ipv6_only, backlog, defer_accept, slots: Vec::new() };
        Ok(ReusePort { rotation: Rotation::new(stall), slots })
    }
}

rotation_policy!(ReusePort, name = Mode::ReusePort.name(), {
    fn deals_new_connections(&self) -> bool {
        false
    }

    /// Only from a socket whose worker left.
    fn primary_accepts(&self) -> bool {
        self.slots.has_orphans()
    }

    /// Its own slot's socket.
    fn socket_for(&mut self, worker: WorkerId, _listening: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        self.slots.assign(worker)
    }

    fn release(&mut self, worker: WorkerId) -> io::Result<()> {
        self.slots.release(worker)
    }

    /// The sockets without a worker (`listening`, the first slot's, is one
    /// of the slots).
    fn accept_fds<'a>(&'a self, _listening: BorrowedFd<'a>, f: &mut dyn FnMut(BorrowedFd<'a>)) {
        for fd in self.slots.orphans() {
            f(fd);
        }
    }

    fn accept(&self, _listening: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        self.slots.accept()
    }

    fn socket_count(&self) -> usize {
        self.slots.len()
    }

    fn defers_accept(&self) -> bool {
        self.slots.defers_accept()
    }
});

#[derive(Debug)]
struct Slot {
    fd: OwnedFd,
    worker: Option<WorkerId>,
}

/// `TCP_DEFER_ACCEPT`'s wait, in seconds, as nginx sets it: how long a
/// connection that sends nothing stays out of the accept queue.
pub const DEFER_ACCEPT_SECONDS: i32 = 1;

#[derive(Debug)]
pub struct ReusePortSlots {
    /// Where every slot's socket is bound (the first one's address, its port
    /// resolved).
    addr: SocketAddr,
    ipv6_only: bool,
    backlog: i32,
    /// Whether every socket has `TCP_DEFER_ACCEPT` (clients speak first).
    defer_accept: bool,
    slots: Vec<Slot>,
}

impl ReusePortSlots {
    /// Slots for the group whose first socket is `first` (bound to `addr`
    /// with `SO_REUSEPORT`); it becomes slot 0. With `defer_accept`, every
    /// socket of the group gets `TCP_DEFER_ACCEPT`.
    pub fn new(first: OwnedFd, addr: SocketAddr, ipv6_only: bool, backlog: i32, defer_accept: bool) -> io::Result<Self> {
        if defer_accept {
            sys::set_defer_accept(first.as_fd(), DEFER_ACCEPT_SECONDS)?;
        }
        Ok(ReusePortSlots { addr, ipv6_only, backlog, defer_accept, slots: vec![Slot { fd: first, worker: None }] })
    }

    /// Whether its sockets hold connections until their first bytes arrive.
    pub fn defers_accept(&self) -> bool {
        self.defer_accept
    }

    /// How many sockets the group has.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Gives `worker` a slot: the first without a worker, or a new socket
    /// bound beside the others. Returns a copy of its socket for the worker.
    pub fn assign(&mut self, worker: WorkerId) -> io::Result<OwnedFd> {
        if let Some(slot) = self.slots.iter().find(|s| s.worker == Some(worker)) {
            return sys::dup_cloexec(slot.fd.as_fd());
        }
        let idx = match self.slots.iter().position(|s| s.worker.is_none()) {
            Some(idx) => idx,
            None => {
                let fd = sys::tcp_listener(self.addr, self.ipv6_only, true, self.backlog)?;
                if self.defer_accept {
                    sys::set_defer_accept(fd.as_fd(), DEFER_ACCEPT_SECONDS)?;
                }
                self.slots.push(Slot { fd, worker: None });
                self.slots.len() - 1
            }
        };
        let copy = sys::dup_cloexec(self.slots[idx].fd.as_fd())?;
        self.slots[idx].worker = Some(worker);
        Ok(copy)
    }

    /// `worker` is gone or closed its server: its socket stays open, and the
    /// primary accepts from it until another worker takes it over. An error
    /// says that socket could not be made non-blocking again.
    pub fn release(&mut self, worker: WorkerId) -> io::Result<()> {
        let mut result = Ok(());
        for slot in self.slots.iter_mut().filter(|s| s.worker == Some(worker)) {
            slot.worker = None;
            // Its worker shared the file description and may have made it
            // blocking; a blocking accept would stall the dispatcher.
            if let Err(e) = sys::set_nonblocking(slot.fd.as_fd(), true) {
                result = Err(e);
            }
        }
        result
    }

    /// The sockets no worker accepts from: the primary does.
    pub fn orphans(&self) -> impl Iterator<Item = BorrowedFd<'_>> + '_ {
        self.slots.iter().filter(|s| s.worker.is_none()).map(|s| s.fd.as_fd())
    }

    pub fn has_orphans(&self) -> bool {
        self.slots.iter().any(|s| s.worker.is_none())
    }

    /// Accepts one connection from any socket without a worker.
    pub fn accept(&self) -> io::Result<OwnedFd> {
        for fd in self.orphans() {
            match sys::accept(fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
        Err(io::Error::from(io::ErrorKind::WouldBlock))
    }
}

/// Whether `err` says this system has no `SO_REUSEPORT`.
pub fn is_unsupported(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(sys::errno::ENOPROTOOPT) | Some(sys::errno::EINVAL) | Some(sys::errno::EOPNOTSUPP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpStream};
    use std::os::fd::AsRawFd;

    fn group_with(defer_accept: bool) -> ReusePortSlots {
        let first = sys::tcp_listener((Ipv4Addr::LOCALHOST, 0).into(), false, true, 16).unwrap();
        let crate::sys::LocalAddr::Inet(addr) = sys::local_addr(first.as_fd()).unwrap() else { panic!() };
        ReusePortSlots::new(first, addr, false, 16, defer_accept).unwrap()
    }

    fn group() -> ReusePortSlots {
        group_with(false)
    }

    #[test]
    fn deferred_accept_is_set_on_every_socket_of_the_group_or_on_none() {
        for defer in [false, true] {
            let mut g = group_with(defer);
            let copies: Vec<OwnedFd> = (1..=3).map(|w| g.assign(w).unwrap()).collect();
            assert_eq!(g.len(), 3);
            for copy in &copies {
                assert!(sys::reuse_port(copy.as_fd()).unwrap());
                let secs = sys::defer_accept(copy.as_fd()).unwrap();
                assert_eq!(secs > 0, defer, "TCP_DEFER_ACCEPT {secs} s with defer_accept {defer}");
            }
        }
    }

    #[test]
    fn a_deferred_socket_queues_a_connection_once_its_first_bytes_are_in() {
        use std::io::Write;
        let g = group_with(true);
        let mut client = TcpStream::connect(g.addr).unwrap();
        // Connected as far as the client can tell, but not yet acceptable.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(g.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let accepted = loop {
            match g.accept() {
                Ok(fd) => break fd,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("never queued: {e}"),
            }
        };
        // The request is there to read at once.
        let mut buf = [0u8; 64];
        let n = sys::recv_bytes(accepted.as_fd(), &mut buf, false).unwrap();
        assert_eq!(&buf[..n as usize], b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn workers_get_slots_and_a_replacement_takes_over_the_first_free_one() {
        let mut g = group();
        assert_eq!(g.orphans().count(), 1);
        let a = g.assign(1).unwrap();
        let b = g.assign(2).unwrap();
        assert_eq!(g.len(), 2, "a second socket bound beside the first");
        assert!(!g.has_orphans());
        assert_eq!(g.assign(1).unwrap().as_raw_fd() >= 0, true, "assigning again gives the same slot");
        assert_eq!(g.len(), 2);
        g.release(1).unwrap();
        assert_eq!(g.orphans().count(), 1);
        let _c = g.assign(3).unwrap();
        assert_eq!(g.len(), 2, "worker 3 took over worker 1's socket");
        assert!(!g.has_orphans());
        drop((a, b));
    }

    #[test]
    fn the_policy_accepts_only_from_sockets_without_a_worker() {
        let first = sys::tcp_listener((Ipv4Addr::LOCALHOST, 0).into(), false, true, 16).unwrap();
        let local = sys::local_addr(first.as_fd()).unwrap();
        let socket = BoundSocket { fd: first, local, owns_path: false };
        let mut p = ReusePort::new(Duration::from_millis(50), &socket, false, 16, false).unwrap();
        let count = |p: &ReusePort| {
            let mut n = 0;
            p.accept_fds(socket.fd.as_fd(), &mut |_| n += 1);
            n
        };
        assert!(p.primary_accepts() && !p.deals_new_connections());
        assert_eq!(count(&p), 1, "the first slot, while nobody has it");
        assert!(p.add(1) && p.add(2));
        let _a = p.socket_for(1, socket.fd.as_fd()).unwrap();
        let _b = p.socket_for(2, socket.fd.as_fd()).unwrap();
        assert_eq!((p.socket_count(), count(&p)), (2, 0));
        assert!(!p.primary_accepts(), "every socket has its worker");
        p.release(1).unwrap();
        assert!(p.remove(1));
        assert_eq!(count(&p), 1);
        assert!(p.primary_accepts(), "worker 1's socket is the primary's now");
        assert_eq!(p.name(), "reuseport");
    }

    #[test]
    fn what_is_queued_on_a_released_slot_is_accepted_by_the_primary() {
        let mut g = group();
        let worker_copy = g.assign(1).unwrap();
        let _other = g.assign(2).unwrap();
        // Connections queue on both sockets (the kernel picks by hash).
        let clients: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(g.addr).unwrap()).collect();
        // Worker 1 dies: its copy closes, but the socket and its queue stay.
        drop(worker_copy);
        g.release(1).unwrap();
        let mut rescued = 0;
        while g.accept().is_ok() {
            rescued += 1;
        }
        // Worker 2's socket holds the rest; nothing is lost either way.
        let mut on_two = 0;
        g.release(2).unwrap();
        while g.accept().is_ok() {
            on_two += 1;
        }
        assert_eq!(rescued + on_two, clients.len());
        assert!(rescued > 0, "the kernel put none on worker 1's socket");
    }
}

/// Binds the first socket of a SCHED_REUSEPORT group, as `listener::bind`
/// would but with `SO_REUSEPORT`. `None` for what is not a TCP address (a
/// unix path, a socket by fd): those get round-robin instead. Returns the
/// socket and its `ipv6Only`, for binding the others alike.
pub fn bind_first(spec: &crate::listen::ListenSpec) -> Option<io::Result<(crate::listen::BoundSocket, bool)>> {
    use crate::listen::{BoundSocket, ListenAddr, DEFAULT_BACKLOG};
    let ListenAddr::Tcp { ip, port, ipv6_only } = &spec.addr else { return None };
    let backlog = if spec.backlog > 0 { spec.backlog } else { DEFAULT_BACKLOG };
    let bound = match ip {
        Some(ip) => sys::tcp_listener(SocketAddr::new(*ip, *port), *ipv6_only, true, backlog),
        // As lib/net.js does: `::` first, then IPv4.
        None => sys::tcp_listener(SocketAddr::new(sys::unspecified(true), *port), *ipv6_only, true, backlog)
            .or_else(|_| sys::tcp_listener(SocketAddr::new(sys::unspecified(false), *port), false, true, backlog)),
    };
    Some(bound.and_then(|fd| {
        let local = sys::local_addr(fd.as_fd())?;
        let v6_only = *ipv6_only && matches!(local, sys::LocalAddr::Inet(SocketAddr::V6(_)));
        Ok((BoundSocket { fd, local, owns_path: false }, v6_only))
    }))
}
