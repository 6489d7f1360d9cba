'use strict';
// Minimal loopback HTTP/TCP client helpers for the tests. Every operation has
// a hard deadline so a broken implementation fails instead of hanging.

const http = require('node:http');
const net = require('node:net');

const HOST = '127.0.0.1';

/**
 * One HTTP request on its own fresh connection (agent: false, Connection:
 * close). Resolves {status, headers, body, ms}; rejects on error or when no
 * complete response arrived within `timeout` ms (err.code = 'ETESTTIMEOUT').
 */
function get(port, { path = '/', method = 'GET', headers = {}, timeout = 5000, host = HOST } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let settled = false;
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(value);
    };
    const req = http.request({
      host, port, path, method, agent: false,
      headers: { Connection: 'close', ...headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => finish(null, { status: res.statusCode, headers: res.headers, body, ms: Date.now() - started }));
      res.on('error', (e) => finish(e));
    });
    const timer = setTimeout(() => {
      const err = new Error(`no response from ${host}:${port}${path} within ${timeout} ms`);
      err.code = 'ETESTTIMEOUT';
      finish(err);
      req.destroy();
    }, timeout);
    req.on('error', (e) => finish(e));
    req.end();
  });
}

/** Runs fn(i) for i in [0, n) one after another; returns the results. */
async function sequential(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}

/** Runs fn(i) for i in [0, n) with at most `concurrency` in flight. */
async function pool(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  return out;
}

/** Wraps a promise so it resolves to {ok, value} / {ok:false, error}. */
function settle(p) {
  return p.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}

/** A port that was free a moment ago (bound on the dual-stack wildcard). */
function getFreePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when `port` can be bound by a fresh server here (then frees it). */
function tryListen(port, host) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', (err) => resolve({ ok: false, error: err }));
    s.listen(host ? { port, host } : { port }, () => s.close(() => resolve({ ok: true })));
  });
}

/**
 * A raw TCP connection with helpers to read until a predicate holds and to
 * wait for the peer closing, each with a deadline.
 */
function connect(port, { host = HOST, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ETESTTIMEOUT' }));
    }, timeout);
    sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      resolve(new RawConn(sock));
    });
  });
}

class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.data = '';
    this.ended = false;
    this.closed = false;
    this.error = null;
    this._waiters = new Set();
    sock.setEncoding('utf8');
    sock.on('data', (d) => { this.data += d; this._check(); });
    sock.on('end', () => { this.ended = true; this.endedAt = Date.now(); this._check(); });
    sock.on('error', (e) => { this.error = e; this._check(); });
    sock.on('close', () => { this.closed = true; this.closedAt = this.closedAt || Date.now(); this._check(); });
  }

  _check() { for (const w of this._waiters) w(); }

  write(s) { this.sock.write(s); }

  /** Waits until pred(this) is true; rejects after timeout. */
  until(pred, timeout = 5000, what = 'condition') {
    return new Promise((resolve, reject) => {
      const w = () => {
        if (pred(this)) { done(); resolve(this); }
      };
      const timer = setTimeout(() => { done(); reject(Object.assign(new Error(`timed out after ${timeout} ms waiting for ${what}; got ${JSON.stringify(this.data.slice(-300))}`), { code: 'ETESTTIMEOUT' })); }, timeout);
      const done = () => { clearTimeout(timer); this._waiters.delete(w); };
      this._waiters.add(w);
      w();
    });
  }

  /** Waits for one complete HTTP/1.1 response (Content-Length bodies) past `from` chars. */
  async response(from = 0, timeout = 5000) {
    await this.until((c) => parseResponse(c.data.slice(from)) !== null, timeout, 'an HTTP response');
    return parseResponse(this.data.slice(from));
  }

  /** Waits for the peer to close (end or error/close). */
  waitClosed(timeout = 5000) {
    return this.until((c) => c.ended || c.closed || c.error, timeout, 'the server to close the connection');
  }

  destroy() { this.sock.destroy(); }
}

function parseResponse(text) {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = text.slice(0, headEnd).split('\r\n');
  const status = Number(head[0].split(' ')[1]);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] || 0);
  const body = text.slice(headEnd + 4, headEnd + 4 + len);
  if (body.length < len) return null;
  return { status, headers, body, length: headEnd + 4 + len };
}

module.exports = { get, sequential, pool, settle, getFreePort, tryListen, connect, HOST };
