'use strict';
// RSS and CPU time of a process, read by the primary from /proc (Linux), so
// that a worker too busy to answer is still measured.
const fs = require('fs');

const CLOCK_TICKS = 100; // USER_HZ, 100 on every Linux architecture Node runs on
const PAGE = 4096;

/** `{ rss (bytes), cpuSeconds }` or null where /proc is not there. */
function procStat(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: fields count from after ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const rssPages = Number(fields[21]);
    return { rss: rssPages * PAGE, cpuSeconds: (utime + stime) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

module.exports = { procStat };
