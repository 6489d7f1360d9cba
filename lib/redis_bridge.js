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
const crypto = require('crypto');
const { nodeError, invalidArgType, outOfRange } = require('./errors');

const SYNC_INTERVAL_DEFAULT = 100;
const SYNC_WAIT_MS = 1000;

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
    this.parts = new Map(); // machine -> Map(counter name -> value)
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
    this.timer = setInterval(() => this.publishCounters(), this.options.syncInterval);
    this.timer.unref();
  }

  stop() {
    clearInterval(this.timer);
    this.pub?.disconnect();
    this.sub?.disconnect();
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

  onMessage(channel, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.m === this.machine) return; // our own, back from Redis
    if (channel === this.countersChannel) return this.onCounters(msg);
    const origin = `${msg.m}/${msg.f}`;
    if (msg.k === 'b') {
      this.local.broadcast(msg.t, msg.d, origin);
    } else if (msg.k === 's' && msg.to === this.machine) {
      const target = msg.tg === 'agent' || msg.tg === 'primary' ? msg.tg : Number(msg.tg);
      this.local.send(target, msg.t, msg.d, origin);
    }
  }

  publishCounters(syncId, replyTo) {
    const parts = Object.entries(this.shared.localCounters());
    this.publish(this.countersChannel, { m: this.machine, c: parts, ...(syncId !== undefined && { s: syncId, r: replyTo }) });
  }

  onCounters(msg) {
    if (msg.q !== undefined) {
      // Another machine syncs: answer with our parts now.
      this.publishCounters(msg.q, msg.m);
      return;
    }
    if (Array.isArray(msg.c)) {
      this.parts.set(msg.m, new Map(msg.c));
      this.applyRemote();
    }
    if (msg.s !== undefined && msg.r === this.machine) {
      const waiter = this.syncWaiters.get(msg.s);
      if (waiter !== undefined) {
        waiter.waiting.delete(msg.m);
        if (waiter.waiting.size === 0) waiter.resolve();
      }
    }
  }

  // Beside each counter, the sum of the other machines' latest parts.
  applyRemote() {
    const sums = new Map();
    for (const counters of this.parts.values()) {
      for (const [name, value] of counters) sums.set(name, (sums.get(name) ?? 0) + value);
    }
    for (const [name, sum] of sums) {
      try {
        this.shared.counter(name).setRemote(sum);
      } catch (err) {
        this.bus.reportError(err); // this machine's counter table is full
      }
    }
  }

  /**
   * Exchanges parts now: publishes ours and asks every machine heard from
   * to answer with theirs; resolves once they have (or after SYNC_WAIT_MS).
   */
  sync() {
    const id = crypto.randomBytes(4).toString('hex');
    const waiting = new Set(this.parts.keys());
    this.publishCounters();
    if (waiting.size === 0 || this.pub?.status !== 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.syncWaiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, SYNC_WAIT_MS);
      this.syncWaiters.set(id, { waiting, resolve: done });
      this.publish(this.countersChannel, { m: this.machine, q: id });
    });
  }
}

module.exports = { RedisBridge, normalizeBusOptions };
