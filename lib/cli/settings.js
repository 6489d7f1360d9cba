'use strict';
// From what the command line and a config file say to what the primary does:
// the app's script and arguments, the number of workers, and rcluster's
// setupPrimary() settings, PM2's names mapped onto rcluster's.
const fs = require('fs');
const path = require('path');
const { readConfig, findConfig, looksLikeConfig } = require('./config');
const { maxInstances } = require('./cpus');
const { UsageError } = require('../errors');
const { defaultOf } = require('../primary/settings');
const { OPTIONS, INSTANCES_DEFAULT, INSTANCE_VAR_DEFAULT, WATCH_DELAY_DEFAULT } = require('./options');

const HOOK = path.join(__dirname, 'worker_hook.js');

/** What `rcluster [options] SCRIPT` runs: `{ app, primary, warnings }`. */
async function resolveRun(parsed, cwd = process.cwd()) {
  let configFile = parsed.configFile;
  let script = parsed.positional[0];
  if (script !== undefined && configFile === undefined && looksLikeConfig(script)) {
    configFile = script;
    script = undefined;
  }
  const file = findConfig(cwd, configFile);
  let fromFile = { options: {}, warnings: [] };
  if (file !== null) fromFile = await readConfig(file, { only: parsed.only, envName: parsed.envName });
  else if (parsed.only !== undefined) throw new UsageError('--only needs a config or ecosystem file (--config FILE)');
  const o = { ...fromFile.options, ...parsed.options };
  // A log file named on the command line is from the current directory
  // (a config file's, from its app's cwd: lib/cli/config.js).
  for (const name of ['log', 'outFile', 'errorFile']) {
    if (parsed.options[name] !== undefined) o[name] = path.resolve(cwd, parsed.options[name]);
  }
  // --log is both streams' file; --out-file and --error-file each take one
  // stream from it.
  const logs = { out: o.outFile ?? o.log ?? null, err: o.errorFile ?? o.log ?? null };
  if (script !== undefined) o.script = path.resolve(cwd, script);
  if (parsed.args.length > 0 || script !== undefined) o.args = parsed.args.length > 0 ? parsed.args : (script !== undefined ? [] : o.args);
  if (o.script === undefined) throw new UsageError('no script to run (rcluster [options] SCRIPT, or a config file naming one; see rcluster --help)');
  if (!fs.existsSync(o.script)) throw new UsageError(`script not found: ${o.script}`);
  o.cwd = o.cwd ?? cwd;

  const max = maxInstances();
  const raw = o.instances ?? INSTANCES_DEFAULT;
  const count = raw === 'max' ? max : raw < 0 ? Math.max(1, max + raw) : raw;
  if (count < 1) throw new UsageError(`instances must leave at least one worker (got ${raw})`);

  const instanceVar = o.instanceVar ?? INSTANCE_VAR_DEFAULT;
  let incrementBase;
  if (o.incrementVar !== undefined) {
    const base = (o.env ?? {})[o.incrementVar] ?? process.env[o.incrementVar];
    if (base === undefined || !/^\d+$/.test(String(base))) {
      throw new UsageError(`increment_var ${o.incrementVar} needs a numeric ${o.incrementVar} in env (got ${base === undefined ? 'none' : JSON.stringify(base)})`);
    }
    incrementBase = Number(base);
  }

  const primary = {
    exec: o.script,
    args: o.args ?? [],
    execArgv: [...(o.nodeArgs ?? []), '--require', HOOK],
    cwd: o.cwd,
    // Output through the primary only when it adds something to each line
    // or writes it to a file.
    silent: Boolean(o.prefix || o.time || o.logDateFormat !== undefined || logs.out !== null || logs.err !== null),
    // The restart policy is always on.
    restart: {},
  };
  // What the options table says each value becomes (lib/cli/options.js).
  for (const option of OPTIONS) {
    if (option.setting === undefined || o[option.name] === undefined) continue;
    for (const setting of option.setting) setAt(primary, setting, o[option.name]);
  }
  // PM2's backoff starts at exp_backoff_restart_delay and grows past the
  // usual ceiling if it must.
  if (o.expBackoffRestartDelay !== undefined) {
    primary.restart.maxDelay = Math.max(defaultOf('restart.maxDelay'), o.expBackoffRestartDelay);
  }

  const appDir = path.dirname(o.script);
  // The default control socket is named when the primary starts (lib/cli/control.js).
  const control = o.control !== undefined ? path.resolve(cwd, o.control) : null;
  const app = {
    name: o.name ?? path.basename(o.script).replace(/\.[cm]?js$/, ''),
    // A name chosen (--name, a config's `name`) is the app's; one derived
    // from the script gives way to a running app of the same name.
    nameGiven: o.name !== undefined,
    script: o.script,
    dir: appDir,
    instances: count,
    env: o.env ?? {},
    instanceVar,
    incrementVar: o.incrementVar,
    incrementBase,
    control,
    controlGiven: o.control !== undefined,
    metrics: o.metrics,
    health: o.health,
    drainDelay: o.drainDelay,
    watch: o.watch === undefined || o.watch === false ? false : (o.watch.length === 0 ? [o.cwd] : o.watch.map((p) => path.resolve(o.cwd, p))),
    watchDelay: o.watchDelay ?? WATCH_DELAY_DEFAULT,
    ignoreWatch: o.ignoreWatch ?? [],
    prefix: Boolean(o.prefix),
    time: Boolean(o.time),
    logDateFormat: o.logDateFormat,
    logs,
    configFile: file,
  };
  return { app, primary, warnings: fromFile.warnings };
}

// `path`: 'shutdownTimeout' or 'recycle.cron'; the object on the way is made.
function setAt(target, path, value) {
  const keys = path.split('.');
  const last = keys.pop();
  for (const key of keys) target = target[key] ??= {};
  target[last] = value;
}

/** The env a worker of slot `slot` is forked with. */
function slotEnv(app, slot) {
  const env = { ...app.env, [app.instanceVar]: String(slot) };
  if (app.incrementVar !== undefined) env[app.incrementVar] = String(app.incrementBase + slot);
  return env;
}

module.exports = { resolveRun, slotEnv, HOOK };
