//! What an error number means to rcluster, and the numbers its callers
//! match or make errors of (`io::Error::from_raw_os_error(sys::errno::EINVAL)`),
//! so no file outside `sys/` names libc. Raw numbers rather than
//! `io::ErrorKind`: a kind stands for several numbers (`EPERM` and `EACCES`
//! are both `PermissionDenied`), and the number is what reaches JS as
//! `err.code` (`bind EEXIST`).

use std::io;

pub use libc::{
    EACCES, EADDRINUSE, EADDRNOTAVAIL, EAFNOSUPPORT, EAGAIN, EBADF, ECONNRESET, EEXIST, EINVAL, EMFILE, ENOPROTOOPT,
    ENOTCONN, ENOTSOCK, EOPNOTSUPP, EPERM, EPIPE,
};

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

/// Whether the other end of a socket is gone (`EPIPE`, `ECONNRESET`,
/// `ENOTCONN`): there is nobody left to tell anything.
pub fn is_disconnected(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN))
}
