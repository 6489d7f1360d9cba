//! `poll(2)`, the dispatcher's wait on every socket it watches, and the
//! eventfd that wakes it when a command arrives.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::owned;

/// One entry of a `poll` set: a descriptor, what to wait for, and (after
/// `poll`) what happened.
pub type PollFd = libc::pollfd;

/// What `poll` reported for one entry: its `revents`.
pub type PollEvents = libc::c_short;

/// A `poll` entry that waits for `fd` to be readable, and with `writable`
/// also for room to write. Hang-ups and errors are always reported.
///
/// The entry holds `fd`'s number beyond the borrow: a number closed before
/// the `poll` is reported as `POLLNVAL`, never read through.
pub fn poll_entry(fd: BorrowedFd<'_>, writable: bool) -> PollFd {
    let events = if writable { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
    PollFd { fd: fd.as_raw_fd(), events, revents: 0 }
}

/// Whether an entry has room to write (`POLLOUT`).
pub fn is_writable(revents: PollEvents) -> bool {
    revents & libc::POLLOUT != 0
}

/// Whether an entry has something to read, or its peer hung up or failed
/// (`POLLIN`, `POLLHUP`, `POLLERR`): reading it is what tells which.
pub fn is_readable_or_closed(revents: PollEvents) -> bool {
    revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// Waits until one of `fds` is ready or `timeout_ms` passes (-1: no limit).
/// An interrupted wait returns 0, like a timeout.
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid slice of pollfd and its real length is passed.
    match unsafe { syscall!(poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms)) } {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Waits until `fd` becomes writable, for at most `timeout_ms`.
pub fn wait_writable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = [PollFd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }];
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
