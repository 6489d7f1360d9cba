'use strict';
// The exponential backoff of restarts, one rule for the restart policy's
// workers (lib/operations/restart_policy.js) and for the agent
// (lib/agent/supervisor.js): minDelay, doubled per consecutive crash, capped
// at maxDelay, and back to minDelay once a process of the line has run
// resetAfter ms.

/**
 * One more crash of a line. `line.consecutive` counts its consecutive
 * crashes (the record's `slot`, the agent's own count); `uptime`: how long
 * the process that crashed ran; `retry`: the previous fork of the line
 * failed, so that uptime proves nothing. Returns the attempt (1 for the first
 * crash in a row) and its delay in ms.
 */
function nextBackoff(line, uptime, { minDelay, maxDelay, resetAfter }, { retry = false } = {}) {
  if (uptime >= resetAfter && !retry) line.consecutive = 0;
  line.consecutive += 1;
  const attempt = line.consecutive;
  return { attempt, delay: Math.min(maxDelay, minDelay * 2 ** (attempt - 1)) };
}

module.exports = { nextBackoff };
