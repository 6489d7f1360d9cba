'use strict';
// Spawns a cluster fixture (a real cluster program in __test__/fixtures/) as a
// detached process group, parses the newline-delimited JSON its primary prints
// on stdout, lets a test wait for events with a timeout and send commands on
// the primary's stdin. The whole process group (primary + workers) is killed
// when the test ends, and again when this process exits, so nothing leaks.

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const IMPL = process.env.RCLUSTER_TEST_IMPL || '';
const ON_NODE_CLUSTER = IMPL === 'node:cluster' || IMPL === 'cluster';
// Set RCLUSTER_TEST_FORCE=1 to run the [rcluster-only] tests even under
// node:cluster (used to check that they fail where node lacks the guarantee).
const FORCE = process.env.RCLUSTER_TEST_FORCE === '1';

/** Value for a test's `skip` option: a reason under node:cluster, else false. */
function rclusterOnly(why) {
  if (ON_NODE_CLUSTER && !FORCE) {
    return `rcluster-only guarantee (${why}); RCLUSTER_TEST_IMPL=${IMPL}`;
  }
  return false;
}

const live = new Set();
process.on('exit', () => {
  for (const cp of live) cp._killGroupSync();
});

function matcher(match) {
  if (typeof match === 'function') return match;
  if (typeof match === 'string') return (e) => e.event === match;
  return (e) => Object.entries(match).every(([k, v]) => e[k] === v);
}

function describeMatch(match) {
  if (typeof match === 'function') return match.name || String(match).slice(0, 120);
  return JSON.stringify(match);
}

class ClusterProcess {
  // `prefix`: a command the fixture runs under, e.g. ['prlimit', '--nofile=256:256', '--'].
  // `nodeArgs`: node's own options, before the fixture (e.g. ['-r', 'rcluster/register']).
  // `extraFds`: descriptors the primary inherits as its fds 3, 4, ... (as systemd passes sockets).
  constructor(fixture, { env = {}, args = [], prefix = [], nodeArgs = [], extraFds = [], echo = process.env.RCLUSTER_TEST_VERBOSE === '1' } = {}) {
    this.fixture = fixture;
    this.events = [];
    this.logs = [];
    this.stderr = '';
    this.exited = false;
    this.exitCode = undefined;
    this.exitSignal = undefined;
    this._waiters = new Set();
    this._seq = 0;
    this.spawnEnv = { ...env, RCLUSTER_TEST_HARNESS: '1' };
    const argv = [process.execPath, ...nodeArgs, path.join(FIXTURES, fixture), ...args];
    this.child = spawn(prefix.length > 0 ? prefix[0] : argv[0], [...prefix.slice(1), ...argv].slice(prefix.length > 0 ? 0 : 1), {
      env: { ...process.env, ...this.spawnEnv },
      stdio: ['pipe', 'pipe', 'pipe', ...extraFds],
      detached: true,
    });
    this.pid = this.child.pid;
    live.add(this);

    this.child.stdin.on('error', () => {});
    const rl = readline.createInterface({ input: this.child.stdout });
    rl.on('line', (line) => this._onLine(line));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      if (echo) process.stderr.write(d);
      this.stderr = (this.stderr + d).slice(-16000);
    });
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        // Let already-written stdout lines be parsed before waiters give up.
        setTimeout(() => {
          this.exited = true;
          this._check();
          resolve({ code, signal });
        }, 100);
      });
      this.child.on('error', (err) => {
        this.stderr += `\n[spawn error] ${err.stack}`;
        this.exited = true;
        this._check();
        resolve({ code: null, signal: null, error: err });
      });
    });
  }

  _onLine(line) {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      this.logs.push(line);
      return;
    }
    if (!ev || typeof ev !== 'object' || typeof ev.event !== 'string') {
      this.logs.push(line);
      return;
    }
    Object.defineProperty(ev, '_index', { value: this.events.length });
    Object.defineProperty(ev, '_at', { value: performance.now() });
    this.events.push(ev);
    this._check();
  }

  _check() {
    for (const w of this._waiters) w.check();
  }

  /** Diagnostic text appended to failure messages. */
  diag() {
    const tail = this.events.slice(-15).map((e) => JSON.stringify(e)).join('\n  ');
    return `\n[fixture ${this.fixture} pid ${this.pid}` +
      (this.exited ? ` exited code=${this.exitCode} signal=${this.exitSignal}` : '') +
      `]\n last events:\n  ${tail}\n stderr tail:\n${this.stderr.slice(-3000)}` +
      (this.logs.length ? `\n stdout (non-JSON) tail:\n${this.logs.slice(-10).join('\n')}` : '');
  }

  /** All events seen so far that match. */
  all(match) {
    return this.events.filter(matcher(match));
  }

  has(match) {
    return this.events.some(matcher(match));
  }

  /**
   * Waits until `count` events matching `match` (event name, subset object or
   * predicate) have been seen at index >= `from`. Resolves with the last one
   * (or with the array when count > 1).
   */
  waitFor(match, { timeout = 5000, from = 0, count = 1 } = {}) {
    const pred = matcher(match);
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const found = [];
          for (let i = from; i < this.events.length; i++) {
            if (pred(this.events[i])) {
              found.push(this.events[i]);
              if (found.length >= count) {
                done();
                resolve(count === 1 ? found[0] : found);
                return;
              }
            }
          }
          if (this.exited) {
            done();
            reject(new Error(`fixture exited while waiting for ${count} x ${describeMatch(match)}` +
              ` (saw ${found.length})${this.diag()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeout} ms waiting for ${count} x ${describeMatch(match)}${this.diag()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(w);
      };
      this._waiters.add(w);
      w.check();
    });
  }

  /** Writes one JSON command line on the primary's stdin. */
  send(cmd) {
    this.child.stdin.write(JSON.stringify(cmd) + '\n');
  }

  /**
   * Sends {cmd, id, ...args} and waits for the primary's
   * {"event":"reply","id":id,...}. Rejects if the reply carries `error`.
   */
  async call(cmd, args = {}, { timeout = 5000 } = {}) {
    const id = ++this._seq;
    const from = this.events.length;
    this.send({ ...args, cmd, id });
    const reply = await this.waitFor((e) => e.event === 'reply' && e.id === id, { timeout, from });
    if (reply.error) throw new Error(`command ${cmd} failed in fixture: ${reply.error}${this.diag()}`);
    return reply;
  }

  _killGroupSync() {
    if (this._groupKilled) return;
    this._groupKilled = true;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* group already gone */
    }
  }

  /** Kills the whole process group and waits (bounded) for the primary to exit. */
  async kill() {
    this._killGroupSync();
    live.delete(this);
    await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 3000).unref())]);
  }
}

/**
 * Starts a fixture and registers its teardown on the test context `t`
 * (node:test TestContext), so it is killed whether the test passes or fails.
 */
function startCluster(t, fixture, opts) {
  const cp = new ClusterProcess(fixture, opts);
  t.after(() => cp.kill());
  return cp;
}

module.exports = { startCluster, ClusterProcess, rclusterOnly, IMPL, ON_NODE_CLUSTER, FIXTURES };
