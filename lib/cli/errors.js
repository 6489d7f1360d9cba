'use strict';
// What the command tells its user when the command line or a config file is
// wrong: one line, exit code 2 (a usage error, as for most Unix commands).
class UsageError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UsageError';
    this.code = 'ERR_RCLUSTER_USAGE';
    this.exitCode = 2;
  }
}

module.exports = { UsageError };
