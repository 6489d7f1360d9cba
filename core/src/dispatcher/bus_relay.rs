//! The dispatcher thread's part of the message bus (`crate::bus`): it passes
//! each message from its sender's channel to its target's, and tells peers
//! when one is gone. It never blocks: a peer whose channel is full gets the
//! message queued (`Peer::push_bus`), and past that bound, dropped, with the
//! sender told.

use std::collections::HashMap;

use super::command::Command;
use super::shards::Shards;
use crate::bus::{self, BusMessage, BROADCAST, PRIMARY};
use crate::error::Result;
use crate::dispatcher::peer::{Peer, PeerState, WorkerId};
use crate::rejections;

/// Most messages read from one peer per turn of the dispatcher's loop.
pub(super) const MAX_READS_PER_TURN: usize = 256;

pub(super) fn is_bus(message: &[u8]) -> bool {
    bus::decode(message).is_some()
}

/// Passes on a message `from` sent. Only `BUS` may come from a peer; anything
/// else of the bus's kinds, or a malformed one, is dropped and counted
/// (surface `channelFrame`): SEQPACKET keeps message boundaries, so a bad
/// message costs nothing but itself and the channel goes on. With `bridge`,
/// broadcasts from other peers reach the primary too. With several
/// dispatcher threads (`shards`, this being thread `shard`), a peer of
/// another thread gets it through that thread's inbox.
pub(super) fn relay(
    peers: &mut HashMap<WorkerId, Peer>,
    shards: Option<&Shards>,
    shard: usize,
    from: WorkerId,
    raw: &[u8],
    bridge: bool,
) -> Result<()> {
    let (target, payload) = match bus::decode(raw) {
        Some(Ok(BusMessage::Bus { target, payload, .. })) => (target, payload),
        Some(Ok(_)) => {
            rejections::reject("channelFrame", || format!("peer {from} sent a bus notice, which only the primary sends"));
            return Ok(());
        }
        Some(Err(e)) => {
            rejections::reject("channelFrame", || format!("peer {from}: {e}"));
            return Ok(());
        }
        None => {
            rejections::reject("channelFrame", || format!("peer {from}: {}", rejections::describe_bytes(raw)));
            return Ok(());
        }
    };
    // Whatever the sender claims, `from` is who sent it: the message is
    // re-encoded with the id of the channel it came on.
    let message = bus::relayed(target, from, payload);
    if target == BROADCAST {
        if let Some(shards) = shards {
            for other in (0..shards.len()).filter(|t| *t != shard) {
                forward(peers, shards, other, from, BROADCAST, message.clone());
            }
        }
        deliver_here(peers, shards, from, BROADCAST, message, bridge);
        return Ok(());
    }
    if peers.contains_key(&target) {
        deliver_here(peers, shards, from, target, message, bridge);
        return Ok(());
    }
    if let Some((shards, owner)) = shards.and_then(|s| s.owner(target).filter(|o| *o != shard).map(|o| (s, o))) {
        forward(peers, shards, owner, from, target, message);
        return Ok(());
    }
    // No such peer (it exited, or never was): what was asked of it will
    // never be answered, and the sender hears so at once. Nothing is
    // kept for the unknown id; the notice is bounded in the sender's
    // queue (`bus::QUEUE_NOTICES`).
    if let Some(sender) = peers.get_mut(&from) {
        sender.push_bus(bus::encode_peer_gone(target));
    }
    Ok(())
}

/// Puts a relayed message in thread `owner`'s inbox, within that inbox's
/// bound (`Shards::reserve_bus`): past it, dropped, and the sender told
/// (for a broadcast, `to` is `BROADCAST`).
fn forward(peers: &mut HashMap<WorkerId, Peer>, shards: &Shards, owner: usize, from: WorkerId, to: WorkerId, message: Vec<u8>) {
    if shards.reserve_bus(owner, message.len()) {
        shards.inbox(owner).send(Command::Bus { from, to, message });
    } else if let Some(sender) = peers.get_mut(&from) {
        let dropped = if to == BROADCAST { shards.peers_of(owner) } else { vec![to] };
        for peer in dropped.into_iter().filter(|p| *p != PRIMARY) {
            sender.push_bus(bus::encode_dropped(peer));
        }
    }
}

/// Delivers a relayed message to peer `to` of this thread, or for a
/// broadcast to each of them: every worker and the agent, the sender too if
/// it is one; not the primary, unless it bridges machines and did not send
/// it itself. A peer whose queue is full drops it and the sender hears so;
/// one gone by now is reported gone.
pub(super) fn deliver_here(
    peers: &mut HashMap<WorkerId, Peer>,
    shards: Option<&Shards>,
    from: WorkerId,
    to: WorkerId,
    message: Vec<u8>,
    bridge: bool,
) {
    if to == BROADCAST {
        let ids: Vec<WorkerId> =
            peers.keys().copied().filter(|id| *id != PRIMARY || (bridge && from != PRIMARY)).collect();
        for id in ids {
            deliver(peers, shards, from, id, message.clone());
        }
    } else if peers.get(&to).is_some_and(|p| p.state() != PeerState::Dead) {
        deliver(peers, shards, from, to, message);
    } else {
        notify(peers, shards, from, bus::encode_peer_gone(to));
    }
}

fn deliver(peers: &mut HashMap<WorkerId, Peer>, shards: Option<&Shards>, from: WorkerId, to: WorkerId, message: Vec<u8>) {
    let queued = peers.get_mut(&to).is_some_and(|p| p.push_bus(message));
    if !queued {
        notify(peers, shards, from, bus::encode_dropped(to));
    }
}

/// Queues a notice for peer `to`, here or on its own thread.
fn notify(peers: &mut HashMap<WorkerId, Peer>, shards: Option<&Shards>, to: WorkerId, notice: Vec<u8>) {
    if let Some(peer) = peers.get_mut(&to) {
        peer.push_bus(notice);
    } else if let Some((shards, owner)) = shards.and_then(|s| s.owner(to).map(|o| (s, o))) {
        shards.inbox(owner).send(Command::BusNotice { to, notice });
    }
}

/// A peer is gone: every other peer hears it, so that requests to it fail now
/// rather than at their timeout; with several dispatcher threads, theirs too
/// (`shards`, when the peer was this thread's).
pub(super) fn peer_gone(peers: &mut HashMap<WorkerId, Peer>, shards: Option<&Shards>, shard: usize, gone: WorkerId) {
    if let Some(shards) = shards {
        shards.to_others(shard, || Command::PeerGone(gone));
    }
    for peer in peers.values_mut() {
        peer.push_bus(bus::encode_peer_gone(gone));
    }
}
