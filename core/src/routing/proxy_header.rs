//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load
//! balancer in front of rcluster (HAProxy, nginx, AWS NLB) puts at the start
//! of each connection, and the list of peers it is accepted from.
//!
//! Pure: the dispatcher peeks at a connection's first bytes and asks
//! [`parse`] whether they hold a whole header, how long it is, and whom it
//! names as the client; only then does it read (and so strip) exactly that
//! many bytes, leaving the client's own data for the worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 header's fixed start.
pub const V2_SIGNATURE: [u8; 12] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/// A v1 header is at most 107 bytes, CRLF included (the spec's bound).
pub const V1_MAX_LEN: usize = 107;
/// The largest v2 header this reads: 16 bytes, plus the addresses and TLVs.
/// The spec allows up to 64 KiB of TLVs; load balancers send a few hundred
/// bytes at most.
pub const V2_MAX_LEN: usize = 16 + 4096;
/// How many bytes to peek at: enough for any header accepted.
pub const PEEK_LEN: usize = V2_MAX_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not all of it has arrived yet (and nothing so far is wrong).
    Incomplete,
    /// A whole header of `len` bytes. `source` is the client it names;
    /// `None` for v1 `UNKNOWN` or v2 `LOCAL` (the proxy's own health check)
    /// and address families other than TCP/UDP over IPv4/IPv6: the
    /// connection is then the proxy's own, as if there were no header.
    Header { len: usize, source: Option<SocketAddr> },
    /// Not a PROXY header, or a broken one.
    Invalid,
}

/// Reads a header at the start of `buf`, which holds every byte received so far.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] == V2_SIGNATURE[0] {
        return parse_v2(buf);
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    Parsed::Invalid
}

fn parse_v1(buf: &[u8]) -> Parsed {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Parsed::Invalid;
    }
    let Some(end) = buf.windows(2).take(V1_MAX_LEN - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX_LEN { Parsed::Invalid } else { Parsed::Incomplete };
    };
    let len = end + 2;
    let Ok(line) = std::str::from_utf8(&buf[PREFIX.len().min(end)..end]) else { return Parsed::Invalid };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["UNKNOWN", ..] => Parsed::Header { len, source: None },
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *proto == "TCP6";
            let (Some(src), Some(_dst)) = (ip_of(src, v6), ip_of(dst, v6)) else { return Parsed::Invalid };
            let (Some(sport), Some(_dport)) = (port_of(sport), port_of(dport)) else { return Parsed::Invalid };
            Parsed::Header { len, source: Some(SocketAddr::new(src, sport)) }
        }
        _ => Parsed::Invalid,
    }
}

fn ip_of(text: &str, v6: bool) -> Option<IpAddr> {
    if v6 {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// A port in decimal, without a leading zero or sign (the spec's form).
fn port_of(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Parsed::Invalid;
    }
    if buf.len() < 16 {
        return Parsed::Incomplete;
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 || command > 1 {
        return Parsed::Invalid;
    }
    let body = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = 16 + body;
    if len > V2_MAX_LEN {
        return Parsed::Invalid;
    }
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    if command == 0 {
        // LOCAL: the proxy's own connection; the addresses (if any) are skipped.
        return Parsed::Header { len, source: None };
    }
    let family = buf[13] >> 4;
    let transport = buf[13] & 0x0f;
    let addr = &buf[16..len];
    let source = match (family, transport) {
        // AF_INET / AF_INET6 over STREAM or DGRAM.
        (1, 1 | 2) if addr.len() >= 12 => {
            let ip = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([addr[8], addr[9]])))
        }
        (2, 1 | 2) if addr.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[..16]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), u16::from_be_bytes([addr[32], addr[33]])))
        }
        (1, 1 | 2) | (2, 1 | 2) => return Parsed::Invalid, // too short for its family
        // UNSPEC or AF_UNIX: nothing to show as an IP address.
        _ => None,
    };
    Parsed::Header { len, source }
}

/// An address block such as `10.0.0.0/8` or `::1/128` (a bare address is
/// its own /32 or /128). An IPv4 block also matches IPv4-mapped IPv6 peers,
/// as a dual-stack socket sees IPv4 clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, bits) = match text.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (text, None),
        };
        let net: IpAddr = ip.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) && b.len() <= 3 => b.parse().ok()?,
            Some(_) => return None,
        };
        (bits <= max).then_some(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.net.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0
}

/// Who may send a PROXY header: anyone (`proxyProtocol: true`), or the
/// listed blocks. A connection from anyone else is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    Any,
    Only(Vec<Cidr>),
}

impl Trust {
    /// `peer` is the connection's own peer (the proxy); `None` for a unix
    /// socket peer, trusted only under `Any`.
    pub fn allows(&self, peer: Option<IpAddr>) -> bool {
        match (self, peer) {
            (Trust::Any, _) => true,
            (Trust::Only(blocks), Some(ip)) => blocks.iter().any(|b| b.contains(ip)),
            (Trust::Only(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    fn v2(command: u8, fam: u8, addr: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(fam);
        out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        out.extend_from_slice(addr);
        out
    }

    #[test]
    fn v1_headers() {
        let cases: &[(&[u8], Parsed)] = &[
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET /", Parsed::Header { len: 41, source: sa("192.0.2.7:56324") }),
            (b"PROXY TCP6 2001:db8::1 ::1 65535 80\r\n", Parsed::Header { len: 37, source: sa("[2001:db8::1]:65535") }),
            (b"PROXY UNKNOWN\r\n", Parsed::Header { len: 15, source: None }),
            (b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n", Parsed::Header { len: 31, source: None }),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 56324", Parsed::Incomplete),
            (b"PRO", Parsed::Incomplete),
            (b"", Parsed::Incomplete),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\n", Parsed::Incomplete),
            (b"GET / HTTP/1.1\r\n", Parsed::Invalid),
            (b"PROXX TCP4", Parsed::Invalid),
            (b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n", Parsed::Invalid),
            (b"PROXY TCP6 192.0.2.7 ::1 1 2\r\n", Parsed::Invalid),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n", Parsed::Invalid),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 080 2\r\n", Parsed::Invalid),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n", Parsed::Invalid),
            (b"PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n", Parsed::Invalid),
            (b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n", Parsed::Invalid),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), *expected, "{:?}", String::from_utf8_lossy(input));
        }
        // No CRLF within the longest header the spec allows.
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(parse(&long), Parsed::Invalid);
    }

    #[test]
    fn v2_headers() {
        let inet = [192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];
        let mut inet6 = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        inet6.extend_from_slice(&[0; 15]);
        inet6.push(1);
        inet6.extend_from_slice(&[0x00, 0x50, 0x01, 0xbb]);
        let mut with_tlv = inet.to_vec();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]);
        let cases: Vec<(Vec<u8>, Parsed)> = vec![
            (v2(1, 0x11, &inet), Parsed::Header { len: 28, source: sa("192.0.2.7:56324") }),
            (v2(1, 0x12, &inet), Parsed::Header { len: 28, source: sa("192.0.2.7:56324") }),
            (v2(1, 0x21, &inet6), Parsed::Header { len: 52, source: sa("[2001:db8::1]:80") }),
            (v2(1, 0x11, &with_tlv), Parsed::Header { len: 33, source: sa("192.0.2.7:56324") }),
            (v2(0, 0x00, &[]), Parsed::Header { len: 16, source: None }),
            (v2(0, 0x11, &inet), Parsed::Header { len: 28, source: None }),
            (v2(1, 0x00, &[]), Parsed::Header { len: 16, source: None }),
            (v2(1, 0x31, &[0; 216]), Parsed::Header { len: 232, source: None }),
            (v2(1, 0x11, &inet[..8]), Parsed::Invalid),
            (v2(1, 0x21, &inet), Parsed::Invalid),
            (v2(2, 0x11, &inet), Parsed::Invalid),
            (v2(1, 0x11, &inet)[..20].to_vec(), Parsed::Incomplete),
            (V2_SIGNATURE[..5].to_vec(), Parsed::Incomplete),
            ([&V2_SIGNATURE[..5], b"x".as_slice()].concat(), Parsed::Invalid),
        ];
        for (input, expected) in &cases {
            assert_eq!(parse(input), *expected, "{input:02x?}");
        }
        let mut version1 = v2(1, 0x11, &inet);
        version1[12] = 0x11;
        assert_eq!(parse(&version1), Parsed::Invalid);
        let mut huge = v2(1, 0x11, &inet);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Parsed::Invalid);
    }

    #[test]
    fn trust_lists() {
        let only = Trust::Only(["10.0.0.0/8", "192.168.1.128/25", "::1", "fd00::/8"].iter().map(|c| Cidr::parse(c).unwrap()).collect());
        let cases: &[(&str, bool)] = &[
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.168.1.200", true),
            ("192.168.1.100", false),
            ("::1", true),
            ("::2", false),
            ("fdab::1", true),
            ("::ffff:10.9.9.9", true),
            ("::ffff:127.0.0.1", false),
        ];
        for (ip, allowed) in cases {
            assert_eq!(only.allows(Some(ip.parse().unwrap())), *allowed, "{ip}");
            assert!(Trust::Any.allows(Some(ip.parse().unwrap())));
        }
        assert!(!only.allows(None));
        assert!(Trust::Any.allows(None));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "x", "10.0.0.0/-1", "10.0.0.0/8/8"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
    }
}
