//! `Channel`: a worker's receiver for connections the primary dispatches.
//!
//! It reads the channel on the JS thread through a libuv poll handle: no
//! receiver thread, so no thread hop per connection. docs/DESIGN.md §2 measured
//! this at ≈ SCHED_NONE's churn throughput, where a receiver thread with a
//! threadsafe function reached 0.92× of it.

use std::cell::{Cell, OnceCell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::raw::c_int;
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::*;
use napi::{sys, JsValue};
use napi_derive::napi;
use rcluster_core::bus;
use rcluster_core::connection_claims::ClaimTaker;
use rcluster_core::channel::wire::{ACCEPTED, REJECTED};
use rcluster_core::{Incoming, Received, WorkerChannel};

use crate::js_error::{check, to_js, JsError};
use crate::uv::Poll;

/// What a channel's `onMessage(kind, id, fds, extra)` is told, as its first
/// argument; the rest are named per kind below (`ToJs` is each kind's
/// arguments, typed). Defined once, here, and exported to JS.
#[napi]
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelMessageKind {
    /// `()`: the channel to the primary closed (the primary exited).
    Closed = 0,
    /// `(listenerId, fds)`: new connections for a round-robin listener.
    Dispatch = 1,
    /// `(listenerId, fds)`: a SCHED_NONE or UDP listener's socket, `fds[0]`
    /// (none if it could not be received: out of descriptors).
    Shared = 2,
    /// `(listenerId)`: out of that listener's rotation; nothing more for it will come.
    Left = 3,
    /// `(listenerId, fds, [address, port, family])`: one new connection,
    /// `fds[0]`, whose client a PROXY protocol header named.
    DispatchFrom = 4,
    /// `(count, [], records)`: the bus messages of one wake-up, in order, as
    /// a `bus::Batch` frames them (core/src/bus/mod.rs).
    Bus = 10,
    /// `(peer)`: a bus peer is gone; nothing asked of it will be answered.
    PeerGone = 11,
    /// `(peer)`: a bus message to `peer` was dropped; its queue was full.
    BusDropped = 12,
    /// `(mark)`: connections were taken in this wake-up; JS confirms them as
    /// read up to `mark` (`confirmRead(mark)`) once the event loop has run a
    /// turn after this one, and the primary then closes its copies
    /// (docs/DESIGN.md §11).
    ConfirmRead = 15,
}

/// One call of `onMessage`, each kind with the arguments it has.
#[derive(Clone, Copy)]
enum ToJs<'a> {
    Closed,
    Dispatch { listener: u32, fds: &'a [i32] },
    DispatchFrom { listener: u32, fd: i32, source: SocketAddr },
    Shared { listener: u32, fd: Option<i32> },
    Left { listener: u32 },
    Bus { count: u32, records: &'a [u8] },
    PeerGone { peer: u32 },
    BusDropped { peer: u32 },
    ConfirmRead { mark: u32 },
}

/// The third and fourth arguments of a call, if the kind has them.
enum Extra<'a> {
    None,
    /// A Buffer (`Bus`'s records).
    Bytes(&'a [u8]),
    /// `[address, port, family]` (`DispatchFrom`'s client).
    Source(SocketAddr),
}

impl<'a> ToJs<'a> {
    /// `(kind, id, fds, extra)`, the positions every kind shares.
    fn arguments(self) -> (ChannelMessageKind, u32, &'a [i32], Option<i32>, Extra<'a>) {
        match self {
            ToJs::Closed => (ChannelMessageKind::Closed, 0, &[], None, Extra::None),
            ToJs::Dispatch { listener, fds } => (ChannelMessageKind::Dispatch, listener, fds, None, Extra::None),
            ToJs::DispatchFrom { listener, fd, source } => {
                (ChannelMessageKind::DispatchFrom, listener, &[], Some(fd), Extra::Source(source))
            }
            ToJs::Shared { listener, fd } => (ChannelMessageKind::Shared, listener, &[], fd, Extra::None),
            ToJs::Left { listener } => (ChannelMessageKind::Left, listener, &[], None, Extra::None),
            ToJs::Bus { count, records } => (ChannelMessageKind::Bus, count, &[], None, Extra::Bytes(records)),
            ToJs::PeerGone { peer } => (ChannelMessageKind::PeerGone, peer, &[], None, Extra::None),
            ToJs::BusDropped { peer } => (ChannelMessageKind::BusDropped, peer, &[], None, Extra::None),
            ToJs::ConfirmRead { mark } => (ChannelMessageKind::ConfirmRead, mark, &[], None, Extra::None),
        }
    }
}

/// Messages handled per wake-up before yielding to the rest of the event loop.
const MAX_MESSAGES_PER_WAKE: usize = 64;

/// The JS callback and the async context it runs in.
struct JsCallback {
    env: sys::napi_env,
    callback: Cell<sys::napi_ref>,
    async_context: Cell<sys::napi_async_context>,
}

impl JsCallback {
    /// Releases the callback and its context; they are not called again.
    fn release(&self) {
        let callback = self.callback.replace(ptr::null_mut());
        let context = self.async_context.replace(ptr::null_mut());
        // SAFETY: runs on the JS thread (the poll's close callback, or the
        // constructor that failed); each is released once, as the Cells are
        // emptied first.
        let released = unsafe {
            let deleted =
                if callback.is_null() { Ok(()) } else { check(sys::napi_delete_reference(self.env, callback)) };
            let destroyed =
                if context.is_null() { Ok(()) } else { check(sys::napi_async_destroy(self.env, context)) };
            deleted.and(destroyed)
        };
        if let Err(err) = released {
            self.warn(&format!("cannot release the channel's callback: {err}"), "RCLUSTER_CHANNEL_CALLBACK");
        }
    }

    /// `process.emitWarning(message, { code })`: what goes wrong on the
    /// channel with nobody to return it to is told as Node tells its own
    /// warnings. Where JS cannot run any more (the environment is being torn
    /// down), stderr is all that is left.
    fn warn(&self, message: &str, code: &str) {
        // SAFETY: every caller runs on the JS thread of `self.env` (a libuv
        // callback, or a method JS called).
        if let Err(err) = unsafe { emit_warning(self.env, message, code) } {
            eprintln!("rcluster: {message} ({code}; emitWarning failed: {err})");
        }
    }

    /// Calls the JS callback with `message`'s arguments.
    ///
    /// # Safety
    /// Must run on the JS thread of `self.env`, outside any other napi call (a
    /// libuv callback is such a place).
    unsafe fn call(&self, message: ToJs<'_>) -> Result<()> {
        let env = self.env;
        if self.callback.get().is_null() {
            return Ok(());
        }
        let mut scope = ptr::null_mut();
        check(sys::napi_open_handle_scope(env, &mut scope))?;
        let called = self.call_in_scope(message);
        let closed = check(sys::napi_close_handle_scope(env, scope));
        called.and(closed)
    }

    unsafe fn call_in_scope(&self, message: ToJs<'_>) -> Result<()> {
        let env = self.env;
        let (kind, id, fds, fd, extra) = message.arguments();
        let mut callback = ptr::null_mut();
        let mut global = ptr::null_mut();
        let mut argv = [ptr::null_mut(); 4];
        check(sys::napi_get_reference_value(env, self.callback.get(), &mut callback))?;
        check(sys::napi_get_global(env, &mut global))?;
        check(sys::napi_create_uint32(env, kind as u32, &mut argv[0]))?;
        check(sys::napi_create_uint32(env, id, &mut argv[1]))?;
        check(sys::napi_create_array_with_length(env, fds.len() + usize::from(fd.is_some()), &mut argv[2]))?;
        for (i, fd) in fds.iter().chain(fd.as_ref()).enumerate() {
            let mut value = ptr::null_mut();
            check(sys::napi_create_int32(env, *fd, &mut value))?;
            check(sys::napi_set_element(env, argv[2], i as u32, value))?;
        }
        let argc = match extra {
            Extra::None => 3,
            Extra::Bytes(bytes) => {
                let mut data = ptr::null_mut();
                check(sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut argv[3]))?;
                4
            }
            Extra::Source(source) => {
                let address = source.ip().to_string();
                let family = if source.is_ipv4() { "IPv4" } else { "IPv6" };
                check(sys::napi_create_array_with_length(env, 3, &mut argv[3]))?;
                let mut value = ptr::null_mut();
                check(sys::napi_create_string_utf8(env, address.as_ptr().cast(), address.len() as _, &mut value))?;
                check(sys::napi_set_element(env, argv[3], 0, value))?;
                check(sys::napi_create_uint32(env, u32::from(source.port()), &mut value))?;
                check(sys::napi_set_element(env, argv[3], 1, value))?;
                check(sys::napi_create_string_utf8(env, family.as_ptr().cast(), family.len() as _, &mut value))?;
                check(sys::napi_set_element(env, argv[3], 2, value))?;
                4
            }
        };
        let mut result = ptr::null_mut();
        // make_callback (not call_function): it runs process.nextTick and
        // microtasks afterwards, as for any I/O callback. Its receiver must be
        // an object.
        let status = sys::napi_make_callback(env, self.async_context.get(), global, callback, argc, argv.as_ptr(), &mut result);
        if status == sys::Status::napi_pending_exception {
            // An exception from the app's 'connection' handler: route it to
            // process 'uncaughtException', as a throw in any I/O callback goes.
            let mut error = ptr::null_mut();
            check(sys::napi_get_and_clear_last_exception(env, &mut error))?;
            let fatal = sys::napi_fatal_exception(env, error);
            if fatal == sys::Status::napi_pending_exception {
                // JS cannot run any more: the worker is exiting and Node is
                // tearing its environment down (make_callback answers that
                // with this same status, and there was no exception). A last
                // message from the channel (its close, as the primary lets
                // go) has nobody left to tell.
                return Ok(());
            }
            return check(fatal);
        }
        check(status)
    }
}

/// `process.emitWarning(message, { code })`.
///
/// # Safety
/// Must run on the JS thread of `env`.
unsafe fn emit_warning(env: sys::napi_env, message: &str, code: &str) -> Result<()> {
    let mut scope = ptr::null_mut();
    check(sys::napi_open_handle_scope(env, &mut scope))?;
    let emitted = emit_warning_in_scope(env, message, code);
    let closed = check(sys::napi_close_handle_scope(env, scope));
    emitted.and(closed)
}

/// # Safety
/// As `emit_warning`, inside a handle scope it opened.
unsafe fn emit_warning_in_scope(env: sys::napi_env, message: &str, code: &str) -> Result<()> {
    let mut global = ptr::null_mut();
    let mut process = ptr::null_mut();
    let mut emit = ptr::null_mut();
    let mut argv = [ptr::null_mut(); 2];
    let mut code_value = ptr::null_mut();
    let mut result = ptr::null_mut();
    check(sys::napi_get_global(env, &mut global))?;
    check(sys::napi_get_named_property(env, global, c"process".as_ptr(), &mut process))?;
    check(sys::napi_get_named_property(env, process, c"emitWarning".as_ptr(), &mut emit))?;
    check(sys::napi_create_string_utf8(env, message.as_ptr().cast(), message.len() as _, &mut argv[0]))?;
    check(sys::napi_create_object(env, &mut argv[1]))?;
    check(sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as _, &mut code_value))?;
    check(sys::napi_set_named_property(env, argv[1], c"code".as_ptr(), code_value))?;
    let status = sys::napi_call_function(env, process, emit, argv.len(), argv.as_ptr(), &mut result);
    if status == sys::Status::napi_pending_exception {
        // emitWarning itself threw (a warning listener cannot make it do
        // so; a replaced emitWarning can): the warning is lost, not the
        // channel.
        let mut error = ptr::null_mut();
        check(sys::napi_get_and_clear_last_exception(env, &mut error))?;
        return Ok(());
    }
    check(status)
}

struct Receiver {
    /// Set once, right after the receiver is made (the poll's callback holds
    /// it). First, so that it is closed before the channel's fd closes.
    poll: OnceCell<Poll>,
    js: JsCallback,
    channel: RefCell<WorkerChannel>,
    /// The fds of the dispatch JS is handling, held until JS replies, so any
    /// fd JS does not take is refused back to the primary rather than leaked.
    /// `None`: one the primary took back before this worker claimed it
    /// (closed unread; JS never sees it, and it is refused in its place).
    awaiting: RefCell<Vec<Option<OwnedFd>>>,
    /// This worker's connection claims, once its loop-stamp file has come
    /// (`rcluster_core::connection_claims`).
    claims: OnceCell<ClaimTaker>,
    /// Replies for every dispatch handled in this wake-up, sent as one message
    /// when the wake-up ends: one send per wake for the worker, and one
    /// wake-up fewer per connection for the primary's thread.
    replies: RefCell<Vec<u8>>,
    /// Bus messages received in this wake-up and not yet given to JS.
    bus_batch: RefCell<bus::Batch>,
    /// Connections taken so far, over the channel's life (wrapping): a point
    /// in that sequence is a mark for `confirm_read`.
    taken: Cell<u32>,
    /// The mark last given to JS (`ConfirmRead`), and the one last confirmed.
    announced: Cell<u32>,
    confirmed: Cell<u32>,
}

impl Drop for JsCallback {
    /// Only does anything if the receiver never got its poll (its
    /// constructor failed): otherwise `Reader` released it already.
    fn drop(&mut self) {
        self.release();
    }
}

/// The poll callback's hold on the receiver. It is dropped when libuv has
/// closed the poll, and releases the JS callback then.
struct Reader(Rc<Receiver>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.js.release();
    }
}

impl Receiver {
    /// Calls JS; a failure to (not a throw by the callback, which goes to
    /// 'uncaughtException') is reported, as there is nobody to return it to.
    fn call(&self, message: ToJs<'_>) {
        // Whatever else arrived came after the bus messages held so far (a
        // peer's answer before the news of its death).
        self.flush_bus();
        self.invoke(message);
    }

    /// Hands JS the bus messages of this wake-up, if any, in one call.
    fn flush_bus(&self) {
        let taken = self.bus_batch.borrow_mut().take();
        if let Some((count, records)) = taken {
            self.invoke(ToJs::Bus { count, records: &records });
        }
    }

    fn invoke(&self, message: ToJs<'_>) {
        // SAFETY: only called from the poll callback, on the JS thread.
        if let Err(err) = unsafe { self.js.call(message) } {
            self.js.warn(&format!("cannot call the channel's callback: {err}"), "RCLUSTER_CHANNEL_CALLBACK");
        }
    }

    /// Claims the connections of a dispatch numbered from `first`: those the
    /// primary took back first (it gave them to another worker, whose they
    /// are) close here unread and come back as `None`.
    fn claim(&self, fds: Vec<OwnedFd>, first: u64) -> Vec<Option<OwnedFd>> {
        let Some(claims) = self.claims.get() else { return fds.into_iter().map(Some).collect() };
        fds.into_iter()
            .enumerate()
            .map(|(i, fd)| claims.claim(first.wrapping_add(i as u64)).then_some(fd))
            .collect()
    }

    /// Answers the current dispatch: fds JS took become JS's (libuv owns them
    /// now); the rest close here and go back to the primary for another worker.
    /// The answer is queued; `send_replies` sends it when the wake-up ends.
    fn reply(&self, statuses: &[u8]) {
        let fds = std::mem::take(&mut *self.awaiting.borrow_mut());
        let mut replies = self.replies.borrow_mut();
        // JS's statuses are for the fds it was given: those not taken back.
        let mut i = 0;
        for fd in fds {
            let Some(fd) = fd else {
                replies.push(REJECTED);
                continue;
            };
            let status = statuses.get(i);
            i += 1;
            if status.is_some_and(|s| *s != 0) {
                let _ = fd.into_raw_fd(); // JS owns it
                replies.push(ACCEPTED);
                self.taken.set(self.taken.get().wrapping_add(1));
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
            Err(err) if !err.is_disconnected() => {
                self.js.warn(&format!("cannot reply to the primary: {err}"), "RCLUSTER_CHANNEL_SEND")
            }
            _ => {}
        }
    }

    /// Confirms the connections taken up to `mark` (an earlier `ConfirmRead`
    /// mark) as read, in one message.
    fn confirm_read(&self, mark: u32, closes: &[(u32, u32, u32)]) {
        let mut count = mark.wrapping_sub(self.confirmed.get());
        // A mark at or before the last one confirmed (JS flushes in order)
        // has nothing left to confirm.
        if count > self.taken.get().wrapping_sub(self.confirmed.get()) {
            count = 0;
        }
        if count == 0 && closes.is_empty() {
            return;
        }
        if count > 0 {
            self.confirmed.set(mark);
        }
        match self.channel.borrow_mut().confirm_read_and_closes(count, closes) {
            Err(err) if !err.is_disconnected() => {
                self.js.warn(&format!("cannot confirm reads to the primary: {err}"), "RCLUSTER_CHANNEL_SEND")
            }
            _ => {}
        }
    }

    fn is_closed(&self) -> bool {
        self.poll.get().is_none_or(Poll::is_closed)
    }

    fn close(&self) {
        if let Some(poll) = self.poll.get() {
            poll.close();
        }
    }

    fn on_readable(&self, status: c_int) {
        self.receive(status);
        self.flush_bus();
        // Acknowledged at once, so the primary's window for this worker
        // frees at once; but the primary keeps its copies of what was taken,
        // and on this worker's death serves again those whose bytes nobody
        // read. JS confirms them as read after the next turn, by which time
        // the new sockets' waiting bytes have been read.
        self.send_replies();
        let taken = self.taken.get();
        if taken != self.announced.get() && !self.is_closed() {
            self.announced.set(taken);
            self.call(ToJs::ConfirmRead { mark: taken });
        }
    }

    /// Handles what arrived, up to `MAX_MESSAGES_PER_WAKE` messages.
    fn receive(&self, status: c_int) {
        if status < 0 {
            self.close();
            self.call(ToJs::Closed);
            return;
        }
        for _ in 0..MAX_MESSAGES_PER_WAKE {
            if self.is_closed() {
                return;
            }
            let received = self.channel.borrow_mut().recv();
            match received {
                Ok(Received::WouldBlock) => return,
                Ok(Received::Closed) => {
                    self.close();
                    self.call(ToJs::Closed);
                    return;
                }
                Err(rcluster_core::Error::Protocol(why)) => {
                    // The offending message's fds are already closed; keep
                    // reading. Counted, not logged per message.
                    rcluster_core::rejections::reject("channelFrame", || format!("from the primary: {why}"));
                }
                Err(err) => {
                    self.js.warn(&format!("the channel to the primary failed: {err}"), "RCLUSTER_CHANNEL_FAILED");
                    self.close();
                    self.call(ToJs::Closed);
                    return;
                }
                Ok(Received::Message(Incoming::Dispatch { listener, fds, first })) => {
                    let fds = self.claim(fds, first);
                    let raw: Vec<i32> = fds.iter().flatten().map(|fd| fd.as_raw_fd()).collect();
                    *self.awaiting.borrow_mut() = fds;
                    if !raw.is_empty() {
                        self.call(ToJs::Dispatch { listener, fds: &raw });
                    }
                    // Whatever JS left unanswered (it threw first) is refused.
                    self.reply(&[]);
                }
                Ok(Received::Message(Incoming::DispatchFrom { listener, fd, source, seq })) => {
                    let fds = self.claim(vec![fd], seq);
                    let raw = fds[0].as_ref().map(|fd| fd.as_raw_fd());
                    *self.awaiting.borrow_mut() = fds;
                    if let Some(raw) = raw {
                        self.call(ToJs::DispatchFrom { listener, fd: raw, source });
                    }
                    self.reply(&[]);
                }
                Ok(Received::Message(Incoming::Shared { listener, fd })) => {
                    // JS owns the listening socket from here.
                    self.call(ToJs::Shared { listener, fd: Some(fd.into_raw_fd()) });
                }
                Ok(Received::Message(Incoming::Left { listener })) => {
                    self.call(ToJs::Left { listener });
                }
                Ok(Received::Message(Incoming::DispatchLost { count, .. })) => {
                    // Out of fds: refuse each (in order, like any reply); the
                    // primary still holds them and offers them again.
                    self.replies.borrow_mut().extend(std::iter::repeat_n(REJECTED, count));
                }
                Ok(Received::Message(Incoming::SharedLost { listener })) => {
                    // JS fails that listen with EMFILE.
                    self.call(ToJs::Shared { listener, fd: None });
                }
                Ok(Received::Message(Incoming::Bus { from, target, payload })) => {
                    self.bus_batch.borrow_mut().push(from, target, &payload);
                }
                Ok(Received::Message(Incoming::LoopStamp { fd })) => {
                    // Claims first: from here on every connection is claimed
                    // before JS sees it, so the primary may take back one
                    // this worker has not claimed. Without them it never
                    // does (the page says nothing was adopted).
                    if let Ok(claims) = ClaimTaker::adopt(fd.as_fd()) {
                        let _ = self.claims.set(claims);
                    }
                    // Without it, the primary sees this worker only through
                    // its acknowledgements: worth a warning, not a failure.
                    let started = rcluster_core::loop_stamp::StampWriter::adopt(fd)
                        .map_err(|e| e.to_string())
                        // SAFETY: this runs in the channel's poll callback, on the JS thread of `env`.
                        .and_then(|stamp| unsafe { crate::uv::start_loop_stamp(self.js.env, stamp) });
                    if let Err(why) = started {
                        self.js.warn(&format!("cannot stamp the event loop for the primary: {why}"), "RCLUSTER_LOOP_STAMP");
                    }
                }
                Ok(Received::Message(Incoming::LoopStampLost)) => {}
                Ok(Received::Message(Incoming::PeerGone { peer })) => self.call(ToJs::PeerGone { peer }),
                Ok(Received::Message(Incoming::BusDropped { target })) => self.call(ToJs::BusDropped { peer: target }),
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
    /// `onMessage(kind, id, fds, extra)` for everything the primary sends
    /// (`kind` is a `ChannelMessageKind`, which names the other arguments). The poll handle starts
    /// unreferenced: it does not keep the process alive unless `ref()` is
    /// called (a listening server does).
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

        let js = JsCallback { env: raw_env, callback: Cell::new(ptr::null_mut()), async_context: Cell::new(ptr::null_mut()) };
        let mut callback = ptr::null_mut();
        let mut name = ptr::null_mut();
        let mut async_context = ptr::null_mut();
        // SAFETY: `raw_env` is the live env of this call; each out-pointer is a
        // local that lives across its call. What is made is put in `js` at
        // once, which releases it if a later step fails.
        unsafe {
            check(sys::napi_create_reference(raw_env, on_message.raw(), 1, &mut callback))?;
            js.callback.set(callback);
            check(sys::napi_create_string_utf8(raw_env, c"rcluster:channel".as_ptr(), usize::MAX as _, &mut name))?;
            check(sys::napi_async_init(raw_env, ptr::null_mut(), name, &mut async_context))?;
            js.async_context.set(async_context);
        }
        let receiver = Rc::new(Receiver {
            poll: OnceCell::new(),
            js,
            channel: RefCell::new(channel),
            awaiting: RefCell::new(Vec::new()),
            claims: OnceCell::new(),
            replies: RefCell::new(Vec::new()),
            bus_batch: RefCell::new(bus::Batch::default()),
            taken: Cell::new(0),
            announced: Cell::new(0),
            confirmed: Cell::new(0),
        });
        let reader = Reader(Rc::clone(&receiver));
        let poll = {
            let channel = receiver.channel.borrow();
            Poll::start(&env, channel.as_fd(), move |status| reader.0.on_readable(status))
        };
        match poll {
            Ok(poll) => {
                let _ = receiver.poll.set(poll);
            }
            Err(err) => {
                // The reader was dropped with the closure, or will be once
                // libuv has closed the handle: the callback is released.
                return Err(err);
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
    /// `onMessage(ChannelMessageKind.Left, listenerId)` confirms it.
    #[napi]
    pub fn leave(&self, env: Env, listener_id: u32) -> Result<()> {
        match self.receiver.channel.borrow_mut().leave(listener_id) {
            // A primary that is gone needs no answer: the worker learns of it
            // through Node's IPC 'disconnect' and exits there, so the app
            // never sees `EPIPE`.
            Err(err) if err.is_disconnected() => Ok(()),
            other => other.map_err(|e| to_js(&env, e)),
        }
    }

    /// Sends a bus message (lib/bus/bus.js encodes it) to peer `target`: a worker
    /// id, or 0 (the primary), 0xFFFFFFFE (the agent), 0xFFFFFFFF (broadcast).
    #[napi]
    pub fn send_bus(&self, env: Env, target: u32, payload: Buffer) -> Result<()> {
        self.receiver.channel.borrow_mut().send_bus(target, &payload).map_err(|e| to_js(&env, e))
    }

    /// Tells the primary that `closed` more connections it dispatched for
    /// `listenerId` have closed, and the server's `maxConnections` (0: none).
    #[napi]
    pub fn report_closed(&self, env: Env, listener_id: u32, closed: u32, cap: u32) -> Result<()> {
        match self.receiver.channel.borrow_mut().report_closed(listener_id, closed, cap) {
            Err(err) if err.is_disconnected() => Ok(()),
            other => other.map_err(|e| to_js(&env, e)),
        }
    }

    /// Tells the primary that connections whose sticky cookie or query value
    /// is `value` (a session id of this worker's) are to come here.
    #[napi]
    pub fn stick(&self, env: Env, value: String) -> Result<()> {
        let key = rcluster_core::routing::sticky::fnv1a(value.as_bytes());
        match self.receiver.channel.borrow_mut().stick(key) {
            Err(err) if err.is_disconnected() => Ok(()),
            other => other.map_err(|e| to_js(&env, e)),
        }
    }

    /// Gives the idle keep-alive connection on `fd` back to the primary for
    /// another worker (a retiring worker, `lib/worker/keep_alive_handback.js`). The
    /// caller then closes its own handle on it.
    #[napi]
    pub fn hand_back(&self, env: Env, listener_id: u32, fd: i32) -> Result<()> {
        // SAFETY: the caller's open socket handle owns `fd` for this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        self.receiver.channel.borrow_mut().hand_back(listener_id, fd).map_err(|e| to_js(&env, e))
    }

    /// Tells the primary's dispatcher this worker's event loop is turning
    /// (`setupPrimary({ health })`). Never blocks; a gone primary is ignored.
    #[napi]
    pub fn heartbeat(&self, env: Env) -> Result<()> {
        match self.receiver.channel.borrow_mut().heartbeat() {
            Err(err) if err.is_disconnected() => Ok(()),
            other => other.map_err(|e| to_js(&env, e)),
        }
    }

    /// Makes the channel keep the event loop alive (while a server listens).
    #[napi(js_name = "ref")]
    pub fn ref_handle(&self) {
        if let Some(poll) = self.receiver.poll.get() {
            poll.ref_();
        }
    }

    #[napi(js_name = "unref")]
    pub fn unref_handle(&self) {
        if let Some(poll) = self.receiver.poll.get() {
            poll.unref();
        }
    }

    /// Confirms the connections taken up to `mark` (from `ConfirmRead`) as
    /// read, in one message; those taken after it wait for their own turn.
    /// `closes`: close reports due now, `[listenerId, closed, cap, ...]`
    /// (as `reportClosed` takes them), sent in the same message.
    #[napi]
    pub fn confirm_read(&self, env: Env, mark: u32, closes: Option<Vec<u32>>) -> Result<()> {
        let closes = closes.unwrap_or_default();
        if closes.len() % 3 != 0 {
            let message = format!("closes must hold [listenerId, closed, cap] triples; it has {} numbers", closes.len());
            return Err(JsError::invalid_arg_value(message).into_napi(&env));
        }
        let records: Vec<(u32, u32, u32)> = closes.chunks_exact(3).map(|r| (r[0], r[1], r[2])).collect();
        self.receiver.confirm_read(mark, &records);
        Ok(())
    }

    #[napi]
    pub fn close(&self) {
        self.receiver.close();
    }

    /// Stamps this worker's event loop busy from now (an HTTP request's
    /// handler starts: lib/worker/loop_stamp.js). Nothing until the primary
    /// has sent the stamp. A static method: it needs no channel.
    #[napi]
    pub fn loop_busy() {
        crate::uv::stamp_busy();
    }
}
