//! Who gets each connection of a shared listener.
//!
//! - [`handle`]: one shared listening socket, its policy and the connections held for it;
//! - [`policy`]: the scheduling policies behind one trait (round-robin, shared),
//!   chosen once per listener; [`least_connections`], [`sticky`] and [`reuseport`]
//!   are three more;
//! - [`proxy_header`] and [`http_key`]: what the dispatcher reads of a
//!   connection's first bytes before placing it (a PROXY header, a sticky key).

pub mod handle;
pub mod http_key;
pub mod least_connections;
pub mod policy;
pub mod proxy_header;
pub mod reuseport;
pub mod sticky;
