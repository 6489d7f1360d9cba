//! A worker's listen request as Node words it, read once.
//!
//! A worker's `net.Server#listen` or `dgram.Socket#bind` reaches the primary
//! as the fields of Node's `queryServer` message (`address`, `port`,
//! `addressType`, `fd`, `flags`, `backlog`), passed through unchanged by the
//! JS primary. [`ListenSpec::from_node`] is the one place that decides what
//! they mean, following node:cluster's primary (`RoundRobinHandle`,
//! `SharedHandle`, `net._createServerHandle`, `dgram._createSocketHandle`).

use std::io;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::listen::{ListenAddr, ListenSpec};

/// libuv's `UV_TCP_IPV6ONLY`.
pub const UV_TCP_IPV6ONLY: u32 = 1;
/// libuv's `UV_UDP_IPV6ONLY`.
pub const UV_UDP_IPV6ONLY: u32 = 1;
/// libuv's `UV_UDP_REUSEADDR`.
pub const UV_UDP_REUSEADDR: u32 = 4;

/// One field of the query, as JS had it.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// `null` or `undefined`.
    Absent,
    Number(f64),
    Text(String),
    /// Anything else (an object, a boolean...).
    Other,
}

impl NodeValue {
    /// JS `Number(value)`, for what can be a number here. Strings follow
    /// Rust's float syntax, which agrees with JS on decimal numbers.
    fn to_number(&self) -> f64 {
        match self {
            NodeValue::Absent | NodeValue::Other => f64::NAN,
            NodeValue::Number(n) => *n,
            NodeValue::Text(s) if s.trim().is_empty() => 0.0,
            NodeValue::Text(s) => s.trim().parse().unwrap_or(f64::NAN),
        }
    }

    /// An integer-valued number, truncated as napi's int32 conversion did.
    fn as_int(&self) -> Option<i64> {
        match self {
            NodeValue::Number(n) if n.is_finite() => Some(n.trunc() as i64),
            _ => None,
        }
    }
}

/// The fields of Node's `queryServer` message that say what to bind.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeQuery {
    /// An IP address, a pipe path (with port -1), or absent.
    pub address: NodeValue,
    pub port: NodeValue,
    /// 4, 6, -1 (a pipe), 'udp4', 'udp6', or absent (`listen({ fd })`).
    pub address_type: NodeValue,
    /// A descriptor of the primary's, or -1 / absent.
    pub fd: NodeValue,
    /// libuv flags: `UV_TCP_IPV6ONLY`, or `UV_UDP_IPV6ONLY | UV_UDP_REUSEADDR`.
    pub flags: NodeValue,
    pub backlog: NodeValue,
}

impl NodeQuery {
    /// Whether this asks for a dgram socket ('udp4' or 'udp6').
    pub fn is_datagram(&self) -> bool {
        matches!(&self.address_type, NodeValue::Text(t) if t == "udp4" || t == "udp6")
    }
}

/// What libuv answers Node for an address or port it cannot bind
/// (`uv_ip4_addr` failing): a bind error, reported to the worker as its errno.
fn bind_einval() -> Error {
    Error::io("bind", io::Error::from_raw_os_error(crate::sys::errno::EINVAL))
}

impl ListenSpec {
    /// Reads a worker's listen query. `cwd` is the primary's working
    /// directory: a pipe path is bound by its shorter form, relative or
    /// absolute, because of the ~100-byte limit on unix socket paths.
    ///
    /// What libuv itself would refuse (an address that is no IP, a port out
    /// of range) is an `EINVAL` bind error, which reaches the worker as
    /// node:cluster's does; a query that no Node version sends (an unknown
    /// `addressType`, a pipe without a path) is `InvalidArgument`.
    pub fn from_node(query: &NodeQuery, cwd: &Path) -> Result<ListenSpec> {
        let datagram = match &query.address_type {
            NodeValue::Text(t) if t == "udp4" || t == "udp6" => true,
            NodeValue::Absent => false,
            NodeValue::Number(n) if [4.0, 6.0, -1.0].contains(n) => false,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "addressType must be 4, 6, -1, 'udp4' or 'udp6'. Received {other:?}"
                )))
            }
        };
        let flags = match &query.flags {
            NodeValue::Absent => 0,
            value => match value.as_int() {
                Some(f) if (0..=i64::from(u32::MAX)).contains(&f) => f as u32,
                _ => return Err(Error::InvalidArgument(format!("flags must be libuv's flags. Received {value:?}"))),
            },
        };
        // Node's server.listen uses its default backlog for anything else.
        let backlog = query.backlog.as_int().map_or(0, |b| b.clamp(0, i64::from(i32::MAX)) as i32);
        let fd = query.fd.as_int();
        let addr = if datagram {
            Self::datagram(query, fd, flags)?
        } else {
            Self::stream(query, fd, flags, cwd)?
        };
        Ok(ListenSpec { addr, backlog })
    }

    fn datagram(query: &NodeQuery, fd: Option<i64>, flags: u32) -> Result<ListenAddr> {
        // dgram's bind({ fd }) takes fd > 0 only (`port.fd > 0` in
        // lib/dgram.js, `fd > 0` in _createSocketHandle): fd 0 is a bind to
        // the address and port, which is what dgram then asks for.
        if let Some(fd) = fd.filter(|fd| *fd > 0) {
            let fd = i32::try_from(fd).map_err(|_| bind_einval())?;
            return Ok(ListenAddr::UdpFd { fd });
        }
        // dgram's bind() may leave the port out: libuv binds `port || 0`.
        let port = query.port.to_number();
        let port = if port.is_nan() { 0.0 } else { port.trunc() };
        let port = if (0.0..=65535.0).contains(&port) { port as u16 } else { return Err(bind_einval()) };
        // dgram resolves the address before asking (`0.0.0.0` or `::` when
        // none is given), so there is always an IP here.
        let ip = match &query.address {
            NodeValue::Text(text) => text.parse::<IpAddr>().map_err(|_| bind_einval())?,
            _ => return Err(bind_einval()),
        };
        // A 'udp4' socket takes an IPv4 address only, and 'udp6' an IPv6 one,
        // as libuv's uv_ip4_addr/uv_ip6_addr decide for Node: otherwise the
        // socket would be of the other family and every send would fail.
        let udp6 = matches!(&query.address_type, NodeValue::Text(t) if t == "udp6");
        if ip.is_ipv6() != udp6 {
            return Err(bind_einval());
        }
        Ok(ListenAddr::Udp {
            ip,
            port,
            ipv6_only: flags & UV_UDP_IPV6ONLY != 0,
            reuse_addr: flags & UV_UDP_REUSEADDR != 0,
        })
    }

    fn stream(query: &NodeQuery, fd: Option<i64>, flags: u32, cwd: &Path) -> Result<ListenAddr> {
        // net's listen({ fd }) takes fd >= 0 (`options.fd >= 0` in lib/net.js,
        // `fd >= 0` in RoundRobinHandle and _createServerHandle): fd 0, stdin,
        // is a valid socket to listen on.
        if let Some(fd) = fd.filter(|fd| *fd >= 0) {
            let fd = i32::try_from(fd).map_err(|_| bind_einval())?;
            return Ok(ListenAddr::Fd { fd });
        }
        let port = match &query.port {
            NodeValue::Number(n) => *n,
            _ => -1.0,
        };
        if port < 0.0 {
            let NodeValue::Text(path) = &query.address else {
                return Err(Error::InvalidArgument("a pipe listen needs a path".into()));
            };
            return Ok(ListenAddr::Unix { path: shortest_path(Path::new(path), cwd) });
        }
        let port = if port <= 65535.0 { port.trunc() as u16 } else { return Err(bind_einval()) };
        let ip = match &query.address {
            NodeValue::Absent => None,
            NodeValue::Text(text) if text.is_empty() => None,
            NodeValue::Text(text) => Some(text.parse::<IpAddr>().map_err(|_| bind_einval())?),
            _ => return Err(bind_einval()),
        };
        Ok(ListenAddr::Tcp { ip, port, ipv6_only: flags & UV_TCP_IPV6ONLY != 0 })
    }
}

/// `path` relative to `cwd` if that is shorter, as node:cluster's primary
/// does (`path.relative(process.cwd(), address)`), or `path` as given.
fn shortest_path(path: &Path, cwd: &Path) -> PathBuf {
    if !path.is_absolute() || !cwd.is_absolute() {
        return path.to_path_buf();
    }
    let normal = |p: &Path| -> Vec<std::ffi::OsString> {
        let mut parts = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_os_string()),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        parts
    };
    let (to, from) = (normal(path), normal(cwd));
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    for part in &to[common..] {
        relative.push(part);
    }
    if path.as_os_str().len() < relative.as_os_str().len() {
        path.to_path_buf()
    } else {
        relative
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn num(n: f64) -> NodeValue {
        NodeValue::Number(n)
    }

    fn text(s: &str) -> NodeValue {
        NodeValue::Text(s.to_string())
    }

    /// A query with everything absent but what is given.
    fn query(address: NodeValue, port: NodeValue, address_type: NodeValue, fd: NodeValue, flags: NodeValue) -> NodeQuery {
        NodeQuery { address, port, address_type, fd, flags, backlog: NodeValue::Absent }
    }

    const CWD: &str = "/srv/app";

    fn spec(q: &NodeQuery) -> Result<ListenSpec> {
        ListenSpec::from_node(q, Path::new(CWD))
    }

    fn errno(r: Result<ListenSpec>) -> Option<i32> {
        r.err().and_then(|e| e.errno())
    }

    #[test]
    fn tcp_queries() {
        use NodeValue::Absent;
        let v4 = |s: &str| Some(IpAddr::V4(s.parse::<Ipv4Addr>().unwrap()));
        // (address, port, addressType, fd, flags) -> what is bound
        let cases: Vec<(NodeQuery, ListenAddr)> = vec![
            // listen(8000): no host, dual-stack.
            (query(Absent, num(8000.0), num(4.0), Absent, Absent), ListenAddr::Tcp { ip: None, port: 8000, ipv6_only: false }),
            (query(text(""), num(0.0), num(4.0), num(-1.0), num(0.0)), ListenAddr::Tcp { ip: None, port: 0, ipv6_only: false }),
            (query(text("127.0.0.1"), num(80.0), num(4.0), Absent, Absent), ListenAddr::Tcp { ip: v4("127.0.0.1"), port: 80, ipv6_only: false }),
            (
                query(text("::1"), num(80.0), num(6.0), Absent, num(1.0)),
                ListenAddr::Tcp { ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), port: 80, ipv6_only: true },
            ),
            // UV_TCP_IPV6ONLY is the only TCP flag.
            (query(text("::"), num(1.0), num(6.0), Absent, num(4.0)), ListenAddr::Tcp { ip: Some("::".parse().unwrap()), port: 1, ipv6_only: false }),
            // listen({ fd }): address, port and addressType are null. fd 0 is valid.
            (query(Absent, Absent, Absent, num(0.0), Absent), ListenAddr::Fd { fd: 0 }),
            (query(Absent, Absent, Absent, num(7.0), Absent), ListenAddr::Fd { fd: 7 }),
            // The fd wins over a port.
            (query(text("127.0.0.1"), num(80.0), num(4.0), num(5.0), Absent), ListenAddr::Fd { fd: 5 }),
        ];
        for (q, expected) in cases {
            assert_eq!(spec(&q).unwrap().addr, expected, "{q:?}");
        }
    }

    #[test]
    fn pipe_queries_bind_the_shorter_of_relative_and_absolute() {
        use NodeValue::Absent;
        let cases = [
            ("/srv/app/run/s.sock", "run/s.sock"),
            ("/srv/other/s.sock", "../other/s.sock"),
            ("/s.sock", "/s.sock"),
            ("/srv/app/x/../y.sock", "y.sock"),
        ];
        for (path, bound) in cases {
            let q = query(text(path), num(-1.0), num(-1.0), num(-1.0), Absent);
            assert_eq!(spec(&q).unwrap().addr, ListenAddr::Unix { path: PathBuf::from(bound) }, "{path}");
        }
        // No port at all is a pipe too; without a path it is no request at all.
        let q = query(text("/srv/app/a"), Absent, num(-1.0), Absent, Absent);
        assert_eq!(spec(&q).unwrap().addr, ListenAddr::Unix { path: PathBuf::from("a") });
        let q = query(Absent, num(-1.0), num(-1.0), num(-1.0), Absent);
        assert!(matches!(spec(&q), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn udp_queries() {
        use NodeValue::Absent;
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let cases: Vec<(NodeQuery, ListenAddr)> = vec![
            (
                query(text("0.0.0.0"), num(41234.0), text("udp4"), num(-1.0), num(0.0)),
                ListenAddr::Udp { ip: any4, port: 41234, ipv6_only: false, reuse_addr: false },
            ),
            // bind() without a port: libuv binds port 0. A numeric string
            // counts as its number.
            (query(text("0.0.0.0"), Absent, text("udp4"), num(-1.0), num(0.0)), ListenAddr::Udp { ip: any4, port: 0, ipv6_only: false, reuse_addr: false }),
            (query(text("0.0.0.0"), text("53"), text("udp4"), num(-1.0), num(0.0)), ListenAddr::Udp { ip: any4, port: 53, ipv6_only: false, reuse_addr: false }),
            (query(text("0.0.0.0"), text("x"), text("udp4"), num(-1.0), num(0.0)), ListenAddr::Udp { ip: any4, port: 0, ipv6_only: false, reuse_addr: false }),
            (
                query(text("::"), num(1.0), text("udp6"), num(-1.0), num(5.0)),
                ListenAddr::Udp { ip: "::".parse().unwrap(), port: 1, ipv6_only: true, reuse_addr: true },
            ),
            // bind({ fd }): fd > 0 names the primary's socket...
            (query(Absent, Absent, text("udp4"), num(9.0), Absent), ListenAddr::UdpFd { fd: 9 }),
            // ...and fd 0 is no fd at all, as in dgram: it binds the address.
            (query(text("0.0.0.0"), Absent, text("udp4"), num(0.0), Absent), ListenAddr::Udp { ip: any4, port: 0, ipv6_only: false, reuse_addr: false }),
        ];
        for (q, expected) in cases {
            assert!(q.is_datagram());
            assert_eq!(spec(&q).unwrap().addr, expected, "{q:?}");
        }
    }

    #[test]
    fn what_libuv_would_refuse_is_a_bind_einval_and_the_rest_is_an_invalid_argument() {
        use NodeValue::Absent;
        let einval = [
            query(text("not-an-ip"), num(80.0), num(4.0), Absent, Absent),
            query(text("127.0.0.1"), num(70000.0), num(4.0), Absent, Absent),
            query(text("not-an-ip"), num(80.0), text("udp4"), num(-1.0), Absent),
            query(text("0.0.0.0"), num(-1.0), text("udp4"), num(-1.0), Absent),
            query(text("0.0.0.0"), num(65536.0), text("udp6"), num(-1.0), Absent),
            query(Absent, num(1.0), text("udp4"), num(-1.0), Absent),
            // The address of the other family.
            query(text("::1"), num(0.0), text("udp4"), num(-1.0), Absent),
            query(text("127.0.0.1"), num(0.0), text("udp6"), num(-1.0), Absent),
        ];
        for q in einval {
            let failed = spec(&q);
            assert_eq!(errno(failed), Some(crate::sys::errno::EINVAL), "{q:?}");
        }
        let invalid = [
            query(text("0.0.0.0"), num(1.0), text("tcp"), Absent, Absent),
            query(text("0.0.0.0"), num(1.0), num(5.0), Absent, Absent),
            query(text("0.0.0.0"), num(1.0), NodeValue::Other, Absent, Absent),
            query(text("0.0.0.0"), num(1.0), num(4.0), Absent, num(-1.0)),
            query(text("0.0.0.0"), num(1.0), num(4.0), Absent, text("1")),
        ];
        for q in invalid {
            assert!(matches!(spec(&q), Err(Error::InvalidArgument(_))), "{q:?}");
        }
    }

    #[test]
    fn backlog_is_given_or_left_to_the_default() {
        use NodeValue::Absent;
        for (backlog, expected) in [(Absent, 0), (num(16.0), 16), (num(-5.0), 0), (num(f64::NAN), 0), (num(1e12), i32::MAX), (text("9"), 0)] {
            let q = NodeQuery { backlog: backlog.clone(), ..query(Absent, num(0.0), num(4.0), Absent, Absent) };
            assert_eq!(spec(&q).unwrap().backlog, expected, "{backlog:?}");
        }
    }
}
