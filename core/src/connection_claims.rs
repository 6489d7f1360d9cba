//! Connection claims: each connection dealt to a worker is either taken by
//! that worker or taken back by the dispatcher, never both, decided by one
//! compare-and-swap in memory the two share (docs/DESIGN.md §15).
//!
//! Why: a connection dealt to a worker whose event loop then blocks (a 50 ms
//! handler that started just before) waits in the worker's channel until
//! the handler returns, though another worker is idle. The primary still
//! holds its copy of every connection until the worker acknowledges it, so
//! it can give that copy to another worker, provided the first never reads
//! the socket: two processes reading one TCP stream would each get part of
//! the request. So before the worker hands a received connection to its
//! JS, it claims it; before the dispatcher deals it elsewhere, it revokes
//! it. Whichever swap comes first wins, and the loser knows.
//!
//! The claims live in the second page of the worker's loop-stamp file
//! (`crate::loop_stamp::FILE_LEN`), mapped read-write by both. Its first
//! word says the worker checks claims ([`ENABLED`]); the dispatcher takes
//! nothing back from a worker that has not said so (one that could not map
//! the page would read a revoked socket too). Then a ring of [`SLOTS`]
//! slots: the `seq`th connection sent on the channel (its number travels in
//! the `DISPATCH` message) has slot `seq % SLOTS`, whose word is
//! `seq << 2 | state`. The dispatcher writes `DEALT` before sending; the
//! worker swaps `DEALT` for `CLAIMED`, the dispatcher swaps `DEALT` for
//! `REVOKED`. A slot reused for a later connection (more than [`SLOTS`]
//! unacknowledged, which the window never allows) no longer holds the
//! earlier `seq` with `DEALT`, so the dispatcher cannot revoke that one, and
//! the worker takes it.
//!
//! Trust: the worker can write anything in the page. The dispatcher only
//! ever compares and swaps whole words, uses nothing it reads as an index,
//! length or count, and the file is sealed against resizing. A worker that
//! claims what it was not sent, or revokes its own, changes only whether
//! its own connections are taken back: no other worker's.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::loop_stamp::STAMP_LEN;
use crate::sys::{self, SharedMapping};

/// The claims' page: one page after the stamp's.
pub const CLAIMS_LEN: usize = 4096;
const CLAIMS_OFFSET: usize = STAMP_LEN;

/// The first word once the worker checks every connection's claim.
pub const ENABLED: u64 = 0x7263_6c61_696d_7331; // "rclaims1"

/// Slots in the ring: the page's words after the first cache line.
pub const SLOTS: u64 = (CLAIMS_LEN as u64 / 8) - 8;
const FIRST_SLOT: usize = 8;

const DEALT: u64 = 1;
const CLAIMED: u64 = 2;
const REVOKED: u64 = 3;

fn word(seq: u64, state: u64) -> u64 {
    (seq << 2) | state
}

/// The claims' page, mapped.
#[derive(Debug)]
struct Page {
    map: SharedMapping,
}

// SAFETY: the mapping is only touched with atomic operations on aligned
// words; it is process memory valid until the page drops, whichever thread
// holds it or shares it.
unsafe impl Send for Page {}
unsafe impl Sync for Page {}

impl Page {
    fn map(fd: BorrowedFd<'_>) -> io::Result<Page> {
        if sys::file_len(fd)? < (CLAIMS_OFFSET + CLAIMS_LEN) as u64 {
            return Err(io::Error::from_raw_os_error(sys::errno::EINVAL));
        }
        Ok(Page { map: SharedMapping::new_at(fd, CLAIMS_OFFSET, CLAIMS_LEN)? })
    }

    fn at(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < CLAIMS_LEN / 8);
        // SAFETY: the mapping is page-aligned and CLAIMS_LEN long, `index`
        // is below CLAIMS_LEN / 8 (every caller computes it from constants
        // or `% SLOTS`), so this is an aligned u64 inside it that lives as
        // long as `self`; the other process touches it only atomically.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().cast::<u64>().add(index)) }
    }

    fn slot(&self, seq: u64) -> &AtomicU64 {
        self.at(FIRST_SLOT + (seq % SLOTS) as usize)
    }
}

/// The dispatcher's side: marks each connection dealt, and takes back one
/// the worker has not claimed.
#[derive(Debug)]
pub struct ClaimBook {
    page: Page,
}

impl ClaimBook {
    /// Maps the claims' page of a loop-stamp file (`crate::loop_stamp::StampReader::create`).
    pub fn map(fd: BorrowedFd<'_>) -> io::Result<ClaimBook> {
        Ok(ClaimBook { page: Page::map(fd)? })
    }

    /// Whether the worker checks claims: only then may anything be revoked.
    pub fn enabled(&self) -> bool {
        self.page.at(0).load(Ordering::Acquire) == ENABLED
    }

    /// The `seq`th connection is about to be sent: unclaimed.
    pub fn deal(&self, seq: u64) {
        self.page.slot(seq).store(word(seq, DEALT), Ordering::Release);
    }

    /// Takes the `seq`th connection back: true if the worker had not
    /// claimed it (it never will now, and closes its copy unread).
    pub fn revoke(&self, seq: u64) -> bool {
        self.enabled()
            && self
                .page
                .slot(seq)
                .compare_exchange(word(seq, DEALT), word(seq, REVOKED), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The worker's side: claims each connection before its JS sees it.
#[derive(Debug)]
pub struct ClaimTaker {
    page: Page,
}

impl ClaimTaker {
    /// Maps the claims' page of the loop-stamp file the primary sent, and
    /// says from now on every connection is claimed before it is used.
    pub fn adopt(fd: BorrowedFd<'_>) -> io::Result<ClaimTaker> {
        let page = Page::map(fd)?;
        page.at(0).store(ENABLED, Ordering::Release);
        Ok(ClaimTaker { page })
    }

    /// Claims the `seq`th connection: false if the dispatcher took it back
    /// (close it unread). A slot holding anything but that connection taken
    /// back means it is ours.
    pub fn claim(&self, seq: u64) -> bool {
        match self.page.slot(seq).compare_exchange(
            word(seq, DEALT),
            word(seq, CLAIMED),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(current) => current != word(seq, REVOKED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loop_stamp::StampReader;
    use std::os::fd::AsFd;

    fn pair() -> (ClaimBook, ClaimTaker) {
        let (_reader, fd) = StampReader::create().unwrap();
        let book = ClaimBook::map(fd.as_fd()).unwrap();
        assert!(!book.enabled());
        let taker = ClaimTaker::adopt(fd.as_fd()).unwrap();
        assert!(book.enabled());
        (book, taker)
    }

    #[test]
    fn each_connection_is_claimed_or_revoked_never_both() {
        let (book, taker) = pair();
        book.deal(5);
        assert!(taker.claim(5));
        assert!(!book.revoke(5), "claimed first: stays the worker's");
        book.deal(6);
        assert!(book.revoke(6));
        assert!(!taker.claim(6), "revoked first: the worker closes it");
        assert!(!book.revoke(6), "revoked once");
        // The ring wraps: a slot reused by a later connection.
        book.deal(7);
        book.deal(7 + SLOTS);
        assert!(!book.revoke(7), "overwritten: no longer revocable");
        assert!(taker.claim(7), "and the worker takes it");
        assert!(taker.claim(7 + SLOTS));
    }

    #[test]
    fn nothing_is_revoked_from_a_worker_that_does_not_check_claims() {
        let (_reader, fd) = StampReader::create().unwrap();
        let book = ClaimBook::map(fd.as_fd()).unwrap();
        book.deal(1);
        assert!(!book.revoke(1));
        // A short file (not one of ours) is refused, not mapped.
        let short = sys::anonymous_file(c"short").unwrap();
        sys::set_file_len(short.as_fd(), STAMP_LEN as u64).unwrap();
        assert!(ClaimTaker::adopt(short.as_fd()).is_err());
        assert!(ClaimBook::map(short.as_fd()).is_err());
    }

    #[test]
    fn whatever_a_worker_writes_decides_only_its_own_connections() {
        let (book, taker) = pair();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for seq in 0..10_000u64 {
            book.deal(seq);
            // The worker scribbles over the whole page, the enabled word too.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let index = (x % (CLAIMS_LEN as u64 / 8)) as usize;
            taker.page.at(index).store(x, Ordering::Relaxed);
            // Every outcome is a plain yes or no; nothing panics or faults.
            let _ = book.revoke(seq);
            let _ = book.enabled();
        }
        // Racing from two threads, exactly one side wins each connection.
        let (book, taker) = pair();
        let book = std::sync::Arc::new(book);
        let taker = std::sync::Arc::new(taker);
        for round in 0..200u64 {
            let base = round * 16;
            for seq in base..base + 16 {
                book.deal(seq);
            }
            let b = book.clone();
            let revoker = std::thread::spawn(move || (base..base + 16).map(|s| b.revoke(s)).collect::<Vec<_>>());
            let claimed: Vec<bool> = (base..base + 16).map(|s| taker.claim(s)).collect();
            let revoked = revoker.join().unwrap();
            for (c, r) in claimed.iter().zip(&revoked) {
                assert!(c != r, "claimed {c}, revoked {r}");
            }
        }
    }
}
