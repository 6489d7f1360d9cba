'use strict';
// `node -r rcluster/register app.js`: rcluster is the process's `cluster`
// module from the very start, before any library of the app requires it.
require('../index.js');
