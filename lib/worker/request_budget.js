'use strict';
// Worker side of setupPrimary({ recycle: { maxRequests } }): the worker
// counts the requests its HTTP servers ('request' events: http, https, http2
// compat) receive and tells the primary once it has served its budget; the
// primary then replaces it gracefully (lib/operations/recycle.js). Counting here rather
// than in the dispatcher: the dispatcher sees connections, and a keep-alive
// connection carries many requests.
const { Act, Env } = require('../protocol');

let budget = 0;
let served = 0;
let tell = null;
const watched = new WeakSet();

/** At start-up: reads (and removes) the budget the primary set. */
function install(send) {
  const value = Number(process.env[Env.MaxRequests]);
  delete process.env[Env.MaxRequests];
  if (Number.isSafeInteger(value) && value > 0) {
    budget = value;
    tell = send;
  }
}

function count() {
  if (++served === budget) tell({ act: Act.RequestsServed, requests: served });
}

/** Every server the worker listens with through the cluster. */
function watch(server) {
  if (budget === 0 || watched.has(server) || typeof server.on !== 'function') return;
  watched.add(server);
  server.on('request', count);
}

module.exports = { install, watch };
