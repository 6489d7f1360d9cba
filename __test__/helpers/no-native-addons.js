'use strict';
// Preloaded with `--require` (NODE_OPTIONS): loading any native addon (.node
// file) throws, as on a platform with no prebuilt binary and a failed build.
require.extensions['.node'] = function refuse(module, filename) {
  throw new Error(`Cannot load native addon ${filename} (refused by the test)`);
};
