'use strict';
// A retired worker never outlives the primary. A worker that has left the
// cluster (a reload, a recycle or a scale-down retired it, or it called
// disconnect()) has closed Node's IPC channel already, so the IPC
// 'disconnect' that ends a worker whose primary died cannot reach it; one
// whose app keeps its event loop alive (a ref'd timer, a keep-alive socket)
// would drain on forever, reparented to init. Two things end it:
//
// - its native channel to the primary's dispatcher hangs up. The primary keeps
//   a worker's channel open until that worker has exited, so the hang-up
//   means the primary is gone: the kernel closes the primary's end however
//   it dies (SIGKILL, OOM killer), and the worker's poll handle sees it at
//   once, even while nothing else of the worker's runs. Checking the parent
//   pid instead would need a timer polling it, and says nothing while the
//   primary is stopped (SIGSTOP) rather than dead;
// - at the latest, its drain deadline (drainTimeout, from Act.Retiring): the
//   primary SIGKILLs a worker still draining then; should the primary not be
//   there to do it, the worker does it to itself DEADLINE_GRACE_MS later, so
//   that a live primary always acts first and reports the kill.
const { debuglog } = require('util');

const debug = debuglog('rcluster');
const DEADLINE_GRACE_MS = 1000;

let left = () => false;
let deadline = null;

/** `hasLeft()`: whether the worker has left the cluster (it is disconnecting or disconnected). */
function install(hasLeft) {
  left = hasLeft;
}

/** The native channel to the primary closed. */
function channelClosed(workerId) {
  if (!left()) return; // Node's IPC 'disconnect' ends a worker still in the cluster.
  debug('worker %d: retired, and the primary is gone: exits', workerId);
  process.exit(0);
}

/** The primary retired this worker, and SIGKILLs it after `drainTimeout` ms. */
function retiring(workerId, drainTimeout) {
  if (deadline !== null || !Number.isSafeInteger(drainTimeout) || drainTimeout < 0) return;
  deadline = setTimeout(() => {
    debug('worker %d: still draining %d ms after it was retired, and the primary did not kill it: killed', workerId, drainTimeout);
    process.kill(process.pid, 'SIGKILL');
  }, drainTimeout + DEADLINE_GRACE_MS);
  deadline.unref();
}

module.exports = { install, channelClosed, retiring, DEADLINE_GRACE_MS };
