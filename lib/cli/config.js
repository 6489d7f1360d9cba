'use strict';
// Settings from a file: rcluster.config.js (.cjs, .mjs, .json) in the current
// directory, or the file given with --config, which may be a PM2 ecosystem
// file ({ apps: [...] }: its first app, or the one --only names). Keys are
// rcluster's names (camelCase) or PM2's (snake_case); a key that is neither is
// warned about, as is a PM2 key rcluster has no use for.
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { BY_NAME, BY_PM2, PM2_UNSUPPORTED, flagOf } = require('./options');
const { UsageError } = require('../errors');

// PM2 keys that are another's second name.
const PM2_ALIASES = { __proto__: null, combine_logs: 'merge_logs' };

// Settings holding a path, resolved from the app's cwd as PM2 does.
const PATH_SETTINGS = ['log', 'outFile', 'errorFile'];

const DEFAULT_FILES = ['rcluster.config.js', 'rcluster.config.cjs', 'rcluster.config.mjs', 'rcluster.config.json'];

async function loadFile(file) {
  if (!fs.existsSync(file)) throw new UsageError(`config file not found: ${file}`);
  try {
    if (file.endsWith('.json')) return JSON.parse(fs.readFileSync(file, 'utf8'));
    const mod = await import(pathToFileURL(file).href);
    let value = mod.default !== undefined ? mod.default : mod;
    if (typeof value === 'function') value = await value();
    return value;
  } catch (err) {
    throw new UsageError(`cannot read config file ${file}: ${String(err.message).split('\n')[0]}`);
  }
}

/** The config file to use: the one named, else rcluster.config.* in `cwd`, else null. */
function findConfig(cwd, named) {
  if (named !== undefined) return path.resolve(cwd, named);
  for (const name of DEFAULT_FILES) {
    const file = path.join(cwd, name);
    if (fs.existsSync(file)) return file;
  }
  return null;
}

// Whether a script argument is really an ecosystem or rcluster config file,
// as `pm2 start ecosystem.config.js` takes one in place of a script.
function looksLikeConfig(script) {
  const base = path.basename(script);
  return /^ecosystem.*\.(c?js|mjs|json)$/.test(base) || /\.config\.(c?js|mjs|json)$/.test(base);
}

/**
 * `{ options, warnings, file }`: the settings the file gives, checked, by
 * rcluster name; relative paths resolved from the file's directory.
 */
async function readConfig(file, { only, envName } = {}) {
  let value = await loadFile(file);
  const where = path.basename(file);
  const warnings = [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`${where} must export an object (got ${Array.isArray(value) ? 'an array' : typeof value})`);
  }
  let label = where;
  if ('apps' in value) {
    const apps = Array.isArray(value.apps) ? value.apps : [value.apps];
    if (apps.length === 0) throw new UsageError(`${where}: apps is empty`);
    let index = 0;
    if (only !== undefined) {
      index = apps.findIndex((a) => a && a.name === only);
      if (index < 0) throw new UsageError(`${where}: no app named ${JSON.stringify(only)} (apps: ${apps.map((a) => a && a.name).join(', ')})`);
    } else if (apps.length > 1) {
      warnings.push(`${where} has ${apps.length} apps; running the first, ${JSON.stringify(apps[0].name)} (choose with --only NAME)`);
    }
    for (const key of Object.keys(value)) {
      if (key !== 'apps' && key !== 'deploy') warnings.push(`${where}: unknown key ${JSON.stringify(key)} (ignored)`);
    }
    value = apps[index];
    label = `${where} apps[${index}]`;
    if (value === null || typeof value !== 'object') throw new UsageError(`${label} must be an object`);
  } else if (only !== undefined) {
    throw new UsageError(`--only needs an ecosystem file with apps (${where} has none)`);
  }
  const options = {};
  let extraEnv = null;
  for (const [key, raw] of Object.entries(value)) {
    const option = BY_NAME.get(key) ?? BY_PM2.get(PM2_ALIASES[key] ?? key);
    if (option !== undefined) {
      options[option.name] = option.check(raw, `${label}: ${key}`);
    } else if (/^env_/.test(key)) {
      // PM2's per-environment variables, chosen with --env NAME.
      if (envName !== undefined && key === `env_${envName}`) extraEnv = BY_NAME.get('env').check(raw, `${label}: ${key}`);
    } else if (key === 'exec_mode') {
      // rcluster is PM2's cluster mode; its fork mode is one process, no cluster.
      if (raw !== 'cluster' && raw !== 'cluster_mode') warnings.push(`${label}: exec_mode ${JSON.stringify(raw)}: rcluster always runs the app in cluster mode`);
    } else if (PM2_UNSUPPORTED.has(key)) {
      warnings.push(`${label}: ${key} is a PM2 setting rcluster does not use (ignored)`);
    } else {
      const hint = BY_NAME.has(key.replace(/_([a-z])/g, (_, c) => c.toUpperCase())) ? ` (did you mean --${flagOf(BY_NAME.get(key.replace(/_([a-z])/g, (_, c) => c.toUpperCase())))}?)` : '';
      warnings.push(`${label}: unknown key ${JSON.stringify(key)} (ignored)${hint}`);
    }
  }
  if (extraEnv !== null) options.env = { ...options.env, ...extraEnv };
  else if (envName !== undefined) warnings.push(`${label}: no env_${envName} for --env ${envName}`);
  const dir = path.dirname(file);
  options.cwd = options.cwd === undefined ? dir : path.resolve(dir, options.cwd);
  if (options.script !== undefined) options.script = path.resolve(options.cwd, options.script);
  for (const name of PATH_SETTINGS) {
    if (options[name] !== undefined) options[name] = path.resolve(options.cwd, options[name]);
  }
  // PM2's per-instance files (out-0.log, out-1.log...) are not made: one
  // file per stream holds every worker's lines, each tagged with its worker.
  if (options.mergeLogs === false) {
    warnings.push(`${label}: merge_logs false: rcluster writes one file per stream for all workers, each line tagged with its worker [wN]`);
  }
  return { options, warnings, file };
}

module.exports = { readConfig, findConfig, looksLikeConfig };
