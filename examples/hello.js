'use strict';
// `npm start`: the classic cluster program, with require('rcluster') in place
// of require('cluster'). One worker per core; every response says which
// worker answered. Stop it with Ctrl-C.
const cluster = require('..');
const http = require('http');
const os = require('os');

const port = Number(process.env.PORT) || 3000;
const host = process.env.HOST || '127.0.0.1';

if (cluster.isPrimary) {
  const count = Number(process.env.WORKERS) || os.availableParallelism();
  console.log(`primary ${process.pid}: forking ${count} workers`);
  for (let i = 0; i < count; i++) cluster.fork();

  let listening = 0;
  cluster.on('listening', (worker, address) => {
    if (++listening === count) {
      console.log(`listening on http://${host}:${address.port}/  (try: curl http://${host}:${address.port}/)`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    console.log(`worker ${worker.id} (pid ${worker.process.pid}) exited: ${signal || code}`);
  });
} else {
  http.createServer((req, res) => {
    res.end(`hello from worker ${cluster.worker.id} (pid ${process.pid})\n`);
  }).listen(port, host);
}
