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

use std::os::fd::BorrowedFd;

use crate::sys::{self, TcpState};

/// Whether no byte of this connection was read or written by anyone.
/// TCP: still open (the peer may have half-closed after its request), every
/// byte received is still in the receive queue, and nothing was sent. Other
/// stream sockets (unix) keep no counters: untouched if bytes wait to be read
/// and nothing was written. When in doubt, no: re-serving a request that was
/// partly read would be worse than losing it.
pub fn is_untouched(fd: BorrowedFd<'_>) -> bool {
    let Ok(unread) = sys::unread_len(fd) else { return false };
    match sys::tcp_counters(fd) {
        Ok(tcp) => {
            let Some(received) = tcp.bytes_received else { return false };
            if !matches!(tcp.state, TcpState::Established | TcpState::CloseWait) {
                return false;
            }
            let sent_nothing = match tcp.bytes_sent {
                Some(sent) => sent == 0,
                // Before Linux 4.19: nothing acknowledged and nothing queued.
                None => tcp.bytes_acked == Some(0) && sys::unsent_len(fd).is_ok_and(|n| n == 0),
            };
            // The peer's FIN counts as one byte received (a sequence number).
            let fin = u64::from(tcp.state == TcpState::CloseWait);
            sent_nothing && unread as u64 + fin == received
        }
        Err(_) => unread > 0 && sys::unsent_len(fd).is_ok_and(|n| n == 0),
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
