//! The few libuv functions the worker's receiver needs, behind one small safe
//! wrapper, [`Poll`]. Node exports libuv's symbols, so they resolve against
//! the running node binary at load time.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::js_error::{check, JsError};

/// Opaque `uv_poll_t`; its size comes from `uv_handle_size(UV_POLL)`.
type UvPoll = c_void;
type UvHandle = c_void;
type UvLoop = c_void;

const UV_POLL: c_int = 8; // uv_handle_type
const UV_READABLE: c_int = 1;

type PollCallback = unsafe extern "C" fn(handle: *mut UvPoll, status: c_int, events: c_int);
type CloseCallback = unsafe extern "C" fn(handle: *mut UvHandle);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(event_loop: *mut UvLoop, handle: *mut UvPoll, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut UvPoll, events: c_int, cb: PollCallback) -> c_int;
    fn uv_poll_stop(handle: *mut UvPoll) -> c_int;
    fn uv_close(handle: *mut UvHandle, cb: CloseCallback);
    fn uv_ref(handle: *mut UvHandle);
    fn uv_unref(handle: *mut UvHandle);
    pub fn uv_err_name(err: c_int) -> *const c_char;
}

/// What a poll handle calls when its fd is readable (or polling failed:
/// a negative libuv status).
type OnReadable = Box<dyn FnMut(c_int)>;

/// A libuv poll handle on the JS thread's loop, watching one fd for
/// reading. Its memory and its callback are freed once libuv has closed it,
/// after `close()` or on drop; until then the callback runs on the JS thread
/// each time the fd is readable. It starts unreferenced.
pub struct Poll {
    /// Null once closed.
    handle: Cell<*mut UvPoll>,
}

fn poll_layout() -> Layout {
    // SAFETY: uv_handle_size only reads a static table.
    let size = unsafe { uv_handle_size(UV_POLL) };
    Layout::from_size_align(size, 16).expect("uv_poll_t has a sane size")
}

/// Every uv handle starts with `void* data`, the one public field we use.
///
/// # Safety
/// `handle` must point at a uv handle's memory.
unsafe fn data(handle: *mut UvHandle) -> *mut *mut c_void {
    handle as *mut *mut c_void
}

fn uv_error(call: &'static str, status: c_int) -> rcluster_core::Error {
    rcluster_core::Error::io(call, io::Error::from_raw_os_error(-status))
}

impl Poll {
    /// Starts polling `fd` for reading on `env`'s loop; `on_readable` runs
    /// on the JS thread. `fd` must stay open until the poll is closed.
    pub fn start(env: &Env, fd: BorrowedFd<'_>, on_readable: impl FnMut(c_int) + 'static) -> Result<Poll> {
        let mut event_loop: *mut sys::uv_loop_s = ptr::null_mut();
        // SAFETY: `env` is live for this call; the out-pointer is a local.
        check(unsafe { sys::napi_get_uv_event_loop(env.raw(), &mut event_loop) })?;
        let layout = poll_layout();
        // SAFETY: `layout` has a non-zero size (uv_poll_t is a real struct).
        let handle = unsafe { alloc(layout) } as *mut UvPoll;
        if handle.is_null() {
            return Err(Error::new(Status::GenericFailure, "out of memory"));
        }
        // SAFETY: `handle` is fresh memory of uv_poll_t's size for libuv to
        // initialise; if that fails it was never a handle and is freed here.
        let rc = unsafe { uv_poll_init(event_loop as *mut UvLoop, handle, fd.as_raw_fd()) };
        if rc != 0 {
            // SAFETY: allocated above with this layout, unused by libuv.
            unsafe { dealloc(handle as *mut u8, layout) };
            return Err(JsError::from_core(&uv_error("uv_poll_init", rc)).into_napi(env));
        }
        let callback: Box<OnReadable> = Box::new(Box::new(on_readable));
        // SAFETY: `handle` is initialised; its data carries the callback
        // until `on_close` takes it back.
        unsafe {
            *data(handle) = Box::into_raw(callback) as *mut c_void;
            uv_unref(handle);
        }
        let poll = Poll { handle: Cell::new(handle) };
        // SAFETY: `handle` is live; `on_readable_cb` matches the callback type.
        let rc = unsafe { uv_poll_start(handle, UV_READABLE, on_readable_cb) };
        if rc != 0 {
            return Err(JsError::from_core(&uv_error("uv_poll_start", rc)).into_napi(env));
        }
        Ok(poll)
    }

    pub fn is_closed(&self) -> bool {
        self.handle.get().is_null()
    }

    /// Makes the poll keep the event loop alive.
    pub fn ref_(&self) {
        let handle = self.handle.get();
        if !handle.is_null() {
            // SAFETY: a non-null handle is live.
            unsafe { uv_ref(handle) };
        }
    }

    pub fn unref(&self) {
        let handle = self.handle.get();
        if !handle.is_null() {
            // SAFETY: a non-null handle is live.
            unsafe { uv_unref(handle) };
        }
    }

    /// Stops polling. The callback is not called again; it and the handle
    /// are freed once libuv has closed it (on a later loop turn, as libuv
    /// requires). Idempotent; safe to call from inside the callback.
    pub fn close(&self) {
        let handle = self.handle.replace(ptr::null_mut());
        if handle.is_null() {
            return;
        }
        // SAFETY: `handle` is live and initialised; uv_close is called
        // exactly once on it, and `on_close` frees it afterwards.
        unsafe {
            uv_poll_stop(handle);
            uv_close(handle, on_close);
        }
    }
}

impl Drop for Poll {
    fn drop(&mut self) {
        self.close();
    }
}

unsafe extern "C" fn on_readable_cb(handle: *mut UvPoll, status: c_int, _events: c_int) {
    // SAFETY: the data is the callback boxed in `Poll::start`, alive until
    // `on_close`, which libuv cannot run before this callback returns.
    let callback = &mut *(*data(handle) as *mut OnReadable);
    callback(status);
}

unsafe extern "C" fn on_close(handle: *mut UvHandle) {
    // SAFETY: the data is the callback boxed in `Poll::start`, reclaimed
    // once, here; the handle memory was allocated with `poll_layout()`.
    drop(Box::from_raw(*data(handle) as *mut OnReadable));
    dealloc(handle as *mut u8, poll_layout());
}

/// Opaque `uv_prepare_t` / `uv_check_t`.
type UvPhase = c_void;
const UV_CHECK: c_int = 2; // uv_handle_type
const UV_PREPARE: c_int = 9;
type PhaseCallback = unsafe extern "C" fn(handle: *mut UvPhase);

extern "C" {
    fn uv_prepare_init(event_loop: *mut UvLoop, handle: *mut UvPhase) -> c_int;
    fn uv_prepare_start(handle: *mut UvPhase, cb: PhaseCallback) -> c_int;
    fn uv_check_init(event_loop: *mut UvLoop, handle: *mut UvPhase) -> c_int;
    fn uv_check_start(handle: *mut UvPhase, cb: PhaseCallback) -> c_int;
}

/// The loop stamp this process writes (`rcluster_core::loop_stamp`), once
/// the primary has sent it: for the life of the process, as are the two
/// handles that write it.
static LOOP_STAMP: std::sync::OnceLock<rcluster_core::loop_stamp::StampWriter> = std::sync::OnceLock::new();

/// Stamps the loop busy from now: called when an HTTP request's handler
/// starts (lib/worker/loop_stamp.js), which runs inside libuv's poll phase,
/// where neither phase handle sees it. Nothing before the stamp arrived.
pub fn stamp_busy() {
    if let Some(stamp) = LOOP_STAMP.get() {
        stamp.busy(rcluster_core::sys::monotonic_ns());
    }
}

unsafe extern "C" fn on_prepare(_handle: *mut UvPhase) {
    if let Some(stamp) = LOOP_STAMP.get() {
        stamp.idle(rcluster_core::sys::monotonic_ns());
    }
}

unsafe extern "C" fn on_check(_handle: *mut UvPhase) {
    stamp_busy();
}

/// Starts stamping `stamp` on `env`'s loop: "waiting for I/O since now"
/// from a prepare handle (run just before the loop waits), "busy since
/// now" from a check handle (run just after). Both handles are unreferenced
/// (they never keep the process alive) and never closed: they live as long
/// as the loop. Only the first stamp is used; a second is dropped.
///
/// # Safety
/// Must run on the JS thread of `env`.
pub unsafe fn start_loop_stamp(env: sys::napi_env, stamp: rcluster_core::loop_stamp::StampWriter) -> std::result::Result<(), String> {
    if LOOP_STAMP.set(stamp).is_err() {
        return Ok(());
    }
    let mut event_loop: *mut sys::uv_loop_s = ptr::null_mut();
    // SAFETY: `env` is live on this thread (the caller's promise); the
    // out-pointer is a local.
    check(unsafe { sys::napi_get_uv_event_loop(env, &mut event_loop) }).map_err(|e| e.to_string())?;
    type Init = unsafe extern "C" fn(*mut UvLoop, *mut UvPhase) -> c_int;
    type Start = unsafe extern "C" fn(*mut UvPhase, PhaseCallback) -> c_int;
    let phases: [(c_int, Init, Start, PhaseCallback, &str); 2] = [
        (UV_PREPARE, uv_prepare_init, uv_prepare_start, on_prepare, "uv_prepare_start"),
        (UV_CHECK, uv_check_init, uv_check_start, on_check, "uv_check_start"),
    ];
    for (kind, init, start, cb, call) in phases {
        // SAFETY: uv_handle_size only reads a static table.
        let size = unsafe { uv_handle_size(kind) };
        let layout = Layout::from_size_align(size, 16).expect("uv handles have a sane size");
        // SAFETY: a non-zero size (a real struct). The memory is never freed:
        // the handle is never closed and lives as long as the loop.
        let handle = unsafe { alloc(layout) } as *mut UvPhase;
        if handle.is_null() {
            return Err("out of memory".into());
        }
        // SAFETY: `handle` is fresh memory of the handle's size for libuv to
        // initialise (init cannot fail for these kinds); once started it is
        // unreferenced, and its callback only reads the static stamp.
        let rc = unsafe {
            init(event_loop as *mut UvLoop, handle);
            uv_unref(handle);
            start(handle, cb)
        };
        if rc != 0 {
            return Err(uv_error(call, rc).to_string());
        }
    }
    Ok(())
}
