//! Shared state for every process of a cluster: named counters and a small
//! key/value table in one shared memory region that the primary creates
//! (`memfd_create`) and every worker and the agent maps. Every operation is a
//! few atomic instructions on the mapping, with no message to anyone.
//!
//! Layout (all little-endian, every slot 64-byte aligned so that two counters
//! never share a cache line):
//!
//! ```text
//! header         64 bytes: MAGIC u64, VERSION u32, COUNTER_SLOTS u32, TABLE_SLOTS u32
//! counters       COUNTER_SLOTS x 64 bytes:
//!                  key u64 (0 = free; else the name's hash), value i64 (this
//!                  machine's part), name_len u32, reserved u32, remote i64
//!                  (the other machines' parts, summed: written by the primary
//!                  when counters are exchanged across machines), name [NAME_MAX]
//! table          TABLE_SLOTS x TABLE_SLOT_LEN bytes:
//!                  key u64, version u64 (its low bit picks the live buffer),
//!                  writer u32 (pid holding the write lock, 0 = none), key_len u32,
//!                  len [u32; 2], reserved [u8; 8], key [NAME_MAX + 8],
//!                  buffers [[u8; VALUE_MAX]; 2]
//! ```
//!
//! Why a process killed at any instruction corrupts nothing:
//! - a counter is claimed by one compare-and-swap of its key and changed by one
//!   atomic add or compare-and-swap: each is all or nothing;
//! - a table value is written into the buffer readers are *not* reading, then
//!   published by one increment of `version`; a writer that dies before the
//!   increment leaves the old value live, one that dies after leaves the new.
//!   Its write lock names its pid, so the next writer sees it is dead and takes
//!   the lock over;
//! - a name is written after its slot is claimed; a reader that finds the hash
//!   but no name yet takes the hash as the identity (64 bits: two names of one
//!   table colliding is a 1-in-10^13 event).
//!
//! Why a worker that scribbles on the region cannot crash or hang another
//! process (every process maps it writable, so any of them can write anything):
//! - every field read from the region is copied out once and validated on the
//!   copy (name and value lengths against their bounds, a name against the
//!   slot's hash, UTF-8); a slot that fails is counted as a refused input
//!   (surface `sharedMemory`) and skipped, never indexed past;
//! - a write lock waits at most `lock_wait` (default [`LOCK_WAIT`]): a holder
//!   that is gone (or is no process: 0, negative, a zombie) is taken over, a
//!   live one makes the write fail with [`SharedError::LockTimeout`]; a seqlock
//!   read that never sees a stable version fails with [`SharedError::Busy`];
//! - the memfd is sealed against shrinking (Linux), so no process can truncate
//!   the file under the others' mappings (which would make their next access
//!   SIGBUS).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::rejections;
use crate::sys::{self, SharedMapping};

pub const MAGIC: u64 = u64::from_le_bytes(*b"RCLSHM01");
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
/// Most counters a cluster may name.
pub const COUNTER_SLOTS: usize = 1024;
pub const COUNTER_SLOT_LEN: usize = 64;
/// Longest counter name or table key, in UTF-8 bytes.
pub const NAME_MAX: usize = 32;
/// Most keys the table may hold (a deleted key keeps its slot).
pub const TABLE_SLOTS: usize = 256;
/// Largest value the table may hold, in bytes.
pub const VALUE_MAX: usize = 1024;
const TABLE_HEAD_LEN: usize = 40 + NAME_MAX + 8;
pub const TABLE_SLOT_LEN: usize = TABLE_HEAD_LEN + 2 * VALUE_MAX;
pub const COUNTERS_AT: usize = HEADER_LEN;
/// Where a counter's value is within its slot.
pub const COUNTER_VALUE_AT: usize = 8;
/// Where the other machines' parts of a counter are within its slot.
pub const COUNTER_REMOTE_AT: usize = 24;
const COUNTER_NAME_AT: usize = 32;
const TABLE_AT: usize = COUNTERS_AT + COUNTER_SLOTS * COUNTER_SLOT_LEN;
pub const REGION_LEN: usize = TABLE_AT + TABLE_SLOTS * TABLE_SLOT_LEN;
/// A table value's length that means "deleted".
const ABSENT: u32 = u32::MAX;
/// How long a table write waits for a slot's lock, and a table read for a
/// version that holds still, before failing. A legitimate writer holds the
/// lock for the copy of at most VALUE_MAX bytes (microseconds); 50 ms covers
/// a writer descheduled while holding it even with many more runnable
/// processes than cores (CFS gives each a slice of a few ms, so a preempted
/// holder runs again well within it; the waiter sleeps, which helps). It is
/// also what a lock planted by a hostile worker costs each other process's
/// event loop, once per lock (`StuckLocks`): `bench/adversary.js` `shm`
/// measured 250 ms there as a quarter of the victims' HTTP rate.
pub const LOCK_WAIT: Duration = Duration::from_millis(50);

/// Why a shared-state operation cannot be done.
#[derive(Debug, PartialEq, Eq)]
pub enum SharedError {
    /// A name or key longer than `NAME_MAX` bytes, or empty.
    BadName(usize),
    /// A value longer than `VALUE_MAX` bytes.
    ValueTooLarge(usize),
    /// Every counter slot is taken.
    CountersFull,
    /// Every table slot is taken.
    TableFull,
    /// A live process (`holder`, a pid) held the key's write lock for the
    /// whole wait: a writer stopped mid-write, or a lock forged by a process
    /// that writes the region directly.
    LockTimeout { holder: u32, waited: Duration },
    /// The key's value changed under every read for the whole wait: a
    /// process rewrites its version without end.
    Busy { waited: Duration },
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SharedError::BadName(len) => {
                write!(f, "a shared name must be 1 to {NAME_MAX} bytes of UTF-8; this one has {len}")
            }
            SharedError::ValueTooLarge(len) => {
                write!(f, "a shared table value must be at most {VALUE_MAX} bytes; this one has {len}")
            }
            SharedError::CountersFull => write!(f, "all {COUNTER_SLOTS} shared counters are in use"),
            SharedError::TableFull => write!(f, "all {TABLE_SLOTS} keys of the shared table are in use"),
            SharedError::LockTimeout { holder, waited } => write!(
                f,
                "the shared table key's write lock was held by process {holder} for {} ms: it is stopped, or it wrote the lock into shared memory without taking it",
                waited.as_millis()
            ),
            SharedError::Busy { waited } => write!(
                f,
                "the shared table key's value changed under every read for {} ms: a process keeps rewriting it",
                waited.as_millis()
            ),
        }
    }
}

/// FNV-1a, never 0 (0 marks a free slot).
fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if h == 0 {
        1
    } else {
        h
    }
}

fn check_name(name: &[u8]) -> Result<(), SharedError> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(SharedError::BadName(name.len()));
    }
    Ok(())
}

/// One mapping of the region in this process.
#[derive(Debug)]
pub struct Region {
    /// REGION_LEN bytes, unmapped when the region is dropped.
    map: SharedMapping,
    /// [`LOCK_WAIT`] unless set (`set_lock_wait`), in microseconds.
    lock_wait_us: AtomicU64,
    /// Locks this process already waited out (see [`StuckLocks`]).
    stuck: StuckLocks,
}

/// Table locks this process waited the whole wait for, by the lock word's
/// offset in the region, with the live holder that kept it. A lock forged by
/// a process that writes the region directly names a live pid forever: if
/// every write to that key waited [`LOCK_WAIT`] again, a hostile worker could
/// stall every other process's event loop for that long per call. Once waited
/// out, a write that finds the same holder still there after the brief spin a
/// legitimate writer is done within fails at once. The entry is gone as soon
/// as the lock is seen free or held by another pid, or its holder dies (then
/// the lock is taken over as usual). Bounded: the oldest entry makes room.
#[derive(Debug, Default)]
struct StuckLocks(parking_lot::Mutex<Vec<(usize, u32)>>);

impl StuckLocks {
    const MAX: usize = 64;

    fn is_stuck(&self, at: usize, holder: u32) -> bool {
        self.0.lock().iter().any(|&(a, h)| a == at && h == holder)
    }

    fn remember(&self, at: usize, holder: u32) {
        let mut stuck = self.0.lock();
        stuck.retain(|&(a, _)| a != at);
        if stuck.len() >= Self::MAX {
            stuck.remove(0);
        }
        stuck.push((at, holder));
    }

    fn forget(&self, at: usize) {
        let mut stuck = self.0.lock();
        if !stuck.is_empty() {
            stuck.retain(|&(a, _)| a != at);
        }
    }
}

/// A refused slot: counted and described, then skipped by the caller.
fn corrupt(what: &'static str, index: usize, detail: impl FnOnce() -> String) {
    rejections::reject("sharedMemory", || format!("{what} slot {index}: {}", detail()));
}

// SAFETY: the region is only ever accessed through atomics, or through the
// table's versioned copies, which tolerate concurrent writers by design.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

/// A new, empty file for a region.
fn anonymous_file() -> io::Result<OwnedFd> {
    sys::anonymous_file(c"rcluster-shared")
}

/// This process's mapping of a region's file.
fn map(fd: &OwnedFd) -> io::Result<SharedMapping> {
    SharedMapping::new(fd.as_fd(), REGION_LEN)
}

impl Region {
    fn at(map: SharedMapping) -> Region {
        Region { map, lock_wait_us: AtomicU64::new(LOCK_WAIT.as_micros() as u64), stuck: StuckLocks::default() }
    }

    /// How long a table write waits for a lock held by a live process, and a
    /// table read for a stable value, before failing ([`LOCK_WAIT`] by default).
    pub fn set_lock_wait(&self, wait: Duration) {
        self.lock_wait_us.store(wait.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    fn lock_wait(&self) -> Duration {
        Duration::from_micros(self.lock_wait_us.load(Ordering::Relaxed))
    }

    /// Creates the region (the primary). The fd is for passing to the other
    /// processes; the mapping stays valid after it is closed.
    pub fn create() -> io::Result<(Region, OwnedFd)> {
        let fd = anonymous_file()?;
        sys::set_file_len(fd.as_fd(), REGION_LEN as u64)?;
        // Every process maps the file, and one that shrank it would make the
        // others' next access to the cut pages a SIGBUS.
        sys::seal_size(fd.as_fd())?;
        let region = Region::at(map(&fd)?);
        // The file starts zeroed: every slot free. The header goes last, so a
        // region whose creation failed half way is never taken for a valid one.
        region.u32_at(8).store(VERSION, Ordering::Relaxed);
        region.u32_at(12).store(COUNTER_SLOTS as u32, Ordering::Relaxed);
        region.u32_at(16).store(TABLE_SLOTS as u32, Ordering::Relaxed);
        region.u64_at(0).store(MAGIC, Ordering::Release);
        Ok((region, fd))
    }

    /// Maps the region another process created, checking that it is one.
    pub fn open(fd: OwnedFd) -> io::Result<Region> {
        let size = sys::file_len(fd.as_fd())? as usize;
        if size < REGION_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the shared memory region is too small"));
        }
        let region = Region::at(map(&fd)?);
        let valid = region.u64_at(0).load(Ordering::Acquire) == MAGIC
            && region.u32_at(8).load(Ordering::Relaxed) == VERSION
            && region.u32_at(12).load(Ordering::Relaxed) as usize == COUNTER_SLOTS
            && region.u32_at(16).load(Ordering::Relaxed) as usize == TABLE_SLOTS;
        if !valid {
            // Any process that maps the region may have overwritten its
            // header since the primary wrote it; refusing the region then
            // would keep every worker forked later from starting. A file
            // with exactly the seals and size `create` gives it is the
            // primary's region (the seals cannot be changed after
            // F_SEAL_SEAL), so it is mapped anyway, and the damage counted.
            if size == REGION_LEN && sys::is_size_sealed(fd.as_fd()) {
                rejections::reject("sharedMemory", || "the region's header was overwritten by a process that maps it".to_string());
                return Ok(region);
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not an rcluster shared memory region of this version"));
        }
        Ok(region)
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= REGION_LEN);
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned).
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    fn i64_at(&self, offset: usize) -> &AtomicI64 {
        debug_assert!(offset % 8 == 0 && offset + 8 <= REGION_LEN);
        // SAFETY: as u64_at.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicI64>() }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset + 4 <= REGION_LEN);
        // SAFETY: in bounds and 4-aligned.
        unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// Only ever called with offsets and lengths computed from the layout's
    /// constants and lengths already checked against their bounds, never with
    /// a number read from the region unchecked: the assert cannot fire on
    /// what another process wrote.
    fn bytes(&self, offset: usize, len: usize) -> *mut u8 {
        assert!(offset + len <= REGION_LEN);
        // SAFETY: in bounds, checked above.
        unsafe { self.map.as_ptr().add(offset) }
    }

    /// Copies `out.len()` bytes at `offset` out of the region, one atomic
    /// load per byte: another process may be writing them, so what is
    /// validated afterwards is this copy, never the live bytes read twice.
    /// False (nothing copied) if the range is not inside the region.
    fn copy_out(&self, offset: usize, out: &mut [u8]) -> bool {
        if offset.checked_add(out.len()).is_none_or(|end| end > REGION_LEN) {
            return false;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above); AtomicU8 has the layout of u8
            // and any alignment will do.
            *byte = unsafe { &*self.map.as_ptr().add(offset + i).cast::<AtomicU8>() }.load(Ordering::Relaxed);
        }
        true
    }

    /// The name (or table key) of the slot at `slot`, validated: None if the
    /// slot is free, claimed but not named yet, or corrupt (counted).
    fn slot_name(&self, what: &'static str, index: usize, slot: usize, len_at: usize, name_at: usize) -> Option<String> {
        let key = self.u64_at(slot).load(Ordering::Acquire);
        if key == 0 {
            return None;
        }
        let len = self.u32_at(slot + len_at).load(Ordering::Acquire) as usize;
        if len == 0 {
            return None; // claimed, name not written yet (or its writer died)
        }
        if len > NAME_MAX {
            corrupt(what, index, || format!("name length {len} > {NAME_MAX}"));
            return None;
        }
        let mut name = [0u8; NAME_MAX];
        let name = &mut name[..len];
        if !self.copy_out(slot + name_at, name) {
            return None;
        }
        if hash(name) != key {
            corrupt(what, index, || format!("name {} does not match its hash", rejections::describe_bytes(name)));
            return None;
        }
        match std::str::from_utf8(name) {
            Ok(name) => Some(name.to_owned()),
            Err(_) => {
                corrupt(what, index, || format!("name {} is not UTF-8", rejections::describe_bytes(name)));
                None
            }
        }
    }

    /// Finds or claims the slot of a name in a table of `slots` slots of
    /// `slot_len` bytes at `at`, whose first word is the key and whose name
    /// length and name are at `len_at` and `name_at` within the slot.
    fn find_or_claim(&self, name: &[u8], at: usize, slots: usize, slot_len: usize, len_at: usize, name_at: usize) -> Option<usize> {
        let key = hash(name);
        let start = (key % slots as u64) as usize;
        for probe in 0..slots {
            let index = (start + probe) % slots;
            let slot = at + index * slot_len;
            let word = self.u64_at(slot);
            let mut current = word.load(Ordering::Acquire);
            if current == 0 {
                match word.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        // SAFETY: the slot is ours; its name bytes are written once, here.
                        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), self.bytes(slot + name_at, name.len()), name.len()) };
                        self.u32_at(slot + len_at).store(name.len() as u32, Ordering::Release);
                        return Some(index);
                    }
                    Err(actual) => current = actual,
                }
            }
            if current == key && self.name_matches(slot, len_at, name_at, name) {
                return Some(index);
            }
        }
        None
    }

    fn name_matches(&self, slot: usize, len_at: usize, name_at: usize, name: &[u8]) -> bool {
        let len = self.u32_at(slot + len_at).load(Ordering::Acquire) as usize;
        if len == 0 {
            return true; // claimed, name not written yet (or its writer died): the hash decides
        }
        // The length is compared first: `name` is at most NAME_MAX bytes, so
        // a length another process wrote never sizes the copy.
        if len != name.len() {
            return false;
        }
        let mut copy = [0u8; NAME_MAX];
        let copy = &mut copy[..len];
        self.copy_out(slot + name_at, copy) && copy == name
    }

    /// The slot of counter `name`, claimed now if it has none yet.
    pub fn counter(&self, name: &str) -> Result<usize, SharedError> {
        check_name(name.as_bytes())?;
        self.find_or_claim(name.as_bytes(), COUNTERS_AT, COUNTER_SLOTS, COUNTER_SLOT_LEN, 16, COUNTER_NAME_AT)
            .ok_or(SharedError::CountersFull)
    }

    fn counter_value(&self, slot: usize) -> &AtomicI64 {
        assert!(slot < COUNTER_SLOTS);
        self.i64_at(COUNTERS_AT + slot * COUNTER_SLOT_LEN + COUNTER_VALUE_AT)
    }

    /// Adds `n` and returns the new value (wrapping, as the hardware does).
    pub fn add(&self, slot: usize, n: i64) -> i64 {
        self.counter_value(slot).fetch_add(n, Ordering::AcqRel).wrapping_add(n)
    }

    pub fn get(&self, slot: usize) -> i64 {
        self.counter_value(slot).load(Ordering::Acquire)
    }

    /// Sets the counter to `value` if it holds `expected`; true if it did.
    pub fn compare_and_set(&self, slot: usize, expected: i64, value: i64) -> bool {
        self.counter_value(slot).compare_exchange(expected, value, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The counter slots' bytes, for JS to use as a `BigInt64Array` with
    /// `Atomics` (the same instructions as `AtomicI64`, without a native
    /// call per operation). Valid while this mapping lives.
    pub fn counter_bytes(&self) -> (*mut u8, usize) {
        (self.bytes(COUNTERS_AT, COUNTER_SLOTS * COUNTER_SLOT_LEN), COUNTER_SLOTS * COUNTER_SLOT_LEN)
    }

    /// The counters claimed and named so far: slot, name and this machine's
    /// part of each. A corrupt slot (see the module's doc) is counted and
    /// left out.
    pub fn counters(&self) -> Vec<(usize, String, i64)> {
        (0..COUNTER_SLOTS)
            .filter_map(|i| {
                let slot = COUNTERS_AT + i * COUNTER_SLOT_LEN;
                let name = self.slot_name("counter", i, slot, 16, COUNTER_NAME_AT)?;
                Some((i, name, self.get(i)))
            })
            .collect()
    }

    // Table slot fields, relative to the slot.
    const T_VERSION: usize = 8;
    const T_WRITER: usize = 16;
    const T_KEY_LEN: usize = 20;
    const T_LEN: usize = 24; // two u32
    const T_KEY: usize = 40;

    fn table_slot(&self, key: &[u8], claim: bool) -> Result<Option<usize>, SharedError> {
        check_name(key)?;
        if claim {
            return self
                .find_or_claim(key, TABLE_AT, TABLE_SLOTS, TABLE_SLOT_LEN, Self::T_KEY_LEN, Self::T_KEY)
                .map(|i| Some(TABLE_AT + i * TABLE_SLOT_LEN))
                .ok_or(SharedError::TableFull);
        }
        let h = hash(key);
        let start = (h % TABLE_SLOTS as u64) as usize;
        for probe in 0..TABLE_SLOTS {
            let slot = TABLE_AT + ((start + probe) % TABLE_SLOTS) * TABLE_SLOT_LEN;
            match self.u64_at(slot).load(Ordering::Acquire) {
                0 => return Ok(None),
                k if k == h && self.name_matches(slot, Self::T_KEY_LEN, Self::T_KEY, key) => return Ok(Some(slot)),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The value of `key`, or None if it was never set or was deleted.
    pub fn table_get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError> {
        let Some(slot) = self.table_slot(key.as_bytes(), false)? else { return Ok(None) };
        self.read_value(slot)
    }

    /// The live value of the table slot at `slot` (a seqlock read: copy,
    /// then check that the version did not move). A value length past
    /// VALUE_MAX is counted and read as no value.
    fn read_value(&self, slot: usize) -> Result<Option<Vec<u8>>, SharedError> {
        let version = self.u64_at(slot + Self::T_VERSION);
        let started = Instant::now();
        let mut tries = 0u32;
        loop {
            let before = version.load(Ordering::Acquire);
            let live = (before & 1) as usize;
            let len = self.u32_at(slot + Self::T_LEN + 4 * live).load(Ordering::Acquire);
            let value = if len == ABSENT || len as usize > VALUE_MAX {
                Err(len)
            } else {
                // A writer may be writing the *other* buffer, or, after two
                // more writes, this one: then `version` has moved and the
                // copy is thrown away.
                let mut out = vec![0u8; len as usize];
                self.copy_out(slot + TABLE_HEAD_LEN + live * VALUE_MAX, &mut out);
                Ok(out)
            };
            fence(Ordering::Acquire);
            if version.load(Ordering::Relaxed) == before {
                return Ok(match value {
                    Ok(value) => Some(value),
                    Err(ABSENT) => None,
                    Err(len) => {
                        corrupt("table", (slot - TABLE_AT) / TABLE_SLOT_LEN, || format!("value length {len} > {VALUE_MAX}"));
                        None
                    }
                });
            }
            // Only a completed write moves the version, so a legitimate
            // retry is rare; one process rewriting the version without end
            // must not hold this one here for ever.
            tries += 1;
            if tries % 16 == 0 {
                let waited = started.elapsed();
                if waited >= self.lock_wait() {
                    return Err(SharedError::Busy { waited });
                }
                std::thread::yield_now();
            }
        }
    }

    /// Sets `key` to `value` (None deletes it).
    pub fn table_set(&self, key: &str, value: Option<&[u8]>) -> Result<(), SharedError> {
        if let Some(value) = value {
            if value.len() > VALUE_MAX {
                return Err(SharedError::ValueTooLarge(value.len()));
            }
        }
        let slot = match self.table_slot(key.as_bytes(), value.is_some())? {
            Some(slot) => slot,
            None => return Ok(()), // deleting what was never set
        };
        let _lock = WriteLock::take(self.u32_at(slot + Self::T_WRITER), self.lock_wait(), &self.stuck, slot)?;
        let version = self.u64_at(slot + Self::T_VERSION);
        let spare = ((version.load(Ordering::Acquire) & 1) ^ 1) as usize;
        match value {
            Some(value) => {
                // SAFETY: in bounds; no reader trusts the spare buffer until
                // `version` is incremented below.
                unsafe {
                    std::ptr::copy_nonoverlapping(value.as_ptr(), self.bytes(slot + TABLE_HEAD_LEN + spare * VALUE_MAX, value.len()), value.len())
                };
                self.u32_at(slot + Self::T_LEN + 4 * spare).store(value.len() as u32, Ordering::Release);
            }
            None => self.u32_at(slot + Self::T_LEN + 4 * spare).store(ABSENT, Ordering::Release),
        }
        version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Keys that hold a value. A corrupt slot (see the module's doc) is
    /// counted and left out; so is a key whose value could not be read
    /// within the wait.
    pub fn table_keys(&self) -> Vec<String> {
        (0..TABLE_SLOTS)
            .filter_map(|i| {
                let slot = TABLE_AT + i * TABLE_SLOT_LEN;
                let key = self.slot_name("table", i, slot, Self::T_KEY_LEN, Self::T_KEY)?;
                matches!(self.read_value(slot), Ok(Some(_))).then_some(key)
            })
            .collect()
    }
}

/// A table slot's write lock: the writer's pid.
///
/// Waiting is bounded (`wait`, [`LOCK_WAIT`] by default):
/// - a holder that is not a live process (gone, a zombie, or a number that is
///   no pid) is taken over at once: a dead writer only ever touched the spare
///   buffer, so the value readers see is whole;
/// - a holder still alive when the wait is over makes the write fail with
///   [`SharedError::LockTimeout`]. It is not taken over: a writer that is only
///   stopped (SIGSTOP, a debugger, a descheduled process) would resume its
///   copy into the buffer the taker has just published, and readers would
///   see a torn value; and a lock forged by a process writing the region
///   directly would be forged again anyway. The caller gets a coded error it
///   can retry, never a hang.
struct WriteLock<'a>(&'a AtomicU32);

impl<'a> WriteLock<'a> {
    /// `at`: the lock's place in the region, for `stuck`.
    fn take(word: &'a AtomicU32, wait: Duration, stuck: &StuckLocks, at: usize) -> Result<Self, SharedError> {
        let me = std::process::id();
        let started = Instant::now();
        let mut spins = 0u32;
        let mut last_check = started;
        loop {
            let holder = match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    stuck.forget(at);
                    return Ok(WriteLock(word));
                }
                Err(holder) => holder,
            };
            spins += 1;
            if spins < 1024 {
                // A legitimate holder is done within microseconds.
                if spins % 64 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let now = Instant::now();
            // Whether the holder lives costs a syscall (and a /proc read):
            // asked at most once a millisecond.
            if spins == 1024 || now.duration_since(last_check) >= Duration::from_millis(1) {
                last_check = now;
                if !alive(holder) {
                    if word.compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                        stuck.forget(at);
                        return Ok(WriteLock(word));
                    }
                    continue;
                }
                if spins == 1024 {
                    if stuck.is_stuck(at, holder) {
                        // Waited out before, same live holder: no second wait.
                        return Err(SharedError::LockTimeout { holder, waited: now.duration_since(started) });
                    }
                    // Another holder than the one remembered, if any.
                    stuck.forget(at);
                }
            }
            let waited = now.duration_since(started);
            if waited >= wait {
                stuck.remember(at, holder);
                return Err(SharedError::LockTimeout { holder, waited });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// Whether `pid` names a live process. A number that is no pid (0, or
/// negative as a pid_t: `kill` would take it for a process group) is not one,
/// and neither is a zombie: a writer killed mid-write stays a zombie until
/// its parent reaps it, and the others must not wait for that.
fn alive(pid: u32) -> bool {
    let Ok(pid) = sys::Pid::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    sys::process_exists(pid) && !sys::is_zombie(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_layout_is_what_the_doc_says() {
        assert_eq!(COUNTER_SLOT_LEN, 8 + 8 + 4 + 4 + 8 + NAME_MAX);
        assert_eq!(COUNTER_NAME_AT + NAME_MAX, COUNTER_SLOT_LEN);
        assert_eq!(TABLE_HEAD_LEN % 8, 0);
        assert_eq!(TABLE_SLOT_LEN % 8, 0);
        assert_eq!(TABLE_AT % 64, 0);
        assert_eq!(REGION_LEN, 64 + 1024 * 64 + 256 * (80 + 2048));
    }

    #[test]
    fn counters_are_shared_between_mappings() {
        let (a, fd) = Region::create().unwrap();
        let b = Region::open(fd).unwrap();
        let sa = a.counter("visits").unwrap();
        let sb = b.counter("visits").unwrap();
        assert_eq!(sa, sb);
        assert_eq!(a.add(sa, 1), 1);
        assert_eq!(b.add(sb, 41), 42);
        assert_eq!(a.get(sa), 42);
        assert!(!b.compare_and_set(sb, 0, 7));
        assert!(b.compare_and_set(sb, 42, 7));
        assert_eq!(a.get(sa), 7);
        assert_ne!(a.counter("other").unwrap(), sa);
        assert_eq!(a.counters().len(), 2);
    }

    #[test]
    fn concurrent_adds_lose_nothing() {
        let (region, _fd) = Region::create().unwrap();
        let region = Arc::new(region);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let region = Arc::clone(&region);
                std::thread::spawn(move || {
                    let slot = region.counter("n").unwrap();
                    for _ in 0..100_000 {
                        region.add(slot, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(region.get(region.counter("n").unwrap()), 400_000);
    }

    #[test]
    fn names_are_bounded_and_the_counters_run_out_clearly() {
        let (region, _fd) = Region::create().unwrap();
        assert_eq!(region.counter(""), Err(SharedError::BadName(0)));
        assert_eq!(region.counter(&"x".repeat(NAME_MAX + 1)), Err(SharedError::BadName(NAME_MAX + 1)));
        assert!(region.counter(&"x".repeat(NAME_MAX)).is_ok());
        for i in 1..COUNTER_SLOTS {
            region.counter(&format!("c{i}")).unwrap();
        }
        assert_eq!(region.counter("one-too-many"), Err(SharedError::CountersFull));
        // Existing names are still found when the table is full.
        assert!(region.counter("c7").is_ok());
    }

    #[test]
    fn the_table_sets_gets_and_deletes() {
        let (a, fd) = Region::create().unwrap();
        let b = Region::open(fd).unwrap();
        assert_eq!(a.table_get("k").unwrap(), None);
        a.table_set("k", Some(b"hello")).unwrap();
        assert_eq!(b.table_get("k").unwrap().as_deref(), Some(&b"hello"[..]));
        b.table_set("k", Some(b"")).unwrap();
        assert_eq!(a.table_get("k").unwrap().as_deref(), Some(&b""[..]));
        a.table_set("k", None).unwrap();
        assert_eq!(b.table_get("k").unwrap(), None);
        assert_eq!(
            a.table_set("big", Some(&vec![0; VALUE_MAX + 1])),
            Err(SharedError::ValueTooLarge(VALUE_MAX + 1))
        );
        a.table_set("x", Some(b"1")).unwrap();
        assert_eq!(a.table_keys(), vec!["x".to_string()]);
    }

    #[test]
    fn a_writer_that_died_holding_the_lock_is_taken_over() {
        let (region, _fd) = Region::create().unwrap();
        region.table_set("k", Some(b"old")).unwrap();
        let slot = region.table_slot(b"k", false).unwrap().unwrap();
        // A dead writer: the lock names a pid that cannot exist, and it wrote
        // half a value into the spare buffer without publishing it.
        region.u32_at(slot + Region::T_WRITER).store(i32::MAX as u32 - 1, Ordering::Relaxed);
        let spare = ((region.u64_at(slot + Region::T_VERSION).load(Ordering::Relaxed) & 1) ^ 1) as usize;
        // SAFETY: 3 bytes inside the slot's spare buffer (`bytes` checks the bounds).
        unsafe { std::ptr::write_bytes(region.bytes(slot + TABLE_HEAD_LEN + spare * VALUE_MAX, 3), b'#', 3) };
        assert_eq!(region.table_get("k").unwrap().as_deref(), Some(&b"old"[..]));
        region.table_set("k", Some(b"new")).unwrap();
        assert_eq!(region.table_get("k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn readers_never_see_a_torn_value() {
        let (region, _fd) = Region::create().unwrap();
        let region = Arc::new(region);
        region.table_set("k", Some(&[0u8; 512])).unwrap();
        let writer = {
            let region = Arc::clone(&region);
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let b = (i % 251) as u8;
                    region.table_set("k", Some(&[b; 512])).unwrap();
                }
            })
        };
        for _ in 0..20_000 {
            let v = region.table_get("k").unwrap().unwrap();
            assert!(v.iter().all(|x| *x == v[0]), "torn read");
        }
        writer.join().unwrap();
    }

    #[test]
    fn a_lock_held_by_a_live_process_fails_the_write_within_the_wait() {
        let (region, _fd) = Region::create().unwrap();
        region.set_lock_wait(Duration::from_millis(50));
        region.table_set("k", Some(b"old")).unwrap();
        let slot = region.table_slot(b"k", false).unwrap().unwrap();
        // A lock naming a live process (this one's parent) that never lets go.
        let parent = std::os::unix::process::parent_id();
        region.u32_at(slot + Region::T_WRITER).store(parent, Ordering::Relaxed);
        let started = Instant::now();
        match region.table_set("k", Some(b"new")) {
            Err(SharedError::LockTimeout { holder, .. }) => assert_eq!(holder, parent),
            other => panic!("expected a lock timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(region.table_get("k").unwrap().as_deref(), Some(&b"old"[..]));
        // The same holder again: this process does not wait it out twice.
        region.set_lock_wait(Duration::from_secs(5));
        let again = Instant::now();
        assert!(matches!(region.table_set("k", Some(b"new")), Err(SharedError::LockTimeout { .. })));
        assert!(again.elapsed() < Duration::from_millis(100), "failed at once: {:?}", again.elapsed());
        region.set_lock_wait(Duration::from_millis(50));
        // A number that is no pid (negative as a pid_t: kill() would take it
        // for every process) is not a holder.
        region.u32_at(slot + Region::T_WRITER).store(u32::MAX, Ordering::Relaxed);
        region.table_set("k", Some(b"new")).unwrap();
        assert_eq!(region.table_get("k").unwrap().as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_version_that_never_holds_still_fails_the_read_within_the_wait() {
        let (region, _fd) = Region::create().unwrap();
        let region = Arc::new(region);
        region.set_lock_wait(Duration::from_millis(50));
        region.table_set("k", Some(b"v")).unwrap();
        let slot = region.table_slot(b"k", false).unwrap().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = {
            let (region, stop) = (Arc::clone(&region), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    region.u64_at(slot + Region::T_VERSION).fetch_add(2, Ordering::AcqRel);
                }
            })
        };
        let started = Instant::now();
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            outcomes.push(region.table_get("k"));
        }
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20 * 2));
        assert!(outcomes.iter().all(|o| matches!(o, Ok(Some(_)) | Err(SharedError::Busy { .. }))));
    }

    #[test]
    fn corrupt_names_and_lengths_are_skipped_not_read_past() {
        let (region, _fd) = Region::create().unwrap();
        let good = region.counter("good").unwrap();
        let bad = region.counter("bad").unwrap();
        region.table_set("k", Some(b"1")).unwrap();
        region.table_set("j", Some(b"2")).unwrap();
        let counter_slot = COUNTERS_AT + bad * COUNTER_SLOT_LEN;
        region.u32_at(counter_slot + 16).store(u32::MAX, Ordering::Relaxed);
        let names: Vec<_> = region.counters().into_iter().map(|(slot, name, _)| (slot, name)).collect();
        assert_eq!(names, vec![(good, "good".to_string())]);
        // A name that is not the one its hash says.
        region.u32_at(counter_slot + 16).store(3, Ordering::Relaxed);
        // SAFETY: 3 bytes inside the slot's name (`bytes` checks the bounds).
        unsafe { std::ptr::copy_nonoverlapping(b"bag".as_ptr(), region.bytes(counter_slot + COUNTER_NAME_AT, 3), 3) };
        assert_eq!(region.counters().len(), 1);
        let k = region.table_slot(b"k", false).unwrap().unwrap();
        region.u32_at(k + Region::T_KEY_LEN).store(0xFFFF_FFFF, Ordering::Relaxed);
        let j = region.table_slot(b"j", false).unwrap().unwrap();
        let live = (region.u64_at(j + Region::T_VERSION).load(Ordering::Relaxed) & 1) as usize;
        region.u32_at(j + Region::T_LEN + 4 * live).store(VALUE_MAX as u32 + 1, Ordering::Relaxed);
        assert_eq!(region.table_get("j").unwrap(), None);
        assert!(region.table_keys().is_empty());
        assert!(rejections::counts().iter().any(|(s, n)| *s == "sharedMemory" && *n >= 4));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_file_cannot_be_shrunk_under_the_mappings() {
        let (_region, fd) = Region::create().unwrap();
        let err = sys::set_file_len(fd.as_fd(), 0).expect_err("sealed against shrinking");
        assert_eq!(err.raw_os_error(), Some(sys::errno::EPERM));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_region_whose_header_was_overwritten_still_opens() {
        let (region, fd) = Region::create().unwrap();
        region.counter("kept").unwrap();
        region.u64_at(0).store(0x4141_4141, Ordering::Relaxed);
        region.u32_at(12).store(7, Ordering::Relaxed);
        // A copy for the second mapping.
        let dup = sys::dup_cloexec(fd.as_fd()).unwrap();
        let again = Region::open(dup).unwrap();
        assert_eq!(again.counters().len(), 1);
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let fd = anonymous_file().unwrap();
        sys::set_file_len(fd.as_fd(), REGION_LEN as u64).unwrap();
        assert!(Region::open(fd).is_err());
    }
}
