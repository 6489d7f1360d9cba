'use strict';
// rcluster's control messages travel on Node's own IPC channel, marked with
// lib/protocol.js's CMD so that Node delivers them as 'internalMessage'.
const { debuglog } = require('util');
const { CMD } = require('./protocol');

const debug = debuglog('rcluster');
const callbacks = new Map();
let seq = 0;

function sendHelper(proc, message, handle, cb) {
  if (!proc.connected) return false;
  const id = seq;
  message = { cmd: CMD, ...message, seq: id };
  if (typeof cb === 'function') callbacks.set(id, cb);
  seq += 1;
  // A worker can die while its channel still reads as connected here (its
  // exit and the channel's end not yet seen): without a callback, the
  // write's EPIPE would be emitted as 'error' on its process and its Worker,
  // where nobody listens for it, and crash the primary. Its 'exit' follows
  // and is handled; a reply this message asked for never comes, so its
  // callback is dropped.
  return proc.send(message, handle, (err) => {
    if (!err) return;
    callbacks.delete(id);
    debug('a message on the IPC channel was not sent: %s', err.code ?? err.message);
  });
}

// An 'internalMessage' listener that hands rcluster's messages to `cb`, except
// replies (`ack`), which go to the callback their request registered.
function internal(worker, cb) {
  return function onInternalMessage(message, handle) {
    if (message === null || typeof message !== 'object' || message.cmd !== CMD) return;
    let fn = cb;
    if (message.ack !== undefined) {
      const callback = callbacks.get(message.ack);
      if (callback !== undefined) {
        fn = callback;
        callbacks.delete(message.ack);
      }
    }
    fn.call(worker, message, handle);
  };
}

// Closes a descriptor rcluster received and no handle took over.
function closeFd(fd) {
  try {
    require('fs').closeSync(fd);
  } catch {
    // Already closed: nothing is leaked.
  }
}

// rcluster's additions to node:cluster's objects (cluster.stats, a Worker's
// restarts, ...) are not enumerable, so Object.keys() and a deep comparison
// see exactly node:cluster's objects.
function defineHidden(obj, name, value) {
  Object.defineProperty(obj, name, { value, enumerable: false, writable: true, configurable: true });
}

module.exports = { sendHelper, internal, closeFd, defineHidden };
