'use strict';
// Small I/O conventions shared by the fixtures (never requires a cluster
// module itself). The primary prints one JSON object per line on stdout and
// reads JSON commands, one per line, on stdin; workers talk to the primary
// only through cluster messages.

const readline = require('node:readline');

/** Prints one event line (primary only). */
function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

/**
 * Primary only: reads commands {cmd, id, ...} on stdin and answers each with
 * {"event":"reply","id":id,"cmd":cmd, ...result} (or {..., error}).
 * When stdin ends (the test process went away) the whole process group is
 * killed, a safety net on top of the harness's own kill.
 */
function onCommand(handler) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      emit('bad-command', { line });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (result) => emit('reply', { id: msg.id, cmd: msg.cmd, ...(result || {}) }),
        (err) => emit('reply', { id: msg.id, cmd: msg.cmd, error: String((err && err.stack) || err) }),
      );
  });
  process.stdin.on('end', () => {
    if (process.env.RCLUSTER_TEST_HARNESS === '1') {
      try {
        process.kill(-process.pid, 'SIGKILL');
      } catch {
        process.exit(1);
      }
    }
  });
}

let rid = 0;
/**
 * Primary only: sends `msg` to a worker and resolves with the worker's
 * answer (a message carrying the same `rid`), or rejects after `timeout`.
 */
function askWorker(worker, msg, timeout = 4000) {
  return new Promise((resolve, reject) => {
    const myRid = `${process.pid}-${++rid}`;
    const onMessage = (m) => {
      if (m && m.rid === myRid) {
        cleanup();
        resolve(m);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`worker ${worker.id} did not answer ${JSON.stringify(msg)} within ${timeout} ms`));
    }, timeout);
    const cleanup = () => {
      clearTimeout(timer);
      worker.removeListener('message', onMessage);
    };
    worker.on('message', onMessage);
    worker.send({ ...msg, rid: myRid });
  });
}

/** Primary only: asks every live worker; resolves {workerId: answer}. */
async function askAll(cluster, msg, timeout) {
  const ids = Object.keys(cluster.workers);
  const answers = await Promise.all(ids.map((id) => askWorker(cluster.workers[id], msg, timeout)));
  return Object.fromEntries(ids.map((id, i) => [id, answers[i]]));
}

/**
 * Worker only: answers the primary's askWorker() messages with
 * handler(msg) (sync or async); the answer keeps the `rid`.
 */
function answerPrimary(handler) {
  process.on('message', (msg) => {
    if (!msg || msg.rid === undefined) return;
    Promise.resolve()
      .then(() => handler(msg))
      .then(
        (result) => process.send({ ...(result || {}), rid: msg.rid }),
        (err) => process.send({ rid: msg.rid, error: String((err && err.stack) || err) }),
      );
  });
}

/**
 * Primary only: forks `n` workers (each with `env`) and resolves once every
 * one has emitted 'listening', with {port, workers:[{id,pid}]}.
 */
function forkListening(cluster, n, env) {
  return new Promise((resolve, reject) => {
    const workers = [];
    let port;
    let listening = 0;
    for (let i = 0; i < n; i++) {
      const w = cluster.fork(env);
      workers.push(w);
      w.once('exit', (code, signal) => reject(new Error(`worker ${w.id} exited early (${code}, ${signal})`)));
      w.once('listening', (addr) => {
        port = addr.port;
        if (++listening === n) resolve({ port, workers: workers.map((x) => ({ id: x.id, pid: x.process.pid })) });
      });
    }
  });
}

/**
 * Primary only: forks `n` workers (each with `env`) and emits 'ready'
 * `{ port, workers: [ids] }` once every one has listened.
 */
function forkAndAnnounceReady(cluster, n, env) {
  let listening = 0;
  for (let i = 1; i <= n; i++) {
    cluster.fork(env).once('listening', (a) => {
      if (++listening === n) emit('ready', { port: a.port, workers: Object.keys(cluster.workers).map(Number) });
    });
  }
}

/** Open file descriptors of the calling process (Linux /proc). */
function fdCount() {
  return require('node:fs').readdirSync('/proc/self/fd').length;
}

/** Primary only: sends `signal` (SIGKILL) to a worker; resolves once it exited. */
function killWorker(worker, signal = 'SIGKILL') {
  return new Promise((resolve) => {
    worker.once('exit', resolve);
    worker.process.kill(signal);
  });
}

module.exports = { emit, onCommand, askWorker, askAll, answerPrimary, forkListening, forkAndAnnounceReady, fdCount, killWorker };
