'use strict';
// The names both sides of a cluster agree on: the JS twin of core/src/channel/wire.rs.
// wire.rs is the native channel (connections, shared sockets); this is the
// rest: the control messages on Node's IPC channel and the environment a
// primary hands its workers. A name used on one side only is still here, so
// that a change to the conversation is one diff in one file.

// Every rcluster control message carries `cmd: CMD`. A `cmd` starting with
// NODE_ makes Node deliver it as 'internalMessage', never to the app's
// 'message' listeners. A request carries `seq`; its reply `ack: seq`
// (lib/internal_messages.js, sendHelper and internal).
const CMD = 'NODE_RCLUSTER';

// `message.act`: what a control message asks or announces.
const Act = Object.freeze({
  // Worker -> primary.
  /** Listen on this address for me; the reply carries the listener. */
  QueryServer: 'queryServer',
  /** A server of mine listens now (worker.state 'listening'). */
  Listening: 'listening',
  /** I am set up (worker.state 'online'). */
  Online: 'online',
  /** I leave on purpose (worker.disconnect()/destroy() in the worker); replied to. */
  ExitedAfterDisconnect: 'exitedAfterDisconnect',
  /** I had an uncaught exception and will drain and exit (exitOnUncaughtException); replied to. */
  UncaughtException: 'uncaughtException',
  /** I am ready to take over (cluster.worker.ready(); setupPrimary({ waitReady })). */
  Ready: 'ready',
  /** I served my request budget (setupPrimary({ recycle: { maxRequests } })). */
  RequestsServed: 'requestsServed',
  /** My event loop lags past health.maxEventLoopDelay. */
  EventLoopDelay: 'eventLoopDelay',
  // Agent -> primary.
  /** The agent is ready (cluster.agent.ready()): held workers may start. */
  AgentReady: 'agentReady',
  /** An uncaught exception in the agent, which it survives ('agentError'). */
  AgentError: 'agentError',
  // Primary -> worker.
  /** Close your servers and disconnect (the primary's worker.disconnect()). */
  Disconnect: 'disconnect',
  /**
   * You are replaced (reload, recycle): when your servers close, hand your
   * idle keep-alive connections back. Sent just before Disconnect, with
   * `drainTimeout` (ms), after which the primary SIGKILLs you.
   */
  Retiring: 'retiring',
});

// Environment variables a primary sets for its workers. The worker reads and
// removes each at start-up, so the app and the processes it spawns never see
// them. rcluster never sets NODE_UNIQUE_ID: Node's bootstrap would act on it.
const Env = Object.freeze({
  /** The worker's id; its presence makes the process a worker (lib/role.js). */
  WorkerId: 'RCLUSTER_WORKER_ID',
  /** The stdio slot of the worker's end of the native channel. */
  ChannelFd: 'RCLUSTER_CHANNEL_FD',
  /** The stdio slot of the shared memory region (lib/bus/shared.js). */
  SharedFd: 'RCLUSTER_SHARED_FD',
  /** Its presence makes the process the agent (lib/agent/cluster.js). */
  Agent: 'RCLUSTER_AGENT',
  /** This machine's id with bus.redis (cluster.bus.machine). */
  Machine: 'RCLUSTER_MACHINE',
  /** The stdio slot of a worker's gate: it waits there until the agent is ready (lib/agent/gate.js). */
  AgentGate: 'RCLUSTER_AGENT_GATE',
  /** exitOnUncaughtException's timeout in ms; absent when the setting is off. */
  ExitOnUncaughtTimeout: 'RCLUSTER_EXIT_ON_UNCAUGHT_TIMEOUT',
  /** shutdownSignals, comma-separated; absent when there are none. */
  ShutdownSignals: 'RCLUSTER_SHUTDOWN_SIGNALS',
  /** This worker's request budget (recycle.maxRequests, jittered); absent when unlimited. */
  MaxRequests: 'RCLUSTER_MAX_REQUESTS',
  /** How often to send a heartbeat, in ms (health.hangTimeout); absent when off. */
  HeartbeatInterval: 'RCLUSTER_HEARTBEAT_MS',
  /** health.maxEventLoopDelay in ms; absent when off. */
  MaxEventLoopDelay: 'RCLUSTER_MAX_EVENT_LOOP_DELAY_MS',
});

// Bus topics that are events of the bus object itself (an EventEmitter):
// never sent, and never emitted from received data, local or from Redis.
const RESERVED_TOPICS = Object.freeze(new Set(['error', 'newListener', 'removeListener']));

module.exports = { CMD, Act, Env, RESERVED_TOPICS };
