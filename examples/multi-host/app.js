'use strict';
// A plain Express app, run unmodified on every host by the `rcluster` command
// (see rcluster.config.js beside it). rcluster is required only for what
// crosses machines: a bus broadcast and a shared counter, both through Redis.
//
//   GET  /                  who answered: { host, worker, pid, remoteAddress }
//   POST /counter/:name     adds 1 to a counter summed over every host
//   GET  /counter/:name     the counter's total, once this host has exchanged parts
//   POST /broadcast/:tag    cluster.bus.broadcast('note', ...) from this worker
//   GET  /notes             the broadcasts this worker has received
const os = require('os');
const express = require('express');
const cluster = require('rcluster');

// Several hosts may share a hostname (containers, network namespaces):
// HOST_ID names this one in answers.
const host = process.env.HOST_ID || os.hostname();
const worker = cluster.worker ? cluster.worker.id : 0;
const port = Number(process.env.PORT) || 3000;

// Every broadcast this worker received, newest last (a bounded list).
const notes = [];
cluster.bus.on('note', (data, from) => {
  notes.push({ ...data, from: String(from) });
  if (notes.length > 100) notes.shift();
});

const app = express();

app.get('/', (req, res) => {
  // Behind a balancer sending the PROXY protocol this is the client's
  // address, not the balancer's (routing.proxyProtocol in the config).
  res.json({ host, worker, pid: process.pid, remoteAddress: req.socket.remoteAddress });
});

app.post('/counter/:name', (req, res) => {
  // add() is local and synchronous; the hosts' parts are summed through Redis.
  res.json({ host, worker, value: cluster.shared.counter(req.params.name).add() });
});

app.get('/counter/:name', async (req, res) => {
  const counter = cluster.shared.counter(req.params.name);
  // Exchange parts with the other hosts now rather than within the next
  // syncInterval, so the total includes what was just added elsewhere.
  await counter.sync();
  res.json({ host, worker, value: counter.get() });
});

app.post('/broadcast/:tag', (req, res) => {
  cluster.bus.broadcast('note', { tag: req.params.tag, host, worker });
  res.json({ host, worker, sent: req.params.tag });
});

app.get('/notes', (req, res) => {
  res.json({ host, worker, notes });
});

app.listen(port);
