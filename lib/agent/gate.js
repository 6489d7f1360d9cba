'use strict';
// A worker forked while the agent is not ready waits here, before the app's
// code and before it says it is online: workers depend on the agent. The
// gate is a pipe in one of the worker's stdio slots; the primary writes to
// it (and closes it) once the agent is ready. End of file (the primary died)
// opens it too: the worker then learns the primary is gone as usual.
const fs = require('fs');

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function waitAtGate(fd) {
  if (fd === undefined) return;
  const buf = Buffer.alloc(1);
  for (;;) {
    try {
      fs.readSync(fd, buf, 0, 1, null);
      break;
    } catch (err) {
      if (err.code !== 'EAGAIN' && err.code !== 'EINTR') break;
      // The pipe may be non-blocking: wait without spinning.
      Atomics.wait(sleeper, 0, 0, 10);
    }
  }
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed.
  }
}

module.exports = { waitAtGate };
