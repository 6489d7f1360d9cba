'use strict';
// The unmodified app every reload implementation runs: a hello-world HTTP
// server, no signal handler, no readiness signal, no graceful close of its own.
// DEPLOY_FILE (bench/reload.js --deploy crash-after-listen) names the code
// deployed: a worker that reads "crash" there as it starts is bad new code
// that listens, then exits with code 1 300 ms later, and answers
// "hello crash" meanwhile; anything else is the good code.
const fs = require('node:fs');
const http = require('node:http');

let deploy = '';
try {
  deploy = process.env.DEPLOY_FILE ? fs.readFileSync(process.env.DEPLOY_FILE, 'utf8').trim() : '';
} catch {
  // No file: the good code.
}
const body = deploy === 'crash' ? 'hello crash\n' : 'hello\n';

http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(body);
}).listen(Number(process.env.PORT), () => {
  if (deploy === 'crash') setTimeout(() => process.exit(1), 300);
});
