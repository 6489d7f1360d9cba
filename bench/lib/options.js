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
  'rcluster-lc': { label: 'rcluster LC', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'lc' } },
  'rcluster-reuseport': { label: 'rcluster REUSEPORT', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'reuseport' } },
  // Opt-in: every load tool connects from 127.0.0.1, one client address, so
  // sticky routing rightly sends all of it to one worker.
  'rcluster-sticky': { label: 'rcluster STICKY', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'sticky' }, optIn: true },
  single: { label: 'single process', env: { BENCH_IMPL: 'single' }, single: true },
  // Opt-in, for measurements of SCHED_REUSEPORT's deferred accept and of the
  // dispatcher's pacing (docs/DESIGN.md §8 and §13, both on by default): the
  // same build with it off.
  'rcluster-reuseport-undeferred': {
    label: 'rcluster REUSEPORT, accept not deferred',
    env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'reuseport', BENCH_DEFER_ACCEPT: '0' },
    optIn: true,
  },
  // Opt-in: the same configs with another build of rcluster (a checkout of
  // another commit, built, at BENCH_BASE), for before/after comparisons
  // interleaved in one run.
  ...(process.env.BENCH_BASE ? {
    'base-rr': { label: 'rcluster RR, BENCH_BASE build', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'rr', BENCH_RCLUSTER_PATH: process.env.BENCH_BASE }, optIn: true },
    'base-lc': { label: 'rcluster LC, BENCH_BASE build', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'lc', BENCH_RCLUSTER_PATH: process.env.BENCH_BASE }, optIn: true },
  } : {}),
  // Opt-in: two native dispatcher threads (routing.dispatcherThreads,
  // docs/DESIGN.md §16) instead of the default one on this machine.
  'rcluster-rr-2t': { label: 'rcluster RR, 2 dispatcher threads', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'rr', RCLUSTER_DISPATCHER_THREADS: '2' }, optIn: true },
  'rcluster-lc-2t': { label: 'rcluster LC, 2 dispatcher threads', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'lc', RCLUSTER_DISPATCHER_THREADS: '2' }, optIn: true },
  'rcluster-rr-unpaced': { label: 'rcluster RR, unpaced', env: { BENCH_IMPL: 'rcluster', BENCH_POLICY: 'rr', RCLUSTER_BENCH_PACE_ABOVE: '0' }, optIn: true },
};

// churn: every request carries `Connection: close`, so each response is
// followed by a new TCP connection, i.e. the accept path is exercised.
// blocked: churn while the primary's JS spins 200 ms of every 250 ms.
// demo, demo-100: the classic cluster article's benchmark, `autocannon -c 1000
// -p 10` against workers that spin an empty 1e5 loop per request. A workload
// that sets connections / pipelining / handler / tool fixes them: those are
// what the workload is, so --connections, --handler and --tool do not change
// them. optIn: long, so only run when named in --workloads.
// mixed: churn where 10% of requests take ~100 ms of CPU and the rest ~1 ms
// (lib/mixed-client.js, its own load generator); its latency columns are the
// fast requests' (what a policy that deals to a busy worker makes wait).
// `configs`: the only configs a workload runs for.
const WORKLOADS = {
  keepalive: { churn: false, serverEnv: {} },
  churn: { churn: true, serverEnv: {} },
  blocked: { churn: true, serverEnv: { BENCH_BLOCK_PRIMARY: '200/250' }, needsPrimary: true },
  demo: { churn: false, serverEnv: {}, handler: 'cpu', connections: 1000, pipelining: 10, tool: 'autocannon', optIn: true },
  'demo-100': { churn: false, serverEnv: {}, handler: 'cpu', connections: 100, pipelining: 10, tool: 'autocannon', optIn: true },
  // dispatch: churn against rcluster RR and node:cluster RR only, for the
  // dispatcher's cost per connection (bench/dispatch.js runs it at 2, 16 and
  // 64 workers: npm run bench:dispatch).
  dispatch: { churn: true, serverEnv: {}, configs: ['node-rr', 'rcluster-rr', 'rcluster-rr-2t'], optIn: true },
  mixed: {
    churn: true, serverEnv: {}, handler: 'mixed', connections: 4, tool: 'mixed', ratePerWorker: 8,
    configs: ['node-rr', 'node-none', 'rcluster-rr', 'rcluster-none', 'rcluster-lc', 'base-rr', 'base-lc'],
  },
  // heavy-open, heavy-closed: one 50 ms CPU-bound /slow request always in
  // progress (back to back, 50 ms apart) and fast hello requests on fresh
  // connections, open loop at 1,000 a second or closed loop with 10 clients
  // (lib/heavy-client.js); the -alone twins are the same fast load without
  // slow requests, the baseline for each policy's fast p99.
  'heavy-open': heavyWorkload({ mode: 'open', rate: 1000, slow: true }),
  'heavy-closed': heavyWorkload({ mode: 'closed', concurrency: 10, slow: true }),
  'heavy-open-alone': heavyWorkload({ mode: 'open', rate: 1000, slow: false }),
  'heavy-closed-alone': heavyWorkload({ mode: 'closed', concurrency: 10, slow: false }),
};

function heavyWorkload(heavy) {
  return {
    churn: true, serverEnv: {}, handler: 'heavy', connections: heavy.concurrency || 1, tool: 'heavy', heavy,
    configs: ['node-rr', 'node-none', 'rcluster-rr', 'rcluster-lc', 'base-rr', 'base-lc'],
  };
}

// The connect-to-first-byte probe (lib/probe.js) opens at most this many
// connections per measurement, whatever its interval and the duration.
const MAX_PROBES = 200;

const DEFAULTS = {
  rounds: 5,
  duration: 5,
  warmup: 0.5,
  workers: 2,
  connections: 50,
  threads: 1,
  handler: 'hello',
  workloads: Object.keys(WORKLOADS).filter((w) => !WORKLOADS[w].optIn),
  configs: Object.keys(CONFIGS).filter((c) => !CONFIGS[c].optIn),
  tool: null, // wrk when it is on PATH, autocannon otherwise
  probeInterval: 50,
  out: path.join(__dirname, '..', 'results'),
};

const HELP = `Usage: node bench/run.js [options]

  --rounds N         rounds; each round runs every config once per workload (default ${DEFAULTS.rounds})
  --duration S       seconds per measurement (default ${DEFAULTS.duration})
  --warmup S         seconds of warm-up traffic (same keep-alive/close mode, from the runner's
                     own http client) before each measurement (default ${DEFAULTS.warmup}),
                     for 2 workers: more workers get proportionally more (workers / 2 times)
  --quick            smoke run: --rounds 2 --duration 3 (explicit flags still win)
  --workers N        cluster workers (default ${DEFAULTS.workers})
  --connections N    concurrent client connections (default ${DEFAULTS.connections})
  --threads N        wrk threads (default ${DEFAULTS.threads}; autocannon is single-threaded)
  --handler H        hello | cpu  (cpu: 1e5-iteration loop per request) (default ${DEFAULTS.handler})
  --workloads LIST   comma list of ${Object.keys(WORKLOADS).join(',')}
                     (mixed: open-loop requests, 10% ~100 ms of CPU; runs rr, none and lc only)
                     (heavy-*: a 50 ms CPU request always in progress and fast requests,
                     open loop 1,000/s or closed loop 10 clients; -alone: without the slow
                     ones; runs node rr and none, rcluster rr and lc)
                     (default: ${DEFAULTS.workloads.join(',')}; demo and demo-100 are
                     autocannon -c 1000 / -c 100, -p 10, handler cpu, whatever the
                     other flags say; npm run bench:demo runs them)
  --configs LIST     comma list of ${Object.keys(CONFIGS).join(',')}
                     (default: all but rcluster-sticky, whose load tools connect from one address)
  --tool T           autocannon | wrk (default: wrk if on PATH, else autocannon)
  --probe-interval MS  during each load, open one fresh connection every MS ms
                     (at most ${MAX_PROBES}) and time connect -> first response byte;
                     0 turns the probe off (default ${DEFAULTS.probeInterval})
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
    const flag = arg.startsWith('--') ? (eq > 0 ? arg.slice(2, eq) : arg.slice(2)) : null;
    const name = flag && flag.replace(/-([a-z])/g, (_, c) => c.toUpperCase()); // --probe-interval -> probeInterval
    if (!name || !(name in DEFAULTS)) throw new Error(`unknown option ${arg}\n\n${HELP}`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new Error(`option --${flag} needs a value`);
    opts[name] = convert(name, value, flag);
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

function convert(name, value, flag) {
  switch (name) {
    case 'rounds': case 'workers': case 'connections': case 'threads':
      return number(value, name, (n) => Number.isInteger(n) && n >= 1);
    case 'duration': return number(value, name, (n) => n >= 1);
    case 'warmup': return number(value, name, (n) => n >= 0);
    case 'probeInterval': return number(value, flag, (n) => n === 0 || n >= 10);
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

// What the load of one workload is: the workload's own settings where it has
// them, the command-line options otherwise.
function loadSettings(opts, workload) {
  const w = WORKLOADS[workload];
  return {
    tool: w.tool || opts.tool,
    connections: w.connections || opts.connections,
    pipelining: w.pipelining || 1,
    handler: w.handler || opts.handler,
    churn: w.churn,
    // Open-loop requests a second (mixed): scaled with the workers, so that
    // each stays mostly idle (a slow request is 100 ms of CPU).
    rate: w.ratePerWorker ? w.ratePerWorker * opts.workers : null,
    heavy: w.heavy || null,
  };
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

module.exports = { CONFIGS, WORKLOADS, MAX_PROBES, parseArgs, loadSettings };
