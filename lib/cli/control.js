'use strict';
// The control socket: `rcluster status|reload|scale|stop` talk to the running
// primary over a unix socket that only its owner can open (mode 0600, created
// under a umask that never lets anyone else in, even for a moment). One JSON
// request per connection, one JSON reply, both newline-terminated.
const fs = require('fs');
const net = require('net');

async function probe(file) {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Serves `handlers[cmd](request)` (each returns a value or a promise) on
 * `file`. Throws when another primary answers there.
 */
async function serveControl(file, handlers) {
  if (fs.existsSync(file)) {
    if (await probe(file)) {
      const err = new Error(`another rcluster is running with control socket ${file} (use --control PATH)`);
      err.code = 'EADDRINUSE';
      throw err;
    }
    fs.unlinkSync(file); // A stale socket from a primary that was killed.
  }
  const server = net.createServer((socket) => {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', async (chunk) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let reply;
      try {
        const request = JSON.parse(buf.slice(0, nl));
        const handler = Object.hasOwn(handlers, request.cmd) ? handlers[request.cmd] : null;
        if (handler === null) throw Object.assign(new Error(`unknown command ${JSON.stringify(request.cmd)}`), { code: 'ERR_RCLUSTER_UNKNOWN_COMMAND' });
        reply = { ok: true, result: await handler(request) };
      } catch (err) {
        reply = { ok: false, error: { message: err.message, code: err.code } };
      }
      socket.end(`${JSON.stringify(reply)}\n`);
    });
  });
  const umask = process.umask(0o177);
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, resolve);
    });
  } finally {
    process.umask(umask);
  }
  fs.chmodSync(file, 0o600);
  server.unref();
  const close = () => {
    server.close();
    try {
      if (fs.existsSync(file)) fs.unlinkSync(file);
    } catch {
      // Gone already.
    }
  };
  process.once('exit', close);
  return { server, close };
}

/** Sends one request to the primary at `file`; resolves to its result. */
function request(file, message, timeout = 15000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(file);
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no answer from ${file} within ${timeout / 1000} s`), { code: 'ETIMEDOUT' }));
    }, timeout);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(message)}\n`));
    socket.on('data', (d) => {
      buf += d;
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const reply = JSON.parse(buf);
        if (reply.ok) resolve(reply.result);
        else reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
      } catch {
        reject(Object.assign(new Error(`bad answer from ${file}`), { code: 'ERR_RCLUSTER_BAD_REPLY' }));
      }
    });
  });
}

module.exports = { serveControl, request };
