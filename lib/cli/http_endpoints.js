'use strict';
// --metrics and --health: small HTTP servers in the primary, apart from the
// app's ports (they are the primary's own, not shared with the workers).
const http = require('http');

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
  const server = http.createServer(async (req, res) => {
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
  const server = http.createServer((req, res) => {
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

module.exports = { serveMetrics, serveHealth };
