'use strict';
// The HTTP client of haproxy-netns.test.js, run inside a network namespace
// (`ip netns exec NS node netns-client.js`), where the test's own process
// cannot open sockets. It takes JSON commands on stdin, one a line, and
// answers each on stdout as one JSON line with the command's `id`:
//
//   { op: 'get', url, method, proxy: { src, dst }, timeout }
//       one request on a new connection; with `proxy`, a PROXY v1 header
//       first (as the balancer would send), to reach a host directly
//   { op: 'load', url, rate, timeout }
//       starts an open-loop load: `rate` GETs a second, sent on schedule
//       whether or not earlier ones have answered, on keep-alive connections
//   { op: 'phase', name }   requests sent from now on count under `name`
//   { op: 'inflight' }      how many requests are sent and not yet answered
//   { op: 'stop' }          stops the load, waits for every request to end,
//                           answers with the counts per phase
//
// It exits when its stdin closes (the test ended, or was killed).
const http = require('http');
const net = require('net');
const readline = require('readline');

function reply(id, value) {
  process.stdout.write(`${JSON.stringify({ id, ...value })}\n`);
}

// One request over its own connection: `{ status, body }` or `{ error }`.
function getOnce({ url, method = 'GET', proxy, timeout = 5000 }) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const options = { method, host: u.hostname, port: Number(u.port), path: u.pathname + u.search, agent: false, timeout };
    if (proxy) {
      // Without an agent, so that http uses this connection.
      delete options.agent;
      options.createConnection = () => {
        const socket = net.connect(Number(u.port), u.hostname);
        socket.write(`PROXY TCP4 ${proxy.src} ${proxy.dst} 40000 ${u.port}\r\n`);
        return socket;
      };
    }
    const req = http.request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (err) => resolve({ error: err.code || err.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => resolve({ error: err.code || err.message }));
    req.end();
  });
}

// The open-loop load and what it saw, per phase.
const load = {
  running: false,
  phase: 'start',
  outstanding: 0,
  phases: new Map(),
  drained: null,
};

function phaseStats(name) {
  let s = load.phases.get(name);
  if (s === undefined) {
    s = { requests: 0, ok: 0, failed: 0, failures: {}, hosts: {}, remoteAddresses: {} };
    load.phases.set(name, s);
  }
  return s;
}

function count(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

function startLoad({ url, rate, timeout = 10000 }) {
  const u = new URL(url);
  // Enough connections that the load never waits for one at this rate.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  load.running = true;
  const started = performance.now();
  let sent = 0;
  const tick = () => {
    if (!load.running) return;
    const due = Math.floor(((performance.now() - started) * rate) / 1000);
    for (; sent < due; sent++) fire();
    setTimeout(tick, 5);
  };
  const fire = () => {
    const s = phaseStats(load.phase);
    s.requests++;
    load.outstanding++;
    let done = false;
    const end = (failure, answer) => {
      if (done) return;
      done = true;
      load.outstanding--;
      if (failure === null) {
        s.ok++;
        count(s.hosts, answer.host);
        count(s.remoteAddresses, answer.remoteAddress);
      } else {
        s.failed++;
        count(s.failures, failure);
      }
      if (load.outstanding === 0 && load.drained !== null) load.drained();
    };
    const req = http.get({ host: u.hostname, port: Number(u.port), path: u.pathname, agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return end(`HTTP ${res.statusCode}`);
        try {
          end(null, JSON.parse(body));
        } catch {
          end('bad body');
        }
      });
      res.on('error', (err) => end(err.code || err.message));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err) => end(err.code || err.message));
  };
  tick();
  load.agent = agent;
}

async function stopLoad() {
  load.running = false;
  if (load.outstanding > 0) await new Promise((resolve) => { load.drained = resolve; });
  load.agent?.destroy();
  return Object.fromEntries(load.phases);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  const { id, op } = cmd;
  if (op === 'get') reply(id, await getOnce(cmd));
  else if (op === 'load') {
    startLoad(cmd);
    reply(id, { started: true });
  } else if (op === 'phase') {
    load.phase = cmd.name;
    reply(id, { phase: cmd.name });
  } else if (op === 'inflight') reply(id, { inflight: load.outstanding });
  else if (op === 'stop') reply(id, { phases: await stopLoad() });
  else reply(id, { error: `unknown op ${op}` });
});
rl.on('close', () => process.exit(0));
