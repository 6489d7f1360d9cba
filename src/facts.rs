//! What lib/ and the native side must agree on, defined once and exported to
//! JS from here (lib/native.js hands them on): bus peer ids and sizes, the
//! defaults of the header stages' timeouts, the scheduling policies' names,
//! and the one parser of an address block.

use napi_derive::napi;
use rcluster_core::routing::proxy_header::Cidr;
use rcluster_core::{bus, Mode};

/// The primary's JS, as a bus peer (`bus::PRIMARY`).
#[napi]
pub const BUS_PRIMARY: u32 = bus::PRIMARY;
/// The agent, as a bus peer (`bus::AGENT`).
#[napi]
pub const BUS_AGENT: u32 = bus::AGENT;
/// A bus message's target meaning every worker and the agent (`bus::BROADCAST`).
#[napi]
pub const BUS_BROADCAST: u32 = bus::BROADCAST;
/// Largest payload of one bus message, in bytes (`bus::MAX_PAYLOAD`).
#[napi]
pub const BUS_MAX_PAYLOAD: u32 = bus::MAX_PAYLOAD as u32;
/// The head of a record in a batch of bus messages (`bus::RECORD_HEAD`).
#[napi]
pub const BUS_RECORD_HEAD: u32 = bus::RECORD_HEAD as u32;

/// How long a connection may wait in the primary for a worker, by default
/// (`setupPrimary({ queueTimeout })`; the dispatcher's `Config::queue_timeout`).
#[napi]
pub const QUEUE_TIMEOUT_MS: u32 = rcluster_core::dispatcher::DEFAULT_QUEUE_TIMEOUT.as_millis() as u32;

/// How long a connection may take to send its PROXY header, by default
/// (`setupPrimary({ routing: { proxyProtocol } })`).
#[napi]
pub const PROXY_HEADER_TIMEOUT_MS: u32 = 3000;
/// How long the first request's head is waited for under sticky routing by
/// cookie or query, by default (`routing: { sticky }`).
#[napi]
pub const STICKY_TIMEOUT_MS: u32 = 1000;

/// The scheduling policies by the names the dispatcher knows them by: what
/// `NODE_CLUSTER_SCHED_POLICY` takes, what a listen asks for, what
/// `cluster.stats()` shows.
#[napi(object)]
pub struct SchedulingPolicyNames {
    pub round_robin: String,
    pub shared: String,
    pub least_connections: String,
    pub sticky: String,
    pub reuse_port: String,
}

const MODES: [Mode; 5] = [Mode::RoundRobin, Mode::Shared, Mode::LeastConnections, Mode::Sticky, Mode::ReusePort];

/// The mode named `name`, if any.
pub fn mode_named(name: &str) -> Option<Mode> {
    MODES.into_iter().find(|mode| mode.name() == name)
}

fn name_of(mode: Mode) -> String {
    mode.name().to_string()
}

#[napi]
pub fn scheduling_policy_names() -> SchedulingPolicyNames {
    SchedulingPolicyNames {
        round_robin: name_of(Mode::RoundRobin),
        shared: name_of(Mode::Shared),
        least_connections: name_of(Mode::LeastConnections),
        sticky: name_of(Mode::Sticky),
        reuse_port: name_of(Mode::ReusePort),
    }
}

/// Whether `text` is an address block the PROXY header stage takes in
/// `trusted`: `10.0.0.0/8`, `::1/128`, or a bare address.
#[napi]
pub fn is_cidr(text: String) -> bool {
    Cidr::parse(&text).is_some()
}
