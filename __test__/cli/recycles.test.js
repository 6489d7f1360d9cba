'use strict';
// The rcluster command's account of recycles (lib/cli/recycles.js): one line
// per recycle with its reason and figures, naming the replacement once it is
// forked; hard kills told at once, as warnings; counts per slot and reason,
// and the RECYCLES cell of `rcluster status`.
const test = require('node:test');
const assert = require('node:assert/strict');
const { RecycleLog, recycleCounts } = require('../../lib/cli/recycles');
const { renderStatus } = require('../../lib/cli/status_view');

const MiB = 2 ** 20;

function recorder() {
  const lines = [];
  const log = { info: (m) => lines.push(['info', m]), warn: (m) => lines.push(['warn', m]), error: (m) => lines.push(['error', m]) };
  const counts = new Map();
  const slots = new Map([[3, 1], [4, 0], [5, 1]]);
  return { lines, counts, log: new RecycleLog({ slotOf: (w) => slots.get(w.id), log, counts }) };
}

test('a recycle is told once its replacement is forked, with its reason and figures', () => {
  const { lines, log } = recorder();
  log.recycled({ id: 3 }, { reason: 'maxMemory', rss: 112.34 * MiB, maxMemory: 100 * MiB, hard: 150 * MiB });
  assert.deepEqual(lines, [], 'not before the replacement is known');
  log.forked({ id: 8 }); // not a replacement
  log.forked({ id: 9, replaces: 3 });
  log.recycled({ id: 4 }, { reason: 'maxRequests', requests: 10000 });
  log.forked({ id: 10, replaces: 4 });
  log.recycled({ id: 5 }, { reason: 'maxAge', age: 6 * 3600e3 });
  log.exited({ id: 5 }); // gone before a replacement came
  log.recycled({ id: 7 }, { reason: 'cron' });
  log.forked({ id: 11, replaces: 7 });
  assert.deepEqual(lines, [
    ['info', 'worker 3 (slot 1) recycled: memory 112.3 MiB over 100 MiB; worker 9 replaces it'],
    ['info', 'worker 4 (slot 0) recycled: served 10000 requests (maxRequests); worker 10 replaces it'],
    ['info', 'worker 5 (slot 1) recycled: up 6.0 h (maxAge)'],
    ['info', 'worker 7 recycled: cron schedule; worker 11 replaces it'],
  ]);
});

test('a kill at the hard limit is a warning at once, and every recycle is counted by slot and reason', () => {
  const { lines, counts, log } = recorder();
  log.recycled({ id: 3 }, { reason: 'maxMemory', rss: 101 * MiB, maxMemory: 100 * MiB, hard: 150 * MiB });
  log.recycled({ id: 3 }, { reason: 'maxMemoryHard', rss: 151.2 * MiB, maxMemory: 100 * MiB, hard: 150 * MiB });
  log.recycled({ id: 4 }, { reason: 'maxMemory', rss: 100.5 * MiB, maxMemory: 100 * MiB, hard: 150 * MiB });
  assert.deepEqual(lines, [['warn', 'worker 3 (slot 1) killed: memory 151.2 MiB over the 150 MiB hard limit']]);
  assert.deepEqual(recycleCounts(counts), { maxMemory: 2, maxMemoryHard: 1 });
  assert.deepEqual(recycleCounts(counts, 1), { maxMemory: 1, maxMemoryHard: 1 });
  assert.deepEqual(recycleCounts(counts, 0), { maxMemory: 1 });
  assert.deepEqual(recycleCounts(counts, 2), {});
});

test('status shows each slot\'s recycles, kills at the hard limit apart, and every slot\'s by reason', () => {
  const worker = (id, slot, recycles) => ({ id, slot, pid: 100 + id, state: 'listening', uptime: 1, restarts: 0, recycles, connections: {} });
  const text = renderStatus({
    name: 'app', pid: 1, state: 'running', instances: 3, uptime: 5, listeners: [],
    workers: [worker(7, 0, { maxMemory: 3, maxMemoryHard: 1 }), worker(8, 1, { maxRequests: 2 }), worker(9, 2, {}), worker(10, 3, undefined)],
    recycles: { maxMemory: 3, maxMemoryHard: 1, maxRequests: 2 },
  });
  assert.match(text, /^WORKER +SLOT +PID +STATE +UPTIME +RESTARTS +RECYCLES +CONNS/m);
  assert.match(text, /^w0 #7 +0 +107 +listening +1s +0 +3 \(1 killed\) +-/m);
  assert.match(text, /^w1 #8 +1 +108 +listening +1s +0 +2 +-/m);
  assert.match(text, /^w2 #9 +2 +109 +listening +1s +0 +0 +-/m);
  assert.match(text, /^w3 #10 +3 +110 +listening +1s +0 +- +-/m, 'a primary that does not count recycles');
  assert.match(text, /\nrecycles: maxMemory 3, maxMemoryHard 1, maxRequests 2\n$/);
});

test('an RSS just over its limit is never shown as the limit itself', () => {
  const { lines, log } = recorder();
  log.recycled({ id: 3 }, { reason: 'maxMemory', rss: 100 * MiB + 40 * 1024, maxMemory: 100 * MiB, hard: 150 * MiB });
  log.forked({ id: 9, replaces: 3 });
  log.recycled({ id: 4 }, { reason: 'maxMemoryHard', rss: 150 * MiB + 4096, maxMemory: 100 * MiB, hard: 150 * MiB });
  assert.deepEqual(lines, [
    ['info', 'worker 3 (slot 1) recycled: memory 100.04 MiB over 100 MiB; worker 9 replaces it'],
    ['warn', 'worker 4 (slot 0) killed: memory 150.004 MiB over the 150 MiB hard limit'],
  ]);
});
