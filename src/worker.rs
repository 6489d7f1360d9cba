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
use rcluster_core::channel::wire::{ACCEPTED, REJECTED};
use rcluster_core::{Incoming, Received, WorkerChannel};

use crate::js_error::{check, to_js, JsError};
use crate::uv::Poll;

/// What a channel's `onMessage(kind, listenerId, fds)` is told, as its first
/// argument. Defined once, here, and exported to JS.
#[napi]
#[derive(Debug, PartialEq, Eq)]
pub enum ChannelMessageKind {
    /// The channel to the primary closed (the primary exited).
    Closed = 0,
    /// New connections for a round-robin listener: `fds` are their sockets.
    Dispatch = 1,
    /// A SCHED_NONE or UDP listener's socket (`fds[0]`; none if it could
    /// not be received: out of descriptors).
    Shared = 2,
    /// Out of that listener's rotation: nothing more for it will come.
    Left = 3,
    /// One new connection whose client a PROXY protocol header named:
    /// `fds[0]`, and the client as a fourth argument, `[address, port, family]`.
    DispatchFrom = 4,
    /// Bus messages, in order: `listenerId` is how many, `payload` holds
    /// each as sender id (u32 LE), target id (u32 LE), length (u32 LE) and bytes. One call per
    /// wake-up rather than one per message: each call into JS costs more
    /// than a small message does.
    Bus = 10,
    /// A bus peer is gone (`listenerId` is its id): nothing asked of it will be answered.
    PeerGone = 11,
    /// A bus message to peer `listenerId` was dropped: its queue was full.
    BusDropped = 12,
    /// Connections were taken in this wake-up: JS confirms them as read up
    /// to this point (`confirmRead(mark)`, the mark in the listener id's
    /// place) once the event loop has run a turn after this one, and the
    /// primary then closes its copies (docs/DESIGN.md §11).
    ConfirmRead = 15,
}

/// Messages handled per wake-up before yielding to the rest of the event loop.
const MAX_MESSAGES_PER_WAKE: usize = 64;

/// What a message passes to JS after `(kind, listenerId, fds)`, if anything.
#[derive(Clone, Copy)]
enum Extra<'a> {
    None,
    /// A Buffer: the bus messages of one wake-up (`Bus`).
    Payload(&'a [u8]),
    /// `[address, port, family]`: the client a PROXY header named (`DispatchFrom`).
    Source(SocketAddr),
}

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
            eprintln!("rcluster: cannot release the channel's callback: {err}");
        }
    }

    /// Calls the JS callback as `callback(kind, listenerId, fds)`.
    ///
    /// # Safety
    /// Must run on the JS thread of `self.env`, outside any other napi call (a
    /// libuv callback is such a place).
    unsafe fn call(&self, kind: ChannelMessageKind, listener: u32, fds: &[i32], extra: Extra<'_>) -> Result<()> {
        let env = self.env;
        if self.callback.get().is_null() {
            return Ok(());
        }
        let mut scope = ptr::null_mut();
        check(sys::napi_open_handle_scope(env, &mut scope))?;
        let called = self.call_in_scope(kind, listener, fds, extra);
        let closed = check(sys::napi_close_handle_scope(env, scope));
        called.and(closed)
    }

    unsafe fn call_in_scope(&self, kind: ChannelMessageKind, listener: u32, fds: &[i32], extra: Extra<'_>) -> Result<()> {
        let env = self.env;
        let mut callback = ptr::null_mut();
        let mut global = ptr::null_mut();
        let mut argv = [ptr::null_mut(); 4];
        check(sys::napi_get_reference_value(env, self.callback.get(), &mut callback))?;
        check(sys::napi_get_global(env, &mut global))?;
        check(sys::napi_create_uint32(env, kind as u32, &mut argv[0]))?;
        check(sys::napi_create_uint32(env, listener, &mut argv[1]))?;
        check(sys::napi_create_array_with_length(env, fds.len(), &mut argv[2]))?;
        for (i, fd) in fds.iter().enumerate() {
            let mut value = ptr::null_mut();
            check(sys::napi_create_int32(env, *fd, &mut value))?;
            check(sys::napi_set_element(env, argv[2], i as u32, value))?;
        }
        let argc = match extra {
            Extra::None => 3,
            Extra::Payload(bytes) => {
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

struct Receiver {
    /// Set once, right after the receiver is made (the poll's callback holds
    /// it). First, so that it is closed before the channel's fd closes.
    poll: OnceCell<Poll>,
    js: JsCallback,
    channel: RefCell<WorkerChannel>,
    /// The fds of the dispatch JS is handling, held until JS replies, so any
    /// fd JS does not take is refused back to the primary rather than leaked.
    awaiting: RefCell<Vec<OwnedFd>>,
    /// Replies for every dispatch handled in this wake-up, sent as one message
    /// when the wake-up ends: one send per wake for the worker, and one
    /// wake-up fewer per connection for the primary's thread.
    replies: RefCell<Vec<u8>>,
    /// Bus messages received in this wake-up and not yet given to JS: how
    /// many, and their records (see `ChannelMessageKind::Bus`).
    bus_batch: RefCell<(u32, Vec<u8>)>,
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
    fn call(&self, kind: ChannelMessageKind, listener: u32, fds: &[i32]) {
        self.call_with(kind, listener, fds, Extra::None);
    }

    fn call_with(&self, kind: ChannelMessageKind, listener: u32, fds: &[i32], extra: Extra<'_>) {
        // Whatever else arrived came after the bus messages held so far (a
        // peer's answer before the news of its death).
        self.flush_bus();
        self.invoke(kind, listener, fds, extra);
    }

    /// Adds a bus message to the records handed to JS at the end of this
    /// wake-up (lib/bus/bus.js `onChannelMessage` reads them): sender id, target
    /// id, payload length (u32 LE each), payload. `bus::decode` bounded the
    /// payload to `MAX_PAYLOAD`, so the length always fits.
    fn queue_bus(&self, from: u32, target: u32, payload: &[u8]) {
        let Ok(length) = u32::try_from(payload.len()) else {
            rcluster_core::rejections::reject("channelFrame", || format!("a bus message of {} bytes", payload.len()));
            return;
        };
        let mut batch = self.bus_batch.borrow_mut();
        batch.0 += 1;
        batch.1.extend_from_slice(&from.to_le_bytes());
        batch.1.extend_from_slice(&target.to_le_bytes());
        batch.1.extend_from_slice(&length.to_le_bytes());
        batch.1.extend_from_slice(payload);
    }

    fn flush_bus(&self) {
        let (count, records) = std::mem::take(&mut *self.bus_batch.borrow_mut());
        if count > 0 {
            self.invoke(ChannelMessageKind::Bus, count, &[], Extra::Payload(&records));
        }
    }

    fn invoke(&self, kind: ChannelMessageKind, listener: u32, fds: &[i32], extra: Extra<'_>) {
        // SAFETY: only called from the poll callback, on the JS thread.
        if let Err(err) = unsafe { self.js.call(kind, listener, fds, extra) } {
            eprintln!("rcluster: cannot call the channel's callback: {err}");
        }
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
            Err(err) if !err.is_disconnected() => eprintln!("rcluster: cannot reply to the primary: {err}"),
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
            Err(err) if !err.is_disconnected() => eprintln!("rcluster: cannot confirm reads to the primary: {err}"),
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
            self.call(ChannelMessageKind::ConfirmRead, taken, &[]);
        }
    }

    /// Handles what arrived, up to `MAX_MESSAGES_PER_WAKE` messages.
    fn receive(&self, status: c_int) {
        if status < 0 {
            self.close();
            self.call(ChannelMessageKind::Closed, 0, &[]);
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
                    self.call(ChannelMessageKind::Closed, 0, &[]);
                    return;
                }
                Err(rcluster_core::Error::Protocol(why)) => {
                    // The offending message's fds are already closed; keep
                    // reading. Counted, not logged per message.
                    rcluster_core::rejections::reject("channelFrame", || format!("from the primary: {why}"));
                }
                Err(err) => {
                    eprintln!("rcluster: the channel to the primary failed: {err}");
                    self.close();
                    self.call(ChannelMessageKind::Closed, 0, &[]);
                    return;
                }
                Ok(Received::Message(Incoming::Dispatch { listener, fds })) => {
                    let raw: Vec<i32> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
                    *self.awaiting.borrow_mut() = fds;
                    self.call(ChannelMessageKind::Dispatch, listener, &raw);
                    // Whatever JS left unanswered (it threw first) is refused.
                    self.reply(&[]);
                }
                Ok(Received::Message(Incoming::DispatchFrom { listener, fd, source })) => {
                    let raw = [fd.as_raw_fd()];
                    *self.awaiting.borrow_mut() = vec![fd];
                    self.call_with(ChannelMessageKind::DispatchFrom, listener, &raw, Extra::Source(source));
                    self.reply(&[]);
                }
                Ok(Received::Message(Incoming::Shared { listener, fd })) => {
                    // JS owns the listening socket from here.
                    self.call(ChannelMessageKind::Shared, listener, &[fd.into_raw_fd()]);
                }
                Ok(Received::Message(Incoming::Left { listener })) => {
                    self.call(ChannelMessageKind::Left, listener, &[]);
                }
                Ok(Received::Message(Incoming::DispatchLost { count, .. })) => {
                    // Out of fds: refuse each (in order, like any reply); the
                    // primary still holds them and offers them again.
                    self.replies.borrow_mut().extend(std::iter::repeat_n(REJECTED, count));
                }
                Ok(Received::Message(Incoming::SharedLost { listener })) => {
                    // JS fails that listen with EMFILE.
                    self.call(ChannelMessageKind::Shared, listener, &[]);
                }
                Ok(Received::Message(Incoming::Bus { from, target, payload })) => self.queue_bus(from, target, &payload),
                Ok(Received::Message(Incoming::PeerGone { peer })) => {
                    self.call(ChannelMessageKind::PeerGone, peer, &[]);
                }
                Ok(Received::Message(Incoming::BusDropped { target })) => {
                    self.call(ChannelMessageKind::BusDropped, target, &[]);
                }
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
    /// `onMessage(kind, listenerId, fds)` for everything the primary sends
    /// (`kind` is a `ChannelMessageKind`). The poll handle starts
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
            replies: RefCell::new(Vec::new()),
            bus_batch: RefCell::new((0, Vec::new())),
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
}
