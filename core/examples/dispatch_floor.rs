//! The least work a dispatching primary can do per connection, as a yardstick
//! for rcluster's dispatcher (`node bench/dispatch-floor.js`): one thread
//! waits in epoll on a listening socket, accepts until `EAGAIN`, passes the
//! connections to child processes over unix seqpacket socketpairs (up to 8
//! descriptors per `SCM_RIGHTS` message, round-robin by batch) and closes its
//! own copies. No acknowledgements, no window, no policy, no statistics: what
//! is left is the kernel's cost of accept4 + sendmsg + close, which rcluster
//! pays too. The children read a request, answer `200 hi` and close.
//!
//! Usage: `dispatch_floor PORT CHILDREN`. Prints `READY <port>` once
//! listening; runs until killed (the children exit when the primary does:
//! their socketpair hangs up).

use std::io::Write;

const BATCH: usize = 8;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    if rc < 0 {
        eprintln!("dispatch_floor: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    rc
}

/// Sends `fds` (at most BATCH) in one message.
fn send_fds(sock: libc::c_int, fds: &[libc::c_int]) {
    let mut byte = 0u8;
    let mut iov = libc::iovec { iov_base: (&mut byte as *mut u8).cast(), iov_len: 1 };
    let mut control = [0u64; 16]; // 128 bytes, aligned: room for BATCH ints
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE((fds.len() * 4) as u32) } as usize;
    // SAFETY: msg_control points at `control`, large enough for one header and BATCH ints.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
    }
    // SAFETY: msg is fully initialised above. A full socketpair blocks: the
    // children are the bottleneck then, which the benchmark would show.
    check(unsafe { libc::sendmsg(sock, &msg, 0) } as libc::c_int, "sendmsg");
}

/// A child: receive connections, answer each, close it.
fn child(sock: libc::c_int) -> ! {
    loop {
        let mut byte = 0u8;
        let mut iov = libc::iovec { iov_base: (&mut byte as *mut u8).cast(), iov_len: 1 };
        let mut control = [0u64; 16];
        // SAFETY: plain data, pointers valid for the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(sock, &mut msg, 0) };
        if n <= 0 {
            // SAFETY: ends this child at once, without running the parent's atexit handlers.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: the kernel filled `control` with at most one SCM_RIGHTS header.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                continue;
            }
            let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
            let fds = libc::CMSG_DATA(cmsg) as *const libc::c_int;
            for i in 0..count {
                let fd = *fds.add(i);
                // Accepted non-blocking: wait for the request here.
                libc::fcntl(fd, libc::F_SETFL, 0);
                let mut buf = [0u8; 4096];
                libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                libc::write(fd, RESPONSE.as_ptr().cast(), RESPONSE.len());
                libc::close(fd);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let children: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2).max(1);

    let mut channels = Vec::new();
    for _ in 0..children {
        let mut pair = [0; 2];
        // SAFETY: `pair` has room for the two descriptors.
        check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) }, "socketpair");
        // SAFETY: fork in a single-threaded process.
        let pid = check(unsafe { libc::fork() }, "fork");
        if pid == 0 {
            // SAFETY: the child's copies of the primary's ends, its own and
            // the earlier children's (held, they would keep those children
            // alive after the primary is gone).
            unsafe { libc::close(pair[0]) };
            for &earlier in &channels {
                // SAFETY: as above.
                unsafe { libc::close(earlier) };
            }
            child(pair[1]);
        }
        // SAFETY: the primary's copy of the child's end.
        unsafe { libc::close(pair[1]) };
        channels.push(pair[0]);
    }

    // SAFETY: plain socket calls on descriptors this function owns.
    let listener = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) }, "socket");
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call.
    unsafe { libc::setsockopt(listener, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const libc::c_int).cast(), 4) };
    // SAFETY: sockaddr_in is plain data.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_in of `len` bytes.
    check(unsafe { libc::bind(listener, (&addr as *const libc::sockaddr_in).cast(), len) }, "bind");
    // SAFETY: as above.
    check(unsafe { libc::listen(listener, 4096) }, "listen");
    let mut bound = addr;
    let mut bound_len = len;
    // SAFETY: `bound` has room for a sockaddr_in.
    check(unsafe { libc::getsockname(listener, (&mut bound as *mut libc::sockaddr_in).cast(), &mut bound_len) }, "getsockname");
    println!("READY {}", u16::from_be(bound.sin_port));
    std::io::stdout().flush().ok();

    // SAFETY: a new epoll instance owned here.
    let epoll = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }, "epoll_create1");
    let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
    // SAFETY: `event` outlives the call.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, listener, &mut event) }, "epoll_ctl");
    let mut next = 0usize;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
    loop {
        // SAFETY: `events` has room for 8.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), 8, -1) };
        if n <= 0 {
            continue;
        }
        let mut batch = [0 as libc::c_int; BATCH];
        let mut held = 0;
        loop {
            // SAFETY: accept4 with no address wanted.
            let fd = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) };
            if fd >= 0 {
                batch[held] = fd;
                held += 1;
            }
            if held == BATCH || (fd < 0 && held > 0) {
                send_fds(channels[next % children], &batch[..held]);
                next += 1;
                for &fd in &batch[..held] {
                    // SAFETY: the primary's copy; the child holds its own.
                    unsafe { libc::close(fd) };
                }
                held = 0;
            }
            if fd < 0 {
                break;
            }
        }
    }
}
