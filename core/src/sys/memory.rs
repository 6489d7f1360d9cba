//! The shared memory region's file and mapping (`core/src/shared/`): an
//! anonymous file every process of a cluster maps, sealed against resizing
//! where the system can (docs/DESIGN.md §9.1).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use super::owned;

/// A new anonymous file, close-on-exec and empty, named `name` for
/// `/proc/<pid>/fd` only. Linux: a memfd that accepts seals ([`seal_size`]).
/// Elsewhere: a POSIX shm object, unlinked at once so only fds name it.
pub fn anonymous_file(name: &CStr) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `name` is NUL-terminated and lives across the call; the
        // descriptor returned is ours alone.
        let fd = unsafe { syscall!(memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING))? };
        Ok(owned(fd))
    }
    #[cfg(not(target_os = "linux"))]
    {
        // `name` is for memfds only: a shm name must be unique and short.
        let _ = name;
        let unique =
            format!("/rcluster-{}-{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap_or_default().as_nanos());
        let unique = std::ffi::CString::new(unique).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `unique` is NUL-terminated and lives across the call; the
        // descriptor returned is ours alone.
        let fd = owned(unsafe {
            syscall!(shm_open(unique.as_ptr(), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600 as libc::c_uint))?
        });
        // SAFETY: as above; the object stays alive through `fd`.
        let _ = unsafe { syscall!(shm_unlink(unique.as_ptr())) };
        super::set_cloexec(std::os::fd::AsFd::as_fd(&fd))?;
        Ok(fd)
    }
}

/// A shared, read-write mapping of the first `len` bytes of a file, unmapped
/// when dropped. It stays valid after the file's descriptor is closed.
///
/// Other processes map the same file and write it at any time: whoever reads
/// or writes through [`SharedMapping::as_ptr`] must use atomics or tolerate
/// torn copies, and is the one to say so in its `unsafe`.
#[derive(Debug)]
pub struct SharedMapping {
    base: NonNull<u8>,
    len: usize,
}

impl SharedMapping {
    /// Maps `len` bytes of the file behind `fd`, which must be at least that
    /// long: a page past its end would be a SIGBUS on access.
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMapping> {
        Self::new_at(fd, 0, len)
    }

    /// Maps `len` bytes of the file behind `fd` from `offset` (a multiple of
    /// the page size), which must lie within the file, as for [`SharedMapping::new`].
    pub fn new_at(fd: BorrowedFd<'_>, offset: usize, len: usize) -> io::Result<SharedMapping> {
        let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a fresh mapping at an address the kernel picks, so no
        // existing memory is affected; `fd` is open for the borrow.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast()).expect("mmap never returns NULL on success");
        Ok(SharedMapping { base, len })
    }

    /// Maps `len` bytes of the file behind `fd` for reading only: what
    /// another process writes is seen, and nothing this process does can
    /// write it. The file must be at least `len` long, as for [`SharedMapping::new`].
    pub fn read_only(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMapping> {
        // SAFETY: as in `new`: a fresh mapping at an address the kernel
        // picks; `fd` is open for the borrow.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast()).expect("mmap never returns NULL on success");
        Ok(SharedMapping { base, len })
    }

    /// The first byte of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are a mapping made by `new`, unmapped only
        // here; the owner of the SharedMapping hands out no reference that
        // outlives it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Forbids changing the file's size from now on, and adding or removing
/// seals (Linux memfd seals `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`).
/// Elsewhere a no-op: POSIX shm has no seals.
pub fn seal_size(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: integer arguments only; `fd` is open for the borrow.
        unsafe {
            syscall!(fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL))?
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
    Ok(())
}

/// Whether `fd` carries exactly the seals [`seal_size`] adds (never, where
/// there are no seals).
pub fn is_size_sealed(fd: BorrowedFd<'_>) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: integer arguments only; `fd` is open for the borrow.
        let seals = unsafe { syscall!(fcntl(fd.as_raw_fd(), libc::F_GET_SEALS)) };
        seals.is_ok_and(|s| s == libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        false
    }
}
