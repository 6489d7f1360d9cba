#!/usr/bin/env node
'use strict';
// Reload bench: churn (`Connection: close`) and keep-alive load against 2
// workers of an unmodified hello-world app (bench/reload-app.js) while the
// cluster is reloaded RELOADS times per run, for rcluster's cluster.reload(),
// PM2's `pm2 reload` and node:cluster with a hand-written rolling restart,
// interleaved. Every failed request (socket error, timeout, non-2xx) counts.
// With --deploy crash-after-listen every reload deploys new code that listens
// and crashes 300 ms later (bench/reload-app.js reads DEPLOY_FILE): what
// counts then is the failed requests and whether the service still answers,
// with the old code, at the end. Loopback only, bounded in time.
// `node bench/reload.js --help`.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawn, execFileSync } = require('node:child_process');
const { runLoad } = require('./lib/load');
const { freePort } = require('./lib/server');
const { machineInfo } = require('./lib/proc');
const { eachFlag, numberFlag } = require('./lib/flags');

const ROOT = path.join(__dirname, '..');
const APP = path.join(__dirname, 'reload-app.js');
const PRIMARY = path.join(__dirname, 'reload-primary.js');
const IMPLS = {
  rcluster: 'rcluster, cluster.reload()',
  pm2: 'PM2, pm2 reload',
  node: 'node:cluster, hand-written rolling restart',
};
const WORKLOADS = { churn: true, keepalive: false }; // name -> Connection: close
// What each reload deploys (bench/reload-app.js).
const DEPLOYS = {
  good: 'the same good code',
  'crash-after-listen': 'new code that exits with code 1 300 ms after it listens',
};

const HELP = `Usage: node bench/reload.js [options]

  --duration S       seconds of load per run (default 20)
  --rounds N         runs per implementation and workload, interleaved (default 3)
  --reloads N        reloads per run, spread over it (default 10)
  --connections N    client connections (default 20)
  --workers N        workers (default 2)
  --impls LIST       comma-separated, from: ${Object.keys(IMPLS).join(', ')} (default all)
  --workloads LIST   comma-separated, from: ${Object.keys(WORKLOADS).join(', ')} (default all)
  --deploy NAME      what each reload deploys, from: ${Object.keys(DEPLOYS).join(', ')} (default good)
  --probation MS     rcluster's reload probation (default the library's, 3000)
  --tool wrk|autocannon  (default wrk when installed)
  --out DIR          where reload.md and reload.json go (default bench/results)
`;

function parseArgs(argv) {
  const opts = {
    duration: 20, rounds: 3, reloads: 10, connections: 20, workers: 2,
    impls: Object.keys(IMPLS), workloads: Object.keys(WORKLOADS), deploy: 'good', probation: undefined,
    tool: onPath('wrk') ? 'wrk' : 'autocannon', out: path.join(__dirname, 'results'),
  };
  let help = false;
  const list = (text, known) => {
    const items = text.split(',').filter(Boolean);
    for (const item of items) if (!known.includes(item)) throw new Error(`unknown ${item}; known: ${known.join(', ')}`);
    return items;
  };
  eachFlag(argv, (flag, value) => {
    const number = (min) => Math.floor(numberFlag(flag, value(), min));
    switch (flag) {
      case '--help': case '-h': help = true; return true;
      case '--duration': opts.duration = number(1); break;
      case '--rounds': opts.rounds = number(1); break;
      case '--reloads': opts.reloads = number(1); break;
      case '--connections': opts.connections = number(1); break;
      case '--workers': opts.workers = number(1); break;
      case '--impls': opts.impls = list(value(), Object.keys(IMPLS)); break;
      case '--workloads': opts.workloads = list(value(), Object.keys(WORKLOADS)); break;
      case '--deploy': [opts.deploy] = list(value(), Object.keys(DEPLOYS)); break;
      case '--probation': opts.probation = Math.floor(numberFlag(flag, value(), 0)); break;
      case '--tool': opts.tool = value(); break;
      case '--out': opts.out = path.resolve(value()); break;
      default: throw new Error(`unknown option ${flag}\n${HELP}`);
    }
    return false;
  });
  return help ? null : opts;
}

function onPath(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


// rcluster and node: bench/reload-primary.js, reloaded through its stdin.
async function startPrimary(impl, port, workers, { deployFile, probation }) {
  const child = spawn(process.execPath, [PRIMARY], {
    env: {
      ...process.env, RELOAD_IMPL: impl, PORT: String(port), WORKERS: String(workers), DEPLOY_FILE: deployFile,
      ...(probation !== undefined && { PROBATION: String(probation) }),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  const lines = [];
  let waiter = null;
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buffered += d;
    let i;
    while ((i = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, i));
      buffered = buffered.slice(i + 1);
      if (waiter) waiter();
    }
  });
  const next = (prefix, timeout = 30000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiter = null; reject(new Error(`${impl}: no '${prefix}' within ${timeout} ms`)); }, timeout);
    const check = () => {
      const j = lines.findIndex((l) => l.startsWith(prefix));
      if (j >= 0) {
        clearTimeout(timer);
        waiter = null;
        resolve(lines.splice(j, 1)[0]);
      }
    };
    waiter = check;
    check();
  });
  await next('ready');
  return {
    async reload() {
      child.stdin.write('reload\n');
      const line = await next('reloaded', 60000);
      return JSON.parse(line.slice('reloaded '.length));
    },
    async stop() {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));
    },
  };
}

// PM2 in cluster mode with a private PM2_HOME; its daemon is killed at the end.
async function startPm2(port, workers, home, { deployFile }) {
  const bin = require.resolve('pm2/bin/pm2', { paths: [ROOT] });
  const env = { ...process.env, PM2_HOME: home, PORT: String(port), DEPLOY_FILE: deployFile };
  const pm2 = (...args) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pm2 ${args.join(' ')}: code ${code} ${stderr.slice(-300)}`))));
  });
  await pm2('start', APP, '-i', String(workers), '--name', 'bench-reload');
  // Until it answers: pm2 start returns before the workers listen.
  for (let i = 0; i < 100; i++) {
    if (await answers(port)) break;
    await sleep(100);
  }
  return {
    // PM2 may refuse a reload of an app it gave up on (errored): that is a result, not the bench's failure.
    async reload() {
      return pm2('reload', 'bench-reload').then(() => ({ ok: true }), (err) => ({ ok: false, reason: err.message.slice(0, 200) }));
    },
    async stop() {
      await pm2('delete', 'bench-reload').catch(() => {});
    },
    kill: () => pm2('kill').catch(() => {}),
  };
}

// The service at the end of a run: whether it answers GET /, and with which code.
async function probe(port) {
  const body = await new Promise((resolve) => {
    let text = '';
    const s = net.connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    s.setTimeout(5000, () => s.destroy());
    s.setEncoding('utf8');
    s.on('data', (d) => { text += d; });
    s.on('close', () => resolve(text));
    s.on('error', () => {});
  });
  const up = /^HTTP\/1\.1 200/.test(body);
  return { up, code: !up ? null : /hello crash/.test(body) ? 'new' : 'old' };
}

function answers(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    s.on('data', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function measure(impl, workload, opts, pm2Home) {
  const port = await freePort();
  // The good code until the first reload deploys (--deploy).
  const deployFile = path.join(pm2Home, `deploy-${impl}-${workload}`);
  fs.writeFileSync(deployFile, 'good\n');
  const start = { deployFile, probation: opts.probation };
  const target = impl === 'pm2' ? await startPm2(port, opts.workers, pm2Home, start) : await startPrimary(impl, port, opts.workers, start);
  try {
    const load = runLoad({ tool: opts.tool, port, seconds: opts.duration, connections: opts.connections, threads: 1, churn: WORKLOADS[workload] });
    const every = (opts.duration * 1000) / (opts.reloads + 1);
    const reloads = [];
    const started = Date.now();
    for (let i = 1; i <= opts.reloads; i++) {
      await sleep(Math.max(0, started + i * every - Date.now()));
      if (opts.deploy === 'crash-after-listen') fs.writeFileSync(deployFile, 'crash\n');
      const t0 = Date.now();
      const result = await target.reload();
      reloads.push({ ...result, ms: Date.now() - t0 });
      if (Date.now() - started > opts.duration * 1000) break;
    }
    const result = await load;
    const failed = result.failures.errors + result.failures.timeouts + result.failures.non2xx;
    const after = await probe(port);
    return { impl, workload, requests: result.requests, failed, failures: result.failures, reloads, after, command: result.command };
  } finally {
    await target.stop();
    if (target.kill) await target.kill();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts === null) {
    process.stdout.write(HELP);
    return;
  }
  const pm2Home = fs.mkdtempSync(path.join(os.tmpdir(), 'rcluster-bench-pm2-'));
  const runs = [];
  try {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const workload of opts.workloads) {
        for (const impl of opts.impls) {
          const run = await measure(impl, workload, opts, pm2Home);
          runs.push({ round, ...run });
          process.stderr.write(`round ${round} ${workload} ${impl}: ${run.requests} requests, ${run.failed} failed, ` +
            `${run.reloads.length} reloads${run.reloads.some((r) => !r.ok) ? ` (${run.reloads.filter((r) => !r.ok).length} failed)` : ''}, ` +
            `then ${run.after.up ? `up, the ${run.after.code} code serving` : 'down'}\n`);
        }
      }
    }
  } finally {
    fs.rmSync(pm2Home, { recursive: true, force: true });
  }
  const rows = [];
  for (const workload of opts.workloads) {
    for (const impl of opts.impls) {
      const mine = runs.filter((r) => r.impl === impl && r.workload === workload);
      const sum = (f) => mine.reduce((s, r) => s + f(r), 0);
      rows.push({
        workload, impl, requests: sum((r) => r.requests), failed: sum((r) => r.failed),
        reloads: sum((r) => r.reloads.length), perReload: sum((r) => r.failed) / Math.max(1, sum((r) => r.reloads.length)),
        worstRun: Math.max(...mine.map((r) => r.failed)),
        reloadsFailed: sum((r) => r.reloads.filter((x) => !x.ok).length),
        upAfter: mine.filter((r) => r.after.up).length, oldCodeAfter: mine.filter((r) => r.after.code === 'old').length, runs: mine.length,
      });
    }
  }
  const meta = machineInfo();
  const md = [
    '# Reload bench', '',
    `${meta.cpuModel}, ${meta.nproc} CPUs, node ${process.version}, ${opts.tool}, ${opts.workers} workers, ${opts.connections} connections, ` +
      `${opts.rounds} rounds x ${opts.duration} s, ${opts.reloads} reloads per run, each deploying ${DEPLOYS[opts.deploy]}` +
      `${opts.probation !== undefined ? `, rcluster's probation ${opts.probation} ms` : ''}.`, '',
    `Command: \`node bench/reload.js ${process.argv.slice(2).join(' ')}\``, '',
    '| workload | implementation | requests | failed | reloads (reported failed) | failed per reload | worst run | up after (old code) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.workload} | ${IMPLS[r.impl]} | ${r.requests} | ${r.failed} | ${r.reloads} (${r.reloadsFailed}) | ` +
      `${r.perReload.toFixed(2)} | ${r.worstRun} | ${r.upAfter}/${r.runs} (${r.oldCodeAfter}) |`),
    '',
  ].join('\n');
  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(path.join(opts.out, 'reload.md'), md);
  fs.writeFileSync(path.join(opts.out, 'reload.json'), JSON.stringify({ opts, meta, runs, rows }, null, 2));
  process.stdout.write(md);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
