// `rcluster/register` is imported for its effect only: rcluster becomes the
// process's `cluster` module.
export {};
