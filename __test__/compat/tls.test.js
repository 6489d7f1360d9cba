'use strict';
// https and tls servers in workers, and TLS session resumption across workers:
// as node:cluster does, the primary gives every worker the first worker's
// session ticket keys (tls.Server#_getServerData), so a ticket issued by one
// worker is accepted by another.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const tls = require('node:tls');
const { startCluster } = require('../helpers/run-cluster');
const { getFreePort, sequential } = require('../helpers/http-client');

const N = 2;

// A self-signed test certificate for "localhost" (EC P-256, valid for a
// century), committed so that the test needs no openssl binary. Made with:
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//     -keyout localhost-key.pem -out localhost-cert.pem -subj /CN=localhost \
//     -days 36500 -addext subjectAltName=DNS:localhost
function makeCertificate() {
  const dir = path.join(__dirname, '..', 'fixtures', 'tls');
  const keyFile = path.join(dir, 'localhost-key.pem');
  const certFile = path.join(dir, 'localhost-cert.pem');
  return { keyFile, certFile, ca: fs.readFileSync(certFile) };
}

function httpsGet(port, ca, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', servername: 'localhost', port, ca, agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no https response within ${timeout} ms`)));
    req.on('error', reject);
  });
}

// One TLS connection: the worker's pid, whether the session was resumed, and
// the session (ticket) the server gave.
function tlsHello(port, { ca, maxVersion, session, timeout = 5000 }) {
  return new Promise((resolve, reject) => {
    let data = '';
    let issued = null;
    const socket = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca, maxVersion, session });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS answer within ${timeout} ms`)), timeout);
    socket.setEncoding('utf8');
    socket.on('session', (s) => { issued = s; });
    socket.on('data', (d) => { data += d; });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve({ pid: Number(data), reused: socket.isSessionReused(), session: issued });
      socket.end();
    });
  });
}

test('https and tls servers in workers', { timeout: 60000 }, async (t) => {
  const { keyFile, certFile, ca } = makeCertificate();
  const [port, tlsPort] = [await getFreePort(), await getFreePort()];
  const c = startCluster(t, 'tls-servers.js', {
    env: { WORKERS: String(N), PORT: String(port), TLS_PORT: String(tlsPort), KEY_FILE: keyFile, CERT_FILE: certFile },
  });
  const ready = await c.waitFor('ready', { timeout: 15000 });
  const pids = ready.workers.map((w) => w.pid);

  await t.test('https requests are served by every worker', async () => {
    const seen = new Set();
    await sequential(10, async () => {
      const res = await httpsGet(port, ca);
      assert.equal(res.status, 200);
      assert.ok(pids.includes(Number(res.body)), `answered by a worker: ${res.body}`);
      seen.add(Number(res.body));
    });
    assert.equal(seen.size, N, 'every worker answered');
  });

  for (const maxVersion of ['TLSv1.2', 'TLSv1.3']) {
    await t.test(`${maxVersion}: a session ticket from one worker resumes on another`, async () => {
      const first = await tlsHello(tlsPort, { ca, maxVersion });
      assert.ok(pids.includes(first.pid), `answered by a worker: ${first.pid}`);
      assert.equal(first.reused, false);
      assert.ok(first.session, 'the server issued a session ticket');
      // Round-robin passes the next connections to the other worker; each
      // one must accept the ticket the first worker issued.
      const resumed = [];
      for (let i = 0; i < 2 * N && new Set(resumed.map((r) => r.pid)).size < N; i++) {
        resumed.push(await tlsHello(tlsPort, { ca, maxVersion, session: first.session }));
      }
      const others = resumed.filter((r) => r.pid !== first.pid);
      assert.ok(others.length > 0, `a worker other than ${first.pid} answered: ${JSON.stringify(resumed.map((r) => r.pid))}`);
      for (const r of resumed) {
        assert.ok(pids.includes(r.pid));
        assert.equal(r.reused, true, `worker pid ${r.pid} resumed the session of worker pid ${first.pid}`);
      }
    });
  }
});
