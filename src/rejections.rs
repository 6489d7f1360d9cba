//! Untrusted input the native code refused (`rcluster_core::rejections`):
//! the counts, and the reports, handed to lib/rejections.js.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use rcluster_core::rejections;

#[napi(object)]
pub struct RejectedInput {
    /// Where the input came from: `busRecord`, `proxyHeader`, ...
    pub surface: String,
    /// Refused so far in this process.
    pub count: i64,
}

#[napi(object)]
pub struct RejectedInputReport {
    pub surface: String,
    /// What was wrong, escaped and cut short.
    pub detail: String,
    /// Refusals of this surface not reported since its last report.
    pub held_back: i64,
}

/// Every surface with a refusal so far in this process.
#[napi]
pub fn rejected_inputs() -> Vec<RejectedInput> {
    rejections::counts()
        .into_iter()
        .map(|(surface, count)| RejectedInput { surface: surface.to_string(), count: count as i64 })
        .collect()
}

/// Reports of refused input go to `onReport`, on the JS thread. Weak, like
/// the dispatcher's events: it keeps no process alive; a call queued while
/// the JS thread is busy waits for it.
#[napi]
pub fn on_rejected_input(on_report: Function<'_, RejectedInputReport, ()>) -> Result<()> {
    let tsfn = on_report
        .build_threadsafe_function::<RejectedInputReport>()
        .weak::<true>()
        .build_callback(|ctx| Ok(ctx.value))?;
    rejections::set_sink(Some(Box::new(move |surface, detail, held_back| {
        let report = RejectedInputReport { surface: surface.to_string(), detail, held_back: held_back as i64 };
        let _ = tsfn.call(report, ThreadsafeFunctionCallMode::NonBlocking);
    })));
    Ok(())
}
