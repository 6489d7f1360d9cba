//! Every operating-system call rcluster makes, in one place: no file outside
//! `sys/` names a libc function, and every function here is safe to call.
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
//! - every call that fails with `-1` goes through `syscall!`, which turns it
//!   into `errno`; each is in an `unsafe` block whose `// SAFETY:` comment
//!   says why its arguments are valid.
//!
//! The files, by what they operate on (callers name everything as `sys::name`):
//! - `fd.rs`: any descriptor (flags, copies, identity, length, limits);
//! - `socket.rs`: creating, binding, accepting and reading sockets, their options;
//! - `addr.rs`: socket addresses, to and from the kernel's form;
//! - `message.rs`: channel messages with descriptors attached (`SCM_RIGHTS`);
//! - `poll.rs`: `poll` and the eventfd that wakes the dispatcher; `epoll.rs`: the dispatcher's
//!   and the header stages' epoll;
//! - `memory.rs`: the shared memory region's file and mapping (and the loop stamps');
//! - `clock.rs`: the monotonic clock as a number (loop stamps);
//! - `process.rs`: other processes (whether one is alive);
//! - `errno.rs`: what an error number means to rcluster, and the numbers callers match.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Calls a libc function and turns `-1` into the thread's `errno`.
///
/// The caller wraps it in `unsafe` and says why the arguments are valid.
/// Defined before the modules so that each of them can use it.
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

mod addr;
mod clock;
mod epoll;
pub mod errno;
mod fd;
mod memory;
mod message;
mod poll;
mod process;
mod socket;

pub use clock::monotonic_ns;
pub use addr::{is_abstract, local_addr, peer_addr, unspecified, LocalAddr};
pub use epoll::{
    epoll_create, epoll_forget, epoll_ready_into, epoll_unwatch, epoll_wait_into, epoll_watch, epoll_watch_exclusive,
    epoll_watch_level, EpollEvents,
};
pub use errno::{is_disconnected, is_full, is_resource_exhausted, is_transient_accept_error};
pub use fd::{
    dup_cloexec, file_identity, file_len, open_fd_count, open_file_limit, set_cloexec, set_file_len, set_nonblocking,
};
pub use memory::{anonymous_file, is_size_sealed, seal_size, SharedMapping};
pub use message::{recv_message, send_message, Recv, MAX_FDS_PER_MESSAGE};
pub use poll::{is_readable_or_closed, is_writable, poll, poll_entry, wait_writable, PollEvents, PollFd, Waker};
pub use process::{is_zombie, process_exists, Pid};
pub use socket::{
    accept, defer_accept, listener_from_fd, peer_credentials, recv_bytes, reuse_port, seqpacket_pair, set_defer_accept,
    tcp_counters, tcp_listener, udp_from_fd, udp_socket, unix_listener, unlink, unread_len, unsent_len, TcpCounters,
    TcpState,
};

/// Takes ownership of a descriptor a syscall has just returned.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: only called with a descriptor a syscall has just returned to us,
    // which nothing else owns yet.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
