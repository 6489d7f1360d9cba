'use strict';
// --metrics and --health: small HTTP servers in the primary, apart from the
// app's ports (they are the primary's own, not shared with the workers).
//
// They run in the primary, whose descriptors the dispatcher and the workers'
// channels need: a scraper or health checker is one client making short
// requests, so anything beyond a few connections, or a connection idle or
// slow past a few seconds, is dropped (counted as `httpEndpoint` in
// cluster.stats().rejected). Node's own defaults (no cap, 60 s for headers,
// 300 s for a request, checked every 30 s) would let 1,100 idle connections
// take the primary's last descriptors.
const http = require('http');
const { reject } = require('../rejections');

// Most connections open at once per endpoint; past that Node closes each
// new one at once ('drop').
const MAX_CONNECTIONS = 64;
// A request's headers, and the whole request, must arrive within these.
const HEADERS_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10000;
// An idle keep-alive connection closes after this.
const KEEP_ALIVE_TIMEOUT_MS = 5000;
// How often Node checks the two timeouts above (its default is 30 s).
const CHECK_INTERVAL_MS = 1000;

function createServer(handler) {
  const server = http.createServer({
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: HEADERS_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
    maxHeaderSize: 8192,
  }, handler);
  server.maxConnections = MAX_CONNECTIONS;
  server.maxRequestsPerSocket = 100;
  // A connection that never sends a whole request head (headersTimeout
  // only covers one that started one): closed once idle this long.
  server.setTimeout(REQUEST_TIMEOUT_MS, (socket) => {
    reject('httpEndpoint', 'an idle connection to --health/--metrics');
    socket.destroy();
  });
  server.on('drop', () => reject('httpEndpoint', `more than ${MAX_CONNECTIONS} connections to --health/--metrics`));
  server.on('clientError', (err, socket) => {
    reject('httpEndpoint', () => `a malformed request to --health/--metrics (${err.code})`);
    socket.destroy();
  });
  return server;
}

function listen(server, { host, port }) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

/** GET /metrics: Prometheus text. */
function serveMetrics(addr, text) {
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' || req.url.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    try {
      const body = await text();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
    }
  });
  return listen(server, addr);
}

// How long a host stopping on SIGTERM or `rcluster stop` with --health keeps
// serving with /health at 503 before it drains (--drain-delay): a balancer
// only stops sending new connections once its checks have seen the 503. 5 s
// covers a Kubernetes endpoint update and checks every second or two with
// two or three failures to mark a server down, and leaves half of
// `docker stop`'s 10 s grace for the drain itself. HAProxy's own defaults
// (inter 2s, fall 3) take up to 6 s: docs/operations.md says how to match them.
const DRAIN_DELAY_DEFAULT = 5000;

// The health paths and which answer each gives. `/health` (and `/`) is
// readiness, as it always was: what a balancer's check reads.
const HEALTH_PATHS = new Map([
  ['/', 'ready'],
  ['/health', 'ready'],
  ['/health/ready', 'ready'],
  ['/health/live', 'live'],
]);

/**
 * /health/live: 200 while the primary runs (draining too: a liveness probe
 * must not kill a host that is draining), 503 once it has finished.
 * /health, /health/ready and /: 200 while ready (a worker ready on every
 * listener, not stopping), 503 while starting, with none ready on some
 * listener, or draining. Any method (HAProxy's plain `option httpchk` sends
 * OPTIONS); HEAD answers the same with no body.
 *
 * `state()`: `{ live, ready, draining, workers: { ready, total }, redis }`,
 * `redis` 'up' or 'down' with bus.redis, else null.
 *
 * The body is a word on its first line (`ok`, `unavailable`, `draining`,
 * `stopped`) and details below it; JSON with `?json` or `Accept:
 * application/json`.
 */
function serveHealth(addr, state) {
  const server = createServer((req, res) => {
    const query = req.url.indexOf('?');
    const pathname = query === -1 ? req.url : req.url.slice(0, query);
    const kind = HEALTH_PATHS.get(pathname);
    if (kind === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /health, /health/ready or /health/live\n');
      return;
    }
    let s;
    try {
      s = state();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' }).end(`error\n${err.message}\n`);
      return;
    }
    const ok = kind === 'live' ? s.live : s.ready;
    const status = kind === 'live' ? (s.live ? 'ok' : 'stopped') : (s.ready ? 'ok' : s.draining ? 'draining' : 'unavailable');
    const headers = { connection: 'close', 'cache-control': 'no-store' };
    let body;
    if (wantsJson(req, query === -1 ? '' : req.url.slice(query + 1))) {
      headers['content-type'] = 'application/json';
      body = `${JSON.stringify({
        status, live: s.live, ready: s.ready, draining: s.draining, workers: s.workers, ...(s.redis !== null && { redis: s.redis }),
      })}\n`;
    } else {
      headers['content-type'] = 'text/plain; charset=utf-8';
      body = `${status}\nworkers: ${s.workers.ready} of ${s.workers.total} ready\n${s.redis !== null ? `redis: ${s.redis}\n` : ''}`;
    }
    // HEAD: the same status and headers, no body (Node sends none).
    headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(ok ? 200 : 503, headers).end(body);
  });
  return listen(server, addr);
}

// `?json` (or json=1, format=json), or an Accept header naming JSON;
// a probe's `Accept: */*` gets text.
function wantsJson(req, query) {
  const params = new URLSearchParams(query);
  if (params.has('json') && params.get('json') !== '0' && params.get('json') !== 'false') return true;
  if (params.get('format') === 'json') return true;
  return /\bapplication\/json\b/i.test(req.headers.accept ?? '');
}

module.exports = { serveMetrics, serveHealth, MAX_CONNECTIONS, DRAIN_DELAY_DEFAULT };
