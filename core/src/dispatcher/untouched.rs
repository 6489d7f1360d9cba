//! Whether a connection a dead worker was sent is still untouched: nothing
//! of it read, nothing written. Such a connection can go to another worker
//! and be served as if the first had never seen it; any other dies with the
//! worker, as in node:cluster.
//!
//! A worker acknowledges a batch of connections only after the event-loop
//! turn that follows the one it received them in (`src/worker.rs`), so that a
//! worker killed while its JS spins holds its unread connections unacknowledged,
//! and the primary still has its copies. At the death, the kernel tells which
//! of those copies are untouched.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};

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

const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE_WAIT: u8 = 8;

fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<(TcpInfo, usize)> {
    let mut info = TcpInfo::default();
    let mut len = mem::size_of::<TcpInfo>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, a plain C
    // struct, and reports how many in `len`.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut TcpInfo).cast(), &mut len)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info, len as usize))
}

/// `FIONREAD`/`SIOCINQ` (bytes waiting to be read) or `SIOCOUTQ` (bytes not
/// yet taken by the peer) of a socket.
fn queued(fd: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: both ioctls write one int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ as libc::c_ulong;

/// Whether no byte of this connection was read or written by anyone.
/// TCP: still open (the peer may have half-closed after its request), every
/// byte received is still in the receive queue, and nothing was sent. Other
/// stream sockets (unix) keep no counters: untouched if bytes wait to be read
/// and nothing was written. When in doubt, no: re-serving a request that was
/// partly read would be worse than losing it.
pub fn is_untouched(fd: BorrowedFd<'_>) -> bool {
    let Ok(unread) = queued(fd, libc::FIONREAD as libc::c_ulong) else { return false };
    match tcp_info(fd) {
        Ok((info, len)) => {
            let have_received = len >= mem::offset_of!(TcpInfo, bytes_received) + 8;
            if !have_received || !matches!(info.state, TCP_ESTABLISHED | TCP_CLOSE_WAIT) {
                return false;
            }
            let sent_nothing = if len >= mem::offset_of!(TcpInfo, bytes_sent) + 8 {
                info.bytes_sent == 0
            } else {
                info.bytes_acked == 0 && queued(fd, SIOCOUTQ).is_ok_and(|n| n == 0)
            };
            // The peer's FIN counts as one byte received (a sequence number).
            let fin = u64::from(info.state == TCP_CLOSE_WAIT);
            sent_nothing && unread as u64 + fin == info.bytes_received
        }
        Err(_) => unread > 0 && queued(fd, SIOCOUTQ).is_ok_and(|n| n == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    #[test]
    fn a_request_nobody_read_is_untouched_and_a_read_or_answered_one_is_not() {
        let (mut client, server) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        settle();
        assert!(is_untouched(server.as_fd()));
        // The client half-closes after its request: still untouched.
        client.shutdown(std::net::Shutdown::Write).unwrap();
        settle();
        assert!(is_untouched(server.as_fd()));

        let (mut client, mut server) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        settle();
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).unwrap();
        assert!(!is_untouched(server.as_fd()), "one byte read");

        let (mut client, mut server) = pair();
        client.write_all(b"x").unwrap();
        server.write_all(b"hello").unwrap();
        settle();
        assert!(!is_untouched(server.as_fd()), "something written");
    }

    #[test]
    fn a_connection_with_nothing_received_yet_is_untouched_only_for_tcp() {
        let (_client, server) = pair();
        assert!(is_untouched(server.as_fd()), "TCP: the counters say nothing happened");
        let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_untouched(b.as_fd()), "unix: no counters, no proof");
    }
}
