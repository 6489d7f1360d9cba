'use strict';
// The HTTP app that bench/chaos.js kills workers of. Same protocol as
// bench/server.js: `READY <port>` on stdout once every worker listens.
//
//   CHAOS_IMPL       rcluster | node                     (default: rcluster)
//   BENCH_WORKERS    number of workers                   (default: 2)
//   BENCH_PORT       port on 127.0.0.1
//   BENCH_STATS_DIR  each worker keeps held-<pid> there: how many connections
//                    its JS holds without having finished their response
//
// Each request waits 2-5 ms on a timer before it is answered, so that
// requests are regularly held in a worker's JS when it is killed.
//
// rcluster replaces dead workers with its restart policy; node:cluster with
// the usual hand-written `cluster.on('exit', () => cluster.fork())`. Both
// respawn at once (the policy's minDelay is 0), so only the implementations
// differ, not the respawn delays.

const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');

const IMPL = process.env.CHAOS_IMPL || 'rcluster';
const WORKERS = Number(process.env.BENCH_WORKERS || 2);
const PORT = Number(process.env.BENCH_PORT || 0);
const STATS_DIR = process.env.BENCH_STATS_DIR || '';
const cluster = require(IMPL === 'node' ? 'node:cluster' : '..');

if (cluster.isPrimary) {
  let stopping = false;
  if (IMPL === 'node') {
    cluster.on('exit', () => {
      if (!stopping) cluster.fork();
    });
  } else {
    // No backoff and no crash-loop budget: the killer is meant to strike
    // dozens of times a minute, and node's respawn has neither.
    cluster.setupPrimary({ restart: { minDelay: 0, maxRestarts: Number.MAX_SAFE_INTEGER } });
  }
  // The runner stops the whole process group; nothing may be respawned then.
  process.on('SIGTERM', () => {
    stopping = true;
    if (cluster.shutdown) cluster.shutdown({ timeout: 0 });
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGKILL');
    process.exit(0);
  });
  let listening = 0;
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork().once('listening', (address) => {
      if (++listening === WORKERS) process.stdout.write(`READY ${address.port}\n`);
    });
  }
} else {
  // The count is rewritten in place on every change, so that whoever kills
  // this process reads what its JS held at that moment.
  const fd = STATS_DIR ? fs.openSync(path.join(STATS_DIR, `held-${process.pid}`), 'w') : null;
  const buffer = Buffer.alloc(12);
  let held = 0;
  const publish = () => {
    if (fd === null) return;
    buffer.fill(' ');
    buffer.write(String(held));
    fs.writeSync(fd, buffer, 0, buffer.length, 0);
  };
  publish();
  const kRelease = Symbol('release');
  let n = 0;

  const server = http.createServer((req, res) => {
    // Once the response is handed to the kernel, death no longer loses it.
    res.once('finish', req.socket[kRelease]);
    setTimeout(() => res.end('ok'), 2 + (n++ % 4));
  });
  server.on('connection', (socket) => {
    held++;
    publish();
    let released = false;
    socket[kRelease] = () => {
      if (released) return;
      released = true;
      held--;
      publish();
    };
    socket.once('close', socket[kRelease]);
  });
  server.listen(PORT, '127.0.0.1');
}
