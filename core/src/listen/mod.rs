//! Opening the listening (or, for UDP, bound) socket that the primary shares
//! among workers.
//!
//! - [`node_query`]: a worker's listen request as Node words it;
//! - [`inherited`]: sockets inherited from systemd (socket activation);
//! - [`socket_identity`]: whether a listen by fd names a socket already shared.

pub mod inherited;
pub mod node_query;
pub mod socket_identity;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::sys::{self, LocalAddr};

/// What a worker asked to listen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `ip: None` means "no host given": like Node, try `::` (dual-stack) first
    /// and fall back to `0.0.0.0` where IPv6 is unavailable.
    Tcp { ip: Option<IpAddr>, port: u16, ipv6_only: bool },
    Unix { path: PathBuf },
    /// A dgram socket. dgram resolves the address before asking (`0.0.0.0` or
    /// `::` when none is given), so there is always one.
    Udp { ip: IpAddr, port: u16, ipv6_only: bool, reuse_addr: bool },
    /// A UDP socket the primary already has, by its fd number (a worker's
    /// `bind({ fd })`, as node:cluster reads that fd in the primary). The
    /// primary's fd stays its owner's: the listener holds a copy.
    UdpFd { fd: RawFd },
    /// A stream socket the primary already has, by descriptor (Node's
    /// `listen({ fd })` in a worker names the primary's fd, not its own).
    Fd { fd: RawFd },
}

/// Whether a socket streams connections (accepted, or listened on by workers)
/// or carries datagrams (only ever shared: every worker reads the one socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketType {
    Stream,
    Datagram,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub addr: ListenAddr,
    pub backlog: i32,
}

impl ListenSpec {
    pub fn socket_type(&self) -> SocketType {
        match self.addr {
            ListenAddr::Udp { .. } | ListenAddr::UdpFd { .. } => SocketType::Datagram,
            ListenAddr::Tcp { .. } | ListenAddr::Unix { .. } | ListenAddr::Fd { .. } => SocketType::Stream,
        }
    }
}

/// Node's default backlog (`server.listen` uses 511 when none is given).
pub const DEFAULT_BACKLOG: i32 = 511;

/// A bound, non-blocking, close-on-exec socket (listening, if it streams) and
/// where it is bound.
#[derive(Debug)]
pub struct BoundSocket {
    pub fd: OwnedFd,
    pub local: LocalAddr,
    /// Whether rcluster created the unix socket path, and so removes it on
    /// close. A socket adopted by fd keeps its path, as libuv leaves it.
    pub owns_path: bool,
}

pub fn bind(spec: &ListenSpec) -> io::Result<BoundSocket> {
    let backlog = if spec.backlog > 0 { spec.backlog } else { DEFAULT_BACKLOG };
    let fd = match &spec.addr {
        ListenAddr::Tcp { ip: Some(ip), port, ipv6_only } => {
            sys::tcp_listener(SocketAddr::new(*ip, *port), *ipv6_only, false, backlog)?
        }
        ListenAddr::Tcp { ip: None, port, ipv6_only } => {
            // As lib/net.js does: any failure on `::` falls back to IPv4, and
            // the IPv4 error (if any) is the one reported.
            match sys::tcp_listener(SocketAddr::new(sys::unspecified(true), *port), *ipv6_only, false, backlog) {
                Ok(fd) => fd,
                Err(_) => sys::tcp_listener(SocketAddr::new(sys::unspecified(false), *port), false, false, backlog)?,
            }
        }
        ListenAddr::Unix { path } => sys::unix_listener(path, backlog)?,
        ListenAddr::Udp { ip, port, ipv6_only, reuse_addr } => {
            sys::udp_socket(SocketAddr::new(*ip, *port), *ipv6_only, *reuse_addr)?
        }
        ListenAddr::UdpFd { fd } => sys::udp_from_fd(*fd)?,
        ListenAddr::Fd { fd } => sys::listener_from_fd(*fd, backlog)?,
    };
    let local = match &spec.addr {
        // getsockname on a unix socket may not give back a relative path as written.
        ListenAddr::Unix { path } => LocalAddr::Unix(path.clone()),
        ListenAddr::Tcp { .. } | ListenAddr::Fd { .. } | ListenAddr::Udp { .. } | ListenAddr::UdpFd { .. } => {
            sys::local_addr(fd.as_fd())?
        }
    };
    let owns_path = matches!(&spec.addr, ListenAddr::Unix { path } if !sys::is_abstract(path));
    Ok(BoundSocket { fd, local, owns_path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::net::{Ipv4Addr, TcpStream};

    #[test]
    fn binds_an_ephemeral_loopback_port_that_accepts() {
        let spec = ListenSpec {
            addr: ListenAddr::Tcp { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0, ipv6_only: false },
            backlog: 0,
        };
        let bound = bind(&spec).unwrap();
        let LocalAddr::Inet(addr) = bound.local else { panic!("not inet") };
        assert_ne!(addr.port(), 0);
        let _client = TcpStream::connect(addr).unwrap();
        let accepted = sys::accept(bound.fd.as_fd()).unwrap();
        assert!(accepted.as_raw_fd() >= 0);
    }

    #[test]
    fn second_bind_of_the_same_port_is_eaddrinuse() {
        let first = bind(&ListenSpec {
            addr: ListenAddr::Tcp { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0, ipv6_only: false },
            backlog: 0,
        })
        .unwrap();
        let LocalAddr::Inet(addr) = first.local else { panic!("not inet") };
        let err = bind(&ListenSpec {
            addr: ListenAddr::Tcp { ip: Some(addr.ip()), port: addr.port(), ipv6_only: false },
            backlog: 0,
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(sys::errno::EADDRINUSE));
    }

    #[test]
    fn no_host_means_dual_stack_any_address() {
        let bound = bind(&ListenSpec { addr: ListenAddr::Tcp { ip: None, port: 0, ipv6_only: false }, backlog: 0 })
            .unwrap();
        let LocalAddr::Inet(addr) = bound.local else { panic!("not inet") };
        assert!(addr.ip().is_unspecified());
        // Reachable over IPv4 loopback either way (dual-stack `::` or `0.0.0.0`).
        TcpStream::connect((Ipv4Addr::LOCALHOST, addr.port())).unwrap();
    }

    #[test]
    fn unix_socket_paths_bind_and_report_their_path() {
        let dir = std::env::temp_dir().join(format!("rcluster-listener-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let bound = bind(&ListenSpec { addr: ListenAddr::Unix { path: path.clone() }, backlog: 16 }).unwrap();
        assert_eq!(bound.local, LocalAddr::Unix(path.clone()));
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        sys::unlink(&path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_socket_is_adopted_by_fd_and_a_non_socket_is_einval() {
        let original = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = original.local_addr().unwrap().port();
        let bound = bind(&ListenSpec { addr: ListenAddr::Fd { fd: original.as_raw_fd() }, backlog: 0 }).unwrap();
        assert_ne!(bound.fd.as_raw_fd(), original.as_raw_fd(), "a copy, not the caller's fd");
        assert_eq!(bound.local, LocalAddr::Inet((Ipv4Addr::LOCALHOST, port).into()));
        assert!(!bound.owns_path);
        let _client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        assert!(sys::accept(bound.fd.as_fd()).is_ok());

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = bind(&ListenSpec { addr: ListenAddr::Fd { fd: file.as_raw_fd() }, backlog: 0 }).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(sys::errno::EINVAL));
    }

    #[test]
    fn an_overlong_unix_path_is_cut_to_fit_and_a_missing_directory_is_eacces() {
        // As libuv does for Node: the bind succeeds on the path cut to 107 bytes.
        let dir = std::env::temp_dir().join(format!("rcluster-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let long = dir.join("x".repeat(200));
        let bound = bind(&ListenSpec { addr: ListenAddr::Unix { path: long.clone() }, backlog: 0 }).unwrap();
        let cut = &long.as_os_str().as_bytes()[..107];
        assert!(std::path::Path::new(std::ffi::OsStr::from_bytes(cut)).exists());
        drop(bound);
        std::fs::remove_dir_all(&dir).unwrap();

        let missing = PathBuf::from(format!("/nonexistent-{}/x.sock", std::process::id()));
        let err = bind(&ListenSpec { addr: ListenAddr::Unix { path: missing }, backlog: 0 }).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(sys::errno::EACCES));
    }
}
