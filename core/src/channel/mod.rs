//! The private channel between the primary and one worker: a `SOCK_SEQPACKET`
//! socketpair that carries connections, listen replies and bus messages.
//!
//! - [`wire`]: the one definition of the messages on it;
//! - [`worker_channel`]: a worker's end of it.

pub mod wire;
pub mod worker_channel;
