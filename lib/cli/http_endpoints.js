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

/**
 * GET /health (or /): 200 while ready() (a worker ready on every listener),
 * 503 while starting, with none ready, or shutting down.
 */
function serveHealth(addr, ready) {
  const server = createServer((req, res) => {
    const url = req.url.split('?')[0];
    if (url !== '/health' && url !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /health\n');
      return;
    }
    const ok = ready();
    res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', connection: 'close' }).end(ok ? 'ok\n' : 'unavailable\n');
  });
  return listen(server, addr);
}

module.exports = { serveMetrics, serveHealth, MAX_CONNECTIONS };
