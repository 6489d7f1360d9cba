//! Sockets: creating, binding and listening the way libuv does for Node,
//! accepting, reading without blocking, their options, and what the kernel
//! knows of a connection (its peer's credentials, its TCP counters, its queues).

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::addr::{local_addr, socket_addr_to_raw, unix_addr, LocalAddr};
use super::fd::{dup_raw_cloexec, set_nonblocking};
use super::owned;

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

/// Removes a unix socket file we created, as libuv does when a pipe server closes.
pub fn unlink(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: `c` is a NUL-terminated path that lives across the call.
        // A failure (already gone) needs no handling.
        let _ = unsafe { syscall!(unlink(c.as_ptr())) };
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

/// Linux's `struct tcp_info` up to `tcpi_bytes_sent` (4.19); libc's stops
/// before the byte counters. Only the fields read here are named.
#[repr(C)]
#[derive(Default)]
struct TcpInfo {
    state: u8,
    _u8s: [u8; 7],
    _u32s: [u32; 24],
    _pacing_rate: u64,
    _max_pacing_rate: u64,
    bytes_acked: u64,
    bytes_received: u64,
    _segs: [u32; 6],
    _rates: [u64; 4],
    _delivered: [u32; 2],
    bytes_sent: u64,
}

/// A TCP connection's state, as far as rcluster tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Established,
    /// The peer closed its half (sent its FIN); this side may still write.
    CloseWait,
    /// Any other (`TCP_*` number of `include/net/tcp_states.h`).
    Other(u8),
}

/// What the kernel counts of a TCP connection (`TCP_INFO`). A counter is
/// `None` when the running kernel's `tcp_info` stops before it
/// (`tcpi_bytes_acked` and `tcpi_bytes_received` came in 4.1 and 4.2,
/// `tcpi_bytes_sent` in 4.19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpCounters {
    pub state: TcpState,
    /// Bytes sent that the peer acknowledged.
    pub bytes_acked: Option<u64>,
    /// Bytes received, the peer's FIN counting as one.
    pub bytes_received: Option<u64>,
    /// Bytes sent, retransmissions included.
    pub bytes_sent: Option<u64>,
}

/// The `TCP_INFO` counters of a TCP socket; any other socket is an error
/// (`EOPNOTSUPP` for a unix socket).
pub fn tcp_counters(fd: BorrowedFd<'_>) -> io::Result<TcpCounters> {
    let mut info = TcpInfo::default();
    let mut len = mem::size_of::<TcpInfo>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, a plain C
    // struct, and reports how many in `len`; `fd` is open for the borrow.
    unsafe {
        syscall!(getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut TcpInfo).cast(),
            &mut len
        ))?;
    }
    let len = len as usize;
    let has = |offset: usize| len >= offset + 8;
    Ok(TcpCounters {
        state: match info.state {
            1 => TcpState::Established,
            8 => TcpState::CloseWait,
            other => TcpState::Other(other),
        },
        bytes_acked: has(mem::offset_of!(TcpInfo, bytes_acked)).then_some(info.bytes_acked),
        bytes_received: has(mem::offset_of!(TcpInfo, bytes_received)).then_some(info.bytes_received),
        bytes_sent: has(mem::offset_of!(TcpInfo, bytes_sent)).then_some(info.bytes_sent),
    })
}

/// An ioctl that reports one int about a socket.
fn ioctl_int(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the requests passed here (FIONREAD, TIOCOUTQ) write one int,
    // into `n`, which is live; `fd` is open for the borrow.
    unsafe { syscall!(ioctl(fd.as_raw_fd(), request as _, &mut n))? };
    Ok(n.max(0) as usize)
}

/// Bytes received and waiting to be read (`FIONREAD`, alias `SIOCINQ`).
pub fn unread_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    ioctl_int(fd, libc::FIONREAD as libc::c_ulong)
}

/// Bytes written and not yet taken by the peer (`SIOCOUTQ`, alias `TIOCOUTQ`).
pub fn unsent_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    ioctl_int(fd, libc::TIOCOUTQ as libc::c_ulong)
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
