'use strict';
// Brief warm-up before each measurement, done by the runner itself with
// node's http client rather than by the load tool: it is identical for wrk and
// autocannon, allows sub-second durations (wrk only takes whole seconds), and
// saves a load-tool start (about 0.7 s for autocannon) per measurement.
// Its only job is to get every worker's request path JIT-compiled and the
// connections flowing; its numbers are never reported.

const http = require('node:http');

const REQUEST_TIMEOUT_MS = 1000;

async function warmUp({ port, seconds, connections, churn }) {
  const agent = new http.Agent({ keepAlive: !churn, maxSockets: connections });
  const deadline = Date.now() + seconds * 1000;
  const stats = { requests: 0, errors: 0 };
  const loop = async () => {
    while (Date.now() < deadline) {
      try {
        await get(port, agent, churn);
        stats.requests++;
      } catch {
        stats.errors++; // e.g. a half-working server; the measurement will show it
        await new Promise((resolve) => setTimeout(resolve, 10)); // do not spin on ECONNREFUSED
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  return stats;
}

function get(port, agent, churn) {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port, path: '/', agent,
      headers: churn ? { Connection: 'close' } : {},
    }, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('warm-up request timed out')));
    req.on('error', reject);
  });
}

module.exports = { warmUp };
