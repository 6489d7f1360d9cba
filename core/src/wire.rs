//! The wire protocol of the private channel between the primary and one worker.
//!
//! The channel is a `SOCK_SEQPACKET` socketpair, so every `sendmsg` is one
//! message and boundaries survive. Every message starts with an 8-byte header:
//!
//! ```text
//! byte 0      version (VERSION)
//! byte 1      kind
//! byte 2      DISPATCH: how many fds come with it (so a worker out of fds,
//!             which gets none of them, can still refuse each); else zero
//! byte 3      reserved, zero
//! bytes 4..8  listener id, u32 little-endian (0 where a kind has none)
//! ```
//!
//! Primary -> worker:
//! - `DISPATCH`: 1..=253 accepted connections for one listener, as `SCM_RIGHTS`.
//! - `SHARED`:   the listening socket itself (SCHED_NONE), exactly one fd.
//! - `LEFT`:     the worker is out of that listener's rotation; nothing more for
//!   it follows, so the worker may forget the listener (closing protocol, docs/DESIGN.md §3.6).
//!
//! Worker -> primary:
//! - `REPLY`:    one status byte per dispatched fd, in the order they were sent:
//!   `ACCEPTED` (the worker owns a socket for it now, no byte read yet, so the
//!   primary may close its copy) or `REJECTED` (give it to another worker).
//! - `LEAVE`:    take me out of this listener's rotation (my server is closing).
//! - `HEARTBEAT`: my event loop is turning (sent by a timer in the worker;
//!   the dispatcher's hang detector, `dispatcher/health.rs`, checks it).
//! - `HAND_BACK`: an idle keep-alive connection of this listener, exactly one
//!   fd: I am retiring; give it to another worker as a new connection.

use crate::error::{Error, Result};
use crate::sys::MAX_FDS_PER_MESSAGE;

pub type ListenerId = u32;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// Large enough for any message either side sends.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + MAX_FDS_PER_MESSAGE;

pub const ACCEPTED: u8 = 1;
pub const REJECTED: u8 = 0;

const KIND_DISPATCH: u8 = 1;
const KIND_SHARED: u8 = 2;
const KIND_LEFT: u8 = 3;
const KIND_REPLY: u8 = 4;
const KIND_LEAVE: u8 = 5;
// Operations' range: 10-15.
const KIND_HEARTBEAT: u8 = 10;
const KIND_HAND_BACK: u8 = 11;

/// A message from the primary to a worker (the fds travel beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToWorker {
    Dispatch { listener: ListenerId, count: u8 },
    Shared { listener: ListenerId },
    Left { listener: ListenerId },
}

/// A message from a worker to the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToPrimary<'a> {
    Reply { statuses: &'a [u8] },
    Leave { listener: ListenerId },
    Heartbeat,
    /// Comes with exactly one fd, the only message from a worker that does.
    HandBack { listener: ListenerId },
}

fn header(kind: u8, listener: ListenerId) -> [u8; HEADER_LEN] {
    header_with_count(kind, 0, listener)
}

fn header_with_count(kind: u8, count: u8, listener: ListenerId) -> [u8; HEADER_LEN] {
    let id = listener.to_le_bytes();
    [VERSION, kind, count, 0, id[0], id[1], id[2], id[3]]
}

fn parse_header(buf: &[u8]) -> Result<(u8, ListenerId, &[u8])> {
    if buf.len() < HEADER_LEN {
        return Err(Error::Protocol(format!("message of {} bytes is shorter than a header", buf.len())));
    }
    if buf[0] != VERSION {
        return Err(Error::Protocol(format!("unknown protocol version {}", buf[0])));
    }
    let listener = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Ok((buf[1], listener, &buf[HEADER_LEN..]))
}

impl ToWorker {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        match *self {
            ToWorker::Dispatch { listener, count } => header_with_count(KIND_DISPATCH, count, listener),
            ToWorker::Shared { listener } => header(KIND_SHARED, listener),
            ToWorker::Left { listener } => header(KIND_LEFT, listener),
        }
    }

    /// Decodes the header of a message whose fds were lost on the way (the
    /// receiver is out of descriptors): a DISPATCH says how many there were.
    pub fn decode_without_fds(buf: &[u8]) -> Result<Self> {
        let (kind, listener, _) = parse_header(buf)?;
        match kind {
            KIND_DISPATCH if buf[2] >= 1 => Ok(ToWorker::Dispatch { listener, count: buf[2] }),
            KIND_SHARED => Ok(ToWorker::Shared { listener }),
            other => Err(Error::Protocol(format!("message kind {other} lost descriptors it should not carry"))),
        }
    }

    /// Decodes a message and checks that it came with the right number of fds.
    pub fn decode(buf: &[u8], fd_count: usize) -> Result<Self> {
        let (kind, listener, rest) = parse_header(buf)?;
        if !rest.is_empty() {
            return Err(Error::Protocol(format!("{} unexpected bytes after the header", rest.len())));
        }
        let (msg, fds_ok) = match kind {
            KIND_DISPATCH => {
                let count = buf[2];
                (ToWorker::Dispatch { listener, count }, count as usize == fd_count && fd_count >= 1)
            }
            KIND_SHARED => (ToWorker::Shared { listener }, fd_count == 1),
            KIND_LEFT => (ToWorker::Left { listener }, fd_count == 0),
            other => return Err(Error::Protocol(format!("unknown message kind {other} from the primary"))),
        };
        if !fds_ok {
            return Err(Error::Protocol(format!("{msg:?} arrived with {fd_count} fds")));
        }
        Ok(msg)
    }
}

impl<'a> ToPrimary<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        match *self {
            ToPrimary::Reply { statuses } => {
                debug_assert!(!statuses.is_empty() && statuses.len() <= MAX_FDS_PER_MESSAGE);
                out.extend_from_slice(&header(KIND_REPLY, 0));
                out.extend_from_slice(statuses);
            }
            ToPrimary::Leave { listener } => out.extend_from_slice(&header(KIND_LEAVE, listener)),
            ToPrimary::Heartbeat => out.extend_from_slice(&header(KIND_HEARTBEAT, 0)),
            ToPrimary::HandBack { listener } => out.extend_from_slice(&header(KIND_HAND_BACK, listener)),
        }
    }

    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let (kind, listener, rest) = parse_header(buf)?;
        match kind {
            KIND_REPLY => {
                if rest.is_empty() || rest.len() > MAX_FDS_PER_MESSAGE {
                    return Err(Error::Protocol(format!("reply with {} statuses", rest.len())));
                }
                if let Some(bad) = rest.iter().find(|s| **s != ACCEPTED && **s != REJECTED) {
                    return Err(Error::Protocol(format!("unknown reply status {bad}")));
                }
                Ok(ToPrimary::Reply { statuses: rest })
            }
            KIND_LEAVE if rest.is_empty() => Ok(ToPrimary::Leave { listener }),
            KIND_LEAVE => Err(Error::Protocol("leave message with a payload".into())),
            KIND_HEARTBEAT if rest.is_empty() => Ok(ToPrimary::Heartbeat),
            KIND_HEARTBEAT => Err(Error::Protocol("heartbeat with a payload".into())),
            KIND_HAND_BACK if rest.is_empty() => Ok(ToPrimary::HandBack { listener }),
            KIND_HAND_BACK => Err(Error::Protocol("hand-back with a payload".into())),
            other => Err(Error::Protocol(format!("unknown message kind {other} from a worker"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_worker_round_trips_with_the_right_fd_counts() {
        for (msg, fds) in [
            (ToWorker::Dispatch { listener: 7, count: 3 }, 3),
            (ToWorker::Shared { listener: 0xdead_beef }, 1),
            (ToWorker::Left { listener: 1 }, 0),
        ] {
            assert_eq!(ToWorker::decode(&msg.encode(), fds).unwrap(), msg);
        }
    }

    #[test]
    fn to_worker_rejects_wrong_fd_counts() {
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 1 }.encode(), 0).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 0 }.encode(), 0).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 3 }.encode(), 2).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 253 }.encode(), 254).is_err());
        assert!(ToWorker::decode(&ToWorker::Shared { listener: 1 }.encode(), 2).is_err());
        assert!(ToWorker::decode(&ToWorker::Left { listener: 1 }.encode(), 1).is_err());
    }

    #[test]
    fn a_dispatch_whose_fds_were_lost_still_says_how_many() {
        let msg = ToWorker::Dispatch { listener: 9, count: 17 };
        assert_eq!(ToWorker::decode_without_fds(&msg.encode()).unwrap(), msg);
        assert!(ToWorker::decode_without_fds(&ToWorker::Left { listener: 9 }.encode()).is_err());
    }

    #[test]
    fn to_primary_round_trips() {
        let mut buf = Vec::new();
        let statuses = [ACCEPTED, REJECTED, ACCEPTED];
        ToPrimary::Reply { statuses: &statuses }.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), ToPrimary::Reply { statuses: &statuses });
        ToPrimary::Leave { listener: 42 }.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), ToPrimary::Leave { listener: 42 });
        ToPrimary::HandBack { listener: 3 }.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), ToPrimary::HandBack { listener: 3 });
        ToPrimary::Heartbeat.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), ToPrimary::Heartbeat);
        buf.push(1);
        assert!(ToPrimary::decode(&buf).is_err());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        assert!(matches!(ToPrimary::decode(&[]), Err(Error::Protocol(_))));
        assert!(matches!(ToPrimary::decode(&[9, 4, 0, 0, 0, 0, 0, 0, 1]), Err(Error::Protocol(_))));
        assert!(matches!(ToPrimary::decode(&header(KIND_REPLY, 0)), Err(Error::Protocol(_))));
        let mut bad_status = header(KIND_REPLY, 0).to_vec();
        bad_status.push(7);
        assert!(matches!(ToPrimary::decode(&bad_status), Err(Error::Protocol(_))));
        assert!(matches!(ToWorker::decode(&header(99, 0), 0), Err(Error::Protocol(_))));
    }
}
