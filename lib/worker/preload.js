'use strict';
// Loaded into every worker with `--require` by the primary, before the app's
// own code, so that a worker script that never requires rcluster still shares
// its ports through the primary.
require('../..');
