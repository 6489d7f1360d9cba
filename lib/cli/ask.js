'use strict';
// The primary's side of lib/cli/worker_hook.js: one question to every worker,
// each with its own deadline, so a slow or busy worker is left out of the
// answer instead of failing it (prom-client's AggregatorRegistry fails the
// whole scrape after 5 s when one worker is slow).
const CMD = 'NODE_RCLUSTER_CLI';
let seq = 0;

function askWorker(worker, what, timeout) {
  return new Promise((resolve) => {
    const proc = worker.process;
    if (!proc.connected) return resolve(undefined);
    const id = ++seq;
    const done = (value) => {
      clearTimeout(timer);
      proc.removeListener('internalMessage', onMessage);
      proc.removeListener('exit', onExit);
      resolve(value);
    };
    const onMessage = (message) => {
      if (message && message.cmd === CMD && message.ack === id) done(message.error === undefined ? message.value : undefined);
    };
    const onExit = () => done(undefined);
    const timer = setTimeout(() => done(undefined), timeout);
    proc.on('internalMessage', onMessage);
    proc.once('exit', onExit);
    try {
      proc.send({ cmd: CMD, seq: id, what }, undefined, { swallowErrors: true }, (err) => {
        if (err) done(undefined);
      });
    } catch {
      done(undefined);
    }
  });
}

/** Map of worker id -> answer, for the workers that answered within `timeout` ms. */
async function askAll(workers, what, timeout = 1000) {
  const answers = await Promise.all(workers.map((w) => askWorker(w, what, timeout)));
  const out = new Map();
  workers.forEach((w, i) => {
    if (answers[i] !== undefined) out.set(w.id, answers[i]);
  });
  return out;
}

module.exports = { askAll, askWorker };
