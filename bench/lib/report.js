'use strict';
// Markdown report and SVG bar chart built from the summary rows.

const { CONFIGS, WORKLOADS, MAX_PROBES, loadSettings } = require('./options');

// ------------------------------------------------------------------ markdown

const COLUMNS = ['config', 'workload', 'req/s (median)', 'min–max', 'p50 ms', 'p99 ms', 'mean ms', 'max ms',
  'connect→1st byte p50 / p99 / max ms§', 'err+timeout+non2xx', 'conns per worker', 'req/conn', 'primary CPU s', 'primary CPU-µs/conn', 'vs node RR', 'vs node NONE'];

function markdownReport({ meta, opts, rows, commands, skipped }) {
  const lines = [];
  lines.push(`# rcluster benchmark, ${meta.date}`, '');
  lines.push(`- machine: ${meta.machine.nproc} CPUs (\`nproc\`), ${meta.machine.cpuModel}, ${meta.machine.kernel}`);
  lines.push(`- node ${meta.machine.node}; load tool: ${meta.toolVersion}`);
  lines.push(`- command: \`${meta.commandLine}\``);
  lines.push(`- ${opts.rounds} rounds, interleaved (each round runs every config for each workload); `
    + `${opts.duration} s per measurement after ${opts.warmup * Math.max(1, opts.workers / 2)} s warm-up; `
    + `${opts.workers} workers; a fresh server for every measurement`);
  lines.push(`- wall time: ${meta.wallSeconds.toFixed(0)} s`);
  lines.push('- load per workload (the port changes with every server start):');
  for (const [workload, cmd] of Object.entries(commands)) {
    const s = loadSettings(opts, workload);
    lines.push(`  - ${workload}: ${s.connections} connections${s.pipelining > 1 ? `, ${s.pipelining} pipelined requests each` : ''}, `
      + `handler \`${s.handler}\`: \`${cmd}\``);
  }
  lines.push(opts.probeInterval > 0
    ? `- § probe: during each load, one fresh connection every ${opts.probeInterval} ms from 1 s after the load tool starts `
      + `(at most ${MAX_PROBES} per measurement), each writing \`GET /bench-probe\` with \`Connection: close\` at once`
    : '- § probe: off (`--probe-interval 0`)');
  lines.push('');
  lines.push(markdownTable(rows));
  lines.push('');
  lines.push(...footnotes(rows, opts, skipped));
  return lines.join('\n') + '\n';
}

function markdownTable(rows) {
  const out = [`| ${COLUMNS.join(' | ')} |`, `|${COLUMNS.map((c, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const row of rows) out.push(`| ${tableCells(row).join(' | ')} |`);
  return out.join('\n');
}

function tableCells(row) {
  const head = [row.config, row.workload];
  const blank = (text) => [...head, text, ...Array(COLUMNS.length - 3).fill('')];
  if (!row.applicable) return blank(WORKLOADS[row.workload].configs ? 'n/a (not run for this workload)' : 'n/a (no primary to block)');
  if (!row.rps) return blank(`**FAILED** in ${row.roundsFailed} round(s), see below`);
  const partial = row.roundsFailed ? ` (${row.roundsFailed} round(s) failed)` : '';
  const lat = row.latencyMs;
  // autocannon records whole milliseconds; do not print decimals it never had.
  // (its mean is computed, so it keeps one decimal.)
  const latCell = (v, exact) => (!lat ? 'n/a†' : row.tool === 'autocannon' && !exact ? String(Math.round(v)) : ms(v));
  return [
    ...head,
    int(row.rps.median) + partial,
    `${int(row.rps.min)}–${int(row.rps.max)}`,
    latCell(lat && lat.p50), latCell(lat && lat.p99), latCell(lat && lat.mean, true), latCell(lat && lat.max),
    probeCell(row.probe),
    int(row.failureCount),
    row.connectionsPerWorker.map(int).join(' / '),
    row.requestsPerConnection === null ? '' : row.requestsPerConnection.toFixed(row.requestsPerConnection < 10 ? 2 : 0),
    row.primaryCpuSeconds === null ? 'n/a‡' : row.primaryCpuSeconds.toFixed(2),
    row.primaryCpuUsPerConnection == null ? 'n/a‡' : row.primaryCpuUsPerConnection.toFixed(1),
    times(row.vsNodeRr), times(row.vsNodeNone),
  ];
}

function probeCell(probe) {
  if (!probe) return 'n/a (probe off)';
  const failed = probe.failed ? ` (${int(probe.failed)} of ${int(probe.attempted)} failed)` : '';
  if (!probe.firstByteMs) return `all ${int(probe.attempted)} failed`;
  const f = probe.firstByteMs;
  return `${ms(f.p50)} / ${ms(f.p99)} / ${ms(f.max)}${failed}`;
}

function footnotes(rows, opts, skipped) {
  const notes = [
    'How to read this: req/s, latencies and primary CPU are medians over the successful rounds; '
      + 'err+timeout+non2xx, conns per worker and req/conn are totals over all measured windows (warm-up excluded). '
      + 'conns per worker and req/conn come from the workers\' own counters, not from the load tool. '
      + 'Ratios compare median req/s with the node:cluster row of the same workload. '
      + 'primary CPU-µs/conn: the primary process\'s CPU time (utime+stime of all its threads, /proc/<pid>/stat) over the '
      + 'measured window divided by the connections its workers were handed in it (probes included), median over rounds; '
      + 'with keep-alive it mostly measures idle overhead.',
    ...probeNotes(rows, opts),
    ...toolNotes(rows, opts),
    ...warnings(rows),
    ...failureNotes(rows),
  ];
  if (rows.some((r) => r.primaryCpuSeconds === null && r.rps)) {
    notes.push('‡ single process: there is no primary; its whole CPU time is in the JSON as processCpuSeconds.');
  }
  if (skipped && skipped.length) {
    notes.push(`Not retried in later rounds after a failed start: ${skipped.join(', ')}.`);
  }
  return notes.flatMap((n) => [n, '']);
}

function probeNotes(rows, opts) {
  if (!(opts.probeInterval > 0)) return [];
  const notes = ['§ The load tools time requests, not connections: wrk starts the clock when it writes a request, once '
    + 'connected; autocannon when it queues it, which for the first requests of a connection is when it starts connecting. '
    + 'Under keep-alive connections are opened once, at the start, and a request still unanswered when the run ends counts '
    + 'nowhere (short of the 10 s timeout). So how long a new connection waits hardly shows in p50/p99/mean/max. '
    + 'The probe column does: from connect() to the first byte of the response, '
    + 'for fresh connections opened at a steady pace while the load runs; percentiles over the probes of all rounds pooled. '
    + 'Probe connections and requests are not in req/s, conns per worker or req/conn.'];
  const failing = rows.filter((r) => r.probe && r.probe.failed);
  for (const r of failing) {
    notes.push(`Probe failures in ${r.config}/${r.workload}: ${Object.entries(r.probe.errors).map(([k, v]) => `${k} ×${v}`).join(', ')}.`);
  }
  return notes;
}

// What the load tool could not measure, with the numbers that show why.
function toolNotes(rows, opts) {
  const notes = [];
  const noLatency = rows.filter((r) => r.latencyMs === null && r.rps);
  if (noLatency.length) {
    const sent = sum(noLatency.map((r) => r.clientSent || 0));
    const done = sum(noLatency.map((r) => r.clientCompleted));
    notes.push('† autocannon cannot measure latency when the server closes the connection after each response '
      + '(its latency grows with run length, see bench/README.md); its req/s is still valid, and req/conn shows '
      + 'whether it really reconnected. Use wrk for churn latencies'
      + (opts.probeInterval > 0 ? ', or the probe column, which autocannon does not affect. ' : '. ')
      + (sent ? `In these churn runs autocannon wrote ${int(sent)} requests for ${int(done)} responses `
        + `(${(sent / done).toFixed(2)} per response): after each response it also writes a request onto the closing socket, which is lost.` : ''));
  }
  if (rows.some((r) => r.tool === 'autocannon')) {
    notes.push('autocannon reports latencies in whole milliseconds (its mean is computed from them).');
  }
  if (opts.workloads.includes('mixed')) {
    const slow = rows.filter((r) => r.workload === 'mixed' && r.slowP99Ms != null)
      .map((r) => `${r.config} ${r.slowP99Ms.toFixed(1)}`).join(', ');
    notes.push('mixed: open-loop Poisson arrivals (8 a second per worker, seeded), 10% of requests taking ~100 ms '
      + 'of CPU and 90% ~1 ms, each on a fresh connection (bench/lib/mixed-client.js); its latency columns are the '
      + 'fast requests\' only, pooled over all rounds. '
      + `Slow requests' p99 ms: ${slow || 'n/a'}.`);
  }
  const heavy = opts.workloads.filter((w) => WORKLOADS[w].tool === 'heavy');
  if (heavy.length) {
    const slow = rows.filter((r) => heavy.includes(r.workload) && r.slowP99Ms != null)
      .map((r) => `${r.workload} ${r.config} ${r.slowP99Ms.toFixed(1)}`).join(', ');
    notes.push('heavy-*: one 50 ms CPU-bound /slow request always in progress (back to back, 50 ms apart) and fast '
      + 'hello requests, each on a fresh connection, open loop at 1,000 a second or closed loop with 10 clients; '
      + '-alone: the same fast load without slow requests (bench/lib/heavy-client.js). Latency columns are the fast '
      + `requests' only, pooled over all rounds. Slow requests' p99 ms: ${slow || 'n/a'}. `
      + 'Fast requests answered by the worker busy with a slow one, only once it was done (what routing decides, '
      + `whatever else loads the machine): ${rows.filter((r) => heavy.includes(r.workload) && r.behindSlow && /heavy-(open|closed)$/.test(r.workload))
        .map((r) => `${r.workload} ${r.config} ${r.behindSlow.count} (${(100 * r.behindSlow.share).toFixed(2)}%)`).join(', ') || 'n/a'}.`);
  }
  const pinned = opts.workloads.filter((w) => WORKLOADS[w].tool && WORKLOADS[w].tool !== opts.tool && w !== 'mixed' && WORKLOADS[w].tool !== 'heavy');
  if (pinned.length) {
    notes.push(`Workload(s) ${pinned.join(', ')} always use ${WORKLOADS[pinned[0]].tool}, the tool of the benchmark they `
      + `reproduce, not ${opts.tool}: compare their rows with each other, never with rows measured by another tool.`);
  }
  return notes;
}

function warnings(rows) {
  const notes = [];
  for (const row of rows) {
    // Churn must mean one request per connection; the workers' counters say
    // whether the load tool really reconnected after every response.
    if (WORKLOADS[row.workload].churn && row.requestsPerConnection > 1.05) {
      notes.push(`Warning: ${row.config}/${row.workload} served ${row.requestsPerConnection.toFixed(2)} requests per `
        + 'connection: the load tool did not reconnect after every response, so this is not a churn measurement.');
    }
    // A keep-alive connection the workers never accepted sent requests that
    // are in no latency figure of the load tool.
    for (const a of row.fewAccepted || []) {
      notes.push(`Warning: ${row.config}/${row.workload} round ${a.round}: the workers accepted ${a.accepted} of the load tool's `
        + `${a.expected} connections within the measured window; requests on the others are in no latency figure.`);
    }
    for (const mm of row.clientServerMismatch || []) {
      notes.push(`Warning: ${row.config}/${row.workload} round ${mm.round}: the load tool counted ${mm.client} responses `
        + `but the workers served ${mm.server} requests.`);
    }
  }
  return notes;
}

// Every failed measurement with its error; each distinct stderr tail is shown
// once, since a broken build fails the same way in every workload.
function failureNotes(rows) {
  const notes = [];
  const shownTails = new Map();
  for (const row of rows) {
    for (const f of row.failures || []) {
      const seen = shownTails.get(f.stderrTail);
      let text = `**${row.config} / ${row.workload}, round ${f.round} failed:** ${f.error}`;
      if (seen) text += ` (stderr as for ${seen} above)`;
      else if (f.stderrTail) text += `\n\n\`\`\`\n${f.stderrTail}\n\`\`\``;
      if (f.stderrTail && !seen) shownTails.set(f.stderrTail, `${row.config} / ${row.workload}`);
      notes.push(text);
    }
  }
  return notes;
}

function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}

function int(n) {
  return Math.round(n).toLocaleString('en-US');
}

function ms(v) {
  if (v === null || v === undefined) return '';
  return v < 10 ? v.toFixed(2) : v.toFixed(1);
}

// n/a: the base config was not run, or failed in every round.
function times(r) {
  return r === null ? 'n/a' : `${r.toFixed(2)}×`;
}

// ----------------------------------------------------------------------- svg

const PALETTE = {
  'node-rr': '#4e79a7', 'node-none': '#a0cbe8', 'rcluster-rr': '#e15759', 'rcluster-none': '#ff9d9a', single: '#59a14f',
};

// One panel per workload, each with its own y axis (keep-alive runs are an
// order of magnitude faster than churn, so a shared axis would flatten the
// churn bars); one bar per config, height = median req/s.
function svgChart({ meta, opts, rows }) {
  const panelW = 260; const panelH = 300; const gap = 56;
  const m = { top: 64, left: 64, bottom: 40, legend: 190 };
  const W = m.left + opts.workloads.length * (panelW + gap) + m.legend;
  const H = m.top + panelH + m.bottom;

  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(text(m.left, 22, 'Median requests/s per config (higher is better; each panel has its own scale)', { size: 15, weight: 'bold' }));
  parts.push(text(m.left, 42,
    `${meta.machine.nproc} CPUs ${meta.machine.cpuModel}, node ${meta.machine.node}, ${opts.rounds} rounds × ${opts.duration} s, `
    + `${opts.workers} workers, ${meta.date}`, { size: 11, fill: '#555' }));

  opts.workloads.forEach((workload, i) => {
    const x0 = m.left + i * (panelW + gap);
    const panelRows = opts.configs.map((config) => rows.find((r) => r.config === config && r.workload === workload));
    const s = loadSettings(opts, workload);
    const label = `${workload} (${s.tool} -c${s.connections}${s.pipelining > 1 ? ` -p${s.pipelining}` : ''})`;
    parts.push(...panel(x0, m.top, panelW, panelH, label, opts.configs, panelRows));
  });

  opts.configs.forEach((config, i) => { // legend
    const lx = W - m.legend + 10; const ly = m.top + 10 + i * 22;
    parts.push(`<rect x="${lx}" y="${ly - 11}" width="14" height="14" fill="${PALETTE[config]}"/>`);
    parts.push(text(lx + 20, ly + 1, CONFIGS[config].label));
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function panel(x0, y0, w, h, workload, configs, rows) {
  const parts = [];
  const top = niceCeil(Math.max(1, ...rows.filter((r) => r && r.rps).map((r) => r.rps.median)));
  const y = (v) => y0 + h - (v / top) * h;
  for (let i = 0; i <= 4; i++) { // grid and y labels
    const v = (top * i) / 4;
    parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${fmt(y(v))}" y2="${fmt(y(v))}" stroke="#e3e3e3"/>`);
    parts.push(text(x0 - 5, y(v) + 4, int(v), { anchor: 'end', size: 10, fill: '#666' }));
  }
  const barW = Math.min(46, (w * 0.9) / configs.length);
  const bx0 = x0 + (w - barW * configs.length) / 2;
  configs.forEach((config, b) => {
    const row = rows[b];
    const x = bx0 + b * barW; const cx = x + barW / 2;
    if (row && row.rps) {
      const v = row.rps.median;
      parts.push(`<rect x="${fmt(x + 3)}" y="${fmt(y(v))}" width="${fmt(barW - 6)}" height="${fmt(y0 + h - y(v))}" fill="${PALETTE[config]}">`
        + `<title>${escape(`${config} ${workload}: ${int(v)} req/s (median)`)}</title></rect>`);
      parts.push(text(cx, y(v) - 4, compact(v), { anchor: 'middle', size: 10 }));
    } else {
      parts.push(text(cx, y0 + h - 6, row && !row.applicable ? 'n/a' : 'failed', { anchor: 'middle', size: 10, fill: '#999' }));
    }
  });
  parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y0 + h}" y2="${y0 + h}" stroke="#333"/>`);
  parts.push(text(x0 + w / 2, y0 + h + 22, workload, { anchor: 'middle', size: 13, weight: 'bold' }));
  return parts;
}

function text(x, y, body, { size, anchor, weight, fill, rotate } = {}) {
  const attrs = [`x="${fmt(x)}"`, `y="${fmt(y)}"`];
  if (size) attrs.push(`font-size="${size}"`);
  if (anchor) attrs.push(`text-anchor="${anchor}"`);
  if (weight) attrs.push(`font-weight="${weight}"`);
  if (fill) attrs.push(`fill="${fill}"`);
  if (rotate) attrs.push(`transform="rotate(${rotate} ${fmt(x)} ${fmt(y)})"`);
  return `<text ${attrs.join(' ')}>${escape(body)}</text>`;
}

function fmt(n) {
  return Number(n.toFixed(1));
}

function escape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// Smallest 1/2/2.5/5 × 10^k at or above v, for a round axis maximum.
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((f) => f * p).find((c) => c >= v);
}

function compact(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(1)}k` : String(Math.round(v));
}

module.exports = { markdownReport, markdownTable, svgChart };
