'use strict';
// A real redis-server for the bus.redis tests and benchmarks: started on a
// private loopback port, with nothing saved to disk (.ci/run installs
// Debian's package when it is missing).
const { spawn, spawnSync } = require('node:child_process');
const { getFreePort } = require('./http-client');

/** The redis-server command's path, or null where it is not installed. */
function redisServerPath() {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() || null : null;
}

/**
 * Starts `bin` (redis-server) on a free loopback port; resolves to
 * `{ url, proc }` once it accepts connections. The caller kills `proc`.
 */
async function startRedisServer(bin = redisServerPath()) {
  const port = await getFreePort();
  const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('redis-server did not start within 10 s')), 10000);
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        if (/ready to accept connections/i.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}): ${out}`));
      });
    });
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, proc };
}

module.exports = { redisServerPath, startRedisServer };
