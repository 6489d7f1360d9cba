//! The few libuv functions the worker's receiver needs. Node exports libuv's
//! symbols, so they resolve against the running node binary at load time.

use std::os::raw::{c_char, c_int, c_void};

/// Opaque `uv_poll_t`; its size comes from `uv_handle_size(UV_POLL)`.
pub type UvPoll = c_void;
pub type UvHandle = c_void;
pub type UvLoop = c_void;

pub const UV_POLL: c_int = 8; // uv_handle_type
pub const UV_READABLE: c_int = 1;

pub type PollCallback = unsafe extern "C" fn(handle: *mut UvPoll, status: c_int, events: c_int);
pub type CloseCallback = unsafe extern "C" fn(handle: *mut UvHandle);

extern "C" {
    pub fn uv_handle_size(kind: c_int) -> usize;
    pub fn uv_poll_init(event_loop: *mut UvLoop, handle: *mut UvPoll, fd: c_int) -> c_int;
    pub fn uv_poll_start(handle: *mut UvPoll, events: c_int, cb: PollCallback) -> c_int;
    pub fn uv_poll_stop(handle: *mut UvPoll) -> c_int;
    pub fn uv_close(handle: *mut UvHandle, cb: CloseCallback);
    pub fn uv_ref(handle: *mut UvHandle);
    pub fn uv_unref(handle: *mut UvHandle);
    pub fn uv_err_name(err: c_int) -> *const c_char;
}

/// Every uv handle starts with `void* data`, the one public field we use.
///
/// # Safety
/// `handle` must point at an initialised uv handle.
pub unsafe fn set_data(handle: *mut UvHandle, data: *mut c_void) {
    *(handle as *mut *mut c_void) = data;
}

/// # Safety
/// `handle` must point at an initialised uv handle.
pub unsafe fn data(handle: *mut UvHandle) -> *mut c_void {
    *(handle as *mut *mut c_void)
}
