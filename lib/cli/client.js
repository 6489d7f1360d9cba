'use strict';
// `rcluster status|reload|scale|stop`: one request to the running primary's
// control socket, its answer printed for people or, with --json, as JSON.
// lib/cli/control.js makes sure the primary runs as this user (or root)
// before a byte is sent; what it answers is checked and printed escaped
// (lib/cli/status_view.js) all the same.
const fs = require('fs');
const path = require('path');
const { request, defaultControlPath } = require('./control');
const { renderStatus, safeJson } = require('./status_view');
const { UsageError, codedError } = require('../errors');

// How long `rcluster stop` waits beyond the primary's own shutdown deadline
// for it to be gone: the SIGKILL of late workers, the agent, the exit.
const STOP_GRACE_MS = 30000;
const { SHUTDOWN_TIMEOUT_DEFAULT } = require('../primary/settings');

function badReply(what) {
  return codedError(Error, 'ERR_RCLUSTER_BAD_REPLY', `not a ${what} reply from the primary`);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const count = (v) => Number.isSafeInteger(v) && v >= 0;

async function command(parsed, log) {
  // The app of the current directory, as `rcluster app.js` run there names
  // its socket, unless --control says where.
  const file = parsed.control !== undefined ? path.resolve(parsed.control) : defaultControlPath(process.cwd());
  const json = Boolean(parsed.json);
  const out = (value, text) => process.stdout.write(json ? `${safeJson(value)}\n` : text);
  const extra = parsed.positional.slice(parsed.command === 'scale' ? 1 : 0);
  if (extra.length > 0) throw new UsageError(`unexpected argument for '${parsed.command}': ${extra[0]}`);
  if (parsed.watch && parsed.command !== 'status') throw new UsageError('--watch is for status only');
  const explain = (err) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      throw codedError(Error, err.code, `no rcluster running with control socket ${file} (start one, or give --control PATH)`);
    }
    throw err;
  };
  const ask = (message, timeout) => request(file, message, timeout).then(({ result }) => result, explain);
  switch (parsed.command) {
    case 'status':
      if (parsed.watch) return watchStatus(ask, parsed, json);
    {
      const status = await ask({ cmd: 'status' });
      out(status, renderStatus(status));
      return 0;
    }
    case 'reload': {
      const result = await ask({ cmd: 'reload' }, 10 * 60 * 1000);
      out(result, 'reloaded\n');
      return 0;
    }
    case 'scale': {
      const raw = parsed.positional[0];
      if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) < 1) {
        throw new UsageError(`scale needs a whole number >= 1 (got ${raw === undefined ? 'nothing' : JSON.stringify(raw)})`);
      }
      const result = await ask({ cmd: 'scale', n: Number(raw) });
      if (!isObject(result) || !count(result.instances) || !count(result.forked) || !count(result.retired)) throw badReply('scale');
      const { instances, forked, retired } = result;
      out({ instances, forked, retired }, `${instances} workers (${forked} forked, ${retired} retired)\n`);
      return 0;
    }
    case 'stop': {
      const { result, peer } = await request(file, { cmd: 'stop' }).catch(explain);
      if (!isObject(result) || result.stopping !== true) throw badReply('stop');
      const drain = count(result.shutdownTimeout) ? result.shutdownTimeout : SHUTDOWN_TIMEOUT_DEFAULT;
      await waitGone(file, peer.pid, Math.min(drain + STOP_GRACE_MS, 2 ** 31 - 1));
      out({ stopping: true }, 'stopped\n');
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${parsed.command}`);
  }
}

// The primary removes its socket as it exits (one killed meanwhile leaves
// it: its pid, known from the connection, is watched too). Bounded by the
// primary's shutdown deadline and a grace: a stop never waits for ever.
async function waitGone(file, pid, timeout) {
  const deadline = Date.now() + timeout;
  while (fs.existsSync(file) && alive(pid)) {
    if (Date.now() > deadline) {
      throw codedError(Error, 'ETIMEDOUT', `the primary (pid ${pid}) accepted the stop but is still running ${Math.round(timeout / 1000)} s later (its shutdown deadline and ${STOP_GRACE_MS / 1000} s more); its control socket ${file} is still there`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

async function watchStatus(ask, parsed, json) {
  const interval = parsed.interval === undefined ? 1000 : Number(parsed.interval);
  if (!Number.isInteger(interval) || interval < 100) throw new UsageError(`--interval must be a whole number of ms >= 100 (got ${JSON.stringify(parsed.interval)})`);
  const tty = process.stdout.isTTY && !json;
  if (tty) process.stdout.write('\x1b[?25l');
  const restore = () => {
    if (tty) process.stdout.write('\x1b[?25h\n');
  };
  process.once('SIGINT', () => {
    restore();
    process.exit(0);
  });
  for (;;) {
    let text;
    let value;
    try {
      value = await ask({ cmd: 'status' });
      text = renderStatus(value);
    } catch (err) {
      if (!tty) throw err;
      text = `${err.message}\n`;
    }
    if (json) process.stdout.write(`${safeJson(value)}\n`);
    else if (tty) process.stdout.write(`\x1b[H\x1b[2J${text}\n(refreshing every ${interval / 1000} s; Ctrl-C to quit)`);
    else process.stdout.write(`${text}\n`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

module.exports = { command };
