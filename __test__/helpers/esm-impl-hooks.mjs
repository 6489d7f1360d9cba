// Module resolution hook registered by esm-impl.mjs.
const IMPL = process.env.RCLUSTER_TEST_IMPL;

export async function resolve(specifier, context, next) {
  if (specifier === 'rcluster' && IMPL) return next(IMPL, context);
  return next(specifier, context);
}
