'use strict';
// cluster.shared: named counters and a small key/value table that every
// process of the cluster reads and writes directly, in one shared memory
// region (core/src/shared/mod.rs). The primary creates the region and
// passes its fd to each process it forks, as one more stdio slot; the process
// maps it at start-up and closes the fd. Every operation is a few atomic
// instructions on the mapping: no IPC, no primary in the way.
//
// Every process maps the region writable, so what is read from it is
// untrusted: the native side validates names and lengths and skips (and
// counts, surface 'sharedMemory') a corrupt slot; here, a table value that is
// not JSON reads as absent and is counted the same way. A lock or a value a
// process keeps forging costs a caller a coded error after a bounded wait
// (ERR_RCLUSTER_SHARED_LOCK_TIMEOUT, ERR_RCLUSTER_SHARED_BUSY), never a hang.
const { nodeError, invalidArgType, outOfRange } = require('../errors');

let memory = null; // the native SharedMemory, once this process has it
// The counters' slots as a BigInt64Array over the mapping itself: Atomics on
// it are the same locked instructions as the native AtomicI64, inlined by the
// JIT, with no native call per operation.
let values = null;
let stride = 0;
let valueIndex = 0;
let remoteIndex = 0;
let shared = null; // the cluster.shared object
const counters = new Map(); // name -> Counter, so each name costs one lookup

function native() {
  return require('../native');
}

function validateName(name, what) {
  if (typeof name !== 'string') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                    `The "${what}" argument must be of type string. Received ${require('../errors').describeReceived(name)}`,
                    validateName);
  }
}

function validateInteger(value, name) {
  if (typeof value !== 'number') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
                    `The "${name}" argument must be of type number. Received ${require('../errors').describeReceived(value)}`,
                    validateInteger);
  }
  if (!Number.isSafeInteger(value)) {
    throw nodeError(RangeError, 'ERR_OUT_OF_RANGE',
                    `The value of "${name}" is out of range. It must be a safe integer. Received ${value}`,
                    validateInteger);
  }
}

/**
 * A named 64-bit counter in shared memory. Values are returned as numbers.
 * With `bus.redis`, a counter is the sum of every machine's part: this
 * machine's part changes here, the others' (`remote`) are written by the
 * primary as they arrive; compareAndSet works on this machine's part only.
 */
class Counter {
  #index;
  #remote;
  constructor(name, slot) {
    this.name = name;
    this.#index = slot * stride + valueIndex;
    this.#remote = slot * stride + remoteIndex;
  }

  /** Adds `n` (default 1) and returns the new value. */
  add(n = 1) {
    validateInteger(n, 'n');
    return Number(Atomics.add(values, this.#index, BigInt(n))) + n + Number(Atomics.load(values, this.#remote));
  }

  /** The latest known total (this machine's part, plus the others' last exchanged). */
  get() {
    return Number(Atomics.load(values, this.#index)) + Number(Atomics.load(values, this.#remote));
  }

  /** This machine's part alone. */
  local() {
    return Number(Atomics.load(values, this.#index));
  }

  /** Sets this machine's part to `value` if it is `expected`; true if it did. */
  compareAndSet(expected, value) {
    validateInteger(expected, 'expected');
    validateInteger(value, 'value');
    const want = BigInt(expected);
    return Atomics.compareExchange(values, this.#index, want, BigInt(value)) === want;
  }

  /** The primary, exchanging counters across machines: the other machines' parts. */
  setRemote(sum) {
    Atomics.store(values, this.#remote, BigInt(sum));
  }

  /**
   * Resolves once this machine's part is exchanged with the other machines
   * (with `bus.redis`); on one machine every value is current already.
   */
  sync() {
    return require('./bus').syncCounters().then(() => this.get());
  }
}

function mapped() {
  if (memory === null) {
    throw nodeError(Error, 'ERR_RCLUSTER_SHARED_UNAVAILABLE',
                    'cluster.shared is not available in this process: it was not started by an rcluster primary', mapped);
  }
  return memory;
}

function buildShared() {
  const limits = native().sharedLimits();
  stride = limits.counterStride;
  valueIndex = limits.counterValueIndex;
  remoteIndex = limits.counterRemoteIndex;
  return Object.freeze({
    /** The sizes of the region: fixed, so that a full table says so. */
    limits: Object.freeze({ counters: limits.counters, nameMax: limits.nameMax, tableKeys: limits.tableKeys, valueMax: limits.valueMax }),
    /** The counter named `name` (1 to limits.nameMax bytes). */
    counter(name) {
      validateName(name, 'name');
      let counter = counters.get(name);
      if (counter === undefined) {
        const slot = mapped().counter(name);
        values ??= new BigInt64Array(memory.counterBuffer());
        counter = new Counter(name, slot);
        counters.set(name, counter);
      }
      return counter;
    },
    /** Every counter any process named, with its value (the latest known total). */
    counters() {
      const entries = mapped().counters();
      values ??= new BigInt64Array(memory.counterBuffer());
      // By the slot the listing read, not by looking the name up again: a
      // lookup may claim a slot, and the listing must not change the table.
      return Object.fromEntries(entries.map(({ slot, name, value }) =>
        [name, Number(value) + Number(Atomics.load(values, slot * stride + remoteIndex))]));
    },
    /** The value of `key` in the table (JSON), or undefined. */
    get(key) {
      validateName(key, 'key');
      const bytes = mapped().tableGet(key);
      if (bytes === null) return undefined;
      try {
        return JSON.parse(bytes.toString('utf8'));
      } catch {
        // Only set() writes the table, always JSON: another process wrote
        // these bytes into shared memory directly.
        require('../rejections').reject('sharedMemory', () => `the table value of '${key}' is not JSON: ${bytes.subarray(0, 64).toString('latin1')}`);
        return undefined;
      }
    },
    /** Sets `key` to `value` (anything JSON.stringify takes, up to limits.valueMax bytes). */
    set(key, value) {
      validateName(key, 'key');
      const text = JSON.stringify(value);
      if (text === undefined) throw invalidArgType('value', 'a JSON-serialisable value', value, this.set);
      const bytes = Buffer.from(text, 'utf8');
      if (bytes.length > limits.valueMax) {
        throw outOfRange('value', `at most ${limits.valueMax} bytes as JSON`, `${bytes.length} bytes`, this.set);
      }
      mapped().tableSet(key, bytes);
    },
    delete(key) {
      validateName(key, 'key');
      mapped().tableSet(key, null);
    },
    keys() {
      return mapped().tableKeys();
    },
  });
}

/** This machine's part of every counter, by name (exchanged across machines). */
function localCounters() {
  return memory === null ? {} : Object.fromEntries(memory.counters().map(({ name, value }) => [name, value]));
}

/** cluster.shared, for either side. */
function sharedApi() {
  if (shared === null) shared = buildShared();
  return shared;
}

/** The primary: creates the region (once) and returns its fd for a child's stdio. */
function primaryFd() {
  if (memory === null) memory = new (native().SharedMemory)();
  return memory.fd;
}

/** A worker or the agent: maps the region passed in stdio slot `fd`. */
function attach(fd) {
  if (memory === null && fd !== undefined) memory = new (native().SharedMemory)(fd);
}

/** The primary maps the region as soon as cluster.shared is used, even before any fork. */
function ensurePrimary() {
  primaryFd();
}

module.exports = { sharedApi, primaryFd, attach, ensurePrimary, localCounters, Counter };
