//! Untrusted input the process refused (docs/SECURITY.md): every decoder of
//! input from across a process boundary either returns a value or calls
//! [`reject`], never panics and never throws. Each refusal is counted per
//! surface (`cluster.stats().rejected`, `/metrics`) and told to the sink the
//! bindings set (a warning in the primary's JS), at most once per surface per
//! [`REPORT_EVERY`] with the number held back since, so a flood of hostile
//! input costs a counter increment per input, not a log line.
//!
//! The counts are process-wide: a process has one dispatcher, and a surface's
//! count means the same whichever listener or worker it came from.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The shortest time between two reports of one surface.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The most bytes of a refused input's description that are reported.
pub const MAX_DETAIL: usize = 200;

/// What the sink is told: the surface, what was wrong, and how many more
/// refusals of that surface were held back since its last report.
pub type Sink = Box<dyn Fn(&'static str, String, u64) + Send + Sync>;

struct Surface {
    name: &'static str,
    total: u64,
    last_report: Option<Instant>,
    held_back: u64,
}

static SURFACES: Mutex<Vec<Surface>> = Mutex::new(Vec::new());
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Counts one refused input of `surface`; `detail` (called only when the
/// refusal is reported) says what was wrong. Untrusted bytes in it are
/// escaped and it is cut to [`MAX_DETAIL`].
pub fn reject(surface: &'static str, detail: impl FnOnce() -> String) {
    let report = {
        let mut surfaces = SURFACES.lock();
        let index = match surfaces.iter().position(|s| s.name == surface) {
            Some(i) => i,
            None => {
                surfaces.push(Surface { name: surface, total: 0, last_report: None, held_back: 0 });
                surfaces.len() - 1
            }
        };
        let s = &mut surfaces[index];
        s.total += 1;
        let now = Instant::now();
        if s.last_report.is_some_and(|at| now.duration_since(at) < REPORT_EVERY) {
            s.held_back += 1;
            None
        } else {
            s.last_report = Some(now);
            Some(std::mem::take(&mut s.held_back))
        }
    };
    if let Some(held_back) = report {
        if let Some(sink) = SINK.lock().as_ref() {
            sink(surface, printable(&detail()), held_back);
        }
    }
}

/// Every surface with a refusal so far, and how many, in first-seen order.
pub fn counts() -> Vec<(&'static str, u64)> {
    SURFACES.lock().iter().map(|s| (s.name, s.total)).collect()
}

/// Where reports go (the bindings' JS callback); `None` drops them.
pub fn set_sink(sink: Option<Sink>) {
    *SINK.lock() = sink;
}

/// `text` with control characters and non-ASCII escaped (no terminal escape
/// sequence from a peer reaches a log), cut to [`MAX_DETAIL`] bytes.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX_DETAIL {
            out.push('…');
            break;
        }
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Bytes from a peer, described for a report: printable, cut short.
pub fn describe_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(MAX_DETAIL)];
    printable(&String::from_utf8_lossy(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_every_refusal_and_reports_once_per_interval() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = seen.clone();
        set_sink(Some(Box::new(move |surface, detail, held| {
            if surface == "test-surface" {
                sink_seen.lock().push((detail, held));
            }
        })));
        let before = counts().iter().find(|c| c.0 == "test-surface").map_or(0, |c| c.1);
        for i in 0..1000 {
            reject("test-surface", || format!("input {i}\x1b[2J"));
        }
        let after = counts().iter().find(|c| c.0 == "test-surface").map_or(0, |c| c.1);
        assert_eq!(after - before, 1000);
        let seen = seen.lock();
        assert_eq!(seen.len(), 1, "one report per interval: {seen:?}");
        assert_eq!(seen[0].0, "input 0\\u{1b}[2J");
        set_sink(None);
    }

    #[test]
    fn printable_escapes_and_bounds() {
        assert_eq!(printable("a\nb"), "a\\nb");
        assert!(printable(&"x".repeat(10_000)).len() <= MAX_DETAIL + '…'.len_utf8());
        assert_eq!(describe_bytes(b"\xff\x00ok"), "\\u{fffd}\\u{0}ok");
    }
}
