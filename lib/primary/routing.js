'use strict';
// The scheduling policies beyond node:cluster's two, as the primary names
// them: constants on the cluster object, values of NODE_CLUSTER_SCHED_POLICY,
// and the policy name the native dispatcher takes for a listener. The names,
// the defaults of the header stages' timeouts and what an address block is
// are the addon's (src/facts.rs, from core/src/routing/): read here, not
// spelled again.

const native = require('../native');
const {
  nodeError, invalidArgType, outOfRange, describeReceived, isPlainObject, MAX_TIMER_MS,
} = require('../errors');

const SCHED_NONE = 1; // node:cluster's
const SCHED_RR = 2; // node:cluster's
// The primary deals each connection to the worker holding the fewest open.
const SCHED_LC = 3;
// The primary deals each connection by its client's address: the same
// client always to the same worker (while that worker lives; its
// replacement takes its clients over).
const SCHED_STICKY = 4;
// Each worker accepts from a SO_REUSEPORT socket of its own, which the primary
// creates and keeps (core/src/routing/reuseport.rs).
const SCHED_REUSEPORT = 5;

// The dispatcher's name of each; NODE_CLUSTER_SCHED_POLICY takes the same.
const names = native.schedulingPolicyNames;
const nativeName = new Map([
  [SCHED_RR, names.roundRobin],
  [SCHED_NONE, names.shared],
  [SCHED_LC, names.leastConnections],
  [SCHED_STICKY, names.sticky],
  [SCHED_REUSEPORT, names.reusePort],
]);
const byEnvName = new Map([...nativeName].map(([policy, name]) => [name, policy]));

const description = new Map([
  [SCHED_RR, 'round-robin (SCHED_RR)'],
  [SCHED_NONE, 'shared sockets (SCHED_NONE)'],
  [SCHED_LC, 'least connections (SCHED_LC)'],
  [SCHED_STICKY, 'sticky by client address (SCHED_STICKY)'],
  [SCHED_REUSEPORT, 'a SO_REUSEPORT socket per worker (SCHED_REUSEPORT)'],
]);

// NODE_CLUSTER_SCHED_POLICY as node:cluster reads it: anything it does not
// know means round-robin.
function policyFromEnvValue(value) {
  return byEnvName.get(value) ?? SCHED_RR;
}

function isPolicy(value) {
  return nativeName.has(value);
}

// Whether workers accept by themselves from a listening socket they are
// given (SCHED_NONE: the one socket; SCHED_REUSEPORT: one each); the other
// policies have the primary deal connections out.
function isShared(policy) {
  return policy === SCHED_NONE || policy === SCHED_REUSEPORT;
}

// The default time a connection has to send its whole PROXY header.
const { PROXY_HEADER_TIMEOUT_MS, STICKY_TIMEOUT_MS } = native;

function normalizeProxyProtocol(value, caller) {
  const name = 'options.routing.proxyProtocol';
  if (value === undefined || value === false) return false;
  if (value === true) return { trusted: null, timeout: PROXY_HEADER_TIMEOUT_MS };
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type boolean or an object', value, caller);
  const out = { trusted: null, timeout: PROXY_HEADER_TIMEOUT_MS };
  if (value.trusted !== undefined) {
    if (!Array.isArray(value.trusted)) throw invalidArgType(`${name}.trusted`, 'an instance of Array', value.trusted, caller);
    value.trusted.forEach((block, i) => {
      if (typeof block !== 'string') throw invalidArgType(`${name}.trusted[${i}]`, 'of type string', block, caller);
      // `10.0.0.0/8`, `::1/128`, or a bare address, as the dispatcher parses it.
      if (!native.isCidr(block)) {
        throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
          `The property '${name}.trusted[${i}]' must be an IP address or a CIDR block. Received ${describeReceived(block)}`,
          caller);
      }
    });
    out.trusted = [...value.trusted];
  }
  if (value.timeout !== undefined) {
    const t = value.timeout;
    if (typeof t !== 'number') throw invalidArgType(`${name}.timeout`, 'of type number', t, caller);
    if (!Number.isInteger(t) || t < 1 || t > MAX_TIMER_MS) throw outOfRange(`${name}.timeout`, `>= 1 && <= ${MAX_TIMER_MS}`, t, caller);
    out.timeout = t;
  }
  return out;
}

// A cookie or query parameter name: an HTTP token.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

// `{ query: 'sid' }` or `{ cookie: 'io' }`, and `timeout`.
function normalizeSticky(value, caller) {
  const name = 'options.routing.sticky';
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw invalidArgType(name, 'of type object', value, caller);
  const given = ['query', 'cookie'].filter((k) => value[k] !== undefined);
  if (given.length !== 1) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
      `The property '${name}' must have one of 'query' and 'cookie'. Received ${describeReceived(value)}`, caller);
  }
  const kind = given[0];
  const key = value[kind];
  if (typeof key !== 'string') throw invalidArgType(`${name}.${kind}`, 'of type string', key, caller);
  if (!TOKEN.test(key)) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
      `The property '${name}.${kind}' must be a cookie or parameter name. Received ${describeReceived(key)}`, caller);
  }
  let timeout = STICKY_TIMEOUT_MS;
  if (value.timeout !== undefined) {
    const t = value.timeout;
    if (typeof t !== 'number') throw invalidArgType(`${name}.timeout`, 'of type number', t, caller);
    if (!Number.isInteger(t) || t < 1 || t > MAX_TIMER_MS) throw outOfRange(`${name}.timeout`, `>= 1 && <= ${MAX_TIMER_MS}`, t, caller);
    timeout = t;
  }
  return { [kind]: key, timeout };
}

const ROUTING_OPTIONS = ['proxyProtocol', 'sticky', 'deferAccept', 'busyThreshold', 'dispatcherThreads'];

// Most dispatcher threads (core/src/dispatcher/shards.rs MAX_THREADS).
const MAX_DISPATCHER_THREADS = 64;
const DISPATCHER_THREADS_ENV = 'RCLUSTER_DISPATCHER_THREADS';

// How many native dispatcher threads share the workers (docs/DESIGN.md §16):
// an integer from 1 to 64, or 'auto' (one per 8 CPUs, the default).
function normalizeDispatcherThreads(value, name, caller) {
  if (value === 'auto') return value;
  if (typeof value !== 'number') throw invalidArgType(name, "of type number or 'auto'", value, caller);
  if (!Number.isInteger(value) || value < 1 || value > MAX_DISPATCHER_THREADS) {
    throw outOfRange(name, `an integer >= 1 && <= ${MAX_DISPATCHER_THREADS}`, value, caller);
  }
  return value;
}

// The dispatcher threads asked for: setupPrimary's routing.dispatcherThreads,
// else RCLUSTER_DISPATCHER_THREADS (the same values), else the native
// default (undefined). A malformed variable is ignored with a warning, as
// Node ignores a NODE_CLUSTER_SCHED_POLICY it does not know, but said.
// Sticky routing keeps one table of which client is whose: it gets one
// thread, whatever is asked (said, when more were asked).
function dispatcherThreads(routing, policy, env = process.env) {
  const sticky = policy === SCHED_STICKY || Boolean(routing && routing.sticky);
  const asked = askedThreads(routing, env);
  if (!sticky) return asked;
  if (asked !== undefined && asked > 1) {
    process.emitWarning(`sticky routing uses one dispatcher thread; ignoring dispatcherThreads ${asked}`,
                        { code: 'RCLUSTER_DISPATCHER_THREADS_IGNORED' });
  }
  return 1;
}

function askedThreads(routing, env) {
  const value = routing && routing.dispatcherThreads;
  if (value !== undefined) return value === 'auto' ? undefined : value;
  const text = env[DISPATCHER_THREADS_ENV];
  if (text === undefined || text === '' || text === 'auto') return undefined;
  const threads = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (Number.isInteger(threads) && threads >= 1 && threads <= MAX_DISPATCHER_THREADS) return threads;
  process.emitWarning(`${DISPATCHER_THREADS_ENV} must be an integer from 1 to ${MAX_DISPATCHER_THREADS} or 'auto'; ` +
                      `ignoring '${text}'`, { code: 'RCLUSTER_DISPATCHER_THREADS_IGNORED' });
  return undefined;
}

// How long, in ms, a worker's event loop may be busy (by its loop stamp)
// before least connections, and sticky routing for connections without a
// key, pass over it (and round-robin one that also left a connection unread
// for 1 ms); the dispatcher's default when absent. A fraction of a
// millisecond is allowed.
function normalizeBusyThreshold(value, caller) {
  const name = 'options.routing.busyThreshold';
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value, caller);
  if (!Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) throw outOfRange(name, `>= 0 && <= ${MAX_TIMER_MS}`, value, caller);
  return value;
}

/**
 * setupPrimary's `routing`: `{ proxyProtocol: true | { trusted, timeout },
 * sticky: { query | cookie, timeout }, deferAccept: boolean, busyThreshold: ms,
 * dispatcherThreads: 1..64 | 'auto' }`,
 * validated and expanded; throws Node-style errors.
 */
function normalizeRouting(value, caller) {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw invalidArgType('options.routing', 'of type object', value, caller);
  for (const key of Object.keys(value)) {
    if (!ROUTING_OPTIONS.includes(key)) {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
        `The property 'options.routing.${key}' is not a routing option. Known: ${ROUTING_OPTIONS.join(', ')}`, caller);
    }
  }
  const out = { proxyProtocol: normalizeProxyProtocol(value.proxyProtocol, caller) };
  const sticky = normalizeSticky(value.sticky, caller);
  if (sticky !== undefined) out.sticky = sticky;
  if (value.deferAccept !== undefined) {
    if (typeof value.deferAccept !== 'boolean') {
      throw invalidArgType('options.routing.deferAccept', 'of type boolean', value.deferAccept, caller);
    }
    out.deferAccept = value.deferAccept;
  }
  if (value.busyThreshold !== undefined) out.busyThreshold = normalizeBusyThreshold(value.busyThreshold, caller);
  if (value.dispatcherThreads !== undefined) {
    out.dispatcherThreads = normalizeDispatcherThreads(value.dispatcherThreads, 'options.routing.dispatcherThreads', caller);
  }
  return out;
}

// Whether SCHED_REUSEPORT sockets of a server whose clients speak first hold
// each connection until its first bytes arrive (TCP_DEFER_ACCEPT, as nginx's
// `deferred`): on unless `routing: { deferAccept: false }`.
function defersAccept(routing) {
  return !(routing && routing.deferAccept === false);
}

// What the native Dispatcher takes for it.
function dispatcherOptions(routing) {
  const out = {};
  if (routing && routing.proxyProtocol) {
    const { trusted, timeout } = routing.proxyProtocol;
    out.proxyProtocol = { ...(trusted === null ? {} : { trusted }), timeoutMs: timeout };
  }
  if (routing && routing.sticky) {
    const { query, cookie, timeout } = routing.sticky;
    out.stickyKey = { ...(query ? { query } : { cookie }), timeoutMs: timeout };
  }
  if (routing && routing.busyThreshold !== undefined) out.busyThresholdMs = routing.busyThreshold;
  return out;
}

module.exports = {
  normalizeRouting,
  defersAccept,
  dispatcherOptions,
  dispatcherThreads,
  SCHED_NONE,
  SCHED_RR,
  SCHED_LC,
  SCHED_STICKY,
  SCHED_REUSEPORT,
  policyFromEnvValue,
  isPolicy,
  isShared,
  nativeName: (policy) => nativeName.get(policy),
  describe: (policy) => description.get(policy),
};
