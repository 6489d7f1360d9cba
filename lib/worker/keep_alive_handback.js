'use strict';
// A retiring worker's keep-alive connections (docs/DESIGN.md §10.4). Closing
// an idle HTTP/1.1 keep-alive connection under a client is a race the client
// can lose: it may be sending its next request on it that very moment, and
// gets ECONNRESET or a hang-up. So a worker replaced by a reload or a recycle
// gives each idle one (no request in progress, nothing read and unparsed)
// back to the primary, which deals it to another worker as a new
// connection: the client never notices. A connection with a request in
// progress answers it with `Connection: close`, then closes. TLS
// connections can't move (their session state lives in this process): they
// close after their response, as before. Nor can a connection whose client
// address came from a PROXY header: the header was read and stripped by the
// primary, and a connection handed back is dealt as a new one, with no
// address but its socket's (the balancer's), so it would reach its next
// worker as the balancer's; it closes when idle, as Node closes it, which a
// balancer retries (HAProxy's retry-on, nginx's proxy_next_upstream).
const net = require('net');

// Set on a connection's handle whose remote end is the client a PROXY header
// named (lib/worker/channel_client.js showPeer).
const PROXIED = Symbol('rcluster.proxiedPeer');

// Node's http.Server keeps its connections in a list under this symbol
// (lib/_http_server.js); closeIdleConnections() reads the same list.
function connectionsOf(server) {
  const symbol = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
  return symbol === undefined ? undefined : server[symbol];
}

/**
 * Before `server` (in the rotation of `listenerId`) closes: hands its idle
 * plain-TCP keep-alive connections back through `channel`, and makes the
 * responses in progress close their connections. Returns how many moved.
 */
function handBackIdle(server, listenerId, channel) {
  const connections = connectionsOf(server);
  if (connections === undefined || typeof connections.idle !== 'function') return 0;
  let moved = 0;
  for (const parser of connections.idle()) {
    const socket = parser.socket;
    if (!movable(socket)) continue;
    // Nothing more is read here: whatever the client sends from now on waits
    // in the kernel for the next owner.
    socket._handle.readStop();
    if (socket.readableLength > 0 || (socket._httpMessage && !socket._httpMessage.finished)) {
      socket._handle.readStart();
      continue;
    }
    try {
      channel.handBack(listenerId, socket._handle.fd);
    } catch {
      socket._handle.readStart();
      continue; // the primary is gone: it closes with the server, as before
    }
    moved++;
    // Only this process's copy closes: the connection lives on in the primary.
    socket.destroy();
  }
  for (const parser of connections.active()) {
    const res = parser.socket && parser.socket._httpMessage;
    if (res && !res.headersSent) res.shouldKeepAlive = false;
  }
  return moved;
}

function movable(socket) {
  return socket instanceof net.Socket && !socket.encrypted && !socket.destroyed &&
    socket._handle != null && typeof socket._handle.fd === 'number' && socket._handle.fd >= 0 &&
    socket._handle[PROXIED] !== true;
}

module.exports = { handBackIdle, PROXIED };
