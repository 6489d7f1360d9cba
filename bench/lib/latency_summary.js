'use strict';
// The latency summary the mixed and heavy load generators print for each
// class of request: count, p50, p99, mean and max of a list of milliseconds.

// The nearest-rank percentile of an ascending list; null for an empty one.
function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function describe(samples) {
  const sorted = Float64Array.from(samples).sort();
  const mean = samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : null;
  return {
    count: samples.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean,
    max: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

module.exports = { describe, percentile };
