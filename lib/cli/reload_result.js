'use strict';
// cluster.reload()'s result (lib/operations/rollover.js) in words, for the
// `rcluster` command's log line and for `rcluster reload`'s output: what went
// wrong, which worker, and what is serving now.

const REASONS = {
  exited: 'a new worker exited before it was ready',
  readyTimeout: 'a new worker was not ready in time',
  probation: 'a new worker died during its probation',
  forkFailed: 'a new worker could not be started',
  shutdown: 'the app is shutting down',
};

function howItEnded(code, signal) {
  if (signal) return `was killed by ${signal}`;
  if (code === null || code === undefined) return 'was stopped';
  return `exited with code ${code}`;
}

// The detail in brackets, from the fields the reason comes with.
function detail(result) {
  const worker = result.replacement !== undefined ? `worker ${result.replacement}` : 'the new worker';
  switch (result.reason) {
    case 'exited': return `${worker} ${howItEnded(result.code, result.signal)}`;
    case 'readyTimeout': return `${worker} did not get ready within ${result.timeout} ms`;
    case 'probation': {
      const ms = Math.max(0, Math.round(result.uptime ?? 0));
      const within = ms <= result.probation ? `after ${ms} ms of its ${result.probation} ms probation` :
        `${ms} ms after it was ready, before the last new worker's ${result.probation} ms probation ended`;
      return `${worker} ${howItEnded(result.code, result.signal)} ${within}`;
    }
    case 'forkFailed': return result.error?.message ?? null;
    default: return null;
  }
}

/**
 * One line for a failed reload (`result.ok === false`), without the
 * "reload failed: " before it: "a new worker died during its probation
 * (worker 5 exited with code 1 after 310 ms of its 3000 ms probation); the
 * old workers serve on".
 */
function describeReloadFailure(result) {
  const words = REASONS[result.reason] ?? String(result.reason);
  const more = detail(result);
  const replaced = Array.isArray(result.replaced) ? result.replaced.length : 0;
  const after = result.rolledBack === true || replaced === 0 ? 'the old workers serve on' :
    `${replaced} worker${replaced === 1 ? ' was' : 's were'} replaced before it, the others serve on`;
  return `${words}${more ? ` (${more})` : ''}; ${after}`;
}

module.exports = { describeReloadFailure };
