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

module.exports = {
  fallbackReason,
  fallbackDetail,
  Dispatcher: binding === null ? undefined : binding.Dispatcher,
  Channel: binding === null ? undefined : binding.Channel,
  // cluster.shared's region (lib/bus/shared.js) and its fixed sizes.
  SharedMemory: binding === null ? undefined : binding.SharedMemory,
  sharedLimits: binding === null ? undefined : binding.sharedLimits,
  // Untrusted input the native code refused (lib/rejections.js).
  rejectedInputs: binding === null ? undefined : binding.rejectedInputs,
  onRejectedInput: binding === null ? undefined : binding.onRejectedInput,
  peerCredentials: binding === null ? undefined : binding.peerCredentials, // { pid, uid, gid } of a unix socket's peer (lib/cli/control.js)
  // The kinds of message a Channel's onMessage(kind, listenerId, fds) gets:
  // { Closed: 0, Dispatch: 1, Shared: 2, Left: 3, Bus: 10, PeerGone: 11, BusDropped: 12 }, defined once in the addon.
  ChannelMessageKind: binding === null ? undefined : binding.ChannelMessageKind,
};
