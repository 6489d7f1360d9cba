//! Telling whether two descriptors name the same socket.
//!
//! A worker's `listen({ fd })` names a descriptor of the primary's by number,
//! and the primary's own listening sockets have numbers too: a forged
//! `queryServer`, or an honest `listen({ fd })` of another worker's port,
//! could otherwise make a second listener on a socket the dispatcher already
//! accepts from, and whichever is polled first would take every connection.
//! node:cluster refuses that with `bind EEXIST`; so does rcluster. Numbers
//! prove nothing (a socket has as many as it has copies), so the comparison
//! is of the socket itself: its inode on sockfs.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::listen::ListenAddr;
use crate::sys;

/// Whether `spec` names, by descriptor, one of `existing`'s sockets. Only a
/// listen by fd can; an fd that cannot be looked at is left to the bind,
/// which reports it as it always did.
pub fn names_one_of<'a>(spec: &ListenAddr, existing: impl IntoIterator<Item = BorrowedFd<'a>>) -> bool {
    let fd = match spec {
        ListenAddr::Fd { fd } | ListenAddr::UdpFd { fd } => *fd,
        _ => return false,
    };
    let Ok(wanted) = sys::file_identity(fd) else { return false };
    existing.into_iter().any(|other| sys::file_identity(other.as_raw_fd()).is_ok_and(|id| id == wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::os::fd::AsFd;

    #[test]
    fn a_copy_of_a_socket_is_the_same_socket_and_another_socket_is_not() {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let copy = a.try_clone().unwrap();
        let by_fd = |l: &TcpListener| ListenAddr::Fd { fd: l.as_raw_fd() };
        assert!(names_one_of(&by_fd(&copy), [a.as_fd()]));
        assert!(names_one_of(&ListenAddr::UdpFd { fd: copy.as_raw_fd() }, [b.as_fd(), a.as_fd()]));
        assert!(!names_one_of(&by_fd(&b), [a.as_fd()]));
        // Not by fd: never compared.
        assert!(!names_one_of(&ListenAddr::Tcp { ip: None, port: 0, ipv6_only: false }, [a.as_fd()]));
        // A closed number is the bind's to refuse.
        assert!(!names_one_of(&ListenAddr::Fd { fd: 1_000_000 }, [a.as_fd()]));
    }
}
