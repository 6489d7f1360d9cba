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
//! - `DISPATCH`: 1..=253 accepted connections for one listener, as `SCM_RIGHTS`;
//!   after the header, the first one's number on this channel (u64 LE; the
//!   others follow it), which names its slot in the worker's connection
//!   claims (`crate::connection_claims`).
//! - `SHARED`:   the listening socket itself (SCHED_NONE), exactly one fd.
//! - `DISPATCH_FROM`: one accepted connection whose client a PROXY protocol
//!   header named (the primary read and stripped it): byte 2 is 1, one fd, and
//!   after the header the connection's number (u64 LE, as for `DISPATCH`),
//!   then the client's address: family (4 or 6), 16 address bytes (an IPv4
//!   address in the first 4), port (u16 big-endian).
//! - `LEFT`:     the worker is out of that listener's rotation; nothing more for
//!   it follows, so the worker may forget the listener (closing protocol, docs/DESIGN.md §3.6).
//!
//! Worker -> primary:
//! - `REPLY`:    one status byte per dispatched fd, in the order they were sent:
//!   `ACCEPTED` (the worker owns a socket for it now, no byte read yet, so the
//!   primary may close its copy) or `REJECTED` (give it to another worker).
//! - `LEAVE`:    take me out of this listener's rotation (my server is closing).
//! - `CLOSED`:   this many more of the connections I took from this listener
//!   have closed (u32 LE), and my server's `maxConnections` (u32 LE, 0 for
//!   none): what least-connections routing and `stats()` count by.
//! - `STICK`:    this sticky key (u64 LE: the hash of a session id, say) is
//!   mine: connections whose cookie or query value hashes to it come to me.
//! - `HEARTBEAT`: my event loop is turning (sent by a timer in the worker;
//!   the dispatcher's hang detector, `dispatcher/health.rs`, checks it).
//! - `HAND_BACK`: an idle keep-alive connection of this listener, exactly one
//!   fd: I am retiring; give it to another worker as a new connection.
//! - `READ`:     the oldest this many (u32 LE) connections I accepted are read:
//!   close your copies; then close reports as `CLOSED` has them, 12 bytes each.
//!
//! Kinds 1-11 are these, in the order of the `KIND_*` constants below; kinds
//! 20-29 are the message bus's, both ways (`crate::bus`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};
use crate::sys::MAX_FDS_PER_MESSAGE;

pub type ListenerId = u32;

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// The client address after a `DISPATCH_FROM` header and number.
pub const SOURCE_LEN: usize = 19;
/// A dispatched connection's number on its channel.
const SEQ_LEN: usize = 8;
/// Large enough for any message either side sends (a bus message is the largest).
pub const MAX_MESSAGE_LEN: usize = {
    let dispatch = HEADER_LEN + MAX_FDS_PER_MESSAGE;
    if crate::bus::MAX_BUS_MESSAGE > dispatch { crate::bus::MAX_BUS_MESSAGE } else { dispatch }
};
const _: () = assert!(HEADER_LEN + SEQ_LEN + SOURCE_LEN <= MAX_MESSAGE_LEN);

pub const ACCEPTED: u8 = 1;
pub const REJECTED: u8 = 0;

// The kinds, numbered without gaps; both ends of a channel are always the
// same build, so nothing outside it reads these numbers. The bus's kinds are
// a block of their own from 20 (`crate::bus`), past every kind here.
const KIND_DISPATCH: u8 = 1;
const KIND_SHARED: u8 = 2;
const KIND_LEFT: u8 = 3;
const KIND_REPLY: u8 = 4;
const KIND_LEAVE: u8 = 5;
const KIND_CLOSED: u8 = 6;
const KIND_DISPATCH_FROM: u8 = 7;
const KIND_STICK: u8 = 8;
const KIND_HEARTBEAT: u8 = 9;
const KIND_HAND_BACK: u8 = 10;
const KIND_READ: u8 = 11;
const KIND_LOOP_STAMP: u8 = 12;
const _: () = assert!(KIND_LOOP_STAMP < crate::bus::KIND_BUS);

/// A message from the primary to a worker (the fds travel beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToWorker {
    /// `count` connections, numbered from `first` on this channel.
    Dispatch { listener: ListenerId, count: u8, first: u64 },
    DispatchFrom { listener: ListenerId, source: SocketAddr, seq: u64 },
    Shared { listener: ListenerId },
    Left { listener: ListenerId },
    /// The file of this worker's loop stamp (`crate::loop_stamp`), once,
    /// before anything else.
    LoopStamp,
}

/// Close reports that ride on a read confirmation: `(listener, closed,
/// cap)` records of 12 bytes, as `ToPrimary::Closed` has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CloseRecords<'a>(&'a [u8]);

const CLOSE_RECORD_LEN: usize = 12;

/// How many close records one read confirmation carries at most.
pub const MAX_CLOSE_RECORDS: usize = (MAX_MESSAGE_LEN - HEADER_LEN - 4) / CLOSE_RECORD_LEN;

impl<'a> CloseRecords<'a> {
    /// Records encoded by `encode_into`; empty for none.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() % CLOSE_RECORD_LEN != 0 || bytes.len() / CLOSE_RECORD_LEN > MAX_CLOSE_RECORDS {
            return Err(Error::Protocol(format!("close records of {} bytes", bytes.len())));
        }
        Ok(CloseRecords(bytes))
    }

    /// Appends `(listener, closed, cap)` records to `out`.
    pub fn encode_into(records: &[(ListenerId, u32, u32)], out: &mut Vec<u8>) {
        for (listener, closed, cap) in records {
            out.extend_from_slice(&listener.to_le_bytes());
            out.extend_from_slice(&closed.to_le_bytes());
            out.extend_from_slice(&cap.to_le_bytes());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (ListenerId, u32, u32)> + 'a {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        self.0.chunks_exact(CLOSE_RECORD_LEN).map(move |r| (word(&r[0..4]), word(&r[4..8]), word(&r[8..12])))
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A message from a worker to the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToPrimary<'a> {
    Reply { statuses: &'a [u8] },
    Leave { listener: ListenerId },
    /// The oldest `count` connections I took (`ACCEPTED` in a `REPLY`) are
    /// mine for good: an event-loop turn has passed since, so whatever bytes
    /// waited on them were read. The primary closes its copies. `closes`:
    /// the close reports that were due at the same moment, each as a
    /// `Closed` would carry it, in the same message (one wake-up of the
    /// primary instead of two under connection churn).
    Read { count: u32, closes: CloseRecords<'a> },
    Closed { listener: ListenerId, closed: u32, cap: u32 },
    Stick { key: u64 },
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

fn encode_source(source: SocketAddr) -> [u8; SOURCE_LEN] {
    let mut out = [0u8; SOURCE_LEN];
    match source.ip() {
        IpAddr::V4(ip) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&ip.octets());
        }
    }
    out[17..19].copy_from_slice(&source.port().to_be_bytes());
    out
}

/// The connection number at the start of `bytes`.
fn decode_seq(bytes: &[u8]) -> Result<u64> {
    match bytes.get(..SEQ_LEN) {
        Some(b) => Ok(u64::from_le_bytes(b.try_into().expect("SEQ_LEN bytes"))),
        None => Err(Error::Protocol(format!("a dispatch without its number ({} bytes)", bytes.len()))),
    }
}

fn decode_source(bytes: &[u8]) -> Result<SocketAddr> {
    if bytes.len() != SOURCE_LEN {
        return Err(Error::Protocol(format!("client address of {} bytes", bytes.len())));
    }
    let port = u16::from_be_bytes([bytes[17], bytes[18]]);
    let ip = match bytes[0] {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[1], bytes[2], bytes[3], bytes[4])),
        6 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[1..17]);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        other => return Err(Error::Protocol(format!("unknown address family {other}"))),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Counts a frame from peer `peer` that does not decode (surface
/// `channelFrame`, `crate::rejections`) and gives back `why`, for the
/// channel's failure report.
pub fn refuse_frame(peer: u32, why: String) -> String {
    crate::rejections::reject("channelFrame", || format!("peer {peer}: {why}"));
    why
}

impl ToWorker {
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            ToWorker::Dispatch { listener, count, first } => {
                let mut out = header_with_count(KIND_DISPATCH, count, listener).to_vec();
                out.extend_from_slice(&first.to_le_bytes());
                out
            }
            ToWorker::DispatchFrom { listener, source, seq } => {
                let mut out = header_with_count(KIND_DISPATCH_FROM, 1, listener).to_vec();
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&encode_source(source));
                out
            }
            ToWorker::Shared { listener } => header(KIND_SHARED, listener).to_vec(),
            ToWorker::Left { listener } => header(KIND_LEFT, listener).to_vec(),
            ToWorker::LoopStamp => header(KIND_LOOP_STAMP, 0).to_vec(),
        }
    }

    /// Decodes the header of a message whose fds were lost on the way (the
    /// receiver is out of descriptors): a DISPATCH says how many there were.
    pub fn decode_without_fds(buf: &[u8]) -> Result<Self> {
        let (kind, listener, rest) = parse_header(buf)?;
        match kind {
            KIND_DISPATCH if buf[2] >= 1 => Ok(ToWorker::Dispatch { listener, count: buf[2], first: decode_seq(rest)? }),
            // Lost with its one fd: refused like any lost dispatch.
            KIND_DISPATCH_FROM => Ok(ToWorker::Dispatch { listener, count: 1, first: decode_seq(rest)? }),
            KIND_SHARED => Ok(ToWorker::Shared { listener }),
            KIND_LOOP_STAMP => Ok(ToWorker::LoopStamp),
            other => Err(Error::Protocol(format!("message kind {other} lost descriptors it should not carry"))),
        }
    }

    /// Decodes a message and checks that it came with the right number of fds.
    pub fn decode(buf: &[u8], fd_count: usize) -> Result<Self> {
        let (kind, listener, rest) = parse_header(buf)?;
        if kind == KIND_DISPATCH_FROM {
            let seq = decode_seq(rest)?;
            let msg = ToWorker::DispatchFrom { listener, source: decode_source(&rest[SEQ_LEN..])?, seq };
            if buf[2] != 1 || fd_count != 1 {
                return Err(Error::Protocol(format!("{msg:?} arrived with {fd_count} fds")));
            }
            return Ok(msg);
        }
        if kind == KIND_DISPATCH {
            if rest.len() != SEQ_LEN {
                return Err(Error::Protocol(format!("a dispatch with {} bytes after the header", rest.len())));
            }
            let count = buf[2];
            let msg = ToWorker::Dispatch { listener, count, first: decode_seq(rest)? };
            if count as usize != fd_count || fd_count == 0 {
                return Err(Error::Protocol(format!("{msg:?} arrived with {fd_count} fds")));
            }
            return Ok(msg);
        }
        if !rest.is_empty() {
            return Err(Error::Protocol(format!("{} unexpected bytes after the header", rest.len())));
        }
        let (msg, fds_ok) = match kind {
            KIND_SHARED => (ToWorker::Shared { listener }, fd_count == 1),
            KIND_LEFT => (ToWorker::Left { listener }, fd_count == 0),
            KIND_LOOP_STAMP => (ToWorker::LoopStamp, fd_count == 1),
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
            ToPrimary::Read { count, closes } => {
                out.extend_from_slice(&header(KIND_READ, 0));
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(closes.bytes());
            }
            ToPrimary::Stick { key } => {
                out.extend_from_slice(&header(KIND_STICK, 0));
                out.extend_from_slice(&key.to_le_bytes());
            }
            ToPrimary::Closed { listener, closed, cap } => {
                out.extend_from_slice(&header(KIND_CLOSED, listener));
                out.extend_from_slice(&closed.to_le_bytes());
                out.extend_from_slice(&cap.to_le_bytes());
            }
            ToPrimary::Heartbeat => out.extend_from_slice(&header(KIND_HEARTBEAT, 0)),
            ToPrimary::HandBack { listener } => out.extend_from_slice(&header(KIND_HAND_BACK, listener)),
        }
    }

    /// Strict: a worker's frame decodes only as its own encoding would have
    /// it (reserved header bytes zero, no listener id on a kind without one).
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let (kind, listener, rest) = parse_header(buf)?;
        if buf[2] != 0 || buf[3] != 0 {
            return Err(Error::Protocol(format!("message kind {kind} with non-zero reserved header bytes")));
        }
        if listener != 0 && matches!(kind, KIND_REPLY | KIND_READ | KIND_STICK | KIND_HEARTBEAT) {
            return Err(Error::Protocol(format!("message kind {kind} with a listener id")));
        }
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
            KIND_READ if rest.len() >= 4 => Ok(ToPrimary::Read {
                count: u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
                closes: CloseRecords::from_bytes(&rest[4..])?,
            }),
            KIND_READ => Err(Error::Protocol(format!("read confirmation of {} bytes", rest.len()))),
            KIND_CLOSED if rest.len() == 8 => Ok(ToPrimary::Closed {
                listener,
                closed: u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]),
                cap: u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]),
            }),
            KIND_CLOSED => Err(Error::Protocol(format!("close report of {} bytes", rest.len()))),
            KIND_STICK if rest.len() == 8 => {
                let mut key = [0u8; 8];
                key.copy_from_slice(rest);
                Ok(ToPrimary::Stick { key: u64::from_le_bytes(key) })
            }
            KIND_STICK => Err(Error::Protocol(format!("sticky key of {} bytes", rest.len()))),
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
            (ToWorker::Dispatch { listener: 7, count: 3, first: u64::MAX - 1 }, 3),
            (ToWorker::Shared { listener: 0xdead_beef }, 1),
            (ToWorker::Left { listener: 1 }, 0),
            (ToWorker::LoopStamp, 1),
            (ToWorker::DispatchFrom { listener: 4, source: "192.0.2.7:56324".parse().unwrap(), seq: 9 }, 1),
            (ToWorker::DispatchFrom { listener: 4, source: "[2001:db8::1]:1".parse().unwrap(), seq: 0 }, 1),
        ] {
            assert_eq!(ToWorker::decode(&msg.encode(), fds).unwrap(), msg);
        }
    }

    #[test]
    fn a_dispatch_with_its_client_needs_one_fd_and_a_whole_address() {
        let msg = ToWorker::DispatchFrom { listener: 4, source: "192.0.2.7:56324".parse().unwrap(), seq: 3 };
        let bytes = msg.encode();
        assert!(ToWorker::decode(&bytes, 0).is_err());
        assert!(ToWorker::decode(&bytes, 2).is_err());
        assert!(ToWorker::decode(&bytes[..bytes.len() - 1], 1).is_err());
        let mut bad_family = bytes.clone();
        bad_family[HEADER_LEN + SEQ_LEN] = 5;
        assert!(ToWorker::decode(&bad_family, 1).is_err());
        assert_eq!(ToWorker::decode_without_fds(&bytes).unwrap(), ToWorker::Dispatch { listener: 4, count: 1, first: 3 });
    }

    #[test]
    fn to_worker_rejects_wrong_fd_counts() {
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 1, first: 0 }.encode(), 0).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 0, first: 0 }.encode(), 0).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 3, first: 0 }.encode(), 2).is_err());
        assert!(ToWorker::decode(&ToWorker::Dispatch { listener: 1, count: 253, first: 0 }.encode(), 254).is_err());
        assert!(ToWorker::decode(&ToWorker::Shared { listener: 1 }.encode(), 2).is_err());
        assert!(ToWorker::decode(&ToWorker::Left { listener: 1 }.encode(), 1).is_err());
    }

    #[test]
    fn a_dispatch_whose_fds_were_lost_still_says_how_many() {
        let msg = ToWorker::Dispatch { listener: 9, count: 17, first: 40 };
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
        ToPrimary::Read { count: 70_000, closes: CloseRecords::default() }.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), ToPrimary::Read { count: 70_000, closes: CloseRecords::default() });
        buf.pop();
        assert!(matches!(ToPrimary::decode(&buf), Err(Error::Protocol(_))));
        let mut records = Vec::new();
        CloseRecords::encode_into(&[(3, 2, 0), (7, 70_000, 5)], &mut records);
        let read = ToPrimary::Read { count: 0, closes: CloseRecords::from_bytes(&records).unwrap() };
        read.encode(&mut buf);
        let decoded = ToPrimary::decode(&buf).unwrap();
        assert_eq!(decoded, read);
        let ToPrimary::Read { closes, .. } = decoded else { unreachable!() };
        assert_eq!(closes.iter().collect::<Vec<_>>(), vec![(3, 2, 0), (7, 70_000, 5)]);
        buf.pop();
        assert!(matches!(ToPrimary::decode(&buf), Err(Error::Protocol(_))), "a cut record is refused");
        let closed = ToPrimary::Closed { listener: 3, closed: 70_000, cap: 5 };
        closed.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), closed);
        buf.pop();
        assert!(matches!(ToPrimary::decode(&buf), Err(Error::Protocol(_))));
        let stick = ToPrimary::Stick { key: 0x0123_4567_89ab_cdef };
        stick.encode(&mut buf);
        assert_eq!(ToPrimary::decode(&buf).unwrap(), stick);
        buf.push(0);
        assert!(matches!(ToPrimary::decode(&buf), Err(Error::Protocol(_))));
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
