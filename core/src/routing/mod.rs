//! Who gets each connection of a shared listener.
//!
//! - [`handle`]: one listener: its socket, its policy, and the one queue of
//!   connections the primary holds for it (one way in, `hold`; one question
//!   before accepting, `should_accept`);
//! - [`policy`]: the scheduling policies behind one trait, chosen once per
//!   listener, each owning what its routing needs: round-robin and shared
//!   there; [`least_connections`], [`sticky`] (with its claimed sessions) and
//!   [`reuseport`] (with its per-worker sockets) are three more;
//! - [`header_stage`]: the pre-dispatch stage where a connection's first
//!   bytes are read before it is placed; its parts are [`proxy_header`] (a
//!   PROXY header) and [`http_key`] (a sticky key in the first request).

pub mod handle;
pub mod header_stage;
pub mod http_key;
pub mod least_connections;
pub mod policy;
pub mod proxy_header;
pub mod reuseport;
pub mod sticky;
