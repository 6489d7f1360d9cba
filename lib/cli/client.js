'use strict';
// The commands for running apps: `rcluster status|reload|scale|stop|logs
// [NAME]` send one request to the app's control socket and print its answer
// for people or, with --json, as JSON; `rcluster ls` asks every control
// socket of this user's. The app is found by name, from any directory
// (resolveApp). lib/cli/control.js makes sure the primary runs as this user
// (or root) before a byte is sent; what it answers is checked and printed
// escaped (lib/cli/status_view.js) all the same.
const fs = require('fs');
const path = require('path');
const { request, controlPathFor, nameOfSocket, listControlSockets, controlDir, realDir } = require('./control');
const { renderStatus, safeJson, printable, cell, fmtDuration } = require('./status_view');
const { describeReloadFailure } = require('./reload_result');
const { UsageError, codedError } = require('../errors');

// How long `rcluster stop` waits beyond the primary's own shutdown deadline
// for it to be gone: the SIGKILL of late workers, the agent, the exit.
const STOP_GRACE_MS = 30000;
const { SHUTDOWN_TIMEOUT_DEFAULT } = require('../primary/settings');

function badReply(what) {
  return codedError(Error, 'ERR_RCLUSTER_BAD_REPLY', `not a ${what} reply from the primary`);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v) => Number.isSafeInteger(v) && v >= 0;

async function command(parsed, log) {
  if (parsed.watch && parsed.command !== 'status') throw new UsageError('--watch is for status only');
  if (parsed.command === 'ls') {
    if (parsed.positional.length > 0) throw new UsageError(`unexpected argument for 'ls': ${parsed.positional[0]}`);
    return listApps(Boolean(parsed.json));
  }
  // `scale N` or PM2's `scale NAME N`: the count is the last word.
  const words = [...parsed.positional];
  const wanted = parsed.command === 'scale' ? words.pop() : undefined;
  if (words.length > 1) throw new UsageError(`unexpected argument for '${parsed.word ?? parsed.command}': ${words[1]}`);
  if (parsed.command === 'scale' && (wanted === undefined || !/^\d+$/.test(wanted) || Number(wanted) < 1)) {
    throw new UsageError(`scale needs a whole number >= 1 (got ${wanted === undefined ? 'nothing' : JSON.stringify(wanted)})`);
  }
  if (parsed.command === 'logs' && parsed.lines !== undefined && !/^\d+$/.test(parsed.lines)) {
    throw new UsageError(`--lines must be a whole number >= 0 (got ${JSON.stringify(parsed.lines)})`);
  }
  if (words[0] === ALL && parsed.control === undefined && (parsed.command === 'reload' || parsed.command === 'stop')) {
    return onEveryApp(parsed, log, wanted);
  }
  const { file, name } = await resolveApp(words[0], parsed.control);
  return onApp(parsed, log, { file, name, wanted });
}

// PM2's `reload all`, `stop all`: every running app of the user, one after
// the other, each line of output after the app's name; the exit code is
// the worst of them.
const ALL = 'all';
async function onEveryApp(parsed, log, wanted) {
  const apps = (await discover()).filter((a) => a.info !== undefined);
  if (apps.length === 0) throw codedError(Error, 'ENOENT', 'no rcluster app is running for this user');
  let code = 0;
  for (const { file, info } of apps) {
    const name = str(info.name) ?? nameOfSocket(file);
    const shown = printable(name, 64);
    const prefixed = {
      info: (m) => log.info(`${shown}: ${m}`), warn: (m) => log.warn(`${shown}: ${m}`), error: (m) => log.error(`${shown}: ${m}`),
    };
    try {
      code = Math.max(code, await onApp(parsed, prefixed, { file, name, wanted, prefix: `${shown}: ` }));
    } catch (err) {
      prefixed.error(err.code ? `${err.message} (${err.code})` : err.message);
      code = Math.max(code, err instanceof UsageError ? err.exitCode : 1);
    }
  }
  return code;
}

// One command for the app whose control socket is `file`; `prefix` goes
// before each line printed for people.
async function onApp(parsed, log, { file, name, wanted, prefix = '' }) {
  const json = Boolean(parsed.json);
  const out = (value, text) => process.stdout.write(json ? `${safeJson(value)}\n` : `${prefix}${text}`);
  const explain = (err) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      throw codedError(Error, err.code, `no rcluster running with control socket ${file} (start one, or give --control PATH)`);
    }
    throw err;
  };
  const ask = (message, timeout) => request(file, message, timeout).then(({ result }) => result, explain);
  switch (parsed.command) {
    case 'status':
      if (parsed.watch) return watchStatus(ask, parsed, Boolean(parsed.json));
    {
      const status = await ask({ cmd: 'status' });
      out(status, renderStatus(status));
      return 0;
    }
    case 'reload': {
      const result = await ask({ cmd: 'reload' }, 10 * 60 * 1000);
      if (!isObject(result)) throw badReply('reload');
      const failure = reloadFailure(result);
      if (failure === null) {
        const n = Array.isArray(result.replaced) ? result.replaced.length : null;
        out(result, n === null ? 'reloaded\n' : `reloaded: ${n} worker${n === 1 ? '' : 's'} replaced\n`);
        return 0;
      }
      if (json) out(result);
      log.error(`reload failed: ${failure}`);
      return 1;
    }
    case 'scale': {
      const result = await ask({ cmd: 'scale', n: Number(wanted) });
      if (!isObject(result) || !isCount(result.instances) || !isCount(result.forked) || !isCount(result.retired)) throw badReply('scale');
      const { instances, forked, retired } = result;
      out({ instances, forked, retired }, `${instances} workers (${forked} forked, ${retired} retired)\n`);
      return 0;
    }
    case 'stop': {
      const { result, peer } = await request(file, { cmd: 'stop' }).catch(explain);
      if (!isObject(result) || result.stopping !== true) throw badReply('stop');
      const drain = isCount(result.shutdownTimeout) ? result.shutdownTimeout : SHUTDOWN_TIMEOUT_DEFAULT;
      // The primary serves on for its drain delay (--drain-delay) before it drains.
      const delay = isCount(result.drainDelay) ? result.drainDelay : 0;
      await waitGone(file, peer.pid, Math.min(delay + drain + STOP_GRACE_MS, 2 ** 31 - 1));
      out({ stopping: true }, 'stopped\n');
      return 0;
    }
    case 'logs':
      return showLogs(await ask({ cmd: 'status' }), name, parsed);
    default:
      throw new UsageError(`unknown command ${parsed.command}`);
  }
}

/**
 * Why a reload result (cluster.reload()'s, through the control socket)
 * failed, in words; null when it succeeded. `{ ok: false, reason, old,
 * replacement, code, signal, timeout, uptime, rolledBack }`.
 */
function reloadFailure(result) {
  return isObject(result) && result.ok === false ? describeReloadFailure(result) : null;
}

// The control sockets of this user's apps that a primary answers on, with
// what it says of itself: `[{ file, info }]` or `[{ file, error }]` for one
// that answered wrongly. A socket nobody answers on (a killed primary's) is
// left out.
async function discover() {
  const files = listControlSockets();
  const found = await Promise.all(files.map(async (file) => {
    try {
      return { file, info: await appInfo(file) };
    } catch (err) {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return null;
      return { file, error: err };
    }
  }));
  return found.filter((f) => f !== null);
}

// What the primary at `file` says of itself: `{ name, pid, dir, script,
// instances, workers, uptime, state }` (from `status` for a primary
// without `info`).
async function appInfo(file) {
  let info;
  try {
    ({ result: info } = await request(file, { cmd: 'info' }, 5000));
  } catch (err) {
    if (err.code !== 'ERR_RCLUSTER_UNKNOWN_COMMAND') throw err;
    const { result: s } = await request(file, { cmd: 'status' }, 5000);
    if (!isObject(s)) throw badReply('status');
    info = {
      name: s.name, pid: s.pid, dir: typeof s.script === 'string' ? path.dirname(s.script) : null, script: s.script,
      instances: s.instances, workers: Array.isArray(s.workers) ? s.workers.length : null, uptime: s.uptime, state: s.state,
    };
  }
  if (!isObject(info)) throw badReply('info');
  return info;
}

const str = (v) => (typeof v === 'string' ? v : null);

/**
 * The control socket of the app a command is for: `--control PATH`; else
 * the app named NAME; else the app started in the current directory; else
 * the only running one. Several and none of them here: a usage error that
 * names them.
 */
async function resolveApp(name, control) {
  if (control !== undefined) {
    if (name !== undefined) throw new UsageError('give the app by NAME or by --control PATH, not both');
    return { file: path.resolve(control), name: nameOfSocket(control) };
  }
  if (name !== undefined) {
    const file = controlPathFor(name);
    if (fs.existsSync(file)) return { file, name };
    const apps = (await discover()).filter((a) => a.info !== undefined);
    const named = apps.find((a) => a.info.name === name);
    if (named !== undefined) return { file: named.file, name };
    throw codedError(Error, 'ENOENT', `no app named ${JSON.stringify(name)} is running${apps.length > 0 ? ` (running: ${names(apps)})` : ''}`);
  }
  const apps = (await discover()).filter((a) => a.info !== undefined);
  if (apps.length === 0) {
    throw codedError(Error, 'ENOENT', `no rcluster app is running for this user (sockets in ${controlDirOrWhy()}); start one with rcluster SCRIPT`);
  }
  const here = realDir(process.cwd());
  const local = apps.filter((a) => [str(a.info.dir), str(a.info.script) && path.dirname(a.info.script)].some((d) => d && realDir(d) === here));
  if (local.length === 1) return { file: local[0].file, name: str(local[0].info.name) ?? nameOfSocket(local[0].file) };
  if (local.length === 0 && apps.length === 1) return { file: apps[0].file, name: str(apps[0].info.name) ?? nameOfSocket(apps[0].file) };
  const among = local.length > 1 ? local : apps;
  throw new UsageError(`${among.length} apps are running${local.length > 1 ? ' from this directory' : ''}: ${names(among)}; name one (rcluster COMMAND NAME)`);
}

function names(apps) {
  return apps.map((a) => printable(str(a.info.name) ?? nameOfSocket(a.file), 64)).join(', ');
}

function controlDirOrWhy() {
  try {
    return controlDir();
  } catch (err) {
    return `none: ${err.message}`;
  }
}


// `rcluster ls`: every running app of this user.
async function listApps(json) {
  const apps = await discover();
  if (json) {
    process.stdout.write(`${safeJson(apps.map((a) => (a.info !== undefined ? { ...a.info, control: a.file } :
      { control: a.file, error: { code: a.error.code ?? null, message: a.error.message } })))}\n`);
    return 0;
  }
  if (apps.length === 0) {
    process.stdout.write('no rcluster app is running\n');
    return 0;
  }
  const rows = apps.map(({ file, info, error }) => (info !== undefined ? [
    cell(info.name), cell(info.pid), `${cell(info.workers)}/${cell(info.instances)}`, fmtDuration(info.uptime),
    cell(info.dir, 200), file,
  ] : [nameOfSocket(file), '-', '-', '-', printable(`(${error.message})`, 200), file]));
  const head = ['NAME', 'PID', 'WORKERS', 'UPTIME', 'DIRECTORY', 'CONTROL SOCKET'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}\n`;
  process.stdout.write([head, ...rows].map(line).join(''));
  return 0;
}



const LOG_LINES_DEFAULT = 15;
const FOLLOW_POLL_MS = 250;

// `rcluster logs`: the last lines of the app's log files (the paths its
// status gives), then with --follow what is added, across rotations.
async function showLogs(status, name, parsed) {
  const lines = parsed.lines === undefined ? LOG_LINES_DEFAULT : Math.min(Number(parsed.lines), Number.MAX_SAFE_INTEGER);
  if (!isObject(status)) throw badReply('status');
  const appName = printable(str(status.name) ?? name, 64);
  const logs = isObject(status.logs) ? status.logs : {};
  const valid = (p) => (typeof p === 'string' && path.isAbsolute(p) ? p : null);
  const files = [...new Set([valid(logs.out), valid(logs.err)].filter((f) => f !== null))];
  if (files.length === 0) {
    throw codedError(Error, 'ERR_RCLUSTER_NO_LOG_FILES', `${appName} writes no log files: its output goes where its terminal or service manager sends it (start it with --log FILE)`);
  }
  const headed = files.length > 1;
  const header = (file) => `==> ${printable(file, 500)}${file === logs.err ? ' (stderr)' : ' (stdout)'} <==\n`;
  const tails = [];
  // Whether what was printed last ends its line: a header starts on a line of its own.
  let ended = true;
  const print = (bytes) => {
    if (bytes.length === 0) return;
    process.stdout.write(bytes);
    ended = bytes[bytes.length - 1] === 0x0a;
  };
  for (const [i, file] of files.entries()) {
    if (headed) process.stdout.write(`${ended ? '' : '\n'}${i > 0 ? '\n' : ''}${header(file)}`);
    ended = true;
    const t = openTail(file);
    if (t.fd !== null) {
      print(lastLines(t.fd, t.size, lines));
      t.position = t.size;
    } else {
      process.stderr.write(`rcluster: warning: cannot read ${printable(file, 500)}: ${t.error.message}\n`);
    }
    tails.push(t);
  }
  if (!parsed.follow) return 0;
  let shown = tails[tails.length - 1];
  for (;;) {
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
    for (const t of tails) {
      const added = follow(t);
      if (added.length === 0) continue;
      if (headed && shown !== t) process.stdout.write(`${ended ? '' : '\n'}\n${header(t.file)}`);
      shown = t;
      print(added);
    }
  }
}

// An open log file, read from `position`.
function openTail(file) {
  const t = { file, fd: null, dev: null, ino: null, size: 0, position: 0, error: null };
  try {
    t.fd = fs.openSync(file, 'r');
    const st = fs.fstatSync(t.fd);
    Object.assign(t, { dev: st.dev, ino: st.ino, size: st.size });
  } catch (err) {
    t.error = err;
  }
  return t;
}

// The last `n` lines of the first `size` bytes of `fd` (read backwards in
// chunks: a big log file is not read whole).
function lastLines(fd, size, n) {
  if (n === 0 || size === 0) return Buffer.alloc(0);
  const CHUNK = 64 * 1024;
  const chunks = [];
  let start = size;
  let newlines = 0;
  // A last line without its newline counts as a line.
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  const want = last[0] === 0x0a ? n + 1 : n;
  while (start > 0 && newlines < want) {
    const len = Math.min(CHUNK, start);
    start -= len;
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, start);
    chunks.unshift(buf);
    for (const b of buf) if (b === 0x0a) newlines++;
  }
  const all = Buffer.concat(chunks);
  let cut = all.length;
  let seen = 0;
  if (newlines >= want) {
    for (let i = all.length - 1; i >= 0; i--) {
      if (all[i] === 0x0a && ++seen === want) {
        cut = i + 1;
        break;
      }
    }
    return all.subarray(cut);
  }
  return all;
}

// What was added to a followed file since the last look. A file replaced
// at its path (a rotation by rename) is read to its end, then the new one
// from its start; a file truncated in place (copytruncate) from its start.
function follow(t) {
  const parts = [];
  const readOn = () => {
    if (t.fd === null) return;
    const st = fs.fstatSync(t.fd);
    if (st.size < t.position) t.position = 0;
    while (t.position < st.size) {
      const buf = Buffer.alloc(Math.min(st.size - t.position, 1024 * 1024));
      const got = fs.readSync(t.fd, buf, 0, buf.length, t.position);
      if (got === 0) break;
      t.position += got;
      parts.push(buf.subarray(0, got));
    }
  };
  readOn();
  let st = null;
  try {
    st = fs.statSync(t.file);
  } catch {
    // Between a rotation's rename and the new file: looked at again later.
  }
  if (st !== null && (t.fd === null || st.ino !== t.ino || st.dev !== t.dev)) {
    if (t.fd !== null) fs.closeSync(t.fd);
    const next = openTail(t.file);
    Object.assign(t, { fd: next.fd, dev: next.dev, ino: next.ino, position: 0, error: next.error });
    readOn();
  }
  return Buffer.concat(parts);
}

// The primary removes its socket as it exits (one killed meanwhile leaves
// it: its pid, known from the connection, is watched too). Bounded by the
// primary's shutdown deadline and a grace: a stop never waits for ever.
async function waitGone(file, pid, timeout) {
  const deadline = Date.now() + timeout;
  while (fs.existsSync(file) && alive(pid)) {
    if (Date.now() > deadline) {
      throw codedError(Error, 'ETIMEDOUT', `the primary (pid ${pid}) accepted the stop but is still running ${Math.round(timeout / 1000)} s later (its drain delay, its shutdown deadline and ${STOP_GRACE_MS / 1000} s more); its control socket ${file} is still there`);
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

module.exports = { command, reloadFailure, lastLines };
