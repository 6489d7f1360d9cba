'use strict';
// Small /proc readers (Linux only): CPU time of a process, members of a
// process group, and facts about the machine for the report header.

const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');

let clockTicks = null;

// Clock ticks per second that /proc/<pid>/stat counts in (almost always 100).
function ticksPerSecond() {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

// Fields of /proc/<pid>/stat after the "(comm)" field, which may itself
// contain spaces and parentheses. Returns null once the process is gone.
function statFields(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

// utime + stime of one process, in seconds; null if it no longer exists.
function cpuSeconds(pid) {
  const f = statFields(pid);
  if (!f) return null;
  // After "(comm)": [0]=state, [1]=ppid, [2]=pgrp, ... [11]=utime, [12]=stime
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

// Pids of all live (non-zombie) processes whose process group is pgid.
function processGroupMembers(pgid) {
  const members = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(name);
    if (f && Number(f[2]) === pgid && f[0] !== 'Z') members.push(Number(name));
  }
  return members;
}

function machineInfo() {
  let cpuModel = 'unknown';
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) cpuModel = line.split(':').slice(1).join(':').trim();
  } catch { /* not Linux: leave unknown */ }
  let nproc = os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch { /* keep os.cpus() */ }
  return { node: process.version, nproc, cpuModel, kernel: `${os.type()} ${os.release()}` };
}

module.exports = { cpuSeconds, processGroupMembers, machineInfo };
