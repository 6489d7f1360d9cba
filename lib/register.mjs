// `node --import rcluster/register app.mjs`: rcluster is the process's
// `cluster` module (require and import alike) before the app's imports run.
import '../index.js';
