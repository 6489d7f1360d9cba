//! `Dispatcher`: the primary's JS handle on the native accept-and-dispatch thread.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::ValueType;
use napi_derive::napi;
use rcluster_core::dispatcher::{ProxyConfig, StickyHttp};
use rcluster_core::routing::http_key::Rule as HttpRule;
use rcluster_core::listen::inherited::Inherited;
use rcluster_core::routing::proxy_header::{Cidr, Trust};
use rcluster_core::{dispatcher, Emptied, ListenRequest, ListenSpec, LocalAddr, Mode, NodeQuery, NodeValue};

use crate::events::{self, DispatcherEvent};
use crate::js_error::{to_js, JsError};

/// Tuning of the native dispatcher (see `rcluster_core::dispatcher::Config`).
#[napi(object)]
pub struct DispatcherOptions {
    /// Longest a connection waits in the primary for a worker to take it
    /// (default 30000); `Infinity` for no limit.
    pub queue_timeout_ms: Option<f64>,
    /// Withdraw and report a worker that sent no heartbeat for this long
    /// (`setupPrimary({ health: { hangTimeout } })`); absent: no detection.
    pub hang_timeout_ms: Option<f64>,
    /// Connections start with a PROXY protocol header (v1 or v2), which the
    /// dispatcher reads and strips.
    pub proxy_protocol: Option<ProxyProtocolOptions>,
    /// Listening sockets inherited from systemd (`LISTEN_FDS`), which the
    /// dispatcher takes over: a worker's listen on one's address gets it.
    pub inherited_fds: Option<Vec<InheritedFd>>,
    /// SCHED_STICKY by a query parameter or cookie of the first request.
    pub sticky_key: Option<StickyKeyOptions>,
    /// Pacing (docs/DESIGN.md §13): the open connections from which a
    /// worker gets one new connection per event-loop turn; 0: never paced;
    /// absent: the dispatcher's default. Set only for measurements
    /// (`RCLUSTER_BENCH_PACE_ABOVE`, lib/primary/cluster.js).
    pub pace_above: Option<u32>,
    /// How long a worker's event loop may be busy, by its loop stamp, before
    /// least connections passes over it (`routing: { busyThreshold }`);
    /// absent: the dispatcher's default.
    pub busy_threshold_ms: Option<f64>,
    /// How many dispatcher threads share the workers
    /// (`setupPrimary({ routing: { dispatcherThreads } })`); absent: one
    /// per 8 CPUs (docs/DESIGN.md §16).
    pub dispatcher_threads: Option<u32>,
}

#[napi(object)]
pub struct StickyKeyOptions {
    /// The query parameter (`sid` for socket.io) whose value is the key.
    pub query: Option<String>,
    /// Or the cookie.
    pub cookie: Option<String>,
    /// Longest the first request's head is waited for (default 1000).
    pub timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct InheritedFd {
    pub fd: i32,
    /// Its name in `LISTEN_FDNAMES`, if given.
    pub name: Option<String>,
}

#[napi(object)]
pub struct ProxyProtocolOptions {
    /// Address blocks (`10.0.0.0/8`, `::1`) a header is accepted from;
    /// absent: from any peer.
    pub trusted: Option<Vec<String>>,
    /// Longest a connection may take to send its header (default 3000).
    pub timeout_ms: Option<u32>,
}

fn proxy_config(env: &Env, options: ProxyProtocolOptions) -> Result<ProxyConfig> {
    let trust = match options.trusted {
        None => Trust::Any,
        Some(blocks) => Trust::Only(
            blocks
                .iter()
                .map(|b| {
                    Cidr::parse(b).ok_or_else(|| {
                        JsError::invalid_arg_value(format!(
                            "The property 'options.routing.proxyProtocol.trusted' must hold IP addresses or CIDR blocks. Received '{b}'"
                        ))
                        .into_napi(env)
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    let timeout = Duration::from_millis(u64::from(options.timeout_ms.unwrap_or(crate::facts::PROXY_HEADER_TIMEOUT_MS)));
    Ok(ProxyConfig { trust, timeout })
}

#[napi(object)]
pub struct ListenResult {
    /// 0, or a negative errno (libuv's convention, as Node reports bind errors).
    pub errno: i32,
    /// Whether the worker listens on the socket itself (SCHED_NONE, and
    /// every UDP socket) rather than being dealt connections.
    pub shared: bool,
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
    /// Its scheduling policy: `rr`, `none`, `lc` or `sticky`.
    pub policy: String,
    /// Connections each member holds open.
    pub connections: Vec<OpenConnections>,
    /// Connections closed for a malformed or late PROXY header, or from a
    /// peer not trusted to send one.
    pub proxy_rejected: i64,
    /// Its listening sockets: 1, or one per worker slot under SCHED_REUSEPORT.
    pub sockets: u32,
    /// Whether they hold connections until their first bytes arrive
    /// (`TCP_DEFER_ACCEPT`: SCHED_REUSEPORT, for an HTTP, HTTPS or TLS server).
    pub defer_accept: bool,
    /// Connections waiting in its header stage (a PROXY header, or the
    /// first request's head for sticky routing by cookie or query), and how
    /// many may (absent: it has no stage).
    pub stage_waiting: u32,
    pub stage_budget: Option<u32>,
    /// Connections whose PROXY header or first request head did not arrive
    /// within the stage's timeout.
    pub stage_expired: i64,
}

#[napi(object)]
pub struct OpenConnections {
    pub worker: u32,
    pub open: i64,
    /// Its server's `maxConnections`, as its last close report said.
    pub max_connections: Option<u32>,
}

#[napi(object)]
pub struct WorkerStats {
    pub id: u32,
    pub in_flight: u32,
    pub accepted: i64,
    /// How long its event loop has been busy now, in ms, by its loop stamp
    /// (0 while it waits for I/O); absent before its first stamp.
    pub loop_busy_ms: Option<f64>,
    /// How long ago its event loop last stamped (entered or left its wait
    /// for I/O), in ms; absent before its first stamp.
    pub last_turn_age_ms: Option<f64>,
}

/// Accept-to-acknowledgement times (core/src/dispatcher/ack_stats.rs).
#[napi(object)]
pub struct AckLatencyStats {
    /// Upper bounds of the buckets, in seconds.
    pub bounds: Vec<f64>,
    /// Cumulative counts: times at or below each bound.
    pub buckets: Vec<i64>,
    pub count: i64,
    /// The sum of the times, in seconds.
    pub sum: f64,
}

#[napi(object)]
pub struct DispatcherStats {
    pub listeners: Vec<ListenerStats>,
    pub workers: Vec<WorkerStats>,
    pub ack_latency: AckLatencyStats,
    /// Offers of a connection that a worker refused.
    pub refused: i64,
    /// Connections taken back from a worker whose event loop stayed busy
    /// before it read them, and dealt to another.
    pub taken_back: i64,
    /// How many dispatcher threads share the workers.
    pub dispatcher_threads: u32,
}

#[napi]
pub struct Dispatcher {
    inner: dispatcher::Dispatcher,
}

/// A field of the query as `from_node` reads it. Only the type is looked at
/// here; what the value means is decided in one place, `ListenSpec::from_node`.
fn node_value(query: &Object, name: &str) -> Result<NodeValue> {
    let Some(value) = query.get::<Unknown>(name)? else { return Ok(NodeValue::Absent) };
    // SAFETY: each cast matches the type just read.
    Ok(match value.get_type()? {
        ValueType::Undefined | ValueType::Null => NodeValue::Absent,
        ValueType::Number => NodeValue::Number(unsafe { value.cast::<f64>()? }),
        ValueType::String => NodeValue::Text(unsafe { value.cast::<String>()? }),
        _ => NodeValue::Other,
    })
}

/// `query[name]`, if it holds a JS value of type `kind` (which `T` reads).
fn field<T: FromNapiValue>(query: &Object, name: &str, kind: ValueType) -> Result<Option<T>> {
    match query.get::<Unknown>(name)? {
        Some(value) if value.get_type()? == kind => {
            // SAFETY: the value's type was just checked to be `kind`, the one
            // each caller pairs with `T`.
            Ok(Some(unsafe { value.cast::<T>()? }))
        }
        _ => Ok(None),
    }
}

fn node_query(query: &Object) -> Result<NodeQuery> {
    Ok(NodeQuery {
        address: node_value(query, "address")?,
        port: node_value(query, "port")?,
        address_type: node_value(query, "addressType")?,
        fd: node_value(query, "fd")?,
        flags: node_value(query, "flags")?,
        backlog: node_value(query, "backlog")?,
    })
}

#[napi]
impl Dispatcher {
    /// Starts the dispatcher thread with the defaults of `dispatcher::Config`
    /// where an option is absent. `onEvent(event)` is called on this thread
    /// for what the dispatcher thread sees (`src/events.rs`).
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: Option<DispatcherOptions>,
        on_event: Option<Function<'_, DispatcherEvent, ()>>,
    ) -> Result<Self> {
        let mut config = dispatcher::Config::default();
        if let Some(options) = options {
            if let Some(open) = options.pace_above {
                config.pace_above = (open > 0).then_some(u64::from(open));
            }
            if let Some(ms) = options.queue_timeout_ms {
                // JS validated it: a non-negative number of milliseconds, or Infinity.
                config.queue_timeout = if ms.is_finite() { Duration::from_millis(ms as u64) } else { Duration::MAX };
            }
            if let Some(ms) = options.busy_threshold_ms {
                // JS validated it: a non-negative number of milliseconds.
                config.busy_threshold = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
            }
            if let Some(threads) = options.dispatcher_threads {
                // JS validated it: 1 to 64.
                config.threads = Some(threads as usize);
            }
            if let Some(ms) = options.hang_timeout_ms {
                config.hang_timeout = Some(Duration::from_millis(ms as u64));
            }
            if let Some(proxy) = options.proxy_protocol {
                config.proxy = Some(proxy_config(&env, proxy)?);
            }
            if let Some(sticky) = options.sticky_key {
                let rule = match (sticky.query, sticky.cookie) {
                    (Some(name), _) => HttpRule::Query(name),
                    (None, Some(name)) => HttpRule::Cookie(name),
                    (None, None) => {
                        return Err(JsError::invalid_arg_value("The sticky key needs a query or a cookie name".into())
                            .into_napi(&env))
                    }
                };
                let timeout = Duration::from_millis(u64::from(sticky.timeout_ms.unwrap_or(crate::facts::STICKY_TIMEOUT_MS)));
                config.sticky_http = Some(StickyHttp { rule, timeout });
            }
            if let Some(fds) = options.inherited_fds {
                let fds: Vec<(i32, Option<String>)> = fds.into_iter().filter(|f| f.fd >= 3).map(|f| (f.fd, f.name)).collect();
                // SAFETY: lib/primary/socket_activation.js passes the descriptors
                // systemd handed this process (LISTEN_PID is its pid), once;
                // nothing else in the process uses them.
                config.inherited = std::sync::Arc::new(unsafe { Inherited::adopt(&fds) });
            }
        }
        let started = match on_event {
            Some(on_event) => dispatcher::Dispatcher::start_with_events(config, events::sink(&on_event)?),
            None => dispatcher::Dispatcher::start(config),
        };
        Ok(Dispatcher { inner: started.map_err(|e| to_js(&env, e))? })
    }

    /// Creates a worker's channel; returns the fd of the worker's end, to pass
    /// to `child_process.fork` as an extra stdio slot.
    #[napi]
    pub fn open_channel(&self, env: Env, worker: u32) -> Result<i32> {
        self.inner.open_channel(worker).map_err(|e| to_js(&env, e))
    }

    /// Opens the bus channel of this process's own JS (peer `peer`, 0 for
    /// the primary) and returns its fd, for a `Channel` to take over.
    #[napi]
    pub fn open_local_channel(&self, env: Env, peer: u32) -> Result<i32> {
        use std::os::fd::IntoRawFd;
        self.inner.open_local_channel(peer).map(IntoRawFd::into_raw_fd).map_err(|e| to_js(&env, e))
    }

    /// Broadcasts from workers and the agent reach the primary's bus channel
    /// too, for it to carry them to other machines (`bus.redis`).
    #[napi]
    pub fn set_bus_bridge(&self, env: Env, on: bool) -> Result<()> {
        self.inner.set_bus_bridge(on).map_err(|e| to_js(&env, e))
    }

    /// Closes the primary's copy of the worker's end, after the spawn.
    #[napi]
    pub fn release_child_end(&self, worker: u32) {
        self.inner.release_child_end(worker);
    }

    /// Binds or joins a shared socket (TCP, unix or UDP) for a worker.
    /// `query` holds the fields of Node's `queryServer` message as the worker
    /// sent them (`address`, `port`, `addressType`, `fd`, `flags`, `backlog`),
    /// plus `key` (Node's handle key; requests with the same key share one
    /// socket), `shared` (SCHED_NONE), `policy` and `deferAccept` (the
    /// server's clients speak first; core/src/routing/reuseport.rs). A bind failure comes back as
    /// `errno`, as node:cluster answers the worker; anything else throws.
    #[napi(
        ts_args_type = "worker: number, query: { key: string, address?: string | null, port?: number | string | null, addressType?: number | string | null, fd?: number | null, flags?: number | null, backlog?: number | null, shared?: boolean, policy?: 'rr' | 'lc' | 'sticky' | 'reuseport', deferAccept?: boolean }"
    )]
    pub fn listen(&self, env: Env, worker: u32, query: Object) -> Result<ListenResult> {
        let Some(key) = field::<String>(&query, "key", ValueType::String)? else {
            return Err(JsError::invalid_arg_type("The \"key\" property must be of type string".into()).into_napi(&env));
        };
        let shared = field::<bool>(&query, "shared", ValueType::Boolean)?.unwrap_or(false);
        // Which policy a round-robin-style listener gets: `lc`, `sticky`, or
        // (absent or anything else) round-robin.
        let policy = field::<String>(&query, "policy", ValueType::String)?.and_then(|name| crate::facts::mode_named(&name));
        let defer_accept = field::<bool>(&query, "deferAccept", ValueType::Boolean)?.unwrap_or(false);
        let node = node_query(&query)?;
        // A datagram socket is always shared, as in node:cluster: there is
        // nothing to accept.
        let shared = shared || node.is_datagram();
        let cwd = std::env::current_dir().unwrap_or_default();
        let spec = ListenSpec::from_node(&node, &cwd);
        let outcome = spec.and_then(|spec| {
            self.inner.listen(ListenRequest {
                worker,
                key,
                spec,
                mode: match (shared, policy) {
                    (_, Some(Mode::ReusePort)) => Mode::ReusePort,
                    (true, _) => Mode::Shared,
                    (false, Some(mode @ (Mode::LeastConnections | Mode::Sticky))) => mode,
                    (false, _) => Mode::RoundRobin,
                },
                defer_accept,
            })
        });
        match outcome {
            Ok(outcome) => {
                let (address, family, port) = match outcome.local {
                    LocalAddr::Inet(addr) => (
                        Some(addr.ip().to_string()),
                        Some(if addr.is_ipv6() { "IPv6" } else { "IPv4" }.to_string()),
                        Some(u32::from(addr.port())),
                    ),
                    LocalAddr::Unix(_) => (None, None, None),
                };
                Ok(ListenResult {
                    errno: 0,
                    shared: outcome.shared,
                    listener_id: outcome.listener,
                    created: outcome.created,
                    address,
                    family,
                    port,
                })
            }
            Err(err) => match err.errno() {
                Some(errno) => Ok(ListenResult {
                    errno: -errno,
                    shared,
                    listener_id: 0,
                    created: false,
                    address: None,
                    family: None,
                    port: None,
                }),
                None => Err(to_js(&env, err)),
            },
        }
    }

    /// Takes a worker out of every rotation; it stays connected and answers
    /// for what it was already sent. A socket it was the last worker of closes
    /// (it is being disconnected), or with `hold`, stays open and holds
    /// connections for its replacement.
    #[napi]
    pub fn withdraw_worker(&self, env: Env, worker: u32, hold: Option<bool>) -> Result<()> {
        let emptied = if hold == Some(true) { Emptied::Hold } else { Emptied::Close };
        self.inner.withdraw(worker, emptied).map_err(|e| to_js(&env, e))
    }

    /// Forgets a worker; what it had not acknowledged goes to the others.
    #[napi]
    pub fn remove_worker(&self, env: Env, worker: u32) -> Result<()> {
        self.inner.remove_worker(worker).map_err(|e| to_js(&env, e))
    }

    #[napi]
    pub fn stats(&self, env: Env) -> Result<DispatcherStats> {
        let stats = self.inner.stats().map_err(|e| to_js(&env, e))?;
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
                    policy: l.policy.to_string(),
                    connections: l
                        .open
                        .into_iter()
                        .map(|(worker, open, cap)| OpenConnections { worker, open: open as i64, max_connections: cap })
                        .collect(),
                    proxy_rejected: l.proxy_rejected as i64,
                    sockets: l.sockets as u32,
                    defer_accept: l.defer_accept,
                    stage_waiting: l.stage_waiting as u32,
                    stage_budget: l.stage_budget.map(|b| b.min(u32::MAX as usize) as u32),
                    stage_expired: l.stage_expired as i64,
                })
                .collect(),
            workers: stats
                .workers
                .into_iter()
                .map(|w| WorkerStats {
                    id: w.id,
                    in_flight: w.in_flight as u32,
                    accepted: w.accepted as i64,
                    loop_busy_ms: w.loop_reading.map(|r| r.busy_for().as_secs_f64() * 1000.0),
                    last_turn_age_ms: w.loop_reading.map(|r| r.age.as_secs_f64() * 1000.0),
                })
                .collect(),
            ack_latency: AckLatencyStats {
                bounds: rcluster_core::dispatcher::ack_stats::BOUNDS_US.iter().map(|&us| us as f64 / 1e6).collect(),
                buckets: stats.acks.cumulative().iter().map(|&n| n as i64).collect(),
                count: stats.acks.count as i64,
                sum: stats.acks.sum_us as f64 / 1e6,
            },
            refused: stats.acks.refused as i64,
            taken_back: stats.acks.taken_back as i64,
            dispatcher_threads: self.inner.threads() as u32,
        })
    }
}
