'use strict';
// The native addon, through the loader `napi build` generates.
module.exports = require('../binding.js');
