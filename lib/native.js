'use strict';
// The native addon, through the loader `napi build` generates, or the reason
// it cannot be had in this process. This is the one place that decides whether
// rcluster can run here: index.js gives node:cluster instead when
// `fallbackReason` is set.
let binding = null;
let fallbackReason = null;
let fallbackDetail;

if (process.platform === 'win32') {
  // The design rests on passing accepted sockets to workers with SCM_RIGHTS
  // over an AF_UNIX socketpair; Windows has no such thing.
  fallbackReason = 'this platform has no Unix file descriptor passing';
} else {
  try {
    binding = require('../binding.js');
  } catch (err) {
    // No prebuilt binary for this platform and no successful build, or a
    // binary that does not load (wrong libc, missing file, ...).
    // napi's loader says more than a warning line can hold: its first
    // sentence here, and what each place it tried said as the detail.
    fallbackReason = `its native addon did not load (${/^[^.\n]*/.exec(err.message)[0]})`;
    fallbackDetail = loadAttempts(err.cause);
  }
}

// napi's loader chains its load errors through `cause`, the last attempt
// first. In the order tried, first line of each.
function loadAttempts(cause) {
  const lines = [];
  for (let e = cause; e instanceof Error && lines.length < 10; e = e.cause) {
    lines.unshift(`- ${String(e.message).split('\n')[0]}`);
  }
  return lines.length === 0 ? undefined : lines.join('\n');
}

// What the addon exports under `name`; undefined where it cannot load.
const fromAddon = (name) => (binding === null ? undefined : binding[name]);

module.exports = {
  fallbackReason,
  fallbackDetail,
  Dispatcher: fromAddon('Dispatcher'),
  Channel: fromAddon('Channel'),
  // cluster.shared's region (lib/bus/shared.js) and its fixed sizes.
  SharedMemory: fromAddon('SharedMemory'),
  sharedLimits: fromAddon('sharedLimits'),
  // Untrusted input the native code refused (lib/rejections.js).
  rejectedInputs: fromAddon('rejectedInputs'),
  onRejectedInput: fromAddon('onRejectedInput'),
  peerCredentials: fromAddon('peerCredentials'), // { pid, uid, gid } of a unix socket's peer (lib/cli/control.js)
  // The kinds of message a Channel's onMessage(kind, id, fds, extra) gets,
  // each naming what its arguments are (src/worker.rs), defined once in the addon.
  ChannelMessageKind: fromAddon('ChannelMessageKind'),
  // What lib/ and the native side agree on, defined once in the addon
  // (src/facts.rs): bus peer ids and sizes (lib/bus/bus.js), the routing
  // stages' default timeouts, the scheduling policies' names and the
  // address-block parser (lib/primary/routing.js).
  BUS_PRIMARY: fromAddon('BUS_PRIMARY'),
  BUS_AGENT: fromAddon('BUS_AGENT'),
  BUS_BROADCAST: fromAddon('BUS_BROADCAST'),
  BUS_MAX_PAYLOAD: fromAddon('BUS_MAX_PAYLOAD'),
  BUS_RECORD_HEAD: fromAddon('BUS_RECORD_HEAD'),
  PROXY_HEADER_TIMEOUT_MS: fromAddon('PROXY_HEADER_TIMEOUT_MS'),
  STICKY_TIMEOUT_MS: fromAddon('STICKY_TIMEOUT_MS'),
  QUEUE_TIMEOUT_MS: fromAddon('QUEUE_TIMEOUT_MS'), // setupPrimary's queueTimeout default
  schedulingPolicyNames: binding === null ? undefined : binding.schedulingPolicyNames(),
  isCidr: fromAddon('isCidr'),
};
