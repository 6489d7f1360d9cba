//! A worker's end of its private channel to the primary.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::bus::{self, BusMessage, PeerId};
use crate::error::{Error, Result};
use crate::sys::{self, Recv, MAX_FDS_PER_MESSAGE};
use crate::channel::wire::{ListenerId, ToPrimary, ToWorker, MAX_MESSAGE_LEN};

/// What the primary sent.
#[derive(Debug)]
pub enum Incoming {
    /// New connections for a round-robin listener, numbered from `first` on
    /// this channel: each is claimed by its number before it is used
    /// (`crate::connection_claims`).
    Dispatch { listener: ListenerId, fds: Vec<OwnedFd>, first: u64 },
    /// One connection whose client a PROXY protocol header named.
    DispatchFrom { listener: ListenerId, fd: OwnedFd, source: SocketAddr, seq: u64 },
    /// The listening socket of a SCHED_NONE listener.
    Shared { listener: ListenerId, fd: OwnedFd },
    /// Out of that listener's rotation: nothing more for it will come.
    Left { listener: ListenerId },
    /// A dispatch whose `count` fds this worker could not receive (it is out
    /// of descriptors). It must refuse each, so the primary, which still holds
    /// them, gives them to another worker or offers them again later.
    DispatchLost { listener: ListenerId, count: usize },
    /// The listening socket of a SCHED_NONE listener could not be received
    /// (out of descriptors): that listen fails with EMFILE.
    SharedLost { listener: ListenerId },
    /// The file of this worker's loop stamp (`crate::loop_stamp::StampWriter::adopt`).
    LoopStamp { fd: OwnedFd },
    /// The loop stamp's file could not be received (out of descriptors):
    /// the worker goes without stamps.
    LoopStampLost,
    /// A bus message (`crate::bus`) from peer `from`, sent to `target`.
    Bus { from: PeerId, target: PeerId, payload: Vec<u8> },
    /// A bus peer is gone: nothing asked of it will be answered.
    PeerGone { peer: PeerId },
    /// A bus message of ours to `target` was dropped: its queue was full.
    BusDropped { target: PeerId },
}

#[derive(Debug)]
pub enum Received {
    Message(Incoming),
    WouldBlock,
    /// The primary's end is closed: the primary exited.
    Closed,
}

/// How long a send to the primary may wait for room. The primary's thread
/// reads continuously, so this is only ever reached if it is wedged.
const SEND_TIMEOUT_MS: i32 = 2_000;

#[derive(Debug)]
pub struct WorkerChannel {
    sock: OwnedFd,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl WorkerChannel {
    /// Takes over the worker's end of the channel. It arrives in the stdio slot
    /// the primary chose, where libuv's `dup2` cleared close-on-exec; set it
    /// again so processes this worker spawns do not inherit it (they would hold
    /// the channel open and hide this worker's death from the primary).
    pub fn new(sock: OwnedFd) -> Result<Self> {
        sys::set_cloexec(sock.as_fd()).map_err(|e| Error::io("fcntl", e))?;
        sys::set_nonblocking(sock.as_fd(), true).map_err(|e| Error::io("fcntl", e))?;
        Ok(WorkerChannel { sock, buf: vec![0; MAX_MESSAGE_LEN], out: Vec::with_capacity(MAX_MESSAGE_LEN) })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Receives one message without blocking.
    pub fn recv(&mut self) -> Result<Received> {
        let mut fds = Vec::new();
        let n = match sys::recv_message(self.sock.as_fd(), &mut self.buf, &mut fds)
            .map_err(|e| Error::io("recvmsg", e))?
        {
            Recv::Message(n) => n,
            Recv::WouldBlock => return Ok(Received::WouldBlock),
            Recv::Closed => return Ok(Received::Closed),
            Recv::FdsLost(n) => {
                let lost = match ToWorker::decode_without_fds(&self.buf[..n])? {
                    ToWorker::Dispatch { listener, count, .. } => Incoming::DispatchLost { listener, count: count.into() },
                    ToWorker::Shared { listener } => Incoming::SharedLost { listener },
                    ToWorker::LoopStamp => Incoming::LoopStampLost,
                    ToWorker::Left { .. } | ToWorker::DispatchFrom { .. } => {
                        unreachable!("decode_without_fds gives neither")
                    }
                };
                return Ok(Received::Message(lost));
            }
        };
        if let Some(message) = bus::decode(&self.buf[..n]) {
            if !fds.is_empty() {
                return Err(Error::Protocol("a bus message arrived with descriptors".into()));
            }
            return Ok(Received::Message(match message? {
                BusMessage::Bus { from, target, payload } => Incoming::Bus { from, target, payload: payload.to_vec() },
                BusMessage::PeerGone { peer } => Incoming::PeerGone { peer },
                BusMessage::Dropped { target } => Incoming::BusDropped { target },
            }));
        }
        // On a protocol error, `fds` drops here and the descriptors close.
        let incoming = match ToWorker::decode(&self.buf[..n], fds.len())? {
            ToWorker::Dispatch { listener, first, .. } => Incoming::Dispatch { listener, fds, first },
            ToWorker::DispatchFrom { listener, source, seq } => {
                Incoming::DispatchFrom { listener, fd: fds.pop().expect("decode checked one fd"), source, seq }
            }
            ToWorker::Shared { listener } => Incoming::Shared { listener, fd: fds.pop().expect("decode checked one fd") },
            ToWorker::Left { listener } => Incoming::Left { listener },
            ToWorker::LoopStamp => Incoming::LoopStamp { fd: fds.pop().expect("decode checked one fd") },
        };
        Ok(Received::Message(incoming))
    }

    /// Tells the primary, for each fd of the last dispatches in order, whether
    /// this worker took it (`ACCEPTED`) or the primary should re-dispatch it.
    pub fn reply(&mut self, statuses: &[u8]) -> Result<()> {
        for chunk in statuses.chunks(MAX_FDS_PER_MESSAGE) {
            ToPrimary::Reply { statuses: chunk }.encode(&mut self.out);
            self.send_out()?;
        }
        Ok(())
    }

    /// Sends a bus message to `target` (a worker id, `bus::AGENT`,
    /// `bus::PRIMARY` or `bus::BROADCAST`). Waits for room as `reply` does.
    pub fn send_bus(&mut self, target: PeerId, payload: &[u8]) -> Result<()> {
        self.out = bus::encode(target, 0, payload)?;
        self.send_out()
    }

    /// Asks the primary to take this worker out of a listener's rotation.
    pub fn leave(&mut self, listener: ListenerId) -> Result<()> {
        ToPrimary::Leave { listener }.encode(&mut self.out);
        self.send_out()
    }

    /// Tells the primary that the oldest `count` connections this worker
    /// took and has not confirmed yet are read: it may close its copies.
    pub fn confirm_read(&mut self, count: u32) -> Result<()> {
        self.confirm_read_and_closes(count, &[])
    }

    /// `confirm_read` with close reports (`report_closed`'s `(listener,
    /// closed, cap)`) in the same message, as far as one message holds them.
    pub fn confirm_read_and_closes(&mut self, count: u32, closes: &[(ListenerId, u32, u32)]) -> Result<()> {
        let (carried, rest) = closes.split_at(closes.len().min(crate::channel::wire::MAX_CLOSE_RECORDS));
        let mut records = Vec::with_capacity(carried.len() * 12);
        crate::channel::wire::CloseRecords::encode_into(carried, &mut records);
        let closes = crate::channel::wire::CloseRecords::from_bytes(&records).expect("at most MAX_CLOSE_RECORDS records");
        ToPrimary::Read { count, closes }.encode(&mut self.out);
        self.send_out()?;
        for &(listener, closed, cap) in rest {
            self.report_closed(listener, closed, cap)?;
        }
        Ok(())
    }

    /// Tells the primary that `closed` more connections of `listener` closed,
    /// and the server's `maxConnections` now (0: none).
    pub fn report_closed(&mut self, listener: ListenerId, closed: u32, cap: u32) -> Result<()> {
        ToPrimary::Closed { listener, closed, cap }.encode(&mut self.out);
        self.send_out()
    }

    /// Tells the primary that connections whose sticky key hashes to `key`
    /// are this worker's (it owns that session).
    pub fn stick(&mut self, key: u64) -> Result<()> {
        ToPrimary::Stick { key }.encode(&mut self.out);
        self.send_out()
    }

    /// Tells the primary this worker's event loop is turning. Never waits: a
    /// channel too full for it is skipped (the next one follows soon).
    pub fn heartbeat(&mut self) -> Result<()> {
        ToPrimary::Heartbeat.encode(&mut self.out);
        match sys::send_message(self.sock.as_fd(), &self.out, &[]) {
            Ok(()) => Ok(()),
            Err(e) if sys::is_full(&e) => Ok(()),
            Err(e) => Err(Error::io("sendmsg", e)),
        }
    }

    /// Gives an idle keep-alive connection back to the primary, which deals
    /// it to another worker; this worker then closes its own copy.
    pub fn hand_back(&mut self, listener: ListenerId, fd: BorrowedFd<'_>) -> Result<()> {
        ToPrimary::HandBack { listener }.encode(&mut self.out);
        loop {
            match sys::send_message(self.sock.as_fd(), &self.out, &[fd]) {
                Ok(()) => return Ok(()),
                Err(e) if sys::is_full(&e) => {
                    if !sys::wait_writable(self.sock.as_fd(), SEND_TIMEOUT_MS).map_err(|e| Error::io("poll", e))? {
                        return Err(Error::io("sendmsg", e));
                    }
                }
                Err(e) => return Err(Error::io("sendmsg", e)),
            }
        }
    }

    fn send_out(&self) -> Result<()> {
        loop {
            match sys::send_message(self.sock.as_fd(), &self.out, &[]) {
                Ok(()) => return Ok(()),
                Err(e) if sys::is_full(&e) => {
                    if !sys::wait_writable(self.sock.as_fd(), SEND_TIMEOUT_MS).map_err(|e| Error::io("poll", e))? {
                        return Err(Error::io("sendmsg", e));
                    }
                }
                Err(e) => return Err(Error::io("sendmsg", e)),
            }
        }
    }
}

impl AsFd for WorkerChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
