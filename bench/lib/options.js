'use strict';
// Command-line options of bench/run.js, and the configurations and workloads
// they select.

const fs = require('node:fs');
const path = require('node:path');

// Each config is one way of running bench/server.js; only the env differs.
const CONFIGS = {
  'node-rr': { label: 'node:cluster RR', env: { BENCH_IMPL: 'node', BENCH_POLICY: 'rr' } },
  'node-none': { label: 'node:cluster NONE', env: { BENCH_IMPL: 'node', BENCH_POLICY: 'none' } },
  'rcluster-rr': { label: 'rcluster RR', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'rr' } },
  'rcluster-none': { label: 'rcluster NONE', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'none' } },
  single: { label: 'single process', env: { BENCH_IMPL: 'single' }, single: true },
};

// churn: every request carries `Connection: close`, so each response is
// followed by a new TCP connection, i.e. the accept path is exercised.
// blocked: churn while the primary's JS spins 200 ms of every 250 ms.
const WORKLOADS = {
  keepalive: { churn: false, serverEnv: {} },
  churn: { churn: true, serverEnv: {} },
  blocked: { churn: true, serverEnv: { BENCH_BLOCK_PRIMARY: '200/250' }, needsPrimary: true },
};

const DEFAULTS = {
  rounds: 5,
  duration: 5,
  warmup: 0.5,
  workers: 2,
  connections: 50,
  threads: 1,
  handler: 'hello',
  workloads: Object.keys(WORKLOADS),
  configs: Object.keys(CONFIGS),
  tool: null, // wrk when it is on PATH, autocannon otherwise
  out: path.join(__dirname, '..', 'results'),
};

const HELP = `Usage: node bench/run.js [options]

  --rounds N         rounds; each round runs every config once per workload (default ${DEFAULTS.rounds})
  --duration S       seconds per measurement (default ${DEFAULTS.duration})
  --warmup S         seconds of warm-up traffic (same keep-alive/close mode, from the runner's
                     own http client) before each measurement (default ${DEFAULTS.warmup})
  --quick            smoke run: --rounds 2 --duration 3 (explicit flags still win)
  --workers N        cluster workers (default ${DEFAULTS.workers})
  --connections N    concurrent client connections (default ${DEFAULTS.connections})
  --threads N        wrk threads (default ${DEFAULTS.threads}; autocannon is single-threaded)
  --handler H        hello | cpu  (cpu: 1e5-iteration loop per request) (default ${DEFAULTS.handler})
  --workloads LIST   comma list of ${Object.keys(WORKLOADS).join(',')} (default: all)
  --configs LIST     comma list of ${Object.keys(CONFIGS).join(',')} (default: all)
  --tool T           autocannon | wrk (default: wrk if on PATH, else autocannon)
  --out DIR          where latest.{md,json,svg} go (default bench/results)
  -h, --help         this text
`;

function parseArgs(argv) {
  const opts = { ...DEFAULTS };
  const explicit = new Set();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: HELP };
    if (arg === '--quick') { opts.quick = true; continue; }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? (eq > 0 ? arg.slice(2, eq) : arg.slice(2)) : null;
    if (!name || !(name in DEFAULTS)) throw new Error(`unknown option ${arg}\n\n${HELP}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`option --${name} needs a value`);
    opts[name] = convert(name, value);
    explicit.add(name);
  }
  if (opts.quick) {
    if (!explicit.has('rounds')) opts.rounds = 2;
    if (!explicit.has('duration')) opts.duration = 3;
  }
  if (!opts.tool) opts.tool = onPath('wrk') ? 'wrk' : 'autocannon';
  if (opts.tool === 'wrk' && !onPath('wrk')) throw new Error('--tool wrk given but wrk is not on PATH');
  if (opts.tool === 'wrk' && !Number.isInteger(opts.duration)) throw new Error('wrk only takes whole seconds: use an integer --duration');
  return { opts };
}

function convert(name, value) {
  switch (name) {
    case 'rounds': case 'workers': case 'connections': case 'threads':
      return number(value, name, (n) => Number.isInteger(n) && n >= 1);
    case 'duration': return number(value, name, (n) => n >= 1);
    case 'warmup': return number(value, name, (n) => n >= 0);
    case 'workloads': return list(value, WORKLOADS, name);
    case 'configs': return list(value, CONFIGS, name);
    case 'tool': return oneOf(value, ['autocannon', 'wrk'], name);
    case 'handler': return oneOf(value, ['hello', 'cpu'], name);
    case 'out': return path.resolve(value);
    default: throw new Error(`unhandled option --${name}`);
  }
}

function number(raw, name, ok) {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new Error(`bad value for --${name}: ${raw}`);
  return n;
}

function list(value, known, name) {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!(item in known)) throw new Error(`unknown ${name} entry "${item}"; known: ${Object.keys(known).join(', ')}`);
  }
  if (items.length === 0) throw new Error(`--${name} is empty`);
  return items;
}

function oneOf(value, allowed, name) {
  if (!allowed.includes(value)) throw new Error(`--${name} must be one of ${allowed.join(', ')}`);
  return value;
}

function onPath(command) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

module.exports = { CONFIGS, WORKLOADS, parseArgs };
