//! The message bus on the private channels (`cluster.bus`): messages between
//! the primary, the workers and the agent, relayed by the dispatcher thread,
//! never by the primary's JS. The primary's JS is a peer like any other, with
//! a channel of its own (id `PRIMARY`).
//!
//! Message kinds (the 8-byte header of `wire`, kinds 20-29):
//!
//! ```text
//! BUS        20  both ways: header, target u32, from u32, payload (opaque to
//!                native code: JS's encoding of topic and data). The sender's
//!                `from` is ignored; the dispatcher writes the real one.
//! PEER_GONE  21  primary -> peer: the peer in the header's id field is gone
//!                (it died, or never existed): nothing it was asked will be
//!                answered.
//! DROPPED    22  primary -> peer: a message of yours to the peer in the id
//!                field was dropped, its queue being full.
//! ```
//!
//! Back-pressure: the dispatcher never blocks on a peer. What a peer's full
//! channel cannot take waits in that peer's `BusQueue`, bounded in messages
//! and bytes; past that, messages for it are dropped and each sender told.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::wire::{HEADER_LEN, VERSION};

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

/// Largest payload of one bus message. A SEQPACKET message must fit the
/// socket's send buffer whole; 64 KiB leaves room under Linux's default.
pub const MAX_PAYLOAD: usize = 64 * 1024;
const BUS_HEAD: usize = HEADER_LEN + 8;
pub const MAX_BUS_MESSAGE: usize = BUS_HEAD + MAX_PAYLOAD;

/// Most messages, and bytes, waiting for one peer's channel.
pub const QUEUE_MESSAGES: usize = 8192;
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

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
    let mut out = Vec::with_capacity(BUS_HEAD + payload.len());
    out.extend_from_slice(&header(KIND_BUS, 0));
    out.extend_from_slice(&target.to_le_bytes());
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

pub fn encode_peer_gone(peer: PeerId) -> Vec<u8> {
    header(KIND_PEER_GONE, peer).to_vec()
}

pub fn encode_dropped(target: PeerId) -> Vec<u8> {
    header(KIND_DROPPED, target).to_vec()
}

/// The same message with `from` set to who really sent it.
pub fn with_sender(message: &[u8], from: PeerId) -> Vec<u8> {
    let mut out = message.to_vec();
    out[HEADER_LEN + 4..BUS_HEAD].copy_from_slice(&from.to_le_bytes());
    out
}

/// `None` if `buf` is not a bus message (another part of the protocol reads
/// it); else the message, or why it is malformed.
pub fn decode(buf: &[u8]) -> Option<Result<BusMessage<'_>>> {
    if buf.len() < HEADER_LEN || buf[0] != VERSION {
        return None;
    }
    let id = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let rest = &buf[HEADER_LEN..];
    let read = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
    Some(match buf[1] {
        KIND_BUS if rest.len() >= 8 && rest.len() - 8 <= MAX_PAYLOAD => {
            Ok(BusMessage::Bus { target: read(0), from: read(4), payload: &rest[8..] })
        }
        KIND_BUS => Err(Error::Protocol(format!("bus message of {} bytes", buf.len()))),
        KIND_PEER_GONE if rest.is_empty() => Ok(BusMessage::PeerGone { peer: id }),
        KIND_DROPPED if rest.is_empty() => Ok(BusMessage::Dropped { target: id }),
        KIND_PEER_GONE | KIND_DROPPED => Err(Error::Protocol("bus notice with a payload".into())),
        _ => return None,
    })
}

/// Bus messages waiting for a peer's channel to have room, in order.
#[derive(Debug, Default)]
pub struct BusQueue {
    messages: VecDeque<Vec<u8>>,
    /// How many of `messages` are `BUS` messages, and their bytes: what the
    /// bound applies to.
    data: usize,
    bytes: usize,
}

fn is_notice(message: &[u8]) -> bool {
    message.len() == HEADER_LEN
}

impl BusQueue {
    /// Queues a message; false (and nothing queued) when the queue is full.
    /// Notices (no payload) are always taken, and do not count towards the
    /// bound: they are what tells a sender its requests will not be answered,
    /// and they must never crowd out the answers themselves. A notice equal
    /// to the last one queued is not queued twice: a sender flooding a full
    /// peer hears "dropped" once per run, not once per message.
    pub fn push(&mut self, message: Vec<u8>) -> bool {
        if is_notice(&message) {
            if self.messages.back() != Some(&message) {
                self.messages.push_back(message);
            }
            return true;
        }
        if self.data >= QUEUE_MESSAGES || self.bytes + message.len() > QUEUE_BYTES {
            return false;
        }
        self.data += 1;
        self.bytes += message.len();
        self.messages.push_back(message);
        true
    }

    pub fn front(&self) -> Option<&[u8]> {
        self.messages.front().map(Vec::as_slice)
    }

    pub fn pop(&mut self) {
        if let Some(m) = self.messages.pop_front() {
            if !is_notice(&m) {
                self.data -= 1;
                self.bytes -= m.len();
            }
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_round_trip() {
        let m = encode(7, 0, b"hello").unwrap();
        assert_eq!(decode(&m).unwrap().unwrap(), BusMessage::Bus { target: 7, from: 0, payload: b"hello" });
        let m = with_sender(&m, 3);
        assert_eq!(decode(&m).unwrap().unwrap(), BusMessage::Bus { target: 7, from: 3, payload: b"hello" });
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
        assert!(crate::wire::MAX_MESSAGE_LEN >= MAX_BUS_MESSAGE);
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
}
