//! Hostile input to the bus and the channel frames (docs/SECURITY.md): every
//! decoder of what a peer writes on its channel returns a value or an error
//! for any bytes, with no panic; what decodes re-encodes to the same bytes
//! (nothing is accepted loosely); a real dispatcher fed mutated frames by a
//! worker stays up and keeps relaying between the others; a worker that
//! sends to ever-new ids nobody has, never reading, is answered with a
//! bounded number of notices.

mod common;
mod mutator;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use common::TestWorker;
use rcluster_core::bus::{self, BusMessage, AGENT, BROADCAST, PRIMARY, QUEUE_NOTICES};
use rcluster_core::sys;
use rcluster_core::channel::wire::{CloseRecords, ToPrimary, ToWorker};
use rcluster_core::{Config, Dispatcher, Incoming, Received, WorkerChannel};

const LIMIT: Duration = Duration::from_millis(50);

/// The tests of this file one at a time: one counts this process's open
/// descriptors, which the others' dispatchers and channels change.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bus_samples() -> Vec<Vec<u8>> {
    vec![
        bus::encode(2, 0, br#"["m","topic",{"a":1},0]"#).unwrap(),
        bus::encode(BROADCAST, 0, br#"["m","t",null,0]"#).unwrap(),
        bus::encode(AGENT, 0, br#"["q","t",[1,2],7]"#).unwrap(),
        bus::encode(PRIMARY, 0, br#"["x","t",1,0,"deadbeef/3"]"#).unwrap(),
        bus::encode(1, 0, b"").unwrap(),
        bus::encode_peer_gone(3),
        bus::encode_dropped(AGENT),
    ]
}

fn wire_samples() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut closes = Vec::new();
    CloseRecords::encode_into(&[(1, 2, 0), (3, 1, 100)], &mut closes);
    for msg in [
        ToPrimary::Reply { statuses: &[1, 0, 1] },
        ToPrimary::Leave { listener: 4 },
        ToPrimary::Read { count: 3, closes: CloseRecords::from_bytes(&closes).unwrap() },
        ToPrimary::Closed { listener: 1, closed: 2, cap: 3 },
        ToPrimary::Stick { key: 0x0123_4567_89ab_cdef },
        ToPrimary::Heartbeat,
        ToPrimary::HandBack { listener: 9 },
    ] {
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        out.push(buf);
    }
    for msg in [
        ToWorker::Dispatch { listener: 7, count: 3, first: 12 },
        ToWorker::Shared { listener: 2 },
        ToWorker::Left { listener: 1 },
        ToWorker::DispatchFrom { listener: 4, source: "192.0.2.7:56324".parse().unwrap(), seq: 1 },
        ToWorker::DispatchFrom { listener: 4, source: "[2001:db8::1]:1".parse().unwrap(), seq: u64::MAX },
    ] {
        out.push(msg.encode());
    }
    out
}

fn refs(samples: &[Vec<u8>]) -> Vec<&[u8]> {
    samples.iter().map(Vec::as_slice).collect()
}

#[test]
fn bus_frames_decode_totally_and_strictly() {
    let _serial = serial();
    let samples = bus_samples();
    mutator::run("busFrame", &refs(&samples), LIMIT, |input| match bus::decode(input) {
        Some(Ok(BusMessage::Bus { target, from, payload })) => {
            assert!(payload.len() <= bus::MAX_PAYLOAD);
            assert_eq!(bus::encode(target, from, payload).unwrap(), input, "decoded loosely");
            assert_eq!(bus::relayed(target, 5, payload)[..8], input[..8]);
        }
        Some(Ok(BusMessage::PeerGone { peer })) => assert_eq!(bus::encode_peer_gone(peer), input),
        Some(Ok(BusMessage::Dropped { target })) => assert_eq!(bus::encode_dropped(target), input),
        Some(Err(_)) | None => {}
    });
}

#[test]
fn worker_frames_decode_totally_and_round_trip() {
    let _serial = serial();
    let samples = wire_samples();
    mutator::run("channelFrame", &refs(&samples), LIMIT, |input| {
        if let Ok(msg) = ToPrimary::decode(input) {
            let mut again = Vec::new();
            msg.encode(&mut again);
            assert_eq!(again, input, "decoded loosely: {msg:?}");
            if let ToPrimary::Read { closes, .. } = msg {
                assert!(closes.iter().count() <= rcluster_core::channel::wire::MAX_CLOSE_RECORDS);
            }
        }
        for fds in 0..4 {
            if let Ok(msg) = ToWorker::decode(input, fds) {
                assert_eq!(ToWorker::decode(&msg.encode(), fds).unwrap(), msg);
            }
        }
        let _ = ToWorker::decode_without_fds(input);
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// The receiving end of a channel, fds and all: mutated frames, some with
/// descriptors attached, sent on a real SEQPACKET pair. Every one is a
/// message or an error, and the descriptors of those refused are closed.
#[test]
fn frames_with_descriptors_are_received_totally_and_leak_nothing() {
    let _serial = serial();
    let mut samples = wire_samples();
    samples.extend(bus_samples());
    let (primary_end, worker_end) = sys::seqpacket_pair().unwrap();
    let mut channel = WorkerChannel::new(worker_end).unwrap();
    let spare: Vec<OwnedFd> = (0..3).map(|_| sys::dup_cloexec(primary_end.as_fd()).unwrap()).collect();
    let before = open_fds();
    let mut rng = mutator::Rng::new(mutator::seed());
    let mut kept: Vec<OwnedFd> = Vec::new();
    mutator::run("channelFrameWithFds", &refs(&samples), LIMIT, |input| {
        let n = rng.below(4);
        let fds: Vec<BorrowedFd<'_>> = spare[..n].iter().map(|f| f.as_fd()).collect();
        if input.len() > rcluster_core::channel::wire::MAX_MESSAGE_LEN || sys::send_message(primary_end.as_fd(), input, &fds).is_err() {
            return;
        }
        match channel.recv() {
            Ok(Received::Message(m)) => match m {
                // What the worker would own: closed at once here.
                Incoming::Dispatch { fds, .. } => kept.extend(fds),
                Incoming::DispatchFrom { fd, .. } | Incoming::Shared { fd, .. } => kept.push(fd),
                _ => {}
            },
            Ok(Received::WouldBlock | Received::Closed) => {}
            Err(rcluster_core::Error::Protocol(_)) => {}
            Err(e) => panic!("not a protocol error: {e}"),
        }
        kept.clear();
    });
    drop(kept);
    assert_eq!(open_fds(), before, "every descriptor of a refused frame is closed");
}

fn drain(worker: &mut TestWorker) -> Vec<Incoming> {
    let mut out = Vec::new();
    while let Some(m) = worker.recv(0) {
        out.push(m);
    }
    out
}

fn relays(from: &mut TestWorker, to: &mut TestWorker, marker: &[u8]) -> bool {
    from.channel.send_bus(to.id, marker).unwrap();
    for _ in 0..50 {
        while let Some(m) = to.recv(20) {
            if matches!(&m, Incoming::Bus { from: f, payload, .. } if *f == from.id && payload == marker) {
                return true;
            }
        }
    }
    false
}

/// A worker writes mutated frames (bus and others) on its channel to a real
/// dispatcher; a frame that breaks its channel gets it replaced, as the
/// primary would replace the worker. The dispatcher stays up, relays
/// between two other workers throughout, and no relayed message carries a
/// sender other than its real one.
#[test]
fn a_dispatcher_fed_mutated_frames_keeps_relaying() {
    let _serial = serial();
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut a = TestWorker::spawn(&d, 1);
    let mut b = TestWorker::spawn(&d, 2);
    let mut next_id = 100;
    let mut attacker = TestWorker::spawn(&d, next_id);
    // Bus frames, mutated: most stay bus frames (dropped and counted, the
    // channel goes on); those whose kind or version changed break it.
    let samples = bus_samples();
    let mut n = 0usize;
    let mut replaced = 0usize;
    let check = |a: &mut TestWorker, b: &mut TestWorker| {
        for m in drain(a).into_iter().chain(drain(b)) {
            if let Incoming::Bus { from, .. } = m {
                assert!(from == 1 || from == 2 || from >= 100, "a relayed message with a sender no peer is: {from}");
            }
        }
    };
    mutator::run("dispatcherRelay", &refs(&samples), Duration::from_secs(2), |input| {
        if input.len() > rcluster_core::channel::wire::MAX_MESSAGE_LEN {
            return;
        }
        // SAFETY: the attacker's channel owns this fd for the call.
        let fd = unsafe { BorrowedFd::borrow_raw(attacker.channel.raw_fd()) };
        if sys::send_message(fd, input, &[]).is_err() || matches!(attacker.channel.recv(), Ok(Received::Closed)) {
            next_id += 1;
            replaced += 1;
            attacker = TestWorker::spawn(&d, next_id);
        }
        n += 1;
        if n % 256 == 0 {
            let _ = drain(&mut attacker);
            check(&mut a, &mut b);
        }
        if n % 4096 == 0 {
            assert!(relays(&mut a, &mut b, b"still relaying"), "the dispatcher stopped relaying after {n} inputs");
        }
    });
    assert!(relays(&mut a, &mut b, b"at the end"), "the dispatcher relays after every input");
    assert!(relays(&mut b, &mut a, b"both ways"));
    println!("dispatcherRelay: the attacker's channel was broken and replaced {replaced} times");
}

/// Sends to ever-new ids nobody has, never reading: the answers (PEER_GONE
/// notices) the dispatcher holds for the sender are bounded, and it goes on
/// relaying for the others.
#[test]
fn sends_to_unknown_ids_are_answered_with_bounded_notices() {
    let _serial = serial();
    let d = Dispatcher::start(Config::default()).unwrap();
    let mut sender = TestWorker::spawn(&d, 1);
    let mut a = TestWorker::spawn(&d, 2);
    let mut b = TestWorker::spawn(&d, 3);
    let sends = 4 * QUEUE_NOTICES + 50_000;
    for id in 0..sends as u32 {
        sender.channel.send_bus(1000 + id, b"?").unwrap();
    }
    assert!(relays(&mut a, &mut b, b"meanwhile"));
    // Every notice the dispatcher held has been flushed to the channel by now
    // or waits for it; what the channel buffers is bounded by the socket.
    std::thread::sleep(Duration::from_millis(200));
    let mut notices = 0;
    while let Some(m) = sender.recv(200) {
        assert!(matches!(m, Incoming::PeerGone { .. }), "{m:?}");
        notices += 1;
    }
    assert!(notices < sends, "some notices were dropped: {notices} of {sends}");
    assert!(notices <= QUEUE_NOTICES + 20_000, "{notices} notices: more than the queue's bound plus a socket's worth");
    assert!(relays(&mut sender, &mut a, b"and the sender is served again"));
}
