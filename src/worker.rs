//! `Channel`: a worker's receiver for connections the primary dispatches.
//!
//! It reads the channel on the JS thread through a libuv poll handle: no
//! receiver thread, so no thread hop per connection. docs/DESIGN.md §2 measured
//! this at ≈ SCHED_NONE's churn throughput, where a receiver thread with a
//! threadsafe function reached 0.92× of it.

use std::alloc::{alloc, dealloc, Layout};
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;
use rcluster_core::wire::{ACCEPTED, REJECTED};
use rcluster_core::{Incoming, Received, WorkerChannel};

use crate::js_error::{to_js, JsError};
use crate::uv;

/// What the JS callback is told, as its first argument.
pub const KIND_CLOSED: u32 = 0;
pub const KIND_DISPATCH: u32 = 1;
pub const KIND_SHARED: u32 = 2;
pub const KIND_LEFT: u32 = 3;

/// Messages handled per wake-up before yielding to the rest of the event loop.
const MAX_MESSAGES_PER_WAKE: usize = 64;

struct Receiver {
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
    channel: RefCell<WorkerChannel>,
    /// The fds of the dispatch JS is handling, held until JS replies, so any
    /// fd JS does not take is refused back to the primary rather than leaked.
    awaiting: RefCell<Vec<OwnedFd>>,
    /// Replies for every dispatch handled in this wake-up, sent as one message
    /// when the wake-up ends: one send per wake for the worker, and one
    /// wake-up fewer per connection for the primary's thread.
    replies: RefCell<Vec<u8>>,
    poll: Cell<*mut uv::UvPoll>,
}

impl Receiver {
    /// Calls the JS callback as `callback(kind, listenerId, fds)`.
    ///
    /// # Safety
    /// Must run on the JS thread of `self.env`, outside any other napi call's
    /// handle scope requirements (a libuv callback is such a place).
    unsafe fn call(&self, kind: u32, listener: u32, fds: &[i32]) {
        let env = self.env;
        let mut scope = ptr::null_mut();
        sys::napi_open_handle_scope(env, &mut scope);
        let mut callback = ptr::null_mut();
        let mut global = ptr::null_mut();
        let mut argv = [ptr::null_mut(); 3];
        sys::napi_get_reference_value(env, self.callback, &mut callback);
        sys::napi_get_global(env, &mut global);
        sys::napi_create_uint32(env, kind, &mut argv[0]);
        sys::napi_create_uint32(env, listener, &mut argv[1]);
        sys::napi_create_array_with_length(env, fds.len(), &mut argv[2]);
        for (i, fd) in fds.iter().enumerate() {
            let mut value = ptr::null_mut();
            sys::napi_create_int32(env, *fd, &mut value);
            sys::napi_set_element(env, argv[2], i as u32, value);
        }
        let mut result = ptr::null_mut();
        // make_callback (not call_function): it runs process.nextTick and
        // microtasks afterwards, as for any I/O callback. Its receiver must be
        // an object.
        let status = sys::napi_make_callback(env, self.async_context, global, callback, 3, argv.as_ptr(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // An exception from the app's 'connection' handler: route it to
            // process 'uncaughtException', as a throw in any I/O callback goes.
            let mut error = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut error);
            sys::napi_fatal_exception(env, error);
        }
        sys::napi_close_handle_scope(env, scope);
    }

    /// Answers the current dispatch: fds JS took become JS's (libuv owns them
    /// now); the rest close here and go back to the primary for another worker.
    /// The answer is queued; `send_replies` sends it when the wake-up ends.
    fn reply(&self, statuses: &[u8]) {
        let fds = std::mem::take(&mut *self.awaiting.borrow_mut());
        let mut replies = self.replies.borrow_mut();
        for (i, fd) in fds.into_iter().enumerate() {
            if statuses.get(i).is_some_and(|s| *s != 0) {
                let _ = fd.into_raw_fd(); // JS owns it
                replies.push(ACCEPTED);
            } else {
                replies.push(REJECTED); // `fd` drops and closes here
            }
        }
    }

    fn send_replies(&self) {
        let replies = std::mem::take(&mut *self.replies.borrow_mut());
        if replies.is_empty() {
            return;
        }
        match self.channel.borrow_mut().reply(&replies) {
            Err(err) if !err.is_disconnected() => eprintln!("rcluster: cannot reply to the primary: {err}"),
            _ => {}
        }
    }

    fn is_closed(&self) -> bool {
        self.poll.get().is_null()
    }

    /// Stops polling and frees the uv handle (asynchronously, as libuv requires).
    fn close(&self) {
        let handle = self.poll.replace(ptr::null_mut());
        if handle.is_null() {
            return;
        }
        // SAFETY: `handle` is the live, initialised poll handle; uv_close is
        // called exactly once on it, and `on_close` frees it afterwards.
        unsafe {
            uv::uv_poll_stop(handle);
            uv::uv_close(handle, on_close);
        }
    }
}

fn poll_layout() -> Layout {
    // SAFETY: uv_handle_size only reads a static table.
    let size = unsafe { uv::uv_handle_size(uv::UV_POLL) };
    Layout::from_size_align(size, 16).expect("uv_poll_t has a sane size")
}

unsafe extern "C" fn on_close(handle: *mut uv::UvHandle) {
    // SAFETY: `data` is the `Rc<Receiver>` leaked into the handle in
    // `Channel::new`; it is reclaimed once, here.
    let receiver = Rc::from_raw(uv::data(handle) as *const Receiver);
    sys::napi_delete_reference(receiver.env, receiver.callback);
    sys::napi_async_destroy(receiver.env, receiver.async_context);
    drop(receiver);
    dealloc(handle as *mut u8, poll_layout());
}

unsafe extern "C" fn on_readable(handle: *mut uv::UvPoll, status: c_int, _events: c_int) {
    // SAFETY: the handle's data is the leaked `Rc<Receiver>`, alive until `on_close`,
    // which cannot run before this callback returns.
    let receiver = &*(uv::data(handle) as *const Receiver);
    receive(receiver, status);
    receiver.send_replies();
}

/// Handles what arrived, up to `MAX_MESSAGES_PER_WAKE` messages.
///
/// # Safety
/// Runs on the JS thread, from the poll callback.
unsafe fn receive(receiver: &Receiver, status: c_int) {
    if status < 0 {
        receiver.close();
        receiver.call(KIND_CLOSED, 0, &[]);
        return;
    }
    for _ in 0..MAX_MESSAGES_PER_WAKE {
        if receiver.is_closed() {
            return;
        }
        let received = receiver.channel.borrow_mut().recv();
        match received {
            Ok(Received::WouldBlock) => return,
            Ok(Received::Closed) => {
                receiver.close();
                receiver.call(KIND_CLOSED, 0, &[]);
                return;
            }
            Err(rcluster_core::Error::Protocol(why)) => {
                // The offending message's fds are already closed; keep reading.
                eprintln!("rcluster: ignoring a bad message from the primary: {why}");
            }
            Err(err) => {
                eprintln!("rcluster: the channel to the primary failed: {err}");
                receiver.close();
                receiver.call(KIND_CLOSED, 0, &[]);
                return;
            }
            Ok(Received::Message(Incoming::Dispatch { listener, fds })) => {
                let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
                *receiver.awaiting.borrow_mut() = fds;
                receiver.call(KIND_DISPATCH, listener, &raw);
                // Whatever JS left unanswered (it threw first) is refused.
                receiver.reply(&[]);
            }
            Ok(Received::Message(Incoming::Shared { listener, fd })) => {
                // JS owns the listening socket from here.
                receiver.call(KIND_SHARED, listener, &[fd.into_raw_fd()]);
            }
            Ok(Received::Message(Incoming::Left { listener })) => receiver.call(KIND_LEFT, listener, &[]),
            Ok(Received::Message(Incoming::DispatchLost { count, .. })) => {
                // Out of fds: refuse each (in order, like any reply); the
                // primary still holds them and offers them again.
                receiver.replies.borrow_mut().extend(std::iter::repeat_n(REJECTED, count));
            }
            Ok(Received::Message(Incoming::SharedLost { listener })) => {
                // JS fails that listen with EMFILE.
                receiver.call(KIND_SHARED, listener, &[]);
            }
        }
    }
}

/// A worker's end of its channel to the primary.
#[napi]
pub struct Channel {
    receiver: Rc<Receiver>,
}

#[napi]
impl Channel {
    /// Takes ownership of `fd` (the worker's end of the channel) and calls
    /// `onMessage(kind, listenerId, fds)` for everything the primary sends.
    /// The poll handle starts unreferenced: it does not keep the process alive
    /// unless `ref()` is called (a listening server does).
    #[napi(constructor)]
    pub fn new(env: Env, fd: i32, on_message: Function<'_, Unknown<'_>, Unknown<'_>>) -> Result<Self> {
        if fd < 0 {
            return Err(JsError::out_of_range(format!(
                "The value of \"fd\" is out of range. It must be >= 0. Received {fd}"
            ))
            .into_napi(&env));
        }
        // SAFETY: the primary put the channel in this stdio slot for this
        // process alone; from here the Channel owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let channel = WorkerChannel::new(sock).map_err(|e| to_js(&env, e))?;
        let raw_env = env.raw();

        let mut callback = ptr::null_mut();
        let mut name = ptr::null_mut();
        let mut async_context = ptr::null_mut();
        let mut event_loop: *mut sys::uv_loop_s = ptr::null_mut();
        // SAFETY: `raw_env` is the live env of this call; each out-pointer is a
        // local that lives across its call.
        unsafe {
            check(sys::napi_create_reference(raw_env, on_message.raw(), 1, &mut callback))?;
            check(sys::napi_create_string_utf8(raw_env, c"rcluster:channel".as_ptr(), usize::MAX as _, &mut name))?;
            check(sys::napi_async_init(raw_env, ptr::null_mut(), name, &mut async_context))?;
            check(sys::napi_get_uv_event_loop(raw_env, &mut event_loop))?;
        }
        let raw_fd = channel.raw_fd();
        let receiver = Rc::new(Receiver {
            env: raw_env,
            callback,
            async_context,
            channel: RefCell::new(channel),
            awaiting: RefCell::new(Vec::new()),
            replies: RefCell::new(Vec::new()),
            poll: Cell::new(ptr::null_mut()),
        });

        let layout = poll_layout();
        // SAFETY: `layout` has a non-zero size (uv_poll_t is a real struct).
        let handle = unsafe { alloc(layout) } as *mut uv::UvPoll;
        if handle.is_null() {
            return Err(Error::new(Status::GenericFailure, "out of memory"));
        }
        // SAFETY: `handle` is fresh memory of uv_poll_t's size; libuv
        // initialises it. Its data field then carries one strong reference to
        // the receiver, given back in `on_close`.
        unsafe {
            let rc = uv::uv_poll_init(event_loop as *mut uv::UvLoop, handle, raw_fd);
            if rc != 0 {
                dealloc(handle as *mut u8, layout);
                return Err(Error::new(Status::GenericFailure, format!("uv_poll_init failed: {rc}")));
            }
            uv::set_data(handle, Rc::into_raw(Rc::clone(&receiver)) as *mut c_void);
            receiver.poll.set(handle);
            let rc = uv::uv_poll_start(handle, uv::UV_READABLE, on_readable);
            uv::uv_unref(handle);
            if rc != 0 {
                receiver.close();
                return Err(Error::new(Status::GenericFailure, format!("uv_poll_start failed: {rc}")));
            }
        }
        Ok(Channel { receiver })
    }

    /// Answers the dispatch being handled: `statuses[i]` non-zero means the
    /// worker took fd `i` (it has opened a handle on it, read nothing yet).
    #[napi]
    pub fn reply(&self, statuses: Uint8Array) {
        self.receiver.reply(&statuses);
    }

    /// Asks the primary to take this worker out of a listener's rotation;
    /// `onMessage(KIND_LEFT, listenerId)` confirms it.
    #[napi]
    pub fn leave(&self, env: Env, listener_id: u32) -> Result<()> {
        ignore_disconnect(&env, self.receiver.channel.borrow_mut().leave(listener_id))
    }

    /// Makes the channel keep the event loop alive (while a server listens).
    #[napi(js_name = "ref")]
    pub fn ref_handle(&self) {
        let handle = self.receiver.poll.get();
        if !handle.is_null() {
            // SAFETY: a non-null `poll` is the live handle.
            unsafe { uv::uv_ref(handle) };
        }
    }

    #[napi(js_name = "unref")]
    pub fn unref_handle(&self) {
        let handle = self.receiver.poll.get();
        if !handle.is_null() {
            // SAFETY: a non-null `poll` is the live handle.
            unsafe { uv::uv_unref(handle) };
        }
    }

    #[napi]
    pub fn close(&self) {
        self.receiver.close();
    }
}

/// A primary that is gone needs no answer: the worker learns of it through
/// Node's IPC 'disconnect' and exits there, so the app never sees `EPIPE`.
fn ignore_disconnect(env: &Env, result: rcluster_core::Result<()>) -> Result<()> {
    match result {
        Err(err) if err.is_disconnected() => Ok(()),
        other => other.map_err(|e| to_js(env, e)),
    }
}

fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::GenericFailure, format!("napi call failed with status {status}")))
    }
}
