//! Hostile PROXY protocol headers (`proxyHeader`): mutations of valid v1
//! and v2 headers (TCP and UDP over IPv4 and IPv6, unix addresses, LOCAL,
//! UNKNOWN, TLVs after the addresses, lengths up to the largest accepted),
//! each followed by a request. The parser must return for every input, and
//! be consistent however the bytes arrive: the dispatcher reads a header's
//! bytes as they come (every byte before its end is the header's), so a
//! prefix that is `Incomplete` must never be longer than the header the
//! whole input turns out to hold, and once a prefix decides, every longer
//! input decides the same.

mod mutator;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcluster_core::routing::proxy_header::{parse, Parsed, PEEK_LEN, V1_MAX_LEN, V2_MAX_LEN, V2_SIGNATURE};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    let len = (addresses.len() + tlvs.len()) as u16;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(addresses);
    out.extend_from_slice(tlvs);
    out.extend_from_slice(REQUEST);
    out
}

fn samples() -> Vec<Vec<u8>> {
    let v4 = [203, 0, 113, 9, 127, 0, 0, 1, 0x9c, 0x41, 0, 80];
    let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8];
    v6.extend_from_slice(&[0; 11]);
    v6.push(7);
    v6.extend_from_slice(&[0; 15]);
    v6.push(1);
    v6.extend_from_slice(&[0x9c, 0x42, 0, 80]);
    let mut unix = vec![0u8; 216];
    unix[..13].copy_from_slice(b"/run/app.sock");
    // TLVs: ALPN, AUTHORITY, CRC32C, NOOP, and SSL with a sub-TLV.
    let tlvs = [
        &[0x01, 0, 2, b'h', b'2'][..],
        &[0x02, 0, 7, b'e', b'x', b'.', b'c', b'o', b'm', b'!'][..],
        &[0x03, 0, 4, 1, 2, 3, 4][..],
        &[0x04, 0, 0][..],
        &[0x20, 0, 9, 0x01, 0, 0, 0, 0, 0x21, 0, 1, b'x'][..],
    ]
    .concat();
    let mut out = vec![
        [b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 80\r\n".as_slice(), REQUEST].concat(),
        [b"PROXY TCP6 2001:db8::7 ::1 40002 80\r\n".as_slice(), REQUEST].concat(),
        [b"PROXY UNKNOWN\r\n".as_slice(), REQUEST].concat(),
        [b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".as_slice(), REQUEST].concat(),
        v2(1, 0x11, &v4, &[]),
        v2(1, 0x12, &v4, &tlvs),
        v2(1, 0x21, &v6, &[]),
        v2(1, 0x21, &v6, &tlvs),
        v2(1, 0x31, &unix, &[]),
        v2(1, 0x32, &unix, &tlvs),
        v2(0, 0x00, &[], &[]),
        v2(0, 0x11, &v4, &tlvs),
        v2(1, 0x00, &[], &tlvs),
    ];
    // The longest header accepted: addresses and TLVs up to 4096 bytes.
    let mut big = v4.to_vec();
    big.extend(std::iter::repeat_n(0x04, V2_MAX_LEN - 16 - v4.len()));
    out.push(v2(1, 0x11, &v4, &big[v4.len()..]));
    out
}

/// What the dispatcher gets from `input` arriving in `splits`, reading (not
/// peeking at) every chunk while the header is incomplete.
fn incremental(input: &[u8], splits: &[usize]) -> Parsed {
    let mut have: Vec<u8> = Vec::new();
    let mut at = 0;
    for &end in splits.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(at, input.len());
        let room = PEEK_LEN - have.len();
        let chunk = &input[at..end.min(at + room)];
        let before = have.len();
        have.extend_from_slice(chunk);
        match parse(&have) {
            Parsed::Incomplete => at += chunk.len(),
            Parsed::Header { len, source } => {
                assert!(len >= before, "a header shorter than the bytes already read as its own");
                return Parsed::Header { len, source };
            }
            Parsed::Invalid => return Parsed::Invalid,
        }
    }
    Parsed::Incomplete
}

#[test]
fn hostile_proxy_headers() {
    let owned = samples();
    let samples: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    for s in &samples {
        assert!(matches!(parse(s), Parsed::Header { .. }), "a valid sample: {s:02x?}");
    }
    let rejected = AtomicUsize::new(0);
    let mut rng = mutator::Rng::new(mutator::seed());
    let tried = mutator::run("proxyHeader", &samples, Duration::from_millis(50), |input| {
        let whole = parse(input);
        match whole {
            Parsed::Header { len, .. } => {
                assert!(len <= input.len() && len <= V2_MAX_LEN, "length {len} beyond the input or the limit");
                if input.first() == Some(&b'P') {
                    assert!(len <= V1_MAX_LEN, "a v1 header longer than the spec allows");
                }
            }
            Parsed::Invalid => {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
            Parsed::Incomplete => assert!(input.len() < PEEK_LEN, "undecided with every byte that may matter"),
        }
        // Every prefix is consistent with the whole.
        for cut in 0..=input.len().min(200) {
            match (parse(&input[..cut]), whole) {
                (Parsed::Incomplete, Parsed::Header { len, .. }) => assert!(cut < len),
                (Parsed::Incomplete, _) => {}
                (decided, _) => assert_eq!(decided, whole, "prefix of {cut} decided otherwise"),
            }
        }
        // Arriving in random pieces, read as they come: the same outcome.
        let mut splits: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(input.len() + 1)).collect();
        splits.sort_unstable();
        assert_eq!(incremental(input, &splits), whole, "in pieces at {splits:?}");
        // Byte by byte.
        let every: Vec<usize> = (1..input.len().min(300)).collect();
        if input.len() < 300 {
            assert_eq!(incremental(input, &every), whole, "byte by byte");
        }
    });
    println!("fuzz proxyHeader: {tried} inputs, {} rejected (Invalid), 0 panics", rejected.load(Ordering::Relaxed));
}
