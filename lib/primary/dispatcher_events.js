'use strict';
// What the native dispatcher thread reports about things only it sees
// (docs/DESIGN.md §1, "Events from the dispatcher"). The addon calls the
// function made here on the primary's JS thread with `{ kind, workerId, ... }`;
// each kind is one handler below. Its warnings (a failing accept, no
// SO_REUSEPORT, a worker's missed heartbeats, ...) become
// process.emitWarning(message, { code }) with codes RCLUSTER_<WHAT>.
const { debuglog } = require('util');
const { AGENT } = require('../bus/bus');

const debug = debuglog('rcluster');

/**
 * `records`: the primary's WorkerRecords by id (lib/primary/worker_record.js).
 * `withdraw(worker)`: takes it out of every rotation, holding a socket it was
 * the last member of for a replacement. `agentChannelFailed(detail)`: the
 * agent's channel broke (lib/agent/supervisor.js).
 */
function dispatcherEvents({ cluster, records, withdraw, replace = () => false, agentChannelFailed = () => {} }) {
  // A worker the primary can no longer talk to is failed: it would stay
  // `listening` and silent, while its connections waited for queueTimeout.
  // It is killed, not left to linger; its exit then goes the usual way, and
  // the restart policy replaces it (fate `failed`, not the app's `killed`).
  function failWorker(event, reason) {
    const record = records.get(event.workerId);
    if (record === undefined) return; // it exited already
    const { worker } = record;
    debug('primary: worker %d failed (%s: %s)', worker.id, reason, event.reason);
    withdraw(worker);
    record.failed(reason);
    try {
      cluster.emit('unhealthy', worker, { reason, detail: event.reason });
    } finally {
      worker.process.kill('SIGKILL');
    }
  }

  // A hung worker (setupPrimary({ health })): the dispatcher thread has
  // withdrawn it already. Its replacement is forked first (restart policy),
  // then it is killed: it may hold requests that would still complete, but a
  // loop that stopped turning is not coming back. A worker whose loop lags
  // past maxEventLoopDelay (its own report) goes the same way.
  function replaceThenKill(event, reason) {
    const record = records.get(event.workerId);
    if (record === undefined) return;
    const { worker } = record;
    debug('primary: worker %d is unhealthy (%s: %s)', worker.id, reason, event.reason);
    withdraw(worker);
    record.failed(reason);
    const replacing = replace(record);
    try {
      cluster.emit('unhealthy', worker, { reason, detail: event.reason });
    } finally {
      // After the replacement's fork, which a zero-delay timer runs.
      if (replacing) setTimeout(() => worker.process.kill('SIGKILL'), 0);
      else worker.process.kill('SIGKILL');
    }
  }

  const handlers = {
    // The agent has a channel too (bus peer AGENT), but no worker record.
    channelFailed: (event) => (event.workerId === AGENT ? agentChannelFailed(event.reason) : failWorker(event, 'channelFailed')),
    hung: (event) => {
      // `reason` is "no heartbeat for N ms".
      process.emitWarning(`worker ${event.workerId} sent ${event.reason}: withdrawn`, { code: 'RCLUSTER_HEARTBEAT_MISSED' });
      replaceThenKill(event, 'hung');
    },
    warning: (event) => process.emitWarning(event.reason, { code: event.code }),
    eventLoopDelay: (event) => replaceThenKill(event, 'eventLoopDelay'),
  };

  return function onEvent(event) {
    const handler = handlers[event.kind];
    if (handler === undefined) debug('primary: unknown dispatcher event %j', event);
    else handler(event);
  };
}

module.exports = { dispatcherEvents };
