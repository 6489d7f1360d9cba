'use strict';
// Linux /proc inspection: which sockets are bound to a port, and who holds them.

const fs = require('node:fs');

/**
 * Inodes of the sockets bound to `port` (IPv4 and IPv6) in /proc/net/<proto>:
 * `proto` 'tcp' (only those in LISTEN state) or 'udp'.
 */
function socketInodes(port, proto) {
  const inodes = new Set();
  for (const file of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const localPort = parseInt(cols[1].split(':')[1], 16);
      const listening = proto !== 'tcp' || cols[3] === '0A';
      if (listening && localPort === port) inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** Inodes of TCP sockets in LISTEN state bound to `port` (IPv4 and IPv6). */
function listeningInodes(port) {
  return socketInodes(port, 'tcp');
}

/** Inodes of the UDP sockets bound to `port` (IPv4 and IPv6). */
function udpSocketInodes(port) {
  return socketInodes(port, 'udp');
}

/** Number of fds of process `pid` that are LISTEN sockets on `port`. */
function listeningFdsOf(pid, port) {
  const inodes = listeningInodes(port);
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1])) n++;
  }
  return n;
}

module.exports = { listeningInodes, udpSocketInodes, listeningFdsOf };
