//! Node bindings for rcluster. Thin by design: the logic lives in
//! `rcluster-core` (see `core/`), and the public JS API in `index.js`.
//!
//! - [`facts`]: what JS and the native side agree on (bus peer ids, defaults, policy names, address blocks), defined once.
//! - [`primary`]: `Dispatcher`, the primary's handle on the native dispatcher.
//! - [`events`]: what the dispatcher thread tells the primary's JS (`onEvent`).
//! - [`worker`]: `Channel`, a worker's receiver, read on the JS thread via `uv_poll`.
//! - [`shared`]: `SharedMemory`, this process's mapping of the cluster's shared counters and table.
//! - [`rejections`]: untrusted input the native code refused, counted and reported to JS.
//! - [`peer_credentials`]: who is at the other end of a unix socket (the `rcluster` command's control socket).
//! - [`js_error`]: the one conversion from the core's error to a JS error.
//! - [`uv`]: the libuv poll handle `Channel` reads through, behind a safe wrapper.

mod events;
mod facts;
mod js_error;
mod peer_credentials;
mod primary;
mod rejections;
mod shared;
mod uv;
mod worker;
