//! Operations on any descriptor: its flags, copies of it, the identity and
//! length of the file behind it, and how many this process may have.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::owned;

/// Sets or clears `O_NONBLOCK` (a flag of the open file, shared by its copies).
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

/// Sets `FD_CLOEXEC` (a flag of this descriptor only).
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
pub(super) fn dup_raw_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer minimum fd, no pointers; a
    // closed `fd` is EBADF, and the new descriptor is ours alone.
    let new = unsafe { syscall!(fcntl(fd, libc::F_DUPFD_CLOEXEC, 0))? };
    Ok(owned(new))
}

/// How many descriptors this process has open (for leak checks in tests).
pub fn open_fd_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// This process's soft limit on open descriptors (`RLIMIT_NOFILE`);
/// `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live rlimit for getrlimit to fill.
    unsafe { syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)) }.ok()?;
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// `fstat` of a descriptor; a number that is not open is `EBADF`.
fn stat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: fstat writes into `st`, a live, properly sized stat buffer, and
    // reads nothing else; the kernel checks `fd` itself.
    unsafe { syscall!(fstat(fd, &mut st))? };
    Ok(st)
}

/// The identity of the open file behind `fd`: (device, inode). Two
/// descriptors name the same socket or file exactly when these are equal.
/// `fd` is a number that may not be open (one the application gave): then
/// `EBADF`, never undefined behaviour, since only the kernel reads it.
pub fn file_identity(fd: RawFd) -> io::Result<(u64, u64)> {
    let st = stat(fd)?;
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// The length in bytes of the file behind `fd`.
pub fn file_len(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(stat(fd.as_raw_fd())?.st_size as u64)
}

/// Makes the file behind `fd` `len` bytes long (`ftruncate`): new bytes read as zero.
pub fn set_file_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: integer arguments only; `fd` is open for the borrow.
    unsafe { syscall!(ftruncate(fd.as_raw_fd(), len))? };
    Ok(())
}
