'use strict';
// Code that wraps cluster._getServer and forwards only (err, handle), as
// written for node:cluster, still gets working servers, in both policies.
const test = require('node:test');
const assert = require('node:assert/strict');
const dgram = require('node:dgram');
const { startCluster } = require('../helpers/run-cluster');
const { get } = require('../helpers/http-client');

function udpRoundTrip(port, text) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => { socket.close(); reject(new Error('no UDP answer within 5 s')); }, 5000);
    socket.on('message', (msg) => { clearTimeout(timer); socket.close(); resolve(String(msg)); });
    socket.send(text, port, '127.0.0.1');
  });
}

for (const policy of ['rr', 'none']) {
  test(`[${policy}] a wrapped _getServer still yields working http and dgram servers`, { timeout: 30000 }, async (t) => {
    const c = startCluster(t, 'get-server-wrapped.js', { env: { NODE_CLUSTER_SCHED_POLICY: policy } });
    const ports = await c.waitFor('ready', { timeout: 10000 });
    assert.equal(ports.tcp[0], ports.tcp[1], 'both workers share one TCP port');
    assert.equal(ports.udp[0], ports.udp[1], 'both workers share one UDP port');
    assert.equal((await get(ports.tcp[0], { timeout: 5000 })).body, 'http via 2 wrapped calls');
    assert.equal(await udpRoundTrip(ports.udp[0], 'ping'), 'udp ping');
  });
}
