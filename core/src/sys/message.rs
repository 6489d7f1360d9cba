//! Channel messages: one `SOCK_SEQPACKET` packet with descriptors attached
//! (`SCM_RIGHTS`), sent without blocking or `SIGPIPE` and received close-on-exec.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::owned;

/// Most fds one `SCM_RIGHTS` message may carry (Linux `SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Sends one message, with `fds` attached as `SCM_RIGHTS` when there are any.
/// Never blocks and never raises `SIGPIPE`.
pub fn send_message(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS_PER_MESSAGE, "more fds than one SCM_RIGHTS message carries");
    let mut cmsg_space = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds) as libc::c_uint;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        debug_assert!(space <= mem::size_of_val(&cmsg_space));
        msg.msg_control = cmsg_space.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: `msg_control` points at `cmsg_space`, zeroed, aligned for
        // cmsghdr and at least `space` bytes long, so the first header and its
        // `payload` bytes of data lie inside it. BorrowedFd is a transparent
        // RawFd, and each is open for the duration of the call.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `msg` points at `iov` (backed by `bytes`, which sendmsg only
    // reads) and at `cmsg_space`; both outlive the call.
    let sent = unsafe {
        syscall!(sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT))?
    };
    // SEQPACKET sends a whole message or nothing.
    debug_assert_eq!(sent as usize, bytes.len());
    Ok(())
}

/// What one non-blocking receive produced.
#[derive(Debug)]
pub enum Recv {
    /// A message of this many bytes; its fds (if any) were appended to the vector.
    Message(usize),
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed its end.
    Closed,
    /// A message of this many bytes whose descriptors could not all be
    /// received (`MSG_CTRUNC`: this process is out of fds). Those that did
    /// arrive were closed; the sender still has its copies.
    FdsLost(usize),
}

/// Space for the largest `SCM_RIGHTS` message, as `u64`s so it is aligned for `cmsghdr`.
const CMSG_WORDS: usize = (MAX_FDS_PER_MESSAGE * mem::size_of::<RawFd>() + 64) / 8;

/// Receives one message without blocking. Attached descriptors arrive
/// close-on-exec and are appended to `fds` as owned fds. A message whose fds
/// did not all fit (`MSG_CTRUNC`: out of descriptors) is `FdsLost`, and
/// whatever fds did arrive are closed; a truncated payload (`MSG_TRUNC`) is an
/// error (docs/DESIGN.md §3.10).
pub fn recv_message(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<Recv> {
    let mut cmsg_space = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_space.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = mem::size_of_val(&cmsg_space) as _;

    // SAFETY: `msg` points at `iov` (backed by `buf`) and at `cmsg_space`; both
    // outlive the call and their lengths are the buffers' real sizes.
    let n = match unsafe { syscall!(recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT)) } {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Recv::WouldBlock),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Recv::WouldBlock),
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Ok(Recv::Closed),
        Err(e) => return Err(e),
    };

    let first_new = fds.len();
    // SAFETY: the kernel filled `msg.msg_control` with `msg_controllen` bytes of
    // well-formed cmsghdrs; the CMSG_* helpers walk exactly that region.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    fds.push(owned(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        fds.truncate(first_new); // closes them
        return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated message on the rcluster channel"));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        fds.truncate(first_new); // closes them
        return Ok(Recv::FdsLost(n));
    }
    if n == 0 && fds.len() == first_new {
        return Ok(Recv::Closed);
    }
    Ok(Recv::Message(n))
}
