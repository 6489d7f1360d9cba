//! `Dispatcher`: the primary's JS handle on the native accept-and-dispatch thread.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rcluster_core::{dispatcher, Emptied, ListenAddr, ListenRequest, ListenSpec, LocalAddr, Mode};

use crate::js_error::to_js;

/// A worker's listen request, as the JS primary forwards it.
#[napi(object)]
pub struct ListenOptions {
    /// Node's handle key (`address:port:addressType:fd:index`).
    pub key: String,
    /// An IP address, a unix socket path (when `port < 0`), or none.
    pub address: Option<String>,
    pub port: i32,
    pub ipv6_only: Option<bool>,
    pub backlog: Option<i32>,
    /// `"stream"` (the default: TCP or a unix socket) or `"datagram"` (UDP,
    /// always shared, whatever `shared` says).
    pub socket_type: Option<String>,
    /// UDP only: `SO_REUSEADDR`, dgram's `reuseAddr`.
    pub reuse_addr: Option<bool>,
    /// A socket of the primary's own, by fd, instead of binding
    /// `address`/`port`: a worker's `listen({ fd })`, or dgram's `bind({ fd })`.
    pub fd: Option<i32>,
    /// SCHED_NONE: hand the listening socket to the worker instead of accepting.
    pub shared: bool,
}

/// Tuning of the native dispatcher (see `rcluster_core::dispatcher::Config`).
#[napi(object)]
pub struct DispatcherOptions {
    /// Most connections a worker may hold unacknowledged (default 8).
    pub window: Option<u32>,
    /// How long round-robin waits for a full worker in turn before passing
    /// over it (default 50).
    pub stall_ms: Option<u32>,
    /// Longest a connection waits in the primary for a worker to take it
    /// (default 30000); `Infinity` for no limit.
    pub queue_timeout_ms: Option<f64>,
}

#[napi(object)]
pub struct ListenResult {
    /// 0, or a negative errno (libuv's convention, as Node reports bind errors).
    pub errno: i32,
    pub listener_id: u32,
    /// True when this call bound the socket (the first worker on the key).
    pub created: bool,
    /// For TCP: what `server.address()` shows.
    pub address: Option<String>,
    pub family: Option<String>,
    pub port: Option<u32>,
}

#[napi(object)]
pub struct ListenerStats {
    pub id: u32,
    pub key: String,
    pub workers: Vec<u32>,
    pub accepted: i64,
    pub pending: u32,
    /// Connections closed after waiting longer than the queue timeout.
    pub expired: i64,
}

#[napi(object)]
pub struct WorkerStats {
    pub id: u32,
    pub in_flight: u32,
    pub accepted: i64,
}

#[napi(object)]
pub struct DispatcherStats {
    pub listeners: Vec<ListenerStats>,
    pub workers: Vec<WorkerStats>,
}

#[napi]
pub struct Dispatcher {
    inner: dispatcher::Dispatcher,
}

fn parse_addr(options: &ListenOptions) -> Result<ListenAddr> {
    let datagram = match options.socket_type.as_deref() {
        None | Some("stream") => false,
        Some("datagram") => true,
        Some(other) => return Err(Error::new(Status::InvalidArg, format!("{other:?} is not a socket type"))),
    };
    if datagram {
        if let Some(fd) = options.fd.filter(|fd| *fd > 0) {
            return Ok(ListenAddr::UdpFd { fd });
        }
        let port = u16::try_from(options.port)
            .map_err(|_| Error::new(Status::InvalidArg, format!("port {} is out of range", options.port)))?;
        let text = options.address.as_deref().unwrap_or("");
        let ip = text
            .parse::<IpAddr>()
            .map_err(|_| Error::new(Status::InvalidArg, format!("{text:?} is not an IP address")))?;
        return Ok(ListenAddr::Udp {
            ip,
            port,
            ipv6_only: options.ipv6_only.unwrap_or(false),
            reuse_addr: options.reuse_addr.unwrap_or(false),
        });
    }
    if let Some(fd) = options.fd.filter(|fd| *fd >= 0) {
        return Ok(ListenAddr::Fd { fd });
    }
    if options.port < 0 {
        let path = options
            .address
            .as_deref()
            .ok_or_else(|| Error::new(Status::InvalidArg, "a pipe listen needs a path"))?;
        return Ok(ListenAddr::Unix { path: PathBuf::from(path) });
    }
    let port = u16::try_from(options.port)
        .map_err(|_| Error::new(Status::InvalidArg, format!("port {} is out of range", options.port)))?;
    let ip = match options.address.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| Error::new(Status::InvalidArg, format!("{text:?} is not an IP address")))?,
        ),
    };
    Ok(ListenAddr::Tcp { ip, port, ipv6_only: options.ipv6_only.unwrap_or(false) })
}

#[napi]
impl Dispatcher {
    /// Starts the dispatcher thread with the defaults of `dispatcher::Config`
    /// where an option is absent.
    #[napi(constructor)]
    pub fn new(options: Option<DispatcherOptions>) -> Result<Self> {
        let mut config = dispatcher::Config::default();
        if let Some(options) = options {
            if let Some(window) = options.window {
                config.window = window.max(1) as usize;
            }
            if let Some(ms) = options.stall_ms {
                config.stall = Duration::from_millis(u64::from(ms));
            }
            if let Some(ms) = options.queue_timeout_ms {
                // JS validated it: a non-negative number of milliseconds, or Infinity.
                config.queue_timeout = if ms.is_finite() { Duration::from_millis(ms as u64) } else { Duration::MAX };
            }
        }
        Ok(Dispatcher { inner: dispatcher::Dispatcher::start(config).map_err(to_js)? })
    }

    /// Creates a worker's channel; returns the fd of the worker's end, to pass
    /// to `child_process.fork` as an extra stdio slot.
    #[napi]
    pub fn open_channel(&self, worker: u32) -> Result<i32> {
        self.inner.open_channel(worker).map_err(to_js)
    }

    /// Closes the primary's copy of the worker's end, after the spawn.
    #[napi]
    pub fn release_child_end(&self, worker: u32) {
        self.inner.release_child_end(worker);
    }

    /// Binds or joins a shared socket (TCP, unix or UDP) for a worker. Bind
    /// failures come back as `errno` (as Node's cluster does), other failures throw.
    #[napi]
    pub fn listen(&self, worker: u32, options: ListenOptions) -> Result<ListenResult> {
        let request = ListenRequest {
            worker,
            key: options.key.clone(),
            spec: ListenSpec { addr: parse_addr(&options)?, backlog: options.backlog.unwrap_or(0) },
            mode: if options.shared { Mode::Shared } else { Mode::RoundRobin },
        };
        match self.inner.listen(request) {
            Ok(outcome) => {
                let (address, family, port) = match outcome.local {
                    LocalAddr::Inet(addr) => (
                        Some(addr.ip().to_string()),
                        Some(if addr.is_ipv6() { "IPv6" } else { "IPv4" }.to_string()),
                        Some(u32::from(addr.port())),
                    ),
                    LocalAddr::Unix(_) => (None, None, None),
                };
                Ok(ListenResult { errno: 0, listener_id: outcome.listener, created: outcome.created, address, family, port })
            }
            Err(err) => match err.errno() {
                Some(errno) => Ok(ListenResult {
                    errno: -errno,
                    listener_id: 0,
                    created: false,
                    address: None,
                    family: None,
                    port: None,
                }),
                None => Err(to_js(err)),
            },
        }
    }

    /// Takes a worker out of every rotation; it stays connected and answers
    /// for what it was already sent. A socket it was the last worker of closes
    /// (it is being disconnected), or with `hold`, stays open and holds
    /// connections for its replacement.
    #[napi]
    pub fn withdraw_worker(&self, worker: u32, hold: Option<bool>) -> Result<()> {
        let emptied = if hold == Some(true) { Emptied::Hold } else { Emptied::Close };
        self.inner.withdraw(worker, emptied).map_err(to_js)
    }

    /// Forgets a worker; what it had not acknowledged goes to the others.
    #[napi]
    pub fn remove_worker(&self, worker: u32) -> Result<()> {
        self.inner.remove_worker(worker).map_err(to_js)
    }

    #[napi]
    pub fn stats(&self) -> Result<DispatcherStats> {
        let stats = self.inner.stats().map_err(to_js)?;
        Ok(DispatcherStats {
            listeners: stats
                .listeners
                .into_iter()
                .map(|l| ListenerStats {
                    id: l.id,
                    key: l.key,
                    workers: l.members,
                    accepted: l.accepted as i64,
                    pending: l.pending as u32,
                    expired: l.expired as i64,
                })
                .collect(),
            workers: stats
                .workers
                .into_iter()
                .map(|w| WorkerStats { id: w.id, in_flight: w.in_flight as u32, accepted: w.accepted as i64 })
                .collect(),
        })
    }
}
