'use strict';
// cluster.reload()'s result (lib/operations/rollover.js) in words, for the
// `rcluster` command's log line and for `rcluster reload`'s output: what went
// wrong, which worker, and what is serving now. `rcluster reload` reads the
// result from a control socket, so every field is checked before it is
// shown (a number is a count, a string is printable and short).
const { printable } = require('./status_view');

const REASONS = {
  exited: 'a new worker exited before it was ready',
  readyTimeout: 'a new worker was not ready in time',
  probation: 'a new worker died during its probation',
  forkFailed: 'a new worker could not be started',
  shutdown: 'the app is shutting down',
};

const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
const ms = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : null);

function howItEnded(code, signal) {
  if (typeof signal === 'string' && signal !== '') return `was killed by ${printable(signal, 20)}`;
  if (Number.isSafeInteger(code)) return `exited with code ${code}`;
  return 'was stopped';
}

// The detail in brackets, from the fields the reason comes with.
function detail(result) {
  const worker = isCount(result.replacement) ? `worker ${result.replacement}` : 'the new worker';
  switch (result.reason) {
    case 'exited': return `${worker} ${howItEnded(result.code, result.signal)}`;
    case 'readyTimeout': return `${worker} did not get ready within ${ms(result.timeout) ?? '?'} ms`;
    case 'probation': {
      const up = ms(result.uptime) ?? 0;
      const probation = ms(result.probation);
      if (probation === null) return `${worker} ${howItEnded(result.code, result.signal)} after ${up} ms`;
      const within = up <= probation ? `after ${up} ms of its ${probation} ms probation` :
        `${up} ms after it was ready, before the last new worker's ${probation} ms probation ended`;
      return `${worker} ${howItEnded(result.code, result.signal)} ${within}`;
    }
    case 'forkFailed': return typeof result.error?.message === 'string' ? printable(result.error.message, 200) : null;
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
  const words = REASONS[result.reason] ?? (typeof result.reason === 'string' ? printable(result.reason, 40) : 'no reason given');
  const more = detail(result);
  const replaced = Array.isArray(result.replaced) ? result.replaced.length : 0;
  const after = result.rolledBack === true || replaced === 0 ? 'the old workers serve on' :
    `${replaced} worker${replaced === 1 ? ' was' : 's were'} replaced before it, the others serve on`;
  return `${words}${more ? ` (${more})` : ''}; ${after}`;
}

module.exports = { describeReloadFailure };
