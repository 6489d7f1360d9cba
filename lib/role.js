'use strict';
// Which side of the cluster this process is on. The primary marks a worker with
// its own variables, never NODE_UNIQUE_ID (Node's bootstrap would act on that).
// They are read once and removed from process.env at start-up, so processes a
// worker spawns are not mistaken for workers.
const WORKER_ID = 'RCLUSTER_WORKER_ID';
const CHANNEL_FD = 'RCLUSTER_CHANNEL_FD';
const kRole = Symbol.for('rcluster.role');

function role() {
  if (globalThis[kRole] === undefined) {
    const id = process.env[WORKER_ID];
    const fd = process.env[CHANNEL_FD];
    delete process.env[WORKER_ID];
    delete process.env[CHANNEL_FD];
    globalThis[kRole] = id !== undefined && fd !== undefined ?
      { isWorker: true, id: Number(id), channelFd: Number(fd) } :
      { isWorker: false };
  }
  return globalThis[kRole];
}

module.exports = { role, WORKER_ID, CHANNEL_FD };
