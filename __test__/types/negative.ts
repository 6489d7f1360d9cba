// Checked by packaging/types.test.js, which expects tsc to REJECT this file: stats()
// returns the dispatcher's numbers, so assigning it to a string is an error.
import cluster = require('rcluster');

export const notStats: string = cluster.stats();
