'use strict';
// Worker side of setupPrimary({ health: { maxEventLoopDelay } }): the worker
// measures its own event-loop delay (perf_hooks' histogram) and reports once
// when its 99th percentile over a one-second window passes the limit; the
// primary then replaces it first and kills it ('unhealthy', reason
// 'eventLoopDelay'). A loop that stops turning altogether reports nothing:
// that is hangTimeout's case, seen natively by the primary's dispatcher.
const { monitorEventLoopDelay } = require('perf_hooks');
const { Act, Env } = require('../protocol');

const WINDOW_MS = 1000;

/** At start-up: reads (and removes) the limit the primary set. */
function install(send) {
  const limit = Number(process.env[Env.MaxEventLoopDelay]);
  delete process.env[Env.MaxEventLoopDelay];
  if (!Number.isSafeInteger(limit) || limit <= 0) return;
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  const timer = setInterval(() => {
    const p99 = histogram.percentile(99) / 1e6;
    histogram.reset();
    if (p99 > limit) {
      clearInterval(timer);
      histogram.disable();
      send({ act: Act.EventLoopDelay, delay: Math.round(p99), limit });
    }
  }, WINDOW_MS);
  timer.unref();
}

module.exports = { install };
