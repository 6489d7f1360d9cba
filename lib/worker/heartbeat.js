'use strict';
// Worker side of setupPrimary({ health: { hangTimeout } }): a timer on the
// worker's own event loop sends a heartbeat on the native channel, where the
// primary's dispatcher thread checks it (core/src/dispatcher/health.rs). A
// blocked event loop sends none, whatever the primary's JS is doing. The
// timer is unref'd: it never keeps a worker alive.
const { Env } = require('../protocol');

/** At start-up: reads (and removes) the interval the primary set; starts beating. */
function install(channel) {
  const ms = Number(process.env[Env.HeartbeatInterval]);
  delete process.env[Env.HeartbeatInterval];
  if (!Number.isSafeInteger(ms) || ms <= 0) return;
  const beat = () => channel.heartbeat();
  beat();
  setInterval(beat, ms).unref();
}

/** How often a worker beats for a given hang timeout: several beats per timeout. */
function intervalFor(hangTimeout) {
  return Math.max(10, Math.min(1000, Math.floor(hangTimeout / 4)));
}

module.exports = { install, intervalFor };
