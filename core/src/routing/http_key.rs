//! The sticky key of a plaintext HTTP connection: a query parameter (such as
//! socket.io's `sid`) or a cookie of its first request, read from the bytes
//! the dispatcher peeks at (`MSG_PEEK`, so the worker still gets them all).
//!
//! Pure and bounded: at most [`PEEK_LEN`] bytes are looked at; a request
//! head longer than that, or anything that is not HTTP (TLS, say), has no key.

/// How much of a connection's first bytes is looked at.
pub const PEEK_LEN: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `?name=value` in the request target.
    Query(String),
    /// `name=value` in a `Cookie` header.
    Cookie(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// Not enough has arrived to tell.
    Incomplete,
    /// The value named by the rule.
    Key(&'a [u8]),
    /// The request has no such value: the connection is placed without a key.
    NoKey,
    /// Not an HTTP request we can read (TLS, say, or a head longer than
    /// [`PEEK_LEN`]): placed without a key too, and counted.
    Unreadable,
}

/// Reads the rule's value out of `buf`, everything received so far.
pub fn find<'a>(rule: &Rule, buf: &'a [u8]) -> Found<'a> {
    // A request line starts with a method: upper-case letters.
    if let Some(first) = buf.first() {
        if !first.is_ascii_uppercase() {
            return Found::Unreadable;
        }
    }
    match rule {
        Rule::Query(name) => {
            let Some(end) = find_crlf(buf) else { return incomplete_unless_full(buf) };
            let line = &buf[..end];
            let mut parts = line.split(|b| *b == b' ');
            let (Some(_method), Some(target)) = (parts.next(), parts.next()) else { return Found::Unreadable };
            let Some(q) = target.iter().position(|b| *b == b'?') else { return Found::NoKey };
            let query = &target[q + 1..];
            let query = query.split(|b| *b == b'#').next().unwrap_or(query);
            pair_value(query.split(|b| *b == b'&'), name.as_bytes()).map_or(Found::NoKey, Found::Key)
        }
        Rule::Cookie(name) => {
            let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return incomplete_unless_full(buf);
            };
            let head = &buf[..head_end];
            for line in head.split(|b| *b == b'\n').skip(1) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
                if !line[..colon].eq_ignore_ascii_case(b"cookie") {
                    continue;
                }
                let cookies = line[colon + 1..].split(|b| *b == b';').map(trim);
                if let Some(value) = pair_value(cookies, name.as_bytes()) {
                    return Found::Key(value);
                }
            }
            Found::NoKey
        }
    }
}

fn incomplete_unless_full(buf: &[u8]) -> Found<'_> {
    if buf.len() >= PEEK_LEN {
        Found::Unreadable
    } else {
        Found::Incomplete
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// The value of the first non-empty `name=value` among `pairs`.
fn pair_value<'a>(pairs: impl Iterator<Item = &'a [u8]>, name: &[u8]) -> Option<&'a [u8]> {
    pairs.filter_map(|pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        (&pair[..eq] == name && eq + 1 < pair.len()).then(|| &pair[eq + 1..])
    })
    .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let sid = Rule::Query("sid".into());
        let cases: &[(&[u8], Found<'_>)] = &[
            (b"GET /socket.io/?EIO=4&transport=polling&sid=abc123 HTTP/1.1\r\nHost: x\r\n\r\n", Found::Key(b"abc123")),
            (b"POST /socket.io/?sid=abc123&EIO=4 HTTP/1.1\r\n", Found::Key(b"abc123")),
            (b"GET /?sid=abc#frag HTTP/1.1\r\n", Found::Key(b"abc")),
            (b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n", Found::NoKey),
            (b"GET /?xsid=1&sid= HTTP/1.1\r\n", Found::NoKey),
            (b"GET / HTTP/1.1\r\n", Found::NoKey),
            (b"GET /socket.io/?EIO=4&sid=ab", Found::Incomplete),
            (b"", Found::Incomplete),
            (b"\x16\x03\x01\x02\x00", Found::Unreadable),
            (b"get /?sid=a HTTP/1.1\r\n", Found::Unreadable),
        ];
        for (input, expected) in cases {
            assert_eq!(find(&sid, input), *expected, "{:?}", String::from_utf8_lossy(input));
        }
        let long = [b"GET /?a=".as_slice(), &[b'x'; PEEK_LEN]].concat();
        assert_eq!(find(&sid, &long), Found::Unreadable);
    }

    #[test]
    fn cookies() {
        let io = Rule::Cookie("io".into());
        let cases: &[(&[u8], Found<'_>)] = &[
            (b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; io=S1D; b=2\r\n\r\n", Found::Key(b"S1D")),
            (b"GET / HTTP/1.1\r\ncookie:io=S1D\r\n\r\n", Found::Key(b"S1D")),
            (b"GET / HTTP/1.1\r\nCookie: a=1\r\nCookie: io=two\r\n\r\n", Found::Key(b"two")),
            (b"GET / HTTP/1.1\r\nCookie: xio=1; io=\r\n\r\n", Found::NoKey),
            (b"GET / HTTP/1.1\r\nX-Cookie: io=1\r\n\r\n", Found::NoKey),
            (b"GET / HTTP/1.1\r\nCookie: io=S1D\r\n", Found::Incomplete),
        ];
        for (input, expected) in cases {
            assert_eq!(find(&io, input), *expected, "{:?}", String::from_utf8_lossy(input));
        }
    }
}
