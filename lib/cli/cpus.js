'use strict';
// How many workers `-i max` means: the CPUs this process may use, which in a
// container is the CPU quota of its cgroup (cgroup v2 `cpu.max`, v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`), not the host's core count that
// os.availableParallelism() reports (PM2 forked 48 workers in a 2-CPU
// container, Unitech/pm2#4347). The quota of every cgroup from the process's
// own up to the root applies; the smallest wins.
//
// RCLUSTER_CGROUP_ROOT (for tests) replaces /sys/fs/cgroup, so that a test that
// cannot create a cgroup can lay out the files a quota would give.
const fs = require('fs');
const os = require('os');
const path = require('path');

function read(file) {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

// Every ancestor of a cgroup path, itself first: '/a/b' -> ['/a/b', '/a', '/'].
function lineage(cgroupPath) {
  const out = [];
  let p = path.posix.normalize(cgroupPath || '/');
  for (;;) {
    out.push(p);
    if (p === '/') return out;
    p = path.posix.dirname(p);
  }
}

// CPUs a quota allows: quota / period, rounded up (1.5 CPUs can run 2 workers
// that are each busy three quarters of the time), at least 1.
function fromQuota(quota, period) {
  if (!(quota > 0) || !(period > 0)) return Infinity;
  return Math.max(1, Math.ceil(quota / period));
}

/** The CPU quota in whole CPUs, or Infinity when there is none. */
function cgroupCpuLimit({ root = process.env.RCLUSTER_CGROUP_ROOT || '/sys/fs/cgroup', procSelf = '/proc/self/cgroup' } = {}) {
  const table = read(procSelf);
  if (table === null) return Infinity;
  let limit = Infinity;
  for (const line of table.split('\n')) {
    // "hierarchy:controllers:path"; the path may itself hold colons.
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const hierarchy = line.slice(0, a);
    const controllers = line.slice(a + 1, b);
    const cgroupPath = line.slice(b + 1);
    if (hierarchy === '0' && controllers === '') {
      // cgroup v2: "max 100000" or "50000 100000".
      for (const p of lineage(cgroupPath)) {
        const v = read(path.join(root, p, 'cpu.max'));
        if (v === null) continue;
        const [quota, period] = v.split(/\s+/);
        if (quota !== 'max') limit = Math.min(limit, fromQuota(Number(quota), Number(period)));
      }
    } else if (controllers.split(',').includes('cpu')) {
      // cgroup v1: the controller is mounted as "cpu,cpuacct" or "cpu".
      for (const dir of [controllers, 'cpu,cpuacct', 'cpu']) {
        for (const p of lineage(cgroupPath)) {
          const quota = read(path.join(root, dir, p, 'cpu.cfs_quota_us'));
          const period = read(path.join(root, dir, p, 'cpu.cfs_period_us'));
          if (quota !== null && period !== null) limit = Math.min(limit, fromQuota(Number(quota), Number(period)));
        }
      }
    }
  }
  return limit;
}

/** What `-i max` means here. */
function maxInstances() {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, cgroupCpuLimit()));
}

module.exports = { maxInstances, cgroupCpuLimit };
