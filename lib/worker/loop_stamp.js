'use strict';
// The worker's loop stamp (core/src/loop_stamp.rs, docs/DESIGN.md §15): the
// addon stamps "busy" and "waiting for I/O" from libuv's check and prepare
// phases by itself, once the primary has sent the stamp's file. An HTTP
// request's handler runs inside libuv's poll phase, between the two, where
// a handler stuck for 50 ms would still read as "waiting": so the start of
// every request stamps "busy" too. One native call per request, no
// allocation.
const diagnosticsChannel = require('diagnostics_channel');
const { Channel } = require('../native');

let started = false;

function stampRequests() {
  if (started) return;
  started = true;
  // Node publishes it before the server's 'request' listeners run.
  diagnosticsChannel.subscribe('http.server.request.start', Channel.loopBusy);
}

module.exports = { stampRequests };
