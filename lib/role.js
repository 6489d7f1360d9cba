'use strict';
// Which side of the cluster this process is on. The primary marks a worker with
// its own variables, never NODE_UNIQUE_ID (Node's bootstrap would act on that).
// They are read once and removed from process.env at start-up, so processes a
// worker spawns are not mistaken for workers.
const path = require('path');
const { Env } = require('./protocol');

const kRole = Symbol.for('rcluster.role');
// The worker-side set-up the primary preloads into every worker.
const PRELOAD = path.join(__dirname, 'worker', 'preload.js');

function role() {
  if (globalThis[kRole] === undefined) {
    const id = process.env[Env.WorkerId];
    const fd = process.env[Env.ChannelFd];
    const sharedFd = process.env[Env.SharedFd];
    const agent = process.env[Env.Agent];
    const gateFd = process.env[Env.AgentGate];
    const machine = process.env[Env.Machine] ?? null;
    delete process.env[Env.Machine];
    delete process.env[Env.WorkerId];
    delete process.env[Env.ChannelFd];
    delete process.env[Env.SharedFd];
    delete process.env[Env.Agent];
    delete process.env[Env.AgentGate];
    // Likewise the `--require` of the preload: process.execArgv shows what the
    // app set, as under node:cluster, and a worker's own forks don't inherit it.
    const i = process.execArgv.indexOf(PRELOAD);
    if (i > 0 && process.execArgv[i - 1] === '--require') process.execArgv.splice(i - 1, 2);
    const shared = sharedFd === undefined ? undefined : Number(sharedFd);
    if (agent === '1' && fd !== undefined) {
      globalThis[kRole] = { isWorker: false, isAgent: true, channelFd: Number(fd), sharedFd: shared, machine };
    } else {
      globalThis[kRole] = id !== undefined && fd !== undefined ?
        { isWorker: true, id: Number(id), channelFd: Number(fd), sharedFd: shared, machine,
          gateFd: gateFd === undefined ? undefined : Number(gateFd) } :
        { isWorker: false };
    }
  }
  return globalThis[kRole];
}

module.exports = { role, PRELOAD };
