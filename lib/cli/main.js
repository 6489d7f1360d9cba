'use strict';
// `rcluster`: parse the command line, then either run the app as the primary
// of a cluster or talk to a running one over its control socket.
const path = require('path');
const { parseArgs } = require('./args');
const { UsageError } = require('../errors');
const { helpText, TOPICS } = require('./help');
const { primaryLog } = require('./logs');

async function main(argv) {
  const log = primaryLog();
  let parsed;
  try {
    parsed = parseArgs(argv);
    // A reader that went away (`rcluster status --watch | head -1`) ends a
    // command quietly, as it ends `cat`; the primary of a running app keeps
    // serving and drops what it cannot print.
    quietOnClosedOutput(parsed.command !== 'run' || parsed.help || parsed.version);
    if (parsed.version) {
      process.stdout.write(`${require('../../package.json').version}\n`);
      return 0;
    }
    if (parsed.command === 'help' || parsed.help) {
      const topic = parsed.command === 'help' ? topicOf(parsed.positional[0]) : parsed.command;
      if (topic !== undefined && !(topic in TOPICS)) throw new UsageError(`no help for ${JSON.stringify(topic)} (commands: ${Object.keys(TOPICS).join(', ')})`);
      process.stdout.write(helpText(topic));
      return 0;
    }
    if (parsed.command === 'run') return await run(parsed, log);
    return await require('./client').command(parsed, log);
  } catch (err) {
    if (parsed === undefined) quietOnClosedOutput(true);
    if (err instanceof UsageError) {
      log.error(err.message);
      return err.exitCode;
    }
    log.error(err.code ? `${err.message} (${err.code})` : err.message);
    return 1;
  }
}

async function run(parsed, log) {
  const { resolveRun } = require('./settings');
  const { app, primary, warnings } = await resolveRun(parsed);
  // Stamped as every later line of rcluster's (the log file joins them once
  // the Runner has opened it).
  log.configure({ stamp: require('./log_files').stamper(app) });
  for (const w of warnings) log.warn(w);
  const cluster = require('../..');
  if (cluster.isPrimary !== true || typeof cluster.stats !== 'function') {
    throw new Error('rcluster cannot run its native dispatcher here (see the RCLUSTER_FALLBACK warning)');
  }
  try {
    cluster.setupPrimary(primary);
  } catch (err) {
    throw new UsageError(err.message);
  }
  const { Runner } = require('./run');
  const { metricsText } = require('./metrics');
  const runner = new Runner(cluster, app, log);
  const { defineHidden } = require('../internal_messages');
  runner.metricsText = () => metricsText(runner);
  defineHidden(cluster, 'metrics', runner.metricsText);

  const done = new Promise((resolve) => {
    runner.onFinish = resolve;
  });
  const closers = [];
  // The control socket, then the HTTP endpoints: a failure to bind any of
  // them stops the start before a worker is forked.
  const { controlPathFor, realDir } = require('./control');
  const { SHUTDOWN_TIMEOUT_DEFAULT } = require('../primary/settings');
  const handlers = {
    status: () => runner.status(),
    reload: () => runner.reload('rcluster reload'),
    scale: ({ n }) => {
      // A bound on what one request can fork.
      if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SCALE) throw new UsageError(`scale needs a whole number from 1 to ${MAX_SCALE} (got ${JSON.stringify(n)?.slice(0, 40)})`);
      return runner.scale(n);
    },
    // What `rcluster ls` shows and how a command finds the app started in
    // its directory: cheap, no worker is asked.
    info: () => ({
      name: app.name,
      pid: process.pid,
      dir: realDir(primary.cwd ?? process.cwd()),
      script: app.script,
      instances: runner.instances,
      workers: runner.liveWorkers().length,
      uptime: process.uptime(),
      state: runner.state(),
    }),
    stop: () => {
      runner.stop('rcluster stop');
      // How long the client may have to wait for this process to be gone:
      // the drain delay, then the shutdown deadline.
      return { stopping: true, drainDelay: runner.drainDelayFor('rcluster stop'), shutdownTimeout: cluster.settings.shutdownTimeout ?? SHUTDOWN_TIMEOUT_DEFAULT };
    },
  };
  try {
    // By default named after the app, in a directory only this user can use
    // (lib/cli/control.js), where `rcluster status NAME` and `rcluster ls` look.
    if (!app.controlGiven) app.control = controlPathFor(app.name, { create: true });
    const control = await serveUnderFreeName(app, handlers, log);
    closers.push(control.close);
  } catch (err) {
    if (err.code === 'EADDRINUSE' && !app.controlGiven) throw await nameTaken(app, err);
    // The default place may be unusable (no writable temporary directory,
    // or one another user made first): the app still runs, without the
    // control commands. A --control PATH given and unusable stops the start.
    if (app.controlGiven || err.code === 'EADDRINUSE') throw err;
    log.warn(`no control socket (${err.code ?? 'error'}): ${err.message}; give --control PATH for rcluster status/reload/scale/stop`);
    app.control = null;
  }
  const { serveMetrics, serveHealth } = require('./http_endpoints');
  if (app.metrics) {
    const s = await serveMetrics(app.metrics, () => metricsText(runner));
    log.info(`metrics at http://${fmtAddr(s.address())}/metrics`);
    closers.push(() => s.close());
  }
  if (app.health) {
    const s = await serveHealth(app.health, () => runner.health());
    log.info(`health at http://${fmtAddr(s.address())}/health (/health/ready, /health/live)`);
    closers.push(() => s.close());
  }
  for (const signal of ['SIGHUP', 'SIGTTIN', 'SIGTTOU', 'SIGTERM', 'SIGINT']) {
    process.on(signal, () => runner.onSignal(signal));
  }
  if (app.watch) {
    const { watchPaths } = require('./watch');
    const watcher = watchPaths(app.watch, {
      delay: app.watchDelay,
      ignore: app.ignoreWatch,
      cwd: path.dirname(app.script),
      onChange: (files) => {
        const shown = files.slice(0, 3).map((f) => path.relative(process.cwd(), f) || f).join(', ');
        log.info(`changed: ${shown}${files.length > 3 ? `, +${files.length - 3} more` : ''}`);
        runner.reload('--watch').catch((err) => log.error(`reload failed: ${err.message}`));
      },
      onError: (err) => log.warn(err.message),
    });
    closers.push(() => watcher.close());
  }
  runner.start();
  log.info(`${app.name}: ${app.instances} workers (${path.relative(process.cwd(), app.script) || app.script})${app.control ? `, control socket ${app.control}` : ''}`);
  const code = await done;
  for (const close of closers) close();
  return code;
}

const MAX_SCALE = 4096;

// Names tried after a derived name that a running app has: NAME-2 ... NAME-9.
const MAX_NAME_SUFFIX = 9;

// The control socket under the app's name. A name the user chose is refused
// when another running app has it (a second `rcluster --name api` is a
// mistake); a name derived from the script (two projects' server.js) gives
// way, as PM2 lets two apps share a script's name: this one becomes NAME-2,
// NAME-3, ..., and says so.
async function serveUnderFreeName(app, handlers, log) {
  const { serveControl, controlPathFor } = require('./control');
  const base = app.name;
  for (let n = 2; ; n++) {
    try {
      const control = await serveControl(app.control, handlers);
      if (app.name !== base) log.info(`an app named ${JSON.stringify(base)} is already running: this one is ${JSON.stringify(app.name)} (give --name NAME to choose)`);
      return control;
    } catch (err) {
      if (err.code !== 'EADDRINUSE' || app.controlGiven || app.nameGiven || n > MAX_NAME_SUFFIX) throw err;
      app.name = `${base}-${n}`;
      app.control = controlPathFor(app.name, { create: true });
    }
  }
}

// The error for a second app of a name already running: who the first is.
async function nameTaken(app, err) {
  let first = '';
  try {
    const { result } = await require('./control').request(app.control, { cmd: 'info' }, 3000);
    if (result !== null && typeof result === 'object') {
      const { printable } = require('./status_view');
      first = ` (pid ${printable(result.pid, 20)}, started in ${printable(result.dir, 300)})`;
    }
  } catch {
    // An older primary, or one going away: the socket path says enough.
  }
  const { codedError } = require('../errors');
  return codedError(Error, 'EADDRINUSE', `an app named ${JSON.stringify(app.name)} is already running${first}, with control socket ${app.control}: give this one another name (--name NAME), or stop that one (rcluster stop ${app.name})`, { path: err.path });
}


// PM2's words for the help topics.
function topicOf(word) {
  if (word === 'list') return 'ls';
  if (word === 'monit') return 'status';
  if (word === 'delete') return 'stop';
  if (word === 'restart') return 'reload';
  if (word === 'start') return 'run';
  return word;
}

let quietInstalled = false;
// EPIPE (or another write error) on stdout or stderr: `exit` ends the
// process with 0 at once, as a reader that has seen enough wants; else what
// could not be written is dropped.
function quietOnClosedOutput(exit) {
  if (quietInstalled) return;
  quietInstalled = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
      if (exit) process.exit(0);
    });
  }
}

function fmtAddr(a) {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

module.exports = { main };
