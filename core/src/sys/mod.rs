//! Every operating-system call rcluster makes, in one place.
//!
//! Rules kept here (each one prevents a bug reproduced in docs/DESIGN.md §3):
//! - every socket is created close-on-exec, and received fds arrive with
//!   `MSG_CMSG_CLOEXEC`, so a `child_process.spawn` never inherits a client;
//! - ownership of a descriptor moves as `OwnedFd`, so nothing leaks on error paths;
//! - sends use `MSG_NOSIGNAL`: a dead peer is an `EPIPE`, never a `SIGPIPE`;
//! - a descriptor this process owns is passed as `BorrowedFd` (or moved as
//!   `OwnedFd`), so no call can outlive or close what it was lent. Only a
//!   number the application gave (`listen({ fd })`, `bind({ fd })`), which may
//!   not even be open, stays a `RawFd`;
//! - every call goes through `syscall!`, which turns `-1` into `errno`.

use std::ffi::{CString, OsStr};
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Calls a libc function and turns `-1` into the thread's `errno`.
///
/// The caller wraps it in `unsafe` and says why the arguments are valid.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let res = libc::$fn($($arg),*);
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Most fds one `SCM_RIGHTS` message may carry (Linux `SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Whether an error means "the peer's queue is full, try another peer later"
/// rather than "the peer is gone" (docs/DESIGN.md §3.3).
pub fn is_full(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::ETOOMANYREFS) | Some(libc::ENOMEM)
    )
}

/// Whether an `accept` error means the process or the system ran out of
/// descriptors or memory: accepting again at once would spin.
pub fn is_resource_exhausted(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Whether an `accept` error concerns only the one connection that failed
/// (the client gave up before we took it), so the next accept may succeed.
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO) | Some(libc::EPERM)
    )
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called with a descriptor a syscall has just returned to us,
    // which nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A connected pair of `SOCK_SEQPACKET` unix sockets, both close-on-exec.
/// Sequenced packets keep message boundaries, so one `sendmsg` is one message.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a valid, writable array of two ints, as socketpair requires.
    unsafe {
        syscall!(socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr()
        ))?;
    }
    Ok((owned(fds[0]), owned(fds[1])))
}

pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL take no pointer arguments; `fd` is open for the borrow.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
        let flags = if nonblocking { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
        syscall!(fcntl(fd, libc::F_SETFL, flags))?;
    }
    Ok(())
}

pub fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFD/F_SETFD take no pointer arguments; `fd` is open for the borrow.
    unsafe {
        let flags = syscall!(fcntl(fd, libc::F_GETFD))?;
        syscall!(fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// Duplicates a descriptor, close-on-exec.
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    dup_raw_cloexec(fd.as_raw_fd())
}

/// `dup_cloexec` of a number that may not be open (then `EBADF`).
fn dup_raw_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer minimum fd, no pointers; a
    // closed `fd` is EBADF, and the new descriptor is ours alone.
    let new = unsafe { syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))? };
    Ok(owned(new))
}

fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int and its exact size is passed.
    unsafe {
        syscall!(setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t
        ))?;
    }
    Ok(())
}

fn getsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option value points at a live c_int and `len` holds its size.
    unsafe {
        syscall!(getsockopt(fd.as_raw_fd(), level, name, &mut value as *mut libc::c_int as *mut libc::c_void, &mut len))?;
    }
    Ok(value)
}

/// A close-on-exec, non-blocking inet socket of `kind` bound to `addr`, with
/// `SO_REUSEADDR` if asked and, on IPv6, `IPV6_V6ONLY` as given.
fn bound_inet_socket(addr: SocketAddr, kind: libc::c_int, ipv6_only: bool, reuse_addr: bool) -> io::Result<OwnedFd> {
    bound_inet_socket_with(addr, kind, ipv6_only, reuse_addr, false)
}

fn bound_inet_socket_with(
    addr: SocketAddr,
    kind: libc::c_int,
    ipv6_only: bool,
    reuse_addr: bool,
    reuse_port: bool,
) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain integer arguments.
    let fd = owned(unsafe { syscall!(socket(domain, kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0))? });
    if reuse_addr {
        setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if reuse_port {
        setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if addr.is_ipv6() {
        setsockopt_int(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, ipv6_only as libc::c_int)?;
    }
    let (storage, len) = socket_addr_to_raw(&addr);
    // SAFETY: `storage` holds a sockaddr of the family `domain`, `len` bytes long.
    unsafe {
        syscall!(bind(fd.as_raw_fd(), &storage as *const _ as *const libc::sockaddr, len))?;
    }
    Ok(fd)
}

/// Binds and listens on a TCP address the way libuv does for a Node server:
/// `SO_REUSEADDR` on, `IPV6_V6ONLY` only when asked for, and `SO_REUSEPORT`
/// when asked for (libuv's `UV_TCP_REUSEPORT`: other sockets, of this process
/// or another, may bind the same address, and the kernel spreads new
/// connections over them).
pub fn tcp_listener(addr: SocketAddr, ipv6_only: bool, reuse_port: bool, backlog: i32) -> io::Result<OwnedFd> {
    let fd = bound_inet_socket_with(addr, libc::SOCK_STREAM, ipv6_only, true, reuse_port)?;
    // SAFETY: `fd` is a bound stream socket.
    unsafe {
        syscall!(listen(fd.as_raw_fd(), backlog))?;
    }
    Ok(fd)
}

/// `TCP_DEFER_ACCEPT` on a listening socket: the kernel keeps a connection
/// off the accept queue until its first bytes arrive, or until about
/// `seconds` have passed (then the next ACK from the client queues it anyway).
pub fn set_defer_accept(fd: BorrowedFd<'_>, seconds: i32) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, seconds)
}

/// A listening socket's `TCP_DEFER_ACCEPT`, in seconds (0: off), as the
/// kernel rounded it.
pub fn defer_accept(fd: BorrowedFd<'_>) -> io::Result<i32> {
    getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT)
}

/// Whether `SO_REUSEPORT` is set on a socket.
pub fn reuse_port(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)? != 0)
}

/// Binds a UDP socket the way libuv's `uv_udp_bind` does for dgram:
/// `SO_REUSEADDR` only with `reuseAddr` (UV_UDP_REUSEADDR), `IPV6_V6ONLY` per
/// `ipv6Only` (UV_UDP_IPV6ONLY), and `EINVAL` for `ipv6Only` on an IPv4
/// address, as libuv answers.
pub fn udp_socket(addr: SocketAddr, ipv6_only: bool, reuse_addr: bool) -> io::Result<OwnedFd> {
    if ipv6_only && !addr.is_ipv6() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    bound_inet_socket(addr, libc::SOCK_DGRAM, ipv6_only, reuse_addr)
}

/// A close-on-exec copy of `fd`, if it is a UDP socket (what libuv's
/// `uv_guess_handle` calls `UV_UDP`: an IPv4 or IPv6 datagram socket).
/// Anything else, a closed fd included, is `EINVAL`, as node:cluster answers
/// a `bind({ fd })` whose fd is not UDP. `fd` itself is left open: it is not ours.
pub fn udp_from_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // A copy first: from then on the socket is ours, whatever the app does
    // with its number. A closed fd is EBADF here, and EINVAL below.
    let copy = dup_raw_cloexec(fd).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let is_dgram = socket_type(copy.as_fd()).is_ok_and(|kind| kind == libc::SOCK_DGRAM);
    if !is_dgram || !matches!(local_addr(copy.as_fd()), Ok(LocalAddr::Inet(_))) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(copy)
}

/// `SO_TYPE` of a socket: `SOCK_STREAM`, `SOCK_DGRAM`, ...
fn socket_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

/// Listens on a copy of a stream socket this process already has, for Node's
/// `listen({ fd })`: the copy is close-on-exec and non-blocking. A descriptor
/// that is not a stream socket (or not open) is `EINVAL`, as Node answers for
/// handle types a server cannot use.
pub fn listener_from_fd(fd: RawFd, backlog: i32) -> io::Result<OwnedFd> {
    // A copy first: from then on the socket is ours, whatever the app does
    // with its number.
    let copy = match dup_raw_cloexec(fd) {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        other => other?,
    };
    match socket_type(copy.as_fd()) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Err(e) => return Err(e),
        Ok(kind) if kind != libc::SOCK_STREAM => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        Ok(_) => {}
    }
    set_nonblocking(copy.as_fd(), true)?;
    // SAFETY: `copy` is an open stream socket; listen on a listening socket
    // only updates its backlog.
    unsafe {
        syscall!(listen(copy.as_raw_fd(), backlog))?;
    }
    Ok(copy)
}

/// Binds and listens on a unix-domain socket path.
pub fn unix_listener(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let (addr, len) = unix_addr(path)?;
    // SAFETY: plain integer arguments.
    let fd = owned(unsafe {
        syscall!(socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0))?
    });
    // SAFETY: `addr` is a sockaddr_un whose used length is `len`.
    let bound = unsafe { syscall!(bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len)) };
    match bound {
        // libuv reports a missing directory as EACCES (for Windows' sake), and
        // so does Node: "bind EACCES /no/such/dir/x.sock".
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(io::Error::from_raw_os_error(libc::EACCES)),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // SAFETY: `fd` is a bound stream socket.
    unsafe {
        syscall!(listen(fd.as_raw_fd(), backlog))?;
    }
    Ok(fd)
}

fn unix_addr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if is_abstract(path) {
        // Linux's abstract namespace (`listen('\0name')`); no file is
        // created. The name is the whole of sun_path, the given bytes padded
        // with NULs, because that is the name Node 20's libuv binds and,
        // above all, connects to: a shorter one would be another socket.
        if bytes.len() > addr.sun_path.len() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        return Ok((addr, mem::size_of::<libc::sockaddr_un>() as libc::socklen_t));
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // As libuv's uv_pipe_bind (which Node uses): a path longer than sun_path
    // is cut to fit, keeping the terminating NUL, rather than refused.
    let bytes = &bytes[..bytes.len().min(addr.sun_path.len() - 1)];
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Whether a unix socket name is in Linux's abstract namespace (it starts
/// with a NUL byte): there is no file to create or remove.
pub fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// Removes a unix socket file we created, as libuv does when a pipe server closes.
pub fn unlink(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: `c` is a NUL-terminated path that lives across the call.
        // A failure (already gone) needs no handling.
        let _ = unsafe { syscall!(unlink(c.as_ptr())) };
    }
}

/// The address a listening socket is bound to.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<LocalAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes, and `len` is passed by pointer.
    unsafe {
        syscall!(getsockname(fd.as_raw_fd(), &mut storage as *mut _ as *mut libc::sockaddr, &mut len))?;
    }
    raw_to_local_addr(&storage, len)
}

/// The address of a connected socket's peer (`getpeername`).
pub fn peer_addr(fd: BorrowedFd<'_>) -> io::Result<LocalAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes, and `len` is passed by pointer.
    unsafe {
        syscall!(getpeername(fd.as_raw_fd(), &mut storage as *mut _ as *mut libc::sockaddr, &mut len))?;
    }
    raw_to_local_addr(&storage, len)
}

/// Where a listening socket is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

fn raw_to_local_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<LocalAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(LocalAddr::Inet(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port)))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(LocalAddr::Inet(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))))
        }
        libc::AF_UNIX => {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let a: &libc::sockaddr_un = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
            let used = (len as usize).saturating_sub(mem::size_of::<libc::sa_family_t>());
            let raw: Vec<u8> = a.sun_path[..used.min(a.sun_path.len())]
                .iter()
                .map(|c| *c as u8)
                .take_while(|b| *b != 0)
                .collect();
            Ok(LocalAddr::Unix(PathBuf::from(OsStr::from_bytes(&raw))))
        }
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

fn socket_addr_to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The unspecified address of a family, used when a server listens without a host.
pub fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Accepts one connection, close-on-exec and non-blocking.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed: we do not want the peer address.
    let fd = unsafe {
        syscall!(accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK
        ))?
    };
    Ok(owned(fd))
}

/// Reads up to `buf.len()` bytes of a stream socket without blocking; with
/// `peek`, leaves them in the socket (`MSG_PEEK`). `Ok(0)` is end of file.
pub fn recv_bytes(fd: BorrowedFd<'_>, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `buf` is writable for its whole length.
    let n = unsafe { syscall!(recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags))? };
    Ok(n as usize)
}

/// Sends one message, with `fds` attached as `SCM_RIGHTS` when there are any.
/// Never blocks and never raises `SIGPIPE`.
pub fn send_message(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS_PER_MESSAGE, "more fds than one SCM_RIGHTS message carries");
    let mut cmsg_space = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds) as libc::c_uint;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        debug_assert!(space <= mem::size_of_val(&cmsg_space));
        msg.msg_control = cmsg_space.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: `msg_control` points at `cmsg_space`, zeroed, aligned for
        // cmsghdr and at least `space` bytes long, so the first header and its
        // `payload` bytes of data lie inside it. BorrowedFd is a transparent
        // RawFd, and each is open for the duration of the call.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points at `iov` (backed by `bytes`, which sendmsg only
    // reads) and at `cmsg_space`; both outlive the call.
    let sent = unsafe {
        syscall!(sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT))?
    };
    // SEQPACKET sends a whole message or nothing.
    debug_assert_eq!(sent as usize, bytes.len());
    Ok(())
}

/// What one non-blocking receive produced.
#[derive(Debug)]
pub enum Recv {
    /// A message of this many bytes; its fds (if any) were appended to the vector.
    Message(usize),
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed its end.
    Closed,
    /// A message of this many bytes whose descriptors could not all be
    /// received (`MSG_CTRUNC`: this process is out of fds). Those that did
    /// arrive were closed; the sender still has its copies.
    FdsLost(usize),
}

/// Space for the largest `SCM_RIGHTS` message, as `u64`s so it is aligned for `cmsghdr`.
const CMSG_WORDS: usize = (MAX_FDS_PER_MESSAGE * mem::size_of::<RawFd>() + 64) / 8;

/// Receives one message without blocking. Attached descriptors arrive
/// close-on-exec and are appended to `fds` as owned fds. A message whose fds
/// did not all fit (`MSG_CTRUNC`: out of descriptors) is `FdsLost`, and
/// whatever fds did arrive are closed; a truncated payload (`MSG_TRUNC`) is an
/// error (docs/DESIGN.md §3.10).
pub fn recv_message(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<Recv> {
    let mut cmsg_space = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_space.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = mem::size_of_val(&cmsg_space) as _;

    // SAFETY: `msg` points at `iov` (backed by `buf`) and at `cmsg_space`; both
    // outlive the call and their lengths are the buffers' real sizes.
    let n = match unsafe { syscall!(recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT)) } {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Recv::WouldBlock),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Recv::WouldBlock),
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(Recv::Closed),
        Err(e) => return Err(e),
    };

    let first_new = fds.len();
    // SAFETY: the kernel filled `msg.msg_control` with `msg_controllen` bytes of
    // well-formed cmsghdrs; the CMSG_* helpers walk exactly that region.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    fds.push(owned(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        fds.truncate(first_new); // closes them
        return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated message on the rcluster channel"));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        fds.truncate(first_new); // closes them
        return Ok(Recv::FdsLost(n));
    }
    if n == 0 && fds.len() == first_new {
        return Ok(Recv::Closed);
    }
    Ok(Recv::Message(n))
}

/// Waits until one of `fds` is ready or `timeout_ms` passes (-1: no limit).
/// An interrupted wait returns 0, like a timeout.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid slice of pollfd and its real length is passed.
    match unsafe { syscall!(poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms)) } {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Waits until `fd` becomes writable, for at most `timeout_ms`.
pub fn wait_writable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }];
    Ok(poll(&mut pfd, timeout_ms)? > 0)
}

/// Wakes a thread blocked in `poll`: an eventfd it polls for reading.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain integer arguments.
        let fd = unsafe { syscall!(eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))? };
        Ok(Waker { fd: owned(fd) })
    }

    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64, as eventfd requires.
        match unsafe { syscall!(write(self.fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8)) } {
            Ok(_) => Ok(()),
            // The counter is saturated: the poller is already due to wake.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64. EAGAIN (nothing to drain) is fine.
        let _ = unsafe { syscall!(read(self.fd.as_raw_fd(), &mut value as *mut u64 as *mut libc::c_void, 8)) };
    }

}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// How many descriptors this process has open (for leak checks in tests).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// An epoll instance, close-on-exec: the connections waiting in a header
/// stage are watched through it, edge-triggered, so the dispatcher's own
/// `poll` set holds one descriptor for all of them and a connection whose
/// bytes so far are only peeked at is reported again only when more arrive.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: a flag argument only.
    let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
    Ok(owned(fd))
}

/// Watches `fd` in `epoll` for input and hang-ups, edge-triggered, reported
/// with `token`; `modify` changes the token of one already watched.
pub fn epoll_watch(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64, modify: bool) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    let op = if modify { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
    // SAFETY: both descriptors are open for their borrows; `event` is a live epoll_event.
    unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut event))? };
    Ok(())
}

/// Stops watching `fd`. Needed before the descriptor is handed on: epoll
/// watches the open file, which lives on in the worker after this process
/// closes its copy, and could then no longer be removed.
pub fn epoll_unwatch(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: both descriptors are open for their borrows. ENOENT (never
    // watched: adding it failed) is fine.
    let _ = unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut event)) };
}

/// The tokens of up to `max` watched descriptors with news, without waiting.
pub fn epoll_ready(epoll: BorrowedFd<'_>, max: usize, out: &mut Vec<u64>) -> io::Result<()> {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)];
    // SAFETY: `events` is writable for the length passed.
    let n = match unsafe { syscall!(epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 0)) } {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
        Err(e) => return Err(e),
    };
    out.extend(events.iter().take(n).map(|e| e.u64));
    Ok(())
}

/// This process's soft limit on open descriptors (`RLIMIT_NOFILE`);
/// `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live rlimit for getrlimit to fill.
    unsafe { syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)) }.ok()?;
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// Who is at the other end of a connected unix stream socket:
/// `(pid, uid, gid)` as the kernel recorded them when the connection was
/// made (`SO_PEERCRED`; for a listening peer, when it called `listen`). The
/// peer cannot forge them, unlike anything it writes. `fd` is a number the
/// caller lends for the duration of the call (a libuv handle's descriptor):
/// a number that is not an open socket is `EBADF` or `ENOTSOCK`, never
/// undefined behaviour, since only the kernel reads it.
pub fn peer_credentials(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` its exact size,
    // which is what SO_PEERCRED writes; the kernel checks `fd` itself.
    unsafe {
        syscall!(getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        ))?;
    }
    if len as usize != mem::size_of::<libc::ucred>() {
        // Not a unix socket the kernel keeps credentials for.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok((cred.pid, cred.uid, cred.gid))
}

#[cfg(test)]
mod peer_credentials_tests {
    use super::*;

    #[test]
    fn a_socketpair_peer_is_this_process() {
        let (a, _b) = seqpacket_pair().expect("socketpair");
        let (pid, uid, gid) = peer_credentials(a.as_raw_fd()).expect("SO_PEERCRED");
        assert_eq!(pid, std::process::id() as i32);
        // SAFETY: getuid/getgid cannot fail and take no arguments.
        assert_eq!(uid, unsafe { libc::geteuid() });
        // SAFETY: as above.
        assert_eq!(gid, unsafe { libc::getegid() });
    }

    #[test]
    fn not_a_socket_is_an_error() {
        let file = std::fs::File::open("/proc/self/status").expect("open");
        let err = peer_credentials(file.as_raw_fd()).expect_err("a file has no peer");
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
        assert_eq!(peer_credentials(-1).expect_err("-1").raw_os_error(), Some(libc::EBADF));
    }
}
