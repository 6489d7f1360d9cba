'use strict';
// Runs `bin/rcluster.js` as a user would, as its own process group (primary
// and workers), collecting its output; the group is killed when the test ends.
const { spawn, execFile } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { getFreePort: freePort } = require('../helpers/http-client');

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'rcluster.js');
const FIXTURES = path.join(ROOT, '__test__', 'fixtures', 'cli');
const live = new Set();

// Control sockets are named after the app in the user's runtime directory:
// each test process gets its own (0700), so that two test runs of the same
// fixture app (the same name) never meet, and no test sees the user's apps.
// A test that gives XDG_RUNTIME_DIR (or TMPDIR) itself chooses.
const RUNTIME_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-run-'));
fs.chmodSync(RUNTIME_DIR, 0o700);
process.on('exit', () => fs.rmSync(RUNTIME_DIR, { recursive: true, force: true }));
const baseEnv = () => ({ ...process.env, XDG_RUNTIME_DIR: RUNTIME_DIR });
process.on('exit', () => {
  for (const p of live) p.killGroup('SIGKILL');
});

class Cli {
  constructor(args, { cwd = FIXTURES, env = {}, uid } = {}) {
    this.out = '';
    this.err = '';
    this.child = spawn(process.execPath, [BIN, ...args], {
      cwd, env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true, uid,
    });
    live.add(this);
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.waiters = new Set();
    const on = () => {
      for (const w of [...this.waiters]) w();
    };
    this.child.stdout.on('data', (d) => {
      this.out += d;
      on();
    });
    this.child.stderr.on('data', (d) => {
      this.err += d;
      if (process.env.RCLUSTER_TEST_VERBOSE === '1') process.stderr.write(d);
      on();
    });
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      live.delete(this);
      resolve({ code, signal });
      on();
    }));
  }

  /** Resolves when `re` matches stdout + stderr (at least `count` times). */
  waitFor(re, { timeout = 15000, count = 1 } = {}) {
    return new Promise((resolve, reject) => {
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
      const check = () => {
        const all = this.out + this.err;
        const m = [...all.matchAll(g)];
        if (m.length >= count) {
          cleanup();
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re} x${count}\nstdout:\n${this.out}\nstderr:\n${this.err}`));
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  signal(sig) {
    process.kill(this.child.pid, sig);
  }

  killGroup(sig = 'SIGKILL') {
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      // Gone.
    }
  }

  async exited(timeout = 20000) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`rcluster did not exit\nstdout:\n${this.out}\nstderr:\n${this.err}`)), timeout);
    });
    try {
      return await Promise.race([this.exit, t]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Runs a short command (`rcluster status --json`, ...) to completion. */
function cli(args, { cwd = FIXTURES, env = {}, uid, timeout = 30000 } = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...baseEnv(), ...env }, uid, timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** A fresh temporary directory, removed when the process exits. */
function tmpdir(prefix = 'rcluster-cli-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}


/** GET on loopback with a hard deadline: `{ status, body }`, or throws. */
function get(port, urlPath = '/', { timeout = 5000, agent = false } = {}) {
  const http = require('node:http');
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

// Whether this rcluster has cluster.reload (zero-downtime operations).
let reloadKnown;
function hasReload() {
  if (reloadKnown === undefined) {
    const r = require('node:child_process').spawnSync(process.execPath, ['-e', "process.stdout.write(typeof require('.').reload)"], { cwd: ROOT, encoding: 'utf8' });
    reloadKnown = r.stdout === 'function';
  }
  return reloadKnown;
}
const NEEDS_RELOAD = 'needs cluster.reload (zero-downtime operations)';

module.exports = { Cli, cli, tmpdir, freePort, get, hasReload, NEEDS_RELOAD, FIXTURES, ROOT, BIN, RUNTIME_DIR };

/** `rcluster status --json` until `ok(status)`, or throws after `timeout`. */
async function statusUntil(control, ok, { timeout = 15000, what = 'status' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    const r = await cli(['status', '--json', '--control', control]);
    if (r.code === 0) {
      last = JSON.parse(r.stdout);
      if (ok(last)) return last;
    } else {
      last = r.stderr;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r2) => setTimeout(r2, 150));
  }
}
module.exports.statusUntil = statusUntil;

// Requests on `lanes` lanes, each on a new connection, until stop(); stop()
// resolves with how many were answered 200 and how many failed (an error or
// another status).
function churnLoad(port, lanes = 4) {
  let running = true;
  let answered = 0;
  let failures = 0;
  const lane = async () => {
    while (running) {
      try {
        if ((await get(port, '/')).status === 200) answered++;
        else failures++;
      } catch {
        failures++;
      }
    }
  };
  const done = Promise.all(Array.from({ length: lanes }, lane));
  return {
    async stop() {
      running = false;
      await done;
      return { answered, failures };
    },
  };
}
module.exports.churnLoad = churnLoad;
