'use strict';
// What the primary accepts of a worker's control messages. A worker is
// another process, and may be buggy or hostile: every field the primary uses
// is checked here first, and a message that fails is ignored or refused, never
// allowed to throw in the primary (an `act` named after an Object.prototype
// method, `hasOwnProperty`, crashed node:cluster's primary). Handlers see only
// messages that passed.
const { Act } = require('../protocol');

const isSeq = (v) => Number.isSafeInteger(v) && v >= 0;
const isOptional = (check) => (v) => v === undefined || v === null || check(v);
const isNumber = (v) => typeof v === 'number';
const isString = (v) => typeof v === 'string';
const isNumberOrString = (v) => isNumber(v) || isString(v);

// Per act: the fields its handler reads, each with its check. Node's worker
// sends more (`data`: the server's own, passed back untouched).
const FIELDS = new Map([
  [Act.QueryServer, {
    seq: isSeq,
    address: isOptional(isString),
    port: isOptional(isNumberOrString),
    addressType: isOptional(isNumberOrString),
    fd: isOptional(isNumber),
    flags: isOptional(isNumber),
    // net.Server#listen sends `false` for "none given" (its toNumber()).
    backlog: isOptional((v) => isNumber(v) || typeof v === 'boolean'),
    index: isOptional(isNumber),
  }],
  [Act.Listening, {
    address: isOptional(isString),
    port: isOptional(isNumberOrString),
    addressType: isOptional(isNumberOrString),
    fd: isOptional(isNumber),
  }],
  [Act.Online, {}],
  [Act.ExitedAfterDisconnect, { seq: isSeq }],
  [Act.UncaughtException, { seq: isSeq }],
  [Act.Ready, {}],
  [Act.RequestsServed, { requests: isNumber }],
  [Act.EventLoopDelay, { delay: isNumber, limit: isNumber }],
]);

/**
 * Checks a worker's message. Returns `{ act }` when its handler may run, or
 * `{ act, refuse }` when it names a known act with a bad field (`refuse`:
 * the field), or null when it is no message of ours at all.
 */
function checkWorkerMessage(message) {
  if (message === null || typeof message !== 'object') return null;
  const { act } = message;
  // A Map, not an object: no inherited names, and only strings are keys.
  const fields = FIELDS.get(act);
  if (fields === undefined) return null;
  for (const name of Object.keys(fields)) {
    if (!fields[name](message[name])) return { act, refuse: name };
  }
  return { act };
}

module.exports = { checkWorkerMessage };
