'use strict';
// The scheduling policies beyond node:cluster's two, as the primary names
// them: constants on the cluster object, values of NODE_CLUSTER_SCHED_POLICY,
// and the policy name the native dispatcher takes for a listener
// (core/src/policy.rs, least_connections.rs, sticky.rs).

const SCHED_NONE = 1; // node:cluster's
const SCHED_RR = 2; // node:cluster's
// The primary deals each connection to the worker holding the fewest open.
const SCHED_LC = 3;
// The primary deals each connection by its client's address: the same
// client always to the same worker (while that worker lives; its
// replacement takes its clients over).
const SCHED_STICKY = 4;

const byEnvName = new Map([
  ['rr', SCHED_RR],
  ['none', SCHED_NONE],
  ['lc', SCHED_LC],
  ['sticky', SCHED_STICKY],
]);

const nativeName = new Map([
  [SCHED_RR, 'rr'],
  [SCHED_NONE, 'none'],
  [SCHED_LC, 'lc'],
  [SCHED_STICKY, 'sticky'],
]);

const description = new Map([
  [SCHED_RR, 'round-robin (SCHED_RR)'],
  [SCHED_NONE, 'shared sockets (SCHED_NONE)'],
  [SCHED_LC, 'least connections (SCHED_LC)'],
  [SCHED_STICKY, 'sticky by client address (SCHED_STICKY)'],
]);

// NODE_CLUSTER_SCHED_POLICY as node:cluster reads it: anything it does not
// know means round-robin.
function policyFromEnvValue(value) {
  return byEnvName.get(value) ?? SCHED_RR;
}

function isPolicy(value) {
  return nativeName.has(value);
}

// Whether workers get the listening socket itself (only SCHED_NONE); every
// other policy has the primary deal connections out.
function isShared(policy) {
  return policy === SCHED_NONE;
}

module.exports = {
  SCHED_NONE,
  SCHED_RR,
  SCHED_LC,
  SCHED_STICKY,
  policyFromEnvValue,
  isPolicy,
  isShared,
  nativeName: (policy) => nativeName.get(policy),
  describe: (policy) => description.get(policy),
};
