#!/usr/bin/env node
'use strict';
// npx rcluster app.js -i max: see lib/cli/main.js, or rcluster --help.
require('../lib/cli/main').main(process.argv.slice(2)).then((code) => {
  process.exit(code);
}, (err) => {
  process.stderr.write(`rcluster: ${err && err.stack}\n`);
  process.exit(1);
});
