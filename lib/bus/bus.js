'use strict';
// cluster.bus: messages between the primary, the workers and the agent, the
// same API in each. They travel on the native channels and are relayed by the
// primary's dispatcher thread (core/src/bus/mod.rs, core/src/dispatcher/bus_relay.rs),
// never through the primary's JS event loop; the primary's own JS has a
// channel of its own, like any peer.
//
// A bus message's payload is the JSON of [type, topic, data, id], as Node's
// IPC sends messages ('json' serialization; v8.serialize costs several times
// more per small message): `type` is 'm' (a message), 'q' (a request), 'r'
// (a request's result) or 'e' (a request's error). Topics are EventEmitter
// events: on(topic, (data, from) => ...).
//
// What arrives is untrusted: any worker can write any bytes to its channel.
// The dispatcher stamps the sender (`from`) from the channel a message came
// on, so it cannot be forged; everything else in the payload is decoded
// totally (`decodeMessage`): a malformed message is a counted rejection
// (lib/rejections.js, surface `busRecord`), never an exception, and a reserved
// topic ('error', ...) is never emitted from received data.
const EventEmitter = require('events');
const { nodeError, codedError, describeReceived } = require('../errors');
const rejections = require('../rejections');

// Peer ids and the largest payload, as core/src/bus/mod.rs defines them.
const {
  BUS_PRIMARY: PRIMARY, BUS_AGENT: AGENT, BUS_BROADCAST: BROADCAST, BUS_MAX_PAYLOAD: MAX_PAYLOAD, BUS_RECORD_HEAD: RECORD_HEAD,
} = require('../native');
const DEFAULT_TIMEOUT = 10000;
// Events of the bus object itself, which cannot be topics.
const { RESERVED_TOPICS: RESERVED } = require('../protocol');

function peerName(id) {
  if (id === PRIMARY) return 'primary';
  if (id === AGENT) return 'agent';
  return id;
}

function describePeer(id) {
  const name = peerName(id);
  return typeof name === 'number' ? `worker ${name}` : `the ${name}`;
}

function validateTopic(topic, caller) {
  if (typeof topic !== 'string') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                    `The "topic" argument must be of type string. Received ${describeReceived(topic)}`, caller);
  }
  if (topic === '' || RESERVED.has(topic)) {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
                    `The argument 'topic' cannot be '${topic}': it is an event of the bus itself.`, caller);
  }
}

// 'machine/target': a peer on another machine (bus.redis).
const REMOTE = /^[0-9a-f]+\/(?:[1-9][0-9]*|agent|primary)$/;

function isTopic(topic) {
  return typeof topic === 'string' && topic !== '' && !RESERVED.has(topic);
}

function isRemote(name) {
  return typeof name === 'string' && REMOTE.test(name);
}

const TYPES = new Set(['m', 'x', 'q', 'r', 'e']);

/**
 * A received payload as `{ type, topic, data, id, extra }`, or null after
 * counting why it is refused. `from` is the sender the dispatcher stamped,
 * `target` who it was sent to.
 */
function decodeMessage(from, payload, target) {
  const refuse = (why) => {
    rejections.reject('busRecord', () => `a bus message from ${describePeer(from)} ${why}`);
    return null;
  };
  let message;
  try {
    message = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return refuse(`is not JSON (${err.message})`);
  }
  if (!Array.isArray(message) || message.length < 4 || message.length > 5) {
    return refuse('is not an array of 4 or 5 elements');
  }
  const [type, topic, data, id, extra] = message;
  if (!TYPES.has(type)) return refuse(`has an unknown type ${describeReceived(type)}`);
  if (!isTopic(topic)) return refuse(`has an invalid topic ${describeReceived(topic)}`);
  if (!Number.isSafeInteger(id) || id < 0) return refuse(`has an invalid request id ${describeReceived(id)}`);
  if (target === BROADCAST && type !== 'm') return refuse(`of type '${type}' was broadcast`);
  if (message.length === 5) {
    // 'm': the origin of a message from another machine, which only the
    // primary's own JS (the Redis bridge) may name; 'x': a peer on another
    // machine to carry it to, which only the primary does.
    if (type === 'm' && from !== PRIMARY) return refuse('names an origin: only the primary may');
    if (type !== 'm' && type !== 'x') return refuse(`of type '${type}' has a fifth element`);
    if (!isRemote(extra)) return refuse(`names an invalid peer on another machine ${describeReceived(extra)}`);
  } else if (type === 'x') {
    return refuse('for another machine names no target');
  }
  if (type === 'x' && (selfId !== PRIMARY || target !== PRIMARY)) return refuse('for another machine was not sent to the primary');
  return { type, topic, data, id, extra };
}

/** A responder's error from a peer, as an Error; null if `data` is not one. */
function remoteError(data) {
  if (data === null || typeof data !== 'object' || Array.isArray(data) || typeof data.message !== 'string') return null;
  const { code, name, stack } = data;
  if (code !== undefined && typeof code !== 'string' && !(typeof code === 'number' && Number.isFinite(code))) return null;
  if (name !== undefined && typeof name !== 'string') return null;
  if (stack !== undefined && typeof stack !== 'string') return null;
  const err = codedError(Error, code, data.message);
  if (name !== undefined && name !== 'Error') {
    Object.defineProperty(err, 'name', { value: name, writable: true, configurable: true, enumerable: false });
  }
  err.remoteStack = stack;
  return err;
}

function targetId(target, caller) {
  if (target === 'primary') return PRIMARY;
  if (target === 'agent') return AGENT;
  if (Number.isInteger(target) && target >= 1 && target < AGENT) return target;
  throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
                  "The argument 'target' must be a worker id, 'agent', 'primary' or 'machine/target'. " +
                  `Received ${describeReceived(target)}`,
                  caller);
}

function encode(message, caller) {
  const payload = Buffer.from(JSON.stringify(message), 'utf8');
  if (payload.length > MAX_PAYLOAD) {
    throw nodeError(RangeError, 'ERR_OUT_OF_RANGE',
                    `A bus message must be at most ${MAX_PAYLOAD} bytes as JSON; this one is ${payload.length}`,
                    caller);
  }
  return payload;
}

function busError(code, message) {
  return codedError(Error, code, message, undefined, busError);
}

let injectRemote; // set by Bus's static block

class Bus extends EventEmitter {
  #channel = null; // the native Channel, once this process has one
  #pending = new Map(); // request id -> { target, topic, resolve, reject, timer }
  #responders = new Map();
  #nextId = 1;
  #bridge = null; // the primary's RedisBridge (lib/bus/redis_bridge.js), with bus.redis

  /** This machine's id with bus.redis ('machine/target' names a peer there), else null. */
  machine = null;

  /** Starts sending and receiving on `channel` (a native Channel). */
  attach(channel) {
    this.#channel = channel;
  }

  /** Every worker and the agent (the sender too, if it is one of them). */
  broadcast(topic, data) {
    validateTopic(topic, this.broadcast);
    this.#send(BROADCAST, encode(['m', topic, data, 0], this.broadcast));
    this.#bridge?.publishBroadcast('primary', topic, data);
  }

  /** `target`: a worker id, 'agent', 'primary', or 'machine/target' on another machine (bus.redis). */
  send(target, topic, data) {
    if (typeof target === 'string' && REMOTE.test(target)) {
      validateTopic(topic, this.send);
      const payload = encode(['x', topic, data, 0, target], this.send);
      // The primary carries it to the other machine. Without bus.redis
      // (no machine id) the sender is told here, in its own process.
      if (selfId === PRIMARY || this.machine === null) this.#forward(selfId, target, topic, data);
      else this.#send(PRIMARY, payload);
      return;
    }
    const id = targetId(target, this.send);
    validateTopic(topic, this.send);
    this.#send(id, encode(['m', topic, data, 0], this.send));
  }

  #forward(from, target, topic, data) {
    if (this.#bridge === null) {
      // Said where send() was called: the primary, or a worker without bus.redis.
      this.reportError(busError('ERR_RCLUSTER_BUS_NO_REDIS',
                                `a message for '${target}' was dropped: there is no bus.redis to carry it to another machine`));
      return;
    }
    this.#bridge.forward(peerName(from), target, topic, data);
  }

  /** The primary, with bus.redis: carries messages to and from other machines. */
  setBridge(bridge) {
    this.#bridge = bridge;
    this.machine = bridge.machine;
  }

  static {
    // The Redis bridge's way in (configure()'s `local`): internal to the
    // primary, so no worker can use it to name an origin.
    injectRemote = (target, topic, data, origin) => bus.#inject(target, topic, data, origin);
  }

  /**
   * A message from another machine (the bridge decoded it from Redis), for
   * `target` here; `origin`: 'machine/sender'. Never throws: what Redis
   * carried is untrusted.
   */
  #inject(target, topic, data, origin) {
    const refuse = (why) => rejections.reject('redisMessage', () => `a message from another machine ${why}`);
    if (!isRemote(origin)) return refuse(`names an invalid origin ${describeReceived(origin)}`);
    if (!isTopic(topic)) return refuse(`has an invalid topic ${describeReceived(topic)}`);
    if (target === 'primary') {
      this.emit(topic, data, origin);
      return;
    }
    let id;
    if (target === BROADCAST) id = BROADCAST;
    else if (target === 'agent') id = AGENT;
    else if (Number.isInteger(target) && target >= 1 && target < AGENT) id = target;
    else return refuse(`names an invalid target ${describeReceived(target)}`);
    let payload;
    try {
      payload = encode(['m', topic, data, 0, origin], this.#inject);
    } catch (err) {
      return refuse(`cannot be passed on: ${err.message}`);
    }
    this.#send(id, payload);
  }

  /**
   * Asks `target`'s responder for `topic`; resolves with what it returns.
   * Rejects when the target is or becomes gone (ERR_RCLUSTER_BUS_TARGET_GONE),
   * after `timeout` ms (ERR_RCLUSTER_BUS_TIMEOUT), or with the responder's error.
   */
  request(target, topic, data, options = {}) {
    if (typeof target === 'string' && REMOTE.test(target)) {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_VALUE',
                      `The argument 'target' cannot be '${target}': requests stay on one machine (only send and broadcast cross machines)`,
                      this.request);
    }
    const id = targetId(target, this.request);
    validateTopic(topic, this.request);
    if (options === null || typeof options !== 'object') {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                      `The "options" argument must be of type object. Received ${describeReceived(options)}`, this.request);
    }
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 2 ** 31 - 1) {
      throw nodeError(RangeError, 'ERR_OUT_OF_RANGE',
                      `The value of "options.timeout" is out of range. It must be > 0 && <= ${2 ** 31 - 1}. Received ${timeout}`,
                      this.request);
    }
    const requestId = this.#nextId++;
    const payload = encode(['q', topic, data, requestId], this.request);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(busError('ERR_RCLUSTER_BUS_TIMEOUT',
                        `${describePeer(id)} did not answer request '${topic}' within ${timeout} ms`));
      }, timeout);
      this.#pending.set(requestId, { target: id, topic, resolve, reject, timer });
      this.#send(id, payload);
    });
  }

  /** Answers requests on `topic` with what `fn(data, from)` returns or resolves to. */
  respond(topic, fn) {
    validateTopic(topic, this.respond);
    if (typeof fn !== 'function') {
      throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                      `The "fn" argument must be of type function. Received ${describeReceived(fn)}`, this.respond);
    }
    this.#responders.set(topic, fn);
    return this;
  }

  #send(target, payload) {
    if (this.#channel === null) {
      // The primary before its first fork: there is nobody to reach yet.
      if (target !== BROADCAST) process.nextTick(() => this.peerGone(target));
      return;
    }
    this.#channel.sendBus(target, payload);
  }

  /** A bus message arrived from peer `from` (stamped by the dispatcher), sent to `target`. */
  deliver(from, payload, target) {
    const message = decodeMessage(from, payload, target);
    if (message === null) return;
    const { type, topic, data, id, extra } = message;
    const sender = peerName(from);
    if (target === BROADCAST && selfId === PRIMARY) {
      // Only with bus.redis: a local broadcast, for the other machines.
      if (extra === undefined) this.#bridge?.publishBroadcast(sender, topic, data);
      return;
    }
    switch (type) {
      case 'm':
        // From another machine (the primary's bridge), `extra` names its origin.
        this.emit(topic, data, extra ?? sender);
        return;
      case 'x':
        if (this.#bridge === null) {
          // A worker's own send says this in the worker (send() above), so
          // only a forged record gets here: counted, not a warning each.
          rejections.reject('busRecord', () => `a message from ${describePeer(from)} for '${extra}' asks to cross machines without bus.redis`);
          return;
        }
        this.#forward(from, extra, topic, data);
        return;
      case 'q':
        this.#answer(from, topic, data, id, sender);
        return;
      case 'r':
      case 'e': {
        const pending = this.#pending.get(id);
        if (pending === undefined || pending.target !== from) return; // timed out already
        this.#pending.delete(id);
        clearTimeout(pending.timer);
        if (type === 'r') {
          pending.resolve(data);
          return;
        }
        let err = remoteError(data);
        if (err === null) {
          rejections.reject('busRecord', () => `${describePeer(from)} answered '${topic}' with a malformed error`);
          err = busError('ERR_RCLUSTER_BUS_BAD_MESSAGE', `${describePeer(from)} answered request '${topic}' with a malformed error`);
        }
        pending.reject(err);
      }
    }
  }

  #answer(from, topic, data, id, sender) {
    const fn = this.#responders.get(topic);
    const reply = (type, value) => {
      let payload;
      try {
        payload = encode([type, topic, value, id], this.#answer);
      } catch (err) {
        payload = encode(['e', topic, { message: `the result of '${topic}' cannot be sent: ${err.message}`, code: err.code }, id]);
      }
      this.#send(from, payload);
    };
    if (fn === undefined) {
      reply('e', { message: `no responder for '${topic}' in ${describePeer(selfId)}`, code: 'ERR_RCLUSTER_BUS_NO_RESPONDER' });
      return;
    }
    Promise.resolve()
      .then(() => fn(data, sender))
      .then((result) => reply('r', result),
            (err) => reply('e', err instanceof Error ?
              { message: err.message, code: err.code, name: err.name, stack: err.stack } :
              { message: String(err) }));
  }

  /** Peer `peer` is gone: what was asked of it will not be answered. */
  peerGone(peer) {
    for (const [id, pending] of this.#pending) {
      if (pending.target !== peer) continue;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(busError('ERR_RCLUSTER_BUS_TARGET_GONE',
                              `${describePeer(peer)} is gone: request '${pending.topic}' will not be answered`));
    }
  }

  /** Messages to `target` were dropped: its queue in the primary was full. */
  dropped(target) {
    this.reportError(busError('ERR_RCLUSTER_BUS_FULL',
                          `bus messages to ${describePeer(target)} were dropped: it is not reading, and its queue is full`));
  }

  /** 'error' if anyone listens, else a process warning: never a crash. */
  reportError(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(err);
  }
}

let selfId = PRIMARY;
const bus = new Bus();

/** Which peer this process is (for messages that name it), and its machine with bus.redis. */
function setSelf(id, machine = null) {
  selfId = id;
  bus.machine = machine;
}

function isPeerId(n) {
  return Number.isInteger(n) && n >= 0 && n <= BROADCAST;
}

/**
 * A native Channel's message of a bus kind (`kinds`: ChannelMessageKind):
 * hands it to the bus. `Bus`: `(count, records)`, that many records as
 * core/src/bus/mod.rs `Batch` frames them: sender id, target id, length
 * (u32 LE each), bytes. `PeerGone`, `BusDropped`: `(peer)`. This is the one
 * reader of that framing, and total: a batch whose lengths do not add up is
 * refused from the first bad record on (counted, surface `channelFrame`). A
 * listener that throws does not cost the records after it: they are
 * delivered first, then its exception is rethrown.
 */
function onChannelMessage(kinds, kind, countOrPeer, records) {
  if (kind === kinds.Bus) deliverBatch(countOrPeer, records);
  else if (!isPeerId(countOrPeer)) rejections.reject('channelFrame', `a bus notice for peer ${describeReceived(countOrPeer)}`);
  else if (kind === kinds.PeerGone) bus.peerGone(countOrPeer);
  else if (kind === kinds.BusDropped) bus.dropped(countOrPeer);
}

function deliverBatch(count, payload) {
  if (!(payload instanceof Uint8Array) || !isPeerId(count)) {
    rejections.reject('channelFrame', `a bus batch of ${describeReceived(count)} records in ${describeReceived(payload)}`);
    return;
  }
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  let thrown = null;
  for (let i = 0; i < count; i++) {
    const length = bytes.length - at >= RECORD_HEAD ? bytes.readUInt32LE(at + 8) : -1;
    if (length < 0 || length > MAX_PAYLOAD || bytes.length - at - RECORD_HEAD < length) {
      rejections.reject('channelFrame', `a bus batch of ${count} records breaks off at record ${i} (byte ${at} of ${bytes.length})`);
      break;
    }
    const from = bytes.readUInt32LE(at);
    const target = bytes.readUInt32LE(at + 4);
    try {
      bus.deliver(from, bytes.subarray(at + RECORD_HEAD, at + RECORD_HEAD + length), target);
    } catch (err) {
      thrown ??= { err };
    }
    at += RECORD_HEAD + length;
  }
  if (thrown !== null) throw thrown.err;
}

let bridge = null;

/** setupPrimary()'s `bus` option, validated. */
function normalizeOptions(options, caller) {
  if (options === null || typeof options !== 'object' || !('bus' in options)) return options;
  return { ...options, bus: require('./redis_bridge').normalizeBusOptions(options.bus, caller) };
}

/**
 * The primary, at setupPrimary(): with bus.redis, starts carrying messages
 * and counters to other machines (once; later settings do not move it).
 */
function configure(busOptions, sharedState, caller) {
  if (bridge !== null || busOptions === undefined || busOptions.redis === undefined) return;
  const { RedisBridge } = require('./redis_bridge');
  const candidate = new RedisBridge(busOptions, {
    bus,
    shared: sharedState,
    local: {
      broadcast: (topic, data, origin) => injectRemote(BROADCAST, topic, data, origin),
      send: (target, topic, data, origin) => injectRemote(target, topic, data, origin),
    },
  });
  candidate.start(caller);
  bridge = candidate;
  bus.setBridge(bridge);
  bus.respond('rcluster:sync', () => bridge.sync().then(() => null));
}

/** At shutdown, after the workers and the agent: the Redis connections close. */
function stopBridge() {
  bridge?.stop();
  return Promise.resolve();
}

/** The primary's link to Redis with bus.redis: 'up' or 'down'; null without it. */
function redisLink() {
  return bridge === null ? null : bridge.link;
}

/** Variables a process the primary forks needs for the bus. */
function childEnv() {
  return bridge === null ? {} : { [require('../protocol').Env.Machine]: bridge.machine };
}

/** A counter's sync(): the exchange across machines, now (nothing to do on one machine). */
function syncCounters() {
  if (selfId === PRIMARY) return bridge === null ? Promise.resolve() : bridge.sync();
  if (bus.machine === null) return Promise.resolve();
  return bus.request('primary', 'rcluster:sync', null, { timeout: 5000 });
}

/** The primary: its own JS joins the bus through a channel of its own. */
function attachPrimary(dispatcher) {
  if (bridge !== null) dispatcher.setBusBridge(true);
  const { Channel, ChannelMessageKind } = require('../native');
  const channel = new Channel(dispatcher.openLocalChannel(PRIMARY),
                              (kind, countOrPeer, fds, records) => onChannelMessage(ChannelMessageKind, kind, countOrPeer, records));
  bus.attach(channel);
}

module.exports = { bus, Bus, setSelf, onChannelMessage, attachPrimary, normalizeOptions, configure, stopBridge, redisLink, childEnv, syncCounters, PRIMARY, AGENT, BROADCAST };
