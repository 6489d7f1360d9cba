'use strict';
// The native addon, through the loader `napi build` generates, or the reason
// it cannot be had in this process. This is the one place that decides whether
// rcluster can run here: index.js gives node:cluster instead when
// `fallbackReason` is set.
let binding = null;
let fallbackReason = null;

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
    fallbackReason = `its native addon did not load (${err.message.split('\n')[0]})`;
  }
}

module.exports = {
  fallbackReason,
  Dispatcher: binding === null ? undefined : binding.Dispatcher,
  Channel: binding === null ? undefined : binding.Channel,
};
