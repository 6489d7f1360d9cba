'use strict';
// systemd socket activation: the primary adopts the listening sockets systemd
// passed it (LISTEN_PID is this process, LISTEN_FDS of them from fd 3 on,
// LISTEN_FDNAMES naming them), and a worker's listen on the address of one of
// them gets it instead of binding (core/src/listen/inherited.rs). systemd keeps its
// own copy, so connections queue in it while the whole service restarts.
//
// Read once, when the primary loads, and taken out of the environment, as
// sd_listen_fds(unset_environment=1) does: the workers are not the process
// the sockets were meant for.

const SD_LISTEN_FDS_START = 3;

/** The inherited fds ([{ fd, name }]) for `env` of a process `pid`, if any. */
function listenFds(env, pid) {
  if (env.LISTEN_PID === undefined || env.LISTEN_FDS === undefined) return [];
  if (!/^\d+$/.test(env.LISTEN_PID) || Number(env.LISTEN_PID) !== pid) return [];
  if (!/^\d+$/.test(env.LISTEN_FDS)) return [];
  const count = Number(env.LISTEN_FDS);
  const names = env.LISTEN_FDNAMES === undefined ? [] : env.LISTEN_FDNAMES.split(':');
  return Array.from({ length: count }, (_, i) => ({
    fd: SD_LISTEN_FDS_START + i,
    ...(names[i] ? { name: names[i] } : {}),
  }));
}

/** Takes this process's inherited sockets out of its environment. */
function takeListenFds(env = process.env, pid = process.pid) {
  const fds = listenFds(env, pid);
  if (env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === pid) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  return fds;
}

module.exports = { listenFds, takeListenFds };
