//! Socket addresses: the addresses a socket is bound or connected to, and
//! the conversions between Rust's addresses and the kernel's `sockaddr_*`.

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) fn unix_addr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if is_abstract(path) {
        // Linux's abstract namespace (`listen('\0name')`); no file is
        // created. The name is the whole of sun_path, the given bytes padded
        // with NULs, because that is the name Node 20's libuv binds and,
        // above all, connects to: a shorter one would be another socket.
        if bytes.len() > addr.sun_path.len() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        return Ok((addr, mem::size_of::<libc::sockaddr_un>() as libc::socklen_t));
    }
    if bytes.is_empty() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // As libuv's uv_pipe_bind (which Node uses): a path longer than sun_path
    // is cut to fit, keeping the terminating NUL, rather than refused.
    let bytes = &bytes[..bytes.len().min(addr.sun_path.len() - 1)];
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Whether a unix socket name is in Linux's abstract namespace (it starts
/// with a NUL byte): there is no file to create or remove.
pub fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

/// The address a listening socket is bound to.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<LocalAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes, and `len` is passed by pointer.
    unsafe {
        syscall!(getsockname(fd.as_raw_fd(), &mut storage as *mut _ as *mut libc::sockaddr, &mut len))?;
    }
    raw_to_local_addr(&storage, len)
}

/// The address of a connected socket's peer (`getpeername`).
pub fn peer_addr(fd: BorrowedFd<'_>) -> io::Result<LocalAddr> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes, and `len` is passed by pointer.
    unsafe {
        syscall!(getpeername(fd.as_raw_fd(), &mut storage as *mut _ as *mut libc::sockaddr, &mut len))?;
    }
    raw_to_local_addr(&storage, len)
}

/// Where a listening socket is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

fn raw_to_local_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<LocalAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(LocalAddr::Inet(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port)))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(LocalAddr::Inet(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            ))))
        }
        libc::AF_UNIX => {
            // SAFETY: the family says the storage holds a sockaddr_un.
            let a: &libc::sockaddr_un = unsafe { &*(storage as *const _ as *const libc::sockaddr_un) };
            let used = (len as usize).saturating_sub(mem::size_of::<libc::sa_family_t>());
            let raw: Vec<u8> = a.sun_path[..used.min(a.sun_path.len())]
                .iter()
                .map(|c| *c as u8)
                .take_while(|b| *b != 0)
                .collect();
            Ok(LocalAddr::Unix(PathBuf::from(OsStr::from_bytes(&raw))))
        }
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

pub(super) fn socket_addr_to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The unspecified address of a family, used when a server listens without a host.
pub fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}
