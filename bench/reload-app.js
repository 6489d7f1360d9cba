'use strict';
// The unmodified app every reload implementation runs: a hello-world HTTP
// server, no signal handler, no readiness signal, no graceful close of its own.
const http = require('node:http');

http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end('hello\n');
}).listen(Number(process.env.PORT));
