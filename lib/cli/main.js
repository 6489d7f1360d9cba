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
    if (parsed.version) {
      process.stdout.write(`${require('../../package.json').version}\n`);
      return 0;
    }
    if (parsed.command === 'help' || parsed.help) {
      const topic = parsed.command === 'help' ? parsed.positional[0] : parsed.command;
      if (topic !== undefined && !(topic in TOPICS)) throw new UsageError(`no help for ${JSON.stringify(topic)} (commands: run, status, reload, scale, stop)`);
      process.stdout.write(helpText(topic));
      return 0;
    }
    if (parsed.command === 'run') return await run(parsed, log);
    return await require('./client').command(parsed, log);
  } catch (err) {
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
  const { serveControl, defaultControlPath } = require('./control');
  const { SHUTDOWN_TIMEOUT_DEFAULT } = require('../primary/settings');
  const handlers = {
    status: () => runner.status(),
    reload: () => runner.reload('rcluster reload'),
    scale: ({ n }) => {
      // A bound on what one request can fork.
      if (!Number.isSafeInteger(n) || n < 1 || n > MAX_SCALE) throw new UsageError(`scale needs a whole number from 1 to ${MAX_SCALE} (got ${JSON.stringify(n)?.slice(0, 40)})`);
      return runner.scale(n);
    },
    stop: () => {
      runner.stop('rcluster stop');
      // How long the client may have to wait for this process to be gone.
      return { stopping: true, shutdownTimeout: cluster.settings.shutdownTimeout ?? SHUTDOWN_TIMEOUT_DEFAULT };
    },
  };
  try {
    // By default in a directory only this user can use (lib/cli/control.js).
    if (!app.controlGiven) app.control = defaultControlPath(app.dir, { create: true });
    const control = await serveControl(app.control, handlers);
    closers.push(control.close);
  } catch (err) {
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
    const s = await serveHealth(app.health, () => runner.ready());
    log.info(`health at http://${fmtAddr(s.address())}/health`);
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

function fmtAddr(a) {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

module.exports = { main };
