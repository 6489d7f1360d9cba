'use strict';
// SCHED_STICKY: the same client (by address) always reaches the same worker,
// and a worker's replacement takes its clients over. Clients come from
// distinct loopback addresses (127.0.0.2, 127.0.0.3, ...), which Linux
// routes to the loopback interface without any setup.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startCluster, rclusterOnly } = require('../helpers/run-cluster');

const CLIENTS = 24;

function getFrom(localAddress, port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, localAddress, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    });
    req.setTimeout(10000, () => req.destroy(new Error(`no answer for ${localAddress}`)));
    req.on('error', reject);
  });
}

const clientAddress = (i) => `127.0.0.${i + 2}`;

// Which worker each client reached, `rounds` connections each.
async function workersOf(port, rounds) {
  const seen = [];
  for (let i = 0; i < CLIENTS; i++) {
    const ids = new Set();
    for (let r = 0; r < rounds; r++) ids.add(await getFrom(clientAddress(i), port));
    seen.push([...ids]);
  }
  return seen;
}

test('sticky: each client address always reaches one worker, and clients spread over all of them',
  { skip: rclusterOnly('SCHED_STICKY'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'sticky', WORKERS: '3' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    const seen = await workersOf(port, 4);
    for (const [i, ids] of seen.entries()) {
      assert.equal(ids.length, 1, `client ${clientAddress(i)} reached workers ${ids}`);
    }
    const used = new Set(seen.map((ids) => ids[0]));
    assert.deepEqual([...used].sort(), ['1', '2', '3'], 'every worker has clients');
    assert.equal((await c.call('stats')).listeners[0].policy, 'sticky');
  });

test('sticky: a killed worker\'s clients move, the others stay, and its replacement gets them back',
  { skip: rclusterOnly('SCHED_STICKY'), timeout: 60000 },
  async (t) => {
    const c = startCluster(t, 'routing.js', { env: { POLICY: 'sticky', WORKERS: '3' } });
    const { port } = await c.waitFor('ready', { timeout: 15000 });
    const before = (await workersOf(port, 1)).map((ids) => ids[0]);
    await c.call('kill', { worker: 2 });
    const during = (await workersOf(port, 1)).map((ids) => ids[0]);
    before.forEach((id, i) => {
      if (id === '2') assert.notEqual(during[i], '2');
      else assert.equal(during[i], id, `client ${clientAddress(i)} of surviving worker ${id} moved`);
    });
    const { worker } = await c.call('fork', {}, { timeout: 15000 });
    const after = (await workersOf(port, 1)).map((ids) => ids[0]);
    assert.deepEqual(after, before.map((id) => (id === '2' ? String(worker) : id)));
  });
