'use strict';
// Across machines: setupPrimary({ bus: { redis: 'redis://host:6379' } }).
// Each primary is one machine, named by a random id. It carries, through
// Redis pub/sub:
// - broadcasts: the dispatcher passes the primary every local broadcast
//   (Dispatcher#setBusBridge), which it publishes; one from another machine
//   is broadcast here with its origin, 'machine/sender', as `from`;
// - sends to 'machine/target' (a worker id, 'agent' or 'primary' there);
// - counters: every `syncInterval` ms (100) it publishes this machine's part
//   of every counter, and writes the sum of the other machines' latest parts
//   beside each counter in shared memory, so get() in any process is the
//   latest known total. add() stays local and synchronous.
// Redis going away never blocks anything: local delivery goes on, commands
// fail at once instead of queueing (enableOfflineQueue: false), cluster.bus
// emits one 'error' saying so, and the client reconnects by itself.
//
// The client library, ioredis, is an optional peer dependency, loaded only
// here: the one-machine default needs no Redis and no client.
//
// What arrives from Redis is untrusted input (docs/SECURITY.md): anyone who
// can publish on the namespace's channels can send anything. Every message
// is validated whole before it is used (`decodeBus`, `decodeCounters`); a
// refused one is counted (surface 'redisMessage') and dropped, never thrown
// inside ioredis' handler. What a peer can make this machine hold is
// bounded: MAX_MACHINES machines' parts of at most MAX_REMOTE_NAMES counters
// each, and a remote name never claims a slot of this machine's counter
// table: the sums are only written beside counters that exist here.
const crypto = require('crypto');
const { nodeError, invalidArgType, outOfRange } = require('../errors');
const { reject } = require('../rejections');

const SYNC_INTERVAL_DEFAULT = 100;
const SYNC_WAIT_MS = 1000;
// The longest message read: a bus message's 64 KiB payload, or one machine's
// MAX_REMOTE_NAMES counters, with room for JSON's escapes.
const MAX_TEXT = 256 * 1024;
// Other machines whose counter parts are kept. A machine silent for
// MACHINE_SILENT_MS gives its room up to a new one (its parts then leave the
// totals); while all are live, a new machine is refused.
const MAX_MACHINES = 64;
const MACHINE_SILENT_MS = 30000;
// A machine that published within this long is waited for by sync().
const SYNC_LIVE_MS = 2000;
// Counters one machine may publish (the size of a machine's counter table),
// and the bytes of a counter name (UTF-8): the shared region's own sizes
// (core/src/shared/mod.rs COUNTER_SLOTS and NAME_MAX, through the addon).
const { sharedLimits } = require('../native');
const { counters: MAX_REMOTE_NAMES, nameMax: NAME_MAX } = sharedLimits === undefined ? {} : sharedLimits();
// Sync requests answered per second, at most: each answer publishes all of
// this machine's counters, so a peer flooding requests must not make this
// machine flood Redis in turn.
const SYNC_ANSWERS_PER_SECOND = 200;
// A machine's id, a sync's id: lowercase hex (4 random bytes as built here).
const HEX_ID = /^[0-9a-f]{1,32}$/;
const WORKER_ID = /^[1-9][0-9]{0,9}$/;
// The agent's bus peer id (core/src/bus/mod.rs): worker ids are below it.
const { BUS_AGENT: AGENT_ID } = require('../native');
// Events of cluster.bus itself (lib/bus/bus.js): never a topic from a peer.
const { RESERVED_TOPICS } = require('../protocol');

function normalizeBusOptions(value, caller) {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType('options.bus', 'of type object', value, caller);
  }
  const out = {};
  if (value.redis !== undefined) {
    if (typeof value.redis !== 'string' || !/^rediss?:\/\//.test(value.redis)) {
      throw invalidArgType('options.bus.redis', "a redis:// or rediss:// URL string", value.redis, caller);
    }
    out.redis = value.redis;
  }
  out.namespace = value.namespace ?? 'rcluster';
  if (typeof out.namespace !== 'string' || out.namespace === '') {
    throw invalidArgType('options.bus.namespace', 'a non-empty string', value.namespace, caller);
  }
  out.syncInterval = value.syncInterval ?? SYNC_INTERVAL_DEFAULT;
  if (!Number.isInteger(out.syncInterval) || out.syncInterval < 1 || out.syncInterval > SYNC_INTERVAL_DEFAULT) {
    throw outOfRange('options.bus.syncInterval', `an integer >= 1 && <= ${SYNC_INTERVAL_DEFAULT}`, value.syncInterval, caller);
  }
  return out;
}

function loadClient(caller) {
  try {
    return require('ioredis');
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
    throw nodeError(Error, 'ERR_RCLUSTER_REDIS_CLIENT_MISSING',
                    "setupPrimary({ bus: { redis } }) needs the 'ioredis' package: npm install ioredis", caller);
  }
}

class RedisBridge {
  /**
   * `bus`: this primary's cluster.bus; `shared`: cluster.shared; `local`:
   * { broadcast(payloadMessage), send(target, payloadMessage) } into this
   * machine's dispatcher.
   */
  constructor(options, { bus, shared, local }) {
    this.options = options;
    this.bus = bus;
    this.shared = shared;
    this.local = local;
    this.machine = crypto.randomBytes(4).toString('hex');
    this.channel = `${options.namespace}:bus`;
    this.countersChannel = `${options.namespace}:counters`;
    this.parts = new Map(); // machine -> { counters: Map(name -> value), seen: performance.now() }
    this.applied = new Set(); // names whose remote sum was written here
    this.syncBucket = SYNC_ANSWERS_PER_SECOND;
    this.syncBucketAt = 0;
    this.syncWaiters = new Map(); // sync id -> { waiting: Set(machine), resolve }
    this.down = false;
    this.pub = null;
    this.sub = null;
    this.timer = null;
  }

  start(caller) {
    const Redis = loadClient(caller);
    const common = {
      // Never queue a command while Redis is away: a worker's add() or a
      // local message must not wait on it, and a stale counter part is
      // worth nothing once a newer one exists.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    };
    this.pub = new Redis(this.options.redis, common);
    this.sub = new Redis(this.options.redis, { ...common, enableOfflineQueue: true });
    for (const client of [this.pub, this.sub]) {
      client.on('error', (err) => this.wentDown(err));
      client.on('ready', () => {
        this.down = false;
      });
    }
    this.sub.subscribe(this.channel, this.countersChannel).catch((err) => this.wentDown(err));
    this.sub.on('message', (channel, text) => this.onMessage(channel, text));
    this.timer = setInterval(() => {
      this.publishCounters();
      this.applyRemote();
    }, this.options.syncInterval);
    this.timer.unref();
  }

  stop() {
    clearInterval(this.timer);
    this.pub?.disconnect();
    this.sub?.disconnect();
  }

  /** 'up' while both connections to Redis are ready, else 'down' (reconnecting). */
  get link() {
    return this.pub?.status === 'ready' && this.sub?.status === 'ready' ? 'up' : 'down';
  }

  wentDown(err) {
    if (this.down) return;
    this.down = true;
    const error = nodeError(Error, 'ERR_RCLUSTER_REDIS_DOWN',
                            `Redis at ${this.options.redis} is unreachable (${err.message}): messages and counters ` +
                            'stay on this machine until it is back; reconnecting', this.wentDown);
    error.cause = err;
    this.bus.reportError(error);
  }

  publish(channel, message) {
    if (this.pub === null || this.pub.status !== 'ready') return;
    this.pub.publish(channel, JSON.stringify(message)).catch((err) => this.wentDown(err));
  }

  /** A broadcast made on this machine (by `from`, a local peer name). */
  publishBroadcast(from, topic, data) {
    this.publish(this.channel, { m: this.machine, f: from, k: 'b', t: topic, d: data });
  }

  /** A send to `to` ('machine/target') from local peer `from`. */
  forward(from, to, topic, data) {
    const slash = to.indexOf('/');
    this.publish(this.channel, { m: this.machine, f: from, k: 's', to: to.slice(0, slash), tg: to.slice(slash + 1), t: topic, d: data });
  }

  /** A message from Redis on one of the bridge's channels: untrusted, never thrown from. */
  onMessage(channel, text) {
    try {
      if (typeof text !== 'string' || text.length > MAX_TEXT) {
        this.refuse(`a message of ${typeof text === 'string' ? `${text.length} characters (at most ${MAX_TEXT})` : typeof text}`);
        return;
      }
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        this.refuse(`not JSON: ${text.slice(0, 80)}`);
        return;
      }
      if (channel === this.countersChannel) this.onCounters(msg);
      else if (channel === this.channel) this.onBus(msg);
    } catch (err) {
      // Validation comes first, so only what this machine's bus refuses to
      // carry can land here (a payload too large once re-encoded); anything
      // else is the application's own listener throwing, which it sees as it
      // would for a local message.
      if (isBusRefusal(err)) this.refuse(`the bus refused it: ${err.message}`);
      else this.rethrow(err);
    }
  }

  /** The application's own error, out of ioredis' handler: an uncaught exception, as for a local message. */
  rethrow(err) {
    process.nextTick(() => { throw err; });
  }

  refuse(detail) {
    reject('redisMessage', detail);
  }

  onBus(msg) {
    const why = invalidBusMessage(msg);
    if (why !== null) {
      this.refuse(why);
      return;
    }
    if (msg.m === this.machine) return; // our own, back from Redis
    const origin = `${msg.m}/${msg.f}`;
    if (msg.k === 'b') {
      this.local.broadcast(msg.t, msg.d, origin);
    } else if (msg.to === this.machine) {
      const target = msg.tg === 'agent' || msg.tg === 'primary' ? msg.tg : Number(msg.tg);
      this.local.send(target, msg.t, msg.d, origin);
    }
  }

  publishCounters(syncId, replyTo) {
    const parts = Object.entries(this.shared.localCounters());
    this.publish(this.countersChannel, { m: this.machine, c: parts, ...(syncId !== undefined && { s: syncId, r: replyTo }) });
  }

  onCounters(msg) {
    const why = invalidCountersMessage(msg);
    if (why !== null) {
      this.refuse(why);
      return;
    }
    if (msg.m === this.machine) return; // our own, back from Redis
    if (msg.q !== undefined) {
      // Another machine syncs: answer with our parts now, within the rate.
      if (this.takeSyncAnswer()) this.publishCounters(msg.q, msg.m);
      else this.refuse(`sync requests beyond ${SYNC_ANSWERS_PER_SECOND} a second (from machine ${msg.m})`);
      return;
    }
    if (msg.c !== undefined && !this.keepParts(msg.m, msg.c)) return;
    if (msg.s !== undefined && msg.r === this.machine) {
      const waiter = this.syncWaiters.get(msg.s);
      if (waiter !== undefined) {
        waiter.waiting.delete(msg.m);
        if (waiter.waiting.size === 0) waiter.resolve();
      }
    }
  }

  /** Keeps machine `machine`'s parts, within MAX_MACHINES; false if refused. */
  keepParts(machine, entries) {
    const now = performance.now();
    if (!this.parts.has(machine) && this.parts.size >= MAX_MACHINES) {
      let oldest = null;
      for (const [m, part] of this.parts) {
        if (oldest === null || part.seen < this.parts.get(oldest).seen) oldest = m;
      }
      if (now - this.parts.get(oldest).seen < MACHINE_SILENT_MS) {
        this.refuse(`counters from a new machine ${machine}: ${MAX_MACHINES} machines already publish`);
        return false;
      }
      this.parts.delete(oldest);
    }
    const counters = new Map();
    for (const [name, value] of entries) counters.set(name, value);
    this.parts.set(machine, { counters, seen: now });
    return true;
  }

  takeSyncAnswer() {
    const now = performance.now();
    const refill = ((now - this.syncBucketAt) / 1000) * SYNC_ANSWERS_PER_SECOND;
    this.syncBucket = Math.min(SYNC_ANSWERS_PER_SECOND, this.syncBucket + refill);
    this.syncBucketAt = now;
    if (this.syncBucket < 1) return false;
    this.syncBucket -= 1;
    return true;
  }

  /**
   * Beside each counter of this machine, the sum of the other machines'
   * latest parts. Only counters that exist here: a name only other machines
   * use claims no slot of this machine's table (a peer could otherwise fill
   * it); once a process here names it, its sum follows at the next exchange.
   */
  applyRemote() {
    if (this.parts.size === 0 && this.applied.size === 0) return;
    const local = this.shared.localCounters();
    const sums = new Map();
    for (const { counters } of this.parts.values()) {
      for (const [name, value] of counters) {
        if (Object.hasOwn(local, name)) sums.set(name, (sums.get(name) ?? 0n) + BigInt(value));
      }
    }
    // A name whose parts all left (their machines' room was taken) goes back to 0.
    for (const name of this.applied) {
      if (!sums.has(name) && Object.hasOwn(local, name)) sums.set(name, 0n);
    }
    this.applied = new Set(sums.keys());
    for (const [name, sum] of sums) {
      try {
        this.shared.counter(name).setRemote(sum);
      } catch (err) {
        this.bus.reportError(err);
      }
    }
  }

  /**
   * Exchanges parts now: publishes ours and asks every machine heard from
   * to answer with theirs; resolves once they have (or after SYNC_WAIT_MS).
   */
  sync() {
    const id = crypto.randomBytes(4).toString('hex');
    const now = performance.now();
    const waiting = new Set([...this.parts].filter(([, part]) => now - part.seen < SYNC_LIVE_MS).map(([m]) => m));
    this.publishCounters();
    if (waiting.size === 0 || this.pub?.status !== 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.syncWaiters.delete(id);
        this.applyRemote();
        resolve();
      };
      const timer = setTimeout(done, SYNC_WAIT_MS);
      this.syncWaiters.set(id, { waiting, resolve: done });
      this.publish(this.countersChannel, { m: this.machine, q: id });
    });
  }
}

function isBusRefusal(err) {
  return err !== null && typeof err === 'object' &&
    ['ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'].includes(err.code);
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `'${value.slice(0, 40)}'`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Why `msg` (parsed JSON from the bus channel) cannot be used, or null. */
function invalidBusMessage(msg) {
  if (!isObject(msg)) return `a bus message must be an object, not ${describe(msg)}`;
  if (typeof msg.m !== 'string' || !HEX_ID.test(msg.m)) return `a bus message's machine is ${describe(msg.m)}`;
  const f = msg.f;
  if (!(f === 'primary' || f === 'agent' || (Number.isInteger(f) && f >= 1 && f < AGENT_ID))) {
    return `a bus message from machine ${msg.m} names its sender ${describe(f)}`;
  }
  if (typeof msg.t !== 'string' || msg.t === '' || RESERVED_TOPICS.has(msg.t)) {
    return `a bus message from machine ${msg.m} has topic ${describe(msg.t)}`;
  }
  if (msg.k === 'b') return null;
  if (msg.k !== 's') return `a bus message from machine ${msg.m} is of kind ${describe(msg.k)}`;
  if (typeof msg.to !== 'string' || !HEX_ID.test(msg.to)) return `a send from machine ${msg.m} is for machine ${describe(msg.to)}`;
  const tg = msg.tg;
  if (!(tg === 'primary' || tg === 'agent' || (typeof tg === 'string' && WORKER_ID.test(tg) && Number(tg) < AGENT_ID))) {
    return `a send from machine ${msg.m} is for ${describe(tg)}`;
  }
  return null;
}

/** Why `msg` (parsed JSON from the counters channel) cannot be used, or null. */
function invalidCountersMessage(msg) {
  if (!isObject(msg)) return `a counters message must be an object, not ${describe(msg)}`;
  if (typeof msg.m !== 'string' || !HEX_ID.test(msg.m)) return `a counters message's machine is ${describe(msg.m)}`;
  if (msg.q !== undefined) {
    return typeof msg.q === 'string' && HEX_ID.test(msg.q) ? null : `a sync request from machine ${msg.m} has id ${describe(msg.q)}`;
  }
  if (msg.s !== undefined || msg.r !== undefined) {
    if (typeof msg.s !== 'string' || !HEX_ID.test(msg.s) || typeof msg.r !== 'string' || !HEX_ID.test(msg.r)) {
      return `a sync answer from machine ${msg.m} has id ${describe(msg.s)} for ${describe(msg.r)}`;
    }
  }
  const c = msg.c;
  if (!Array.isArray(c)) return `the counters of machine ${msg.m} are ${describe(c)}, not an array`;
  if (c.length > MAX_REMOTE_NAMES) return `machine ${msg.m} published ${c.length} counters (at most ${MAX_REMOTE_NAMES})`;
  for (const entry of c) {
    if (!Array.isArray(entry) || entry.length !== 2) return `machine ${msg.m} published a counter as ${describe(entry)}`;
    const [name, value] = entry;
    if (typeof name !== 'string' || name === '' || name.length > NAME_MAX || Buffer.byteLength(name, 'utf8') > NAME_MAX) {
      return `machine ${msg.m} published a counter named ${describe(name)}`;
    }
    if (!Number.isSafeInteger(value)) return `machine ${msg.m} published counter '${name}' = ${describe(value)}`;
  }
  return null;
}

module.exports = { RedisBridge, normalizeBusOptions, invalidBusMessage, invalidCountersMessage };
