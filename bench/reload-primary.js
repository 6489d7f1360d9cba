'use strict';
// The primary of bench/reload.js for `rcluster` (cluster.reload()) and `node`
// (node:cluster with a hand-written rolling restart: fork, wait for
// 'listening', disconnect the old). Forks WORKERS of bench/reload-app.js,
// prints `ready`, then on each `reload` line on stdin reloads and prints
// `reloaded {json}`. PROBATION (ms), if set, is rcluster's reload probation.
const path = require('node:path');
const readline = require('node:readline');

const impl = process.env.RELOAD_IMPL;
const cluster = impl === 'rcluster' ? require('..') : require('node:cluster');
const workers = Number(process.env.WORKERS || 2);

cluster.setupPrimary({
  exec: path.join(__dirname, 'reload-app.js'),
  ...(impl === 'rcluster' && process.env.PROBATION !== undefined && { reload: { probation: Number(process.env.PROBATION) } }),
});

function forkListening() {
  return new Promise((resolve, reject) => {
    const w = cluster.fork();
    w.once('listening', () => resolve(w));
    w.once('exit', () => reject(new Error(`worker ${w.id} exited before listening`)));
  });
}

// What a careful node:cluster user writes by hand.
async function handRolled() {
  for (const old of Object.values(cluster.workers)) {
    await forkListening();
    await new Promise((resolve) => {
      old.once('exit', resolve);
      old.disconnect();
    });
  }
  return { ok: true };
}

(async () => {
  await Promise.all(Array.from({ length: workers }, forkListening));
  process.stdout.write('ready\n');
  const rl = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    if (line.trim() !== 'reload') return;
    queue = queue.then(async () => {
      const result = impl === 'rcluster' ? await cluster.reload() : await handRolled();
      process.stdout.write(`reloaded ${JSON.stringify({ ok: result.ok, reason: result.reason, rolledBack: result.rolledBack })}\n`);
    });
  });
  rl.on('close', () => process.exit(0));
})();
