//! Listening sockets the primary inherited from systemd (socket activation:
//! `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, read in `lib/primary/socket_activation.js`).
//!
//! A worker's listen on an address one of them is bound to gets that socket
//! instead of a new bind. The primary keeps the inherited descriptor for its
//! whole life, so the socket (and the connections queued on it) outlives
//! any listener made from it; systemd holds another copy, so connections
//! queue in it while the whole service restarts.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::net::IpAddr;

use crate::listen::ListenAddr;
use crate::sys::{self, LocalAddr};

#[derive(Debug)]
struct Socket {
    fd: OwnedFd,
    local: LocalAddr,
    name: Option<String>,
}

#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<Socket>,
    /// Why descriptors were skipped. Adopting happens while the primary's
    /// dispatcher is being configured, before it has anyone to tell: the
    /// dispatcher thread sends these on as warnings when it starts
    /// (`RCLUSTER_LISTEN_FDS_IGNORED`).
    warnings: Vec<String>,
}

impl Inherited {
    /// Takes over `fds` (the process's descriptors 3.., as systemd passes
    /// them) with their names. They are made close-on-exec, so workers and
    /// other children do not inherit them in turn. A descriptor that is not
    /// a bound socket is skipped with a warning ([`Inherited::warnings`]).
    ///
    /// # Safety
    /// Each fd must be open and owned by nothing else in this process: from
    /// here this closes them.
    pub unsafe fn adopt(fds: &[(RawFd, Option<String>)]) -> Self {
        let mut sockets = Vec::new();
        let mut warnings = Vec::new();
        for (raw, name) in fds {
            // SAFETY: the caller hands these over.
            let fd = unsafe { OwnedFd::from_raw_fd(*raw) };
            if let Err(e) = sys::set_cloexec(fd.as_fd()) {
                warnings.push(format!("LISTEN_FDS: fd {raw}: {e}"));
                continue;
            }
            match sys::local_addr(fd.as_fd()) {
                Ok(local) => sockets.push(Socket { fd, local, name: name.clone() }),
                Err(e) => warnings.push(format!("LISTEN_FDS: fd {raw} is not a bound socket ({e}); ignored")),
            }
        }
        Inherited { sockets, warnings }
    }

    /// Why descriptors given to `adopt` were skipped, one message each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The inherited socket a listen on `want` should use, if any, and its name.
    pub fn find(&self, want: &ListenAddr) -> Option<(BorrowedFd<'_>, Option<&str>)> {
        self.sockets.iter().find(|s| matches(&s.local, want)).map(|s| (s.fd.as_fd(), s.name.as_deref()))
    }
}

/// Whether a socket bound to `local` is what a listen on `want` asks for: the
/// same port, and the same address where one was given (an inherited socket
/// on a wildcard address serves a listen without a host, or on the same
/// wildcard); the same unix path.
pub fn matches(local: &LocalAddr, want: &ListenAddr) -> bool {
    match (local, want) {
        (LocalAddr::Inet(addr), ListenAddr::Tcp { ip, port, .. }) => {
            *port != 0
                && addr.port() == *port
                && match ip {
                    None => true,
                    Some(ip) => same_ip(addr.ip(), *ip),
                }
        }
        (LocalAddr::Unix(path), ListenAddr::Unix { path: want }) => path == want,
        _ => false,
    }
}

fn same_ip(bound: IpAddr, asked: IpAddr) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (bound, asked) = (canonical(bound), canonical(asked));
    bound == asked || (bound.is_unspecified() && asked.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tcp(ip: Option<&str>, port: u16) -> ListenAddr {
        ListenAddr::Tcp { ip: ip.map(|s| s.parse().unwrap()), port, ipv6_only: false }
    }

    fn inet(text: &str) -> LocalAddr {
        LocalAddr::Inet(text.parse().unwrap())
    }

    #[test]
    fn which_listens_an_inherited_socket_serves() {
        let cases: &[(LocalAddr, ListenAddr, bool)] = &[
            (inet("0.0.0.0:8080"), tcp(None, 8080), true),
            (inet("[::]:8080"), tcp(None, 8080), true),
            (inet("127.0.0.1:8080"), tcp(Some("127.0.0.1"), 8080), true),
            (inet("127.0.0.1:8080"), tcp(None, 8080), true),
            (inet("[::]:8080"), tcp(Some("0.0.0.0"), 8080), true),
            (inet("[::]:8080"), tcp(Some("::"), 8080), true),
            (inet("127.0.0.1:8080"), tcp(Some("::ffff:127.0.0.1"), 8080), true),
            (inet("127.0.0.1:8080"), tcp(Some("127.0.0.2"), 8080), false),
            (inet("0.0.0.0:8080"), tcp(Some("127.0.0.1"), 8080), false),
            (inet("127.0.0.1:8080"), tcp(None, 8081), false),
            // Port 0 asks for a new ephemeral port, never an inherited one.
            (inet("127.0.0.1:8080"), tcp(None, 0), false),
            (LocalAddr::Unix(PathBuf::from("/run/app.sock")), ListenAddr::Unix { path: PathBuf::from("/run/app.sock") }, true),
            (LocalAddr::Unix(PathBuf::from("/run/app.sock")), ListenAddr::Unix { path: PathBuf::from("/run/other.sock") }, false),
            (inet("127.0.0.1:8080"), ListenAddr::Fd { fd: 3 }, false),
            (inet("127.0.0.1:8080"), ListenAddr::Udp { ip: "127.0.0.1".parse().unwrap(), port: 8080, ipv6_only: false, reuse_addr: false }, false),
        ];
        for (local, want, expected) in cases {
            assert_eq!(matches(local, want), *expected, "{local:?} for {want:?}");
        }
    }

    #[test]
    fn adopted_sockets_are_found_by_address_and_non_sockets_skipped() {
        use std::os::fd::IntoRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let file = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: both fds are handed over and not used again here.
        let inherited = unsafe {
            Inherited::adopt(&[(listener.into_raw_fd(), Some("web".into())), (file.into_raw_fd(), None)])
        };
        assert_eq!(inherited.len(), 1);
        assert_eq!(inherited.warnings().len(), 1, "{:?}", inherited.warnings());
        assert!(inherited.warnings()[0].contains("is not a bound socket"), "{:?}", inherited.warnings());
        let (fd, name) = inherited.find(&tcp(None, port)).unwrap();
        assert_eq!(name, Some("web"));
        assert!(sys::listener_from_fd(std::os::fd::AsRawFd::as_raw_fd(&fd), 16).is_ok());
        assert!(inherited.find(&tcp(None, port.wrapping_add(1))).is_none());
    }
}
