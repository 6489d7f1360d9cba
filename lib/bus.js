'use strict';
// cluster.bus: messages between the primary, the workers and the agent, the
// same API in each. They travel on the native channels and are relayed by the
// primary's dispatcher thread (core/src/bus.rs, core/src/dispatcher/bus_relay.rs),
// never through the primary's JS event loop; the primary's own JS has a
// channel of its own, like any peer.
//
// A bus message's payload is the JSON of [type, topic, data, id], as Node's
// IPC sends messages ('json' serialization; v8.serialize costs several times
// more per small message): `type` is 'm' (a message), 'q' (a request), 'r'
// (a request's result) or 'e' (a request's error). Topics are EventEmitter
// events: on(topic, (data, from) => ...).
const EventEmitter = require('events');
const { nodeError, describeReceived } = require('./errors');

// Peer ids, as core/src/bus.rs defines them.
const PRIMARY = 0;
const AGENT = 0xFFFFFFFE;
const BROADCAST = 0xFFFFFFFF;
const MAX_PAYLOAD = 64 * 1024;
const DEFAULT_TIMEOUT = 10000;
// Events of the bus object itself, which cannot be topics.
const RESERVED = new Set(['error', 'newListener', 'removeListener']);

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
  const err = new Error(message);
  err.code = code;
  return err;
}

class Bus extends EventEmitter {
  #channel = null; // the native Channel, once this process has one
  #pending = new Map(); // request id -> { target, topic, resolve, reject, timer }
  #responders = new Map();
  #nextId = 1;
  #bridge = null; // the primary's RedisBridge (lib/redis_bridge.js), with bus.redis

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
      // The primary carries it to the other machine.
      if (selfId === PRIMARY) this.#forward(PRIMARY, target, topic, data);
      else this.#send(PRIMARY, payload);
      return;
    }
    const id = targetId(target, this.send);
    validateTopic(topic, this.send);
    this.#send(id, encode(['m', topic, data, 0], this.send));
  }

  #forward(from, target, topic, data) {
    if (this.#bridge === null) {
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

  /** The bridge: a message from another machine, for this one. `origin`: 'machine/sender'. */
  inject(target, topic, data, origin) {
    if (target === 'primary') {
      this.emit(topic, data, origin);
      return;
    }
    const id = target === BROADCAST ? BROADCAST : targetId(target, this.inject);
    this.#send(id, encode(['m', topic, data, 0, origin], this.inject));
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

  /** A bus message arrived from peer `from`. */
  deliver(from, payload, target) {
    let message;
    try {
      message = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      this.reportError(busError('ERR_RCLUSTER_BUS_BAD_MESSAGE', `an unreadable bus message from ${describePeer(from)}: ${err.message}`));
      return;
    }
    const [type, topic, data, id, extra] = message;
    const sender = peerName(from);
    if (target === BROADCAST && selfId === PRIMARY) {
      // Only with bus.redis: a local broadcast, for the other machines.
      if (type === 'm' && extra === undefined) this.#bridge?.publishBroadcast(sender, topic, data);
      return;
    }
    switch (type) {
      case 'm':
        // From another machine, `extra` names its origin.
        this.emit(topic, data, extra ?? sender);
        return;
      case 'x':
        if (selfId === PRIMARY) this.#forward(from, extra, topic, data);
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
        } else {
          const err = new Error(data.message);
          if (data.code !== undefined) err.code = data.code;
          if (data.name !== undefined && data.name !== 'Error') err.name = data.name;
          err.remoteStack = data.stack;
          pending.reject(err);
        }
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

/**
 * A native Channel's message of a bus kind: hands it to the bus. For `Bus`,
 * `peer` is a count and `payload` that many records: sender id (u32 LE),
 * target id (u32 LE), length (u32 LE), bytes (src/worker.rs).
 */
function onChannelMessage(kinds, kind, peer, payload) {
  if (kind === kinds.Bus) {
    let at = 0;
    for (let i = 0; i < peer; i++) {
      const from = payload.readUInt32LE(at);
      const target = payload.readUInt32LE(at + 4);
      const length = payload.readUInt32LE(at + 8);
      bus.deliver(from, payload.subarray(at + 12, at + 12 + length), target);
      at += 12 + length;
    }
  }
  else if (kind === kinds.PeerGone) bus.peerGone(peer);
  else if (kind === kinds.BusDropped) bus.dropped(peer);
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
      broadcast: (topic, data, origin) => bus.inject(BROADCAST, topic, data, origin),
      send: (target, topic, data, origin) => bus.inject(target, topic, data, origin),
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

/** Variables a process the primary forks needs for the bus. */
function childEnv() {
  return bridge === null ? {} : { [require('./protocol').Env.Machine]: bridge.machine };
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
  const { Channel, ChannelMessageKind } = require('./native');
  const channel = new Channel(dispatcher.openLocalChannel(PRIMARY),
                              (kind, peer, fds, payload) => onChannelMessage(ChannelMessageKind, kind, peer, payload));
  bus.attach(channel);
}

module.exports = { bus, Bus, setSelf, onChannelMessage, attachPrimary, normalizeOptions, configure, stopBridge, childEnv, syncCounters, PRIMARY, AGENT, BROADCAST, MAX_PAYLOAD };
