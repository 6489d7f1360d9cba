'use strict';
// A release build's smoke test, for a platform the release workflow builds
// on another runner (.github/workflows/release.yml): from a checkout with
// binding.js and the platform's rcluster.<platform>.node beside it, a
// 2-worker HTTP cluster on the native dispatcher answers 10 requests, which
// cluster.stats() shows accepted. Exits 0 when it did, 1 otherwise.
//
//   node scripts/smoke.js
const http = require('node:http');
const cluster = require('..');

const REQUESTS = 10;

function fail(message) {
  console.error(`smoke: ${message}`);
  process.exit(1);
}

function get(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('no response within 5 s')));
    req.on('error', reject);
  });
}

if (cluster.isPrimary) {
  if (typeof cluster.stats !== 'function') fail('require(\'rcluster\') gave node:cluster: the native addon did not load');
  setTimeout(() => fail('no answer within 30 s'), 30000).unref();
  for (let i = 0; i < 2; i++) cluster.fork();
  let listening = 0;
  cluster.on('listening', async (worker, address) => {
    if (++listening < 2) return;
    const pids = new Set();
    for (let i = 0; i < REQUESTS; i++) pids.add(await get(address.port));
    const accepted = cluster.stats().listeners.reduce((sum, l) => sum + l.accepted, 0);
    if (accepted < REQUESTS) fail(`the dispatcher accepted ${accepted} of ${REQUESTS} connections`);
    console.log(`smoke: ${process.platform}-${process.arch}: ${REQUESTS} requests answered by ${pids.size} worker(s), ` +
                `${accepted} connections accepted by the native dispatcher`);
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  });
} else {
  http.createServer((req, res) => res.end(String(process.pid))).listen(0, '127.0.0.1');
}
