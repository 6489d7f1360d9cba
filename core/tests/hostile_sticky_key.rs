//! Hostile first requests for sticky routing by query parameter or cookie
//! (`stickyKey`): mutations of request heads with the value in the query,
//! in one of several cookies, absent, over several lines, not HTTP. The key
//! extraction must return for every input, find only values that are in the
//! input, and decide the same however much more arrives once it decided
//! (the dispatcher peeks again as more of the head arrives).

mod mutator;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcluster_core::routing::http_key::{find, Found, Rule, PEEK_LEN};
use rcluster_core::routing::sticky::fnv1a;

fn samples() -> Vec<Vec<u8>> {
    vec![
        b"GET /socket.io/?EIO=4&transport=polling&sid=abc123 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /socket.io/?sid=abc123&EIO=4 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"GET /?sid=a%20b#frag HTTP/1.1\r\nHost: x\r\nCookie: io=S1D\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; io=S1D; b=2\r\nCookie: io=two\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\ncookie:io=S1D\r\nX-Long: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n".to_vec(),
        b"GET /?sid= HTTP/1.1\r\nCookie: io=\r\n\r\n".to_vec(),
        b"GET /socket.io/?EIO=4&transport=websocket&sid=Zz9 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
    ]
}

fn check(rule: &Rule, input: &[u8], rng: &mut mutator::Rng) -> bool {
    let input = &input[..input.len().min(PEEK_LEN)];
    let whole = find(rule, input);
    if let Found::Key(value) = whole {
        assert!(!value.is_empty(), "an empty value is no key");
        let inside = input.windows(value.len()).any(|w| w == value);
        assert!(inside, "a value not in the input");
        let _ = fnv1a(value);
    }
    // Once a prefix decides, the whole input decides the same.
    let cut = rng.below(input.len() + 1);
    let early = find(rule, &input[..cut]);
    if early != Found::Incomplete {
        assert_eq!(early, whole, "decided at {cut} bytes otherwise");
    }
    whole == Found::Unreadable
}

#[test]
fn hostile_sticky_keys() {
    let owned = samples();
    let samples: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let query = Rule::Query("sid".into());
    let cookie = Rule::Cookie("io".into());
    assert_eq!(find(&query, samples[0]), Found::Key(b"abc123"));
    assert_eq!(find(&cookie, samples[3]), Found::Key(b"S1D"));
    let rejected = AtomicUsize::new(0);
    let mut rng = mutator::Rng::new(mutator::seed() ^ 1);
    let mut tried = mutator::run("stickyKey", &samples, Duration::from_millis(50), |input| {
        if check(&query, input, &mut rng) {
            rejected.fetch_add(1, Ordering::Relaxed);
        }
        if check(&cookie, input, &mut rng) {
            rejected.fetch_add(1, Ordering::Relaxed);
        }
    }) * 2;
    // Heads as long as may be looked at, and longer.
    for len in [PEEK_LEN - 1, PEEK_LEN, PEEK_LEN + 1, 4 * PEEK_LEN] {
        let mut head = b"GET /?a=".to_vec();
        head.resize(len, b'x');
        for rule in [&query, &cookie] {
            if check(rule, &head, &mut rng) {
                rejected.fetch_add(1, Ordering::Relaxed);
            }
            tried += 1;
        }
    }
    println!("fuzz stickyKey: {tried} inputs (query and cookie rules), {} rejected (Unreadable), 0 panics", rejected.load(Ordering::Relaxed));
}
