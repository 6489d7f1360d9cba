//! Events from the dispatcher thread to the primary's JS (docs/DESIGN.md §1,
//! "Events from the dispatcher"): each core `Event` becomes a plain object
//! `{ kind, workerId, ... }` handed to the JS `onEvent` callback
//! (lib/primary/dispatcher_events.js).

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use rcluster_core::Event;

/// What `onEvent` receives. `kind` is a camelCase string naming the event;
/// the other fields are those the kind has.
#[napi(object)]
pub struct DispatcherEvent {
    /// `'channelFailed'`, `'hung'` or `'warning'`
    pub kind: String,
    /// The worker it is about (0 for a warning).
    pub worker_id: u32,
    /// Why, in words (`channelFailed`, `hung`), or the warning's message.
    pub reason: Option<String>,
    /// A warning's code, `RCLUSTER_<WHAT>`.
    pub code: Option<String>,
}

impl From<Event> for DispatcherEvent {
    fn from(event: Event) -> Self {
        match event {
            Event::ChannelFailed { worker, reason } => {
                DispatcherEvent { kind: "channelFailed".into(), worker_id: worker, reason: Some(reason), code: None }
            }
            Event::Hung { worker, silent } => DispatcherEvent {
                kind: "hung".into(),
                worker_id: worker,
                reason: Some(format!("no heartbeat for {} ms", silent.as_millis())),
                code: None,
            },
            Event::Warning { code, message } => {
                DispatcherEvent { kind: "warning".into(), worker_id: 0, reason: Some(message), code: Some(code.into()) }
            }
        }
    }
}

/// The sink the dispatcher thread calls. A weak threadsafe function does not
/// keep the primary's event loop alive (the primary exits when its workers
/// and servers are gone, as with node:cluster), and an unbounded queue makes
/// the non-blocking call never fail for lack of room: an event waits for the
/// JS thread however busy it is. The function is released when the
/// dispatcher thread ends, that is when the `Dispatcher` is dropped.
pub fn sink(on_event: &Function<'_, DispatcherEvent, ()>) -> Result<impl FnMut(Event) + Send + 'static> {
    let tsfn = on_event
        .build_threadsafe_function::<Event>()
        .weak::<true>()
        .build_callback(|ctx| Ok(DispatcherEvent::from(ctx.value)))?;
    Ok(move |event: Event| {
        // Fails only while the environment is being torn down, when nobody
        // is left to tell.
        let _ = tsfn.call(event, ThreadsafeFunctionCallMode::NonBlocking);
    })
}
