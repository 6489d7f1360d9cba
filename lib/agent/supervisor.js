'use strict';
// The agent, as the primary runs it: setupPrimary({ agent: 'agent.js' }) or
// { agent: { exec, args, env } }. One process beside the workers for work
// that must happen once. It is forked before any worker, and workers forked
// before it is ready wait for it: each is spawned at once (cluster.fork()
// returns its Worker as usual) but its preload blocks on a gate, one more
// stdio pipe, until the agent says it is ready (lib/agent/gate.js). The agent
// has a native channel of its own (bus peer AGENT) and the shared memory
// region, but is in no listener's rotation: it is given no connections.
// An uncaught exception in it is reported ('agentError') and survived; a
// crash restarts it with the restart policy's backoff; shutdown stops it last.
const EventEmitter = require('events');
const { debuglog } = require('util');
const { Act, CMD, Env } = require('../protocol');
const { RESTART_DEFAULTS } = require('../primary/settings');
const { nodeError, codedError, invalidArgType, outOfRange } = require('../errors');
const { forkPeer } = require('../primary/worker_spawn');
const { nextBackoff } = require('../operations/backoff');
const { AGENT } = require('../bus/bus'); // its bus peer id

const debug = debuglog('rcluster');
const STOP_TIMEOUT_DEFAULT = 5000;

/** setupPrimary()'s `agent` and `agentReadyTimeout`, validated. */
function normalizeAgent(value, caller) {
  if (value === undefined || value === null || value === false) return undefined;
  if (typeof value === 'string') value = { exec: value };
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType('options.agent', 'of type string or an object', value, caller);
  }
  if (typeof value.exec !== 'string' || value.exec === '') {
    throw invalidArgType('options.agent.exec', 'a non-empty string', value.exec, caller);
  }
  if (value.args !== undefined && (!Array.isArray(value.args) || value.args.some((a) => typeof a !== 'string'))) {
    throw invalidArgType('options.agent.args', 'an array of strings', value.args, caller);
  }
  if (value.env !== undefined && (value.env === null || typeof value.env !== 'object')) {
    throw invalidArgType('options.agent.env', 'of type object', value.env, caller);
  }
  return { exec: value.exec, args: value.args ?? [], env: value.env ?? {} };
}

function normalizeReadyTimeout(value, caller) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidArgType('options.agentReadyTimeout', 'of type number', value, caller);
  if (!Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw outOfRange('options.agentReadyTimeout', `>= 1 && <= ${2 ** 31 - 1}`, value, caller);
  }
  return value;
}

/** The primary's handle on the agent, shaped like a Worker (not in cluster.workers). */
class AgentHandle extends EventEmitter {
  constructor(process) {
    super();
    this.id = 'agent';
    this.isAgent = true;
    this.process = process;
    this.state = 'none';
    this.restarts = 0;
  }

  send(...args) {
    return this.process.send(...args);
  }

  isConnected() {
    return this.process.connected;
  }

  isDead() {
    return this.process.exitCode != null || this.process.signalCode != null;
  }

  kill(signal = 'SIGTERM') {
    return this.process.kill(signal);
  }
}

class AgentSupervisor {
  constructor(cluster) {
    this.cluster = cluster;
    this.handle = null;
    this.ready = false;
    this.gates = []; // workers' gate pipes, opened once the agent is ready
    this.stopping = null; // the promise of stop(), once called
    this.crashes = { consecutive: 0 }; // its consecutive crashes, for the backoff
    this.restartTimer = null;
    this.readyTimer = null;
  }

  get configured() {
    return this.cluster.settings.agent !== undefined;
  }

  /** Whether a worker forked now must wait at the gate. */
  get holding() {
    return this.configured && !this.ready && this.stopping === null;
  }

  /**
   * Starts the agent if one is configured and none runs. `spawnOptions(id)`:
   * the primary's peerStdio (lib/primary/cluster.js), its channel and shared
   * memory slots.
   */
  ensureStarted(spawnOptions, forget) {
    if (!this.configured || this.handle !== null || this.stopping !== null || this.restartTimer !== null) return;
    this.spawnOptions = spawnOptions;
    // Tells the dispatcher the agent's channel is gone (before a restart opens a new one).
    this.forget = forget;
    this.start();
  }

  start() {
    const settings = this.cluster.settings;
    const { exec, args, env } = settings.agent;
    let child;
    try {
      // Forked as a worker is (lib/primary/worker_spawn.js); rcluster's own
      // variables are reserved for it too.
      child = forkPeer(this.spawnOptions(AGENT), {
        exec,
        args,
        execArgv: settings.execArgv,
        userEnv: env,
        ownEnv: { [Env.Agent]: '1' },
        options: { cwd: settings.cwd, silent: settings.silent, serialization: settings.serialization },
      });
    } catch (err) {
      this.scheduleRestart({ reason: 'forkFailed', error: err });
      return;
    }

    const handle = this.handle ?? new AgentHandle(child);
    handle.process = child;
    handle.state = 'starting';
    this.handle = handle;
    this.startedAt = Date.now();
    debug('primary: forked the agent (pid %d)', child.pid);

    // The settings table's default (lib/primary/settings.js), which requires
    // this module's validator: read when needed, not at load.
    const timeout = settings.agentReadyTimeout ?? require('../primary/settings').defaultOf('agentReadyTimeout');
    this.readyTimer = setTimeout(() => {
      this.readyTimer = null;
      const err = nodeError(Error, 'ERR_RCLUSTER_AGENT_READY_TIMEOUT',
                            `the agent was not ready within ${timeout} ms (agentReadyTimeout); it is restarted`, this.start);
      this.reportError(err);
      child.kill('SIGKILL');
    }, timeout);

    child.on('message', (message) => {
      if (message === 'ready') {
        this.onReady();
        return;
      }
      handle.emit('message', message);
    });
    child.on('internalMessage', (message) => {
      if (message === null || typeof message !== 'object' || message.cmd !== CMD) return;
      if (message.act === Act.AgentReady) this.onReady();
      if (message.act === Act.AgentError) this.reportError(revive(message.error));
    });
    // A failed send or kill: the handle's 'error' if someone listens, as a
    // Worker's, else 'agentError', never an uncaught throw in the primary.
    child.on('error', (err) => {
      if (handle.listenerCount('error') > 0) handle.emit('error', err);
      else this.reportError(err);
    });
    child.once('exit', (code, signal) => {
      this.forget(AGENT);
      this.onExit(child, code, signal);
    });
  }

  onReady() {
    if (this.ready || this.handle === null) return;
    clearTimeout(this.readyTimer);
    this.readyTimer = null;
    this.ready = true;
    this.handle.state = 'ready';
    debug('primary: the agent is ready; %d workers were waiting for it', this.gates.length);
    this.openGates();
    this.handle.emit('ready');
    this.cluster.emit('agentReady', this.handle);
  }

  /** A worker's gate: it starts now if the agent is ready, else once it is. */
  gate(socket) {
    socket.on('error', () => {}); // the worker died at the gate: nothing to open
    if (!this.holding) {
      open(socket);
      return;
    }
    this.gates.push(socket);
  }

  openGates() {
    const gates = this.gates;
    this.gates = [];
    for (const socket of gates) open(socket);
  }

  /**
   * The dispatcher can no longer read the agent's channel: bus and shared
   * state messages to and from it would be lost from now on, while it looked
   * alive. Reported ('agentError', code ERR_RCLUSTER_AGENT_CHANNEL_FAILED) and
   * killed; its exit restarts it as after a crash, as a worker in the same
   * state is killed and replaced.
   */
  channelFailed(detail) {
    const handle = this.handle;
    if (handle === null || handle.state === 'dead') return;
    debug('primary: the agent\'s channel failed (%s): killed', detail);
    this.reportError(nodeError(Error, 'ERR_RCLUSTER_AGENT_CHANNEL_FAILED', `The agent's channel to the primary failed: ${detail}`));
    handle.process.kill('SIGKILL');
  }

  reportError(err) {
    if (this.cluster.listenerCount('agentError') > 0) {
      this.cluster.emit('agentError', err, this.handle);
    } else {
      process.emitWarning(err instanceof Error ? err : String(err), { code: 'RCLUSTER_AGENT_ERROR' });
    }
  }

  onExit(child, code, signal) {
    clearTimeout(this.readyTimer);
    this.readyTimer = null;
    const handle = this.handle;
    this.ready = false;
    handle.state = 'dead';
    debug('primary: the agent exited (code %s, signal %s)', code, signal);
    handle.emit('exit', code, signal);
    this.cluster.emit('agentExit', handle, code, signal);
    if (this.stopping !== null) return;
    this.scheduleRestart({ reason: signal ? 'signal' : 'exit', code, signal });
  }

  // Always restarted: workers depend on it. The backoff is the restart
  // policy's (setupPrimary({ restart })), or its defaults.
  scheduleRestart(cause) {
    const restart = this.cluster.settings.restart || RESTART_DEFAULTS;
    const uptime = Date.now() - (this.startedAt ?? Date.now());
    const { attempt, delay } = nextBackoff(this.crashes, uptime, restart);
    debug('primary: restarting the agent in %d ms', delay);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping !== null) return;
      if (this.handle !== null) this.handle.restarts += 1;
      this.start();
      this.cluster.emit('agentRestart', this.handle, { ...cause, delay, attempt });
    }, delay);
  }

  /** Stops the agent (after the workers, at shutdown): disconnect, then SIGKILL at `timeout`. */
  stop(timeout = STOP_TIMEOUT_DEFAULT) {
    if (this.stopping !== null) return this.stopping;
    clearTimeout(this.restartTimer);
    this.restartTimer = null;
    clearTimeout(this.readyTimer);
    this.readyTimer = null;
    this.openGates(); // nobody waits for an agent that is going away
    const handle = this.handle;
    if (handle === null || handle.isDead()) {
      this.stopping = Promise.resolve();
      return this.stopping;
    }
    this.stopping = new Promise((resolve) => {
      const timer = setTimeout(() => handle.process.kill('SIGKILL'), timeout);
      handle.process.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (handle.process.connected) handle.process.disconnect();
      else handle.process.kill('SIGTERM');
    });
    return this.stopping;
  }
}

function open(socket) {
  if (socket.destroyed) return;
  socket.end('1');
}

// An error as the agent sent it over IPC.
function revive(data) {
  const err = codedError(Error, data ? data.code : undefined, data && data.message);
  if (data && data.name) err.name = data.name;
  if (data && data.stack) err.stack = data.stack;
  return err;
}

/** setupPrimary()'s options with `agent` and `agentReadyTimeout` validated. */
function normalizeOptions(options, caller) {
  if (options === null || typeof options !== 'object') return options;
  const out = { ...options };
  if ('agent' in options) out.agent = normalizeAgent(options.agent, caller);
  if ('agentReadyTimeout' in options) out.agentReadyTimeout = normalizeReadyTimeout(options.agentReadyTimeout, caller);
  return out;
}

module.exports = { AgentSupervisor, AgentHandle, normalizeOptions };
