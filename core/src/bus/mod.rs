//! The message bus on the private channels (`cluster.bus`): messages between
//! the primary, the workers and the agent, relayed by the dispatcher thread,
//! never by the primary's JS. The primary's JS is a peer like any other, with
//! a channel of its own (id `PRIMARY`).
//!
//! Message kinds (the 8-byte header of `wire`, kinds 20-29):
//!
//! ```text
//! BUS        20  both ways: header (id field zero), target u32, from u32,
//!                payload (opaque to native code: JS's encoding of topic and
//!                data). The sender's `from` is ignored: the dispatcher
//!                re-encodes every message it relays with the id of the
//!                channel it came on, so no peer can choose it.
//! PEER_GONE  21  primary -> peer: the peer in the header's id field is gone
//!                (it died, or never existed): nothing it was asked will be
//!                answered.
//! DROPPED    22  primary -> peer: a message of yours to the peer in the id
//!                field was dropped, its queue being full.
//! ```
//!
//! A receiving peer hands its JS the `BUS` messages of one wake-up as one
//! [`Batch`]: a count, and that many records of sender id, target id,
//! payload length (u32 LE each) and payload. Both framings live here; the
//! one reader of a batch is lib/bus/bus.js.
//!
//! Back-pressure: the dispatcher never blocks on a peer. What a peer's full
//! channel cannot take waits in that peer's `BusQueue`, bounded in messages
//! and bytes; past that, messages for it are dropped and each sender told.
//! Notices are bounded too (`QUEUE_NOTICES`): a peer that sends to ever-new
//! ids nobody has, and never reads the answers, costs the primary at most
//! that many of them. The relay keeps no state for an id that has no peer,
//! so what it holds is bounded by the live peers times one queue's bound.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::channel::wire::{HEADER_LEN, VERSION};

pub type PeerId = u32;

pub const KIND_BUS: u8 = 20;
pub const KIND_PEER_GONE: u8 = 21;
pub const KIND_DROPPED: u8 = 22;

/// The primary's JS, as a bus peer.
pub const PRIMARY: PeerId = 0;
/// The agent, as a bus peer.
pub const AGENT: PeerId = u32::MAX - 1;
/// Every worker and the agent.
pub const BROADCAST: PeerId = u32::MAX;

/// The head of a record in a [`Batch`]: sender, target, payload length.
pub const RECORD_HEAD: usize = 12;

/// Largest payload of one bus message. A SEQPACKET message must fit the
/// socket's send buffer whole; 64 KiB leaves room under Linux's default.
pub const MAX_PAYLOAD: usize = 64 * 1024;
const BUS_HEAD: usize = HEADER_LEN + 8;
pub const MAX_BUS_MESSAGE: usize = BUS_HEAD + MAX_PAYLOAD;

/// Most messages, and bytes, waiting for one peer's channel.
pub const QUEUE_MESSAGES: usize = 8192;
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Most notices waiting for one peer's channel (8 bytes each, held inline).
/// Past that a notice is dropped: a request of that peer's to a gone peer
/// then ends at its timeout instead of at once, and only a peer that sends
/// thousands of messages to gone or full peers without reading is so served.
pub const QUEUE_NOTICES: usize = 4096;

fn header(kind: u8, id: PeerId) -> [u8; HEADER_LEN] {
    let id = id.to_le_bytes();
    [VERSION, kind, 0, 0, id[0], id[1], id[2], id[3]]
}

/// A decoded bus message.
#[derive(Debug, PartialEq, Eq)]
pub enum BusMessage<'a> {
    Bus { target: PeerId, from: PeerId, payload: &'a [u8] },
    PeerGone { peer: PeerId },
    Dropped { target: PeerId },
}

/// Encodes a bus message.
pub fn encode(target: PeerId, from: PeerId, payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Error::InvalidArgument(format!(
            "a bus message's data must be at most {MAX_PAYLOAD} bytes encoded; this one has {}",
            payload.len()
        )));
    }
    Ok(encode_unchecked(target, from, payload))
}

fn encode_unchecked(target: PeerId, from: PeerId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BUS_HEAD + payload.len());
    out.extend_from_slice(&header(KIND_BUS, 0));
    out.extend_from_slice(&target.to_le_bytes());
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn encode_peer_gone(peer: PeerId) -> Vec<u8> {
    header(KIND_PEER_GONE, peer).to_vec()
}

pub fn encode_dropped(target: PeerId) -> Vec<u8> {
    header(KIND_DROPPED, target).to_vec()
}

/// A decoded `BUS` message as the dispatcher passes it on: re-encoded whole
/// (nothing of the sender's framing but target and payload survives), with
/// `from` the peer whose channel it came on.
pub fn relayed(target: PeerId, from: PeerId, payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_PAYLOAD, "decode bounds it");
    encode_unchecked(target, from, payload)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// `None` if `buf` is not a bus message (another part of the protocol reads
/// it); else the message, or why it is malformed. Total: any bytes give one
/// of those, never a panic.
pub fn decode(buf: &[u8]) -> Option<Result<BusMessage<'_>>> {
    let (&version, &kind) = (buf.first()?, buf.get(1)?);
    if buf.len() < HEADER_LEN || version != VERSION {
        return None;
    }
    let id = u32_at(buf, 4)?;
    let rest = &buf[HEADER_LEN..];
    Some(match kind {
        KIND_BUS | KIND_PEER_GONE | KIND_DROPPED if buf[2] != 0 || buf[3] != 0 => {
            Err(Error::Protocol("bus message with a non-zero reserved header byte".into()))
        }
        KIND_BUS if id != 0 => Err(Error::Protocol("bus message with a non-zero header id".into())),
        KIND_BUS if rest.len() >= 8 && rest.len() - 8 <= MAX_PAYLOAD => match (u32_at(rest, 0), u32_at(rest, 4)) {
            (Some(target), Some(from)) => Ok(BusMessage::Bus { target, from, payload: &rest[8..] }),
            _ => Err(Error::Protocol(format!("bus message of {} bytes", buf.len()))),
        },
        KIND_BUS => Err(Error::Protocol(format!("bus message of {} bytes", buf.len()))),
        KIND_PEER_GONE if rest.is_empty() => Ok(BusMessage::PeerGone { peer: id }),
        KIND_DROPPED if rest.is_empty() => Ok(BusMessage::Dropped { target: id }),
        KIND_PEER_GONE | KIND_DROPPED => Err(Error::Protocol("bus notice with a payload".into())),
        _ => return None,
    })
}

/// The `BUS` messages a peer received in one wake-up, framed for its JS as
/// records (see the module's documentation): one call into JS per wake-up
/// rather than one per message, as each call costs more than a small
/// message does.
#[derive(Debug, Default)]
pub struct Batch {
    count: u32,
    records: Vec<u8>,
}

impl Batch {
    /// Appends a message `from` sent to `target`. `decode` bounds a payload
    /// to `MAX_PAYLOAD`; a longer one (which only a caller that skipped it
    /// could give) is refused and counted, surface `channelFrame`.
    pub fn push(&mut self, from: PeerId, target: PeerId, payload: &[u8]) {
        let length = match u32::try_from(payload.len()) {
            Ok(length) if payload.len() <= MAX_PAYLOAD => length,
            _ => {
                crate::rejections::reject("channelFrame", || format!("a bus message of {} bytes", payload.len()));
                return;
            }
        };
        self.count += 1;
        self.records.reserve(RECORD_HEAD + payload.len());
        self.records.extend_from_slice(&from.to_le_bytes());
        self.records.extend_from_slice(&target.to_le_bytes());
        self.records.extend_from_slice(&length.to_le_bytes());
        self.records.extend_from_slice(payload);
    }

    /// How many records, and their bytes, leaving the batch empty; `None`
    /// if it was empty.
    pub fn take(&mut self) -> Option<(u32, Vec<u8>)> {
        if self.count == 0 {
            return None;
        }
        let batch = std::mem::take(self);
        Some((batch.count, batch.records))
    }
}

/// Bus messages waiting for a peer's channel to have room, in order.
#[derive(Debug, Default)]
pub struct BusQueue {
    messages: VecDeque<Queued>,
    /// How many of `messages` are `BUS` messages, and their bytes: what the
    /// bound applies to.
    data: usize,
    bytes: usize,
    /// How many of `messages` are notices.
    notices: usize,
}

/// A notice is held inline: a flood of them costs no allocation each.
#[derive(Debug, PartialEq, Eq)]
enum Queued {
    Message(Vec<u8>),
    Notice([u8; HEADER_LEN]),
}

impl Queued {
    fn bytes(&self) -> &[u8] {
        match self {
            Queued::Message(m) => m,
            Queued::Notice(n) => n,
        }
    }
}

impl BusQueue {
    /// Queues a message; false (and nothing queued) when the queue is full.
    /// Notices (no payload) have a bound of their own (`QUEUE_NOTICES`) and
    /// do not count towards the messages': they are what tells a sender its
    /// requests will not be answered, and they must never crowd out the
    /// answers themselves. A notice equal to the last one queued is not
    /// queued twice: a sender flooding a full peer hears "dropped" once per
    /// run, not once per message.
    pub fn push(&mut self, message: Vec<u8>) -> bool {
        if let Ok(notice) = <[u8; HEADER_LEN]>::try_from(message.as_slice()) {
            let notice = Queued::Notice(notice);
            if self.messages.back() != Some(&notice) && self.notices < QUEUE_NOTICES {
                self.notices += 1;
                self.messages.push_back(notice);
            }
            return true;
        }
        if self.data >= QUEUE_MESSAGES || self.bytes + message.len() > QUEUE_BYTES {
            return false;
        }
        self.data += 1;
        self.bytes += message.len();
        self.messages.push_back(Queued::Message(message));
        true
    }

    pub fn front(&self) -> Option<&[u8]> {
        self.messages.front().map(Queued::bytes)
    }

    pub fn pop(&mut self) {
        match self.messages.pop_front() {
            Some(Queued::Message(m)) => {
                self.data -= 1;
                self.bytes -= m.len();
            }
            Some(Queued::Notice(_)) => self.notices -= 1,
            None => {}
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn clear(&mut self) {
        self.messages.clear();
        self.data = 0;
        self.bytes = 0;
        self.notices = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_round_trip() {
        let m = encode(7, 0, b"hello").unwrap();
        assert_eq!(decode(&m).unwrap().unwrap(), BusMessage::Bus { target: 7, from: 0, payload: b"hello" });
        let m = relayed(7, 3, b"hello");
        assert_eq!(decode(&m).unwrap().unwrap(), BusMessage::Bus { target: 7, from: 3, payload: b"hello" });
        let mut framed = encode(7, 0, b"hello").unwrap();
        framed[4] = 1;
        assert!(decode(&framed).unwrap().is_err(), "the header's id field of a bus message is zero");
        assert_eq!(decode(&encode_peer_gone(AGENT)).unwrap().unwrap(), BusMessage::PeerGone { peer: AGENT });
        assert_eq!(decode(&encode_dropped(2)).unwrap().unwrap(), BusMessage::Dropped { target: 2 });
        let empty = encode(BROADCAST, 0, b"").unwrap();
        assert_eq!(decode(&empty).unwrap().unwrap(), BusMessage::Bus { target: BROADCAST, from: 0, payload: b"" });
    }

    #[test]
    fn other_kinds_are_left_to_the_rest_of_the_protocol() {
        assert!(decode(&header(1, 0)).is_none());
        assert!(decode(&header(5, 0)).is_none());
        assert!(decode(&[]).is_none());
        assert!(decode(&[VERSION]).is_none());
        assert!(decode(&[VERSION, KIND_BUS, 0]).is_none());
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(encode(1, 0, &vec![0; MAX_PAYLOAD]).is_ok());
        assert!(matches!(encode(1, 0, &vec![0; MAX_PAYLOAD + 1]), Err(Error::InvalidArgument(_))));
        let mut short = header(KIND_BUS, 0).to_vec();
        short.extend_from_slice(&[1, 2, 3]);
        assert!(decode(&short).unwrap().is_err());
        let mut notice = encode_peer_gone(1);
        notice.push(0);
        assert!(decode(&notice).unwrap().is_err());
        assert!(crate::channel::wire::MAX_MESSAGE_LEN >= MAX_BUS_MESSAGE);
    }

    #[test]
    fn a_batch_holds_records_of_sender_target_length_payload() {
        let mut batch = Batch::default();
        assert_eq!(batch.take(), None);
        batch.push(3, BROADCAST, b"hi");
        batch.push(AGENT, 7, b"");
        let (count, records) = batch.take().unwrap();
        assert_eq!(count, 2);
        let mut expected = Vec::new();
        for (from, target, payload) in [(3u32, BROADCAST, &b"hi"[..]), (AGENT, 7, &b""[..])] {
            expected.extend_from_slice(&from.to_le_bytes());
            expected.extend_from_slice(&target.to_le_bytes());
            expected.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            expected.extend_from_slice(payload);
        }
        assert_eq!(records, expected);
        assert_eq!(batch.take(), None, "taking empties it");
        batch.push(1, 2, &vec![0; MAX_PAYLOAD + 1]);
        assert_eq!(batch.take(), None, "an oversized payload is refused");
    }

    #[test]
    fn the_queue_is_bounded_but_always_takes_notices() {
        let mut q = BusQueue::default();
        for _ in 0..QUEUE_MESSAGES {
            assert!(q.push(encode(1, 2, b"x").unwrap()));
        }
        assert!(!q.push(encode(1, 2, b"x").unwrap()));
        assert!(q.push(encode_peer_gone(3)));
        assert_eq!(q.len(), QUEUE_MESSAGES + 1);
        q.pop();
        assert!(q.push(encode(1, 2, b"x").unwrap()), "room for one message again; the notice takes none");
        assert!(!q.push(encode(1, 2, b"x").unwrap()));
        let mut q = BusQueue::default();
        let big = encode(1, 2, &vec![0; MAX_PAYLOAD]).unwrap();
        let fit = QUEUE_BYTES / big.len();
        for _ in 0..fit {
            assert!(q.push(big.clone()));
        }
        assert!(!q.push(big));
    }

    #[test]
    fn notices_never_crowd_out_messages_and_a_run_of_equal_ones_is_one() {
        let mut q = BusQueue::default();
        for _ in 0..100_000 {
            assert!(q.push(encode_dropped(4)));
        }
        assert_eq!(q.len(), 1);
        assert!(q.push(encode(1, 2, b"answer").unwrap()));
        assert!(q.push(encode_dropped(4)));
        assert!(q.push(encode_peer_gone(4)));
        assert!(q.push(encode_peer_gone(4)));
        assert_eq!(q.len(), 4);
        q.pop();
        assert_eq!(decode(q.front().unwrap()).unwrap().unwrap(), BusMessage::Bus { target: 1, from: 2, payload: b"answer" });
    }

    #[test]
    fn notices_to_ever_new_ids_are_bounded() {
        let mut q = BusQueue::default();
        for id in 0..1_000_000u32 {
            assert!(q.push(encode_peer_gone(id)), "a notice is never refused, only dropped past the bound");
        }
        assert_eq!(q.len(), QUEUE_NOTICES);
        assert!(q.push(encode(1, 2, b"answer").unwrap()), "messages have a bound of their own");
        for _ in 0..QUEUE_NOTICES {
            q.pop();
        }
        assert_eq!(decode(q.front().unwrap()).unwrap().unwrap(), BusMessage::Bus { target: 1, from: 2, payload: b"answer" });
        q.pop();
        assert!(q.is_empty());
        assert!(q.push(encode_peer_gone(7)), "room for notices again once they are sent");
        assert_eq!(q.len(), 1);
    }
}
