//! epoll: the dispatcher's event loop waits in one (level-triggered, every
//! descriptor registered once rather than passed again at every turn), and
//! the header stages watch their waiting connections through another
//! (edge-triggered), itself one descriptor of the first.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::owned;
use super::poll::PollEvents;

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

/// Watches `fd` in `epoll`, level-triggered, for input (and, with
/// `writable`, room to write), reported with `token`; hang-ups and errors
/// are always reported. `modify` changes what one already watched is
/// watched for.
pub fn epoll_watch_level(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64, writable: bool, modify: bool) -> io::Result<()> {
    let events = if writable { libc::EPOLLIN | libc::EPOLLOUT } else { libc::EPOLLIN };
    let mut event = libc::epoll_event { events: events as u32, u64: token };
    let op = if modify { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
    // SAFETY: both descriptors are open for their borrows; `event` is a live epoll_event.
    unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut event))? };
    Ok(())
}

/// Starts watching `fd` for input, level-triggered, as one of several
/// epoll instances (one per dispatcher thread) of which an event wakes one
/// or a few, not all (`EPOLLEXCLUSIVE`, Linux 4.5).
pub fn epoll_watch_exclusive(epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32, u64: token };
    // SAFETY: both descriptors are open for their borrows; `event` is a live epoll_event.
    unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event))? };
    Ok(())
}

/// Stops watching the descriptor numbered `fd`. The caller must still hold
/// it open (the number could otherwise name another file by now); it is
/// taken by number because the dispatcher forgets a listening socket
/// through the listener that owns it. ENOENT (not watched) is fine.
pub fn epoll_forget(epoll: BorrowedFd<'_>, fd: RawFd) {
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: `epoll` is open for the borrow; epoll_ctl only looks the
    // number up, nothing is read or written through it.
    let _ = unsafe { syscall!(epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut event)) };
}

/// The same bits as `poll`'s `revents` for what epoll reported, so one
/// reader serves both (`is_writable`, `is_readable_or_closed`).
fn as_poll_events(events: u32) -> PollEvents {
    let mut out = 0;
    for (epoll_bit, poll_bit) in [
        (libc::EPOLLIN, libc::POLLIN),
        (libc::EPOLLOUT, libc::POLLOUT),
        (libc::EPOLLERR, libc::POLLERR),
        (libc::EPOLLHUP, libc::POLLHUP),
    ] {
        if events & epoll_bit as u32 != 0 {
            out |= poll_bit;
        }
    }
    out
}

/// Waits up to `timeout_ms` (-1: no limit) for news of watched descriptors
/// and appends each one's token and what happened to `out`. An interrupted
/// wait reports nothing, like a timeout.
pub fn epoll_wait_into(epoll: BorrowedFd<'_>, events: &mut EpollEvents, timeout_ms: i32, out: &mut Vec<(u64, PollEvents)>) -> io::Result<()> {
    let events = &mut events.events;
    let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
    // SAFETY: `events` is writable for at least `max` entries; `epoll` is open for the borrow.
    let n = match unsafe { syscall!(epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms)) } {
        Ok(n) => n as usize,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
        Err(e) => return Err(e),
    };
    // Copies of the fields: epoll_event is packed on x86-64.
    out.extend(events.iter().take(n).map(|e| {
        let (token, bits) = (e.u64, e.events);
        (token, as_poll_events(bits))
    }));
    Ok(())
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
    use std::io::Read;
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

    #[test]
    fn level_triggered_news_repeats_until_read_and_says_what_happened() {
        let epoll = epoll_create().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        epoll_watch_level(epoll.as_fd(), b.as_fd(), 3, false, false).unwrap();
        let mut events = EpollEvents::with_capacity(4);
        let mut out = Vec::new();
        epoll_wait_into(epoll.as_fd(), &mut events, 0, &mut out).unwrap();
        assert!(out.is_empty(), "nothing written yet");
        a.write_all(b"x").unwrap();
        for _ in 0..2 {
            out.clear();
            epoll_wait_into(epoll.as_fd(), &mut events, 1000, &mut out).unwrap();
            assert_eq!(out.len(), 1, "reported at every wait while unread");
            assert_eq!(out[0].0, 3);
            assert!(crate::sys::is_readable_or_closed(out[0].1));
            assert!(!crate::sys::is_writable(out[0].1), "not asked for");
        }
        b.read_exact(&mut [0u8; 1]).unwrap();
        out.clear();
        epoll_wait_into(epoll.as_fd(), &mut events, 0, &mut out).unwrap();
        assert!(out.is_empty(), "read: no more news");
        // Watched for room to write too: an empty socket has it at once.
        epoll_watch_level(epoll.as_fd(), b.as_fd(), 3, true, true).unwrap();
        epoll_wait_into(epoll.as_fd(), &mut events, 0, &mut out).unwrap();
        assert!(out.len() == 1 && crate::sys::is_writable(out[0].1));
        // A hang-up is news without asking.
        epoll_watch_level(epoll.as_fd(), b.as_fd(), 3, false, true).unwrap();
        drop(a);
        out.clear();
        epoll_wait_into(epoll.as_fd(), &mut events, 0, &mut out).unwrap();
        assert!(out.len() == 1 && crate::sys::is_readable_or_closed(out[0].1));
        epoll_forget(epoll.as_fd(), b.as_raw_fd());
        out.clear();
        epoll_wait_into(epoll.as_fd(), &mut events, 0, &mut out).unwrap();
        assert!(out.is_empty(), "forgotten");
        // Forgetting what is not watched is harmless.
        epoll_forget(epoll.as_fd(), b.as_raw_fd());
    }
}
