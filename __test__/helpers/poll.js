'use strict';
// For what a test cannot be told about and must look at again: a port being
// released, a process gone after its parent died.

/**
 * Calls `check` (sync or async) every `interval` ms until it returns a truthy
 * value, which it resolves with; resolves false once `timeout` ms have passed.
 */
async function pollUntil(check, { timeout = 5000, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

module.exports = { pollUntil };
