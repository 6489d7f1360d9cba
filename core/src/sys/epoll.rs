//! The epoll instance of the dispatcher's header stages: one descriptor in
//! its `poll` set for every connection waiting in a stage.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::owned;

/// An epoll instance, close-on-exec: the connections waiting in a header
/// stage are watched through it, edge-triggered, so the dispatcher's own
/// `poll` set holds one descriptor for all of them and a connection whose
/// bytes so far are only peeked at is reported again only when more arrive.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: a flag argument only.
    let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC))? };
    Ok(owned(fd))
}

/// Watches `fd` in `epoll` for input and hang-ups, edge-triggered, reported
/// with `token`; `modify` changes the token of one already watched.
pub fn epoll_watch(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64, modify: bool) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    let op = if modify { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
    // SAFETY: both descriptors are open for their borrows; `event` is a live epoll_event.
    unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut event))? };
    Ok(())
}

/// Stops watching `fd`. Needed before the descriptor is handed on: epoll
/// watches the open file, which lives on in the worker after this process
/// closes its copy, and could then no longer be removed.
pub fn epoll_unwatch(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: both descriptors are open for their borrows. ENOENT (never
    // watched: adding it failed) is fine.
    let _ = unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), &mut event)) };
}

/// A buffer for [`epoll_ready_into`], kept by the caller across turns so that
/// asking for news allocates nothing.
#[derive(Debug)]
pub struct EpollEvents {
    events: Vec<libc::epoll_event>,
}

impl EpollEvents {
    /// Room for `max` events a turn (at least one).
    pub fn with_capacity(max: usize) -> Self {
        EpollEvents { events: vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)] }
    }

    /// How many events one call reports at most.
    pub fn capacity(&self) -> usize {
        self.events.len()
    }
}

/// The tokens of up to `events.capacity()` watched descriptors with news,
/// appended to `out`, without waiting. `events` is only scratch space.
pub fn epoll_ready_into(epoll: BorrowedFd<'_>, events: &mut EpollEvents, out: &mut Vec<u64>) -> io::Result<()> {
    let events = &mut events.events;
    let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: `events` is writable for at least `max` entries; `epoll` is open for the borrow.
    let n = match unsafe { syscall!(epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, 0)) } {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
        Err(e) => return Err(e),
    };
    // A copy of each token: epoll_event is packed on x86-64.
    out.extend(events.iter().take(n).map(|e| e.u64));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn news_is_read_into_the_callers_buffer() {
        let epoll = epoll_create().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let (mut c, d) = UnixStream::pair().unwrap();
        epoll_watch(epoll.as_fd(), b.as_fd(), 7, false).unwrap();
        epoll_watch(epoll.as_fd(), d.as_fd(), 9, false).unwrap();
        let mut events = EpollEvents::with_capacity(1);
        let mut out = Vec::new();
        epoll_ready_into(epoll.as_fd(), &mut events, &mut out).unwrap();
        assert!(out.is_empty(), "nothing written yet");
        a.write_all(b"x").unwrap();
        c.write_all(b"y").unwrap();
        // One at a time, as the buffer holds one; the other is still due.
        epoll_ready_into(epoll.as_fd(), &mut events, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        epoll_ready_into(epoll.as_fd(), &mut EpollEvents::with_capacity(8), &mut out).unwrap();
        out.sort_unstable();
        assert_eq!(out, vec![7, 9]);
        // Edge-triggered: no news until more arrives.
        let mut again = Vec::new();
        epoll_ready_into(epoll.as_fd(), &mut EpollEvents::with_capacity(8), &mut again).unwrap();
        assert!(again.is_empty());
        epoll_unwatch(epoll.as_fd(), b.as_fd());
        a.write_all(b"x").unwrap();
        epoll_ready_into(epoll.as_fd(), &mut events, &mut again).unwrap();
        assert!(again.is_empty(), "unwatched");
    }
}
