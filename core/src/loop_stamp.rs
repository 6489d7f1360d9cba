//! Loop stamps: each worker says, in memory the primary's dispatcher reads
//! without a system call, whether its event loop is waiting for I/O or busy,
//! and since when (docs/DESIGN.md §15).
//!
//! The primary makes one small sealed file per worker ([`StampReader::create`])
//! and sends it over the worker's channel; the worker maps it writable
//! ([`StampWriter::adopt`]) and stamps one word from libuv's prepare and
//! check phases (and when an HTTP request starts); the primary maps it
//! read-only. One file per worker, not one for all: a worker can only ever
//! write its own stamp.
//!
//! The word is `time << 1 | busy`, `time` in nanoseconds of
//! `CLOCK_MONOTONIC` (the same clock in every process of the machine):
//! busy since `time`, or waiting for I/O since `time`; 0 until the first
//! stamp. One aligned 64-bit store writes it and one load reads it, so it is
//! never torn.
//!
//! The primary trusts nothing in it: a worker can write anything. Every
//! 64-bit value decodes ([`decode`]): a time in the future counts as now,
//! and nothing read from it is ever used as an index, a length or a count.
//! The worst a lying worker can do is to look busy (and be given fewer
//! connections) or idle (and be given what it would have got without stamps).
//! The file is sealed against resizing before it is sent, so the worker
//! cannot truncate it under the primary's mapping (which would make the
//! primary's next read a SIGBUS).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::sys::{self, SharedMapping};

/// The length of a stamp's mapping: one page (the smallest mapping); the
/// stamp is its first 8 bytes, alone on their cache line.
pub const STAMP_LEN: usize = 4096;

/// The length of the file: the stamp's page, then the page of the worker's
/// connection claims (`crate::connection_claims`), which both sides write.
pub const FILE_LEN: usize = STAMP_LEN + crate::connection_claims::CLAIMS_LEN;

const BUSY: u64 = 1;

/// What a stamp says, as the primary reads it at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The loop is running JS (or anything but waiting for I/O).
    pub busy: bool,
    /// For how long it has been busy, or waiting: the age of the stamp.
    pub age: Duration,
}

impl Reading {
    /// How long the loop has been busy now (zero while it waits for I/O).
    pub fn busy_for(&self) -> Duration {
        if self.busy {
            self.age
        } else {
            Duration::ZERO
        }
    }
}

/// What the stamp `word` says at `now_ns` (both `CLOCK_MONOTONIC`
/// nanoseconds); `None` before the first stamp (0). Total: any value a
/// worker may have written decodes, and a time after `now_ns` reads as
/// `now_ns` (age zero).
pub fn decode(word: u64, now_ns: u64) -> Option<Reading> {
    if word == 0 {
        return None;
    }
    let at = word >> 1;
    Some(Reading { busy: word & BUSY != 0, age: Duration::from_nanos(now_ns.saturating_sub(at)) })
}

/// The word that says busy (or waiting) since `now_ns`.
pub fn encode(busy: bool, now_ns: u64) -> u64 {
    // A time of 0 would read as "never stamped": the clock is past it after boot.
    ((now_ns.max(1) & (u64::MAX >> 1)) << 1) | u64::from(busy)
}

/// The primary's read-only view of one worker's stamp.
#[derive(Debug)]
pub struct StampReader {
    map: SharedMapping,
}

// SAFETY: the mapping is only read, with one atomic load; it is process
// memory valid until the reader drops, whichever thread holds it.
unsafe impl Send for StampReader {}

impl StampReader {
    /// Makes a worker's stamp: a new sealed file of [`FILE_LEN`] bytes
    /// (zero: never stamped, no claims), its first page mapped here for
    /// reading; the fd is what the worker maps.
    pub fn create() -> io::Result<(StampReader, OwnedFd)> {
        let fd = sys::anonymous_file(c"rcluster-loop-stamp")?;
        sys::set_file_len(fd.as_fd(), FILE_LEN as u64)?;
        // Before anyone else has it: its size can never change again.
        sys::seal_size(fd.as_fd())?;
        let map = SharedMapping::read_only(fd.as_fd(), STAMP_LEN)?;
        Ok((StampReader { map }, fd))
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and STAMP_LEN long, so its
        // first 8 bytes are an aligned u64 that lives as long as `self`;
        // another process writes it only with atomic stores, and this
        // process only loads it.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().cast()) }
    }

    /// What the stamp says now (`now_ns`: [`sys::monotonic_ns`]).
    pub fn read(&self, now_ns: u64) -> Option<Reading> {
        decode(self.word().load(Ordering::Relaxed), now_ns)
    }
}

/// A worker's writable view of its stamp.
#[derive(Debug)]
pub struct StampWriter {
    map: SharedMapping,
}

// SAFETY: as for the reader: one atomic word in process memory valid until
// the writer drops.
unsafe impl Send for StampWriter {}
unsafe impl Sync for StampWriter {}

impl StampWriter {
    /// Maps the stamp file the primary sent (at least [`STAMP_LEN`] long, or
    /// an error: a shorter one would fault on access).
    pub fn adopt(fd: OwnedFd) -> io::Result<StampWriter> {
        if sys::file_len(fd.as_fd())? < STAMP_LEN as u64 {
            return Err(io::Error::from_raw_os_error(sys::errno::EINVAL));
        }
        let map = SharedMapping::new(fd.as_fd(), STAMP_LEN)?;
        Ok(StampWriter { map })
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: as in `StampReader::word`; this process writes it only
        // with atomic stores.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().cast()) }
    }

    /// The loop is busy from now on (it left its wait for I/O, or started
    /// an HTTP request's handler).
    pub fn busy(&self, now_ns: u64) {
        self.word().store(encode(true, now_ns), Ordering::Relaxed);
    }

    /// The loop is about to wait for I/O.
    pub fn idle(&self, now_ns: u64) {
        self.word().store(encode(false, now_ns), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn every_word_decodes_and_a_future_time_reads_as_now() {
        let now = 1_000 * MS;
        // (word, what it says at `now`)
        let cases: &[(u64, Option<Reading>)] = &[
            (0, None),
            (encode(true, now - 5 * MS), Some(Reading { busy: true, age: Duration::from_millis(5) })),
            (encode(false, now - 5 * MS), Some(Reading { busy: false, age: Duration::from_millis(5) })),
            // From the future (a lying or confused worker): age zero.
            (encode(true, now + 7 * MS), Some(Reading { busy: true, age: Duration::ZERO })),
            (u64::MAX, Some(Reading { busy: true, age: Duration::ZERO })),
            (1, Some(Reading { busy: true, age: Duration::from_nanos(now) })),
            (2, Some(Reading { busy: false, age: Duration::from_nanos(now - 1) })),
        ];
        for (word, expected) in cases {
            assert_eq!(decode(*word, now), *expected, "word {word:#x}");
        }
        assert_eq!(decode(encode(true, now - MS), now).unwrap().busy_for(), Duration::from_millis(1));
        assert_eq!(decode(encode(false, now - MS), now).unwrap().busy_for(), Duration::ZERO);
        // Time 0 still says "stamped".
        assert!(decode(encode(false, 0), now).is_some());
    }

    #[test]
    fn a_worker_writes_what_the_primary_reads_and_cannot_resize_it() {
        let (reader, fd) = StampReader::create().unwrap();
        assert!(sys::is_size_sealed(fd.as_fd()));
        let writer = StampWriter::adopt(sys::dup_cloexec(fd.as_fd()).unwrap()).unwrap();
        let now = sys::monotonic_ns();
        assert_eq!(reader.read(now), None);
        writer.busy(now - 3 * MS);
        assert_eq!(reader.read(now), Some(Reading { busy: true, age: Duration::from_millis(3) }));
        writer.idle(now);
        assert_eq!(reader.read(now), Some(Reading { busy: false, age: Duration::ZERO }));
        assert!(sys::set_file_len(fd.as_fd(), 0).is_err(), "sealed: the worker cannot shrink it");
        // A file too short to hold a stamp is refused rather than mapped.
        let short = sys::anonymous_file(c"short").unwrap();
        assert!(StampWriter::adopt(short).is_err());
    }
}
