'use strict';
// `rcluster status|reload|scale|stop`: one request to the running primary's
// control socket, its answer printed for people or, with --json, as JSON.
const path = require('path');
const { request } = require('./control');
const { renderStatus } = require('./status_view');
const { UsageError } = require('./errors');

async function command(parsed, log) {
  const file = path.resolve(parsed.control ?? '.rcluster.sock');
  const json = Boolean(parsed.json);
  const out = (value, text) => process.stdout.write(json ? `${JSON.stringify(value)}\n` : text);
  const extra = parsed.positional.slice(parsed.command === 'scale' ? 1 : 0);
  if (extra.length > 0) throw new UsageError(`unexpected argument for '${parsed.command}': ${extra[0]}`);
  if (parsed.watch && parsed.command !== 'status') throw new UsageError('--watch is for status only');
  const ask = (message, timeout) => request(file, message, timeout).catch((err) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      throw Object.assign(new Error(`no rcluster running with control socket ${file} (start one, or give --control PATH)`), { code: err.code });
    }
    throw err;
  });
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
      out(result, `${result.instances} workers (${result.forked} forked, ${result.retired} retired)\n`);
      return 0;
    }
    case 'stop': {
      const result = await ask({ cmd: 'stop' });
      await waitGone(file);
      out(result, 'stopped\n');
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${parsed.command}`);
  }
}

// The primary removes its socket as it exits.
async function waitGone(file) {
  const fs = require('fs');
  while (fs.existsSync(file)) await new Promise((r) => setTimeout(r, 100));
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
    if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
    else if (tty) process.stdout.write(`\x1b[H\x1b[2J${text}\n(refreshing every ${interval / 1000} s; Ctrl-C to quit)`);
    else process.stdout.write(`${text}\n`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

module.exports = { command };
