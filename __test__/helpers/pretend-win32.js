'use strict';
// Preloaded with `--require` (NODE_OPTIONS) to make rcluster believe it is on
// Windows, where there is no Unix fd passing, so that it falls back to
// node:cluster. Only rcluster's platform check (lib/native.js) is told
// 'win32': Node's own child_process also reads process.platform and would make
// Windows-only calls on Linux handles.
const path = require('node:path');

const NATIVE_JS = path.join(__dirname, '..', '..', 'lib', 'native.js');
const real = process.platform;

Object.defineProperty(process, 'platform', {
  enumerable: true,
  configurable: true,
  get() {
    return new Error().stack.includes(NATIVE_JS) ? 'win32' : real;
  },
});
