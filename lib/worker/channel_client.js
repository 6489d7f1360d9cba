'use strict';
// The worker's end of its private native channel to the primary's dispatcher
// (core/src/channel/wire.rs). Through it the worker is a member of listeners'
// rotations: it joins when a server of its listens, takes the connections
// dispatched to that server (or refuses them, and the primary passes them to
// another worker), and leaves when the server closes. SCHED_NONE sockets
// arrive on it too, and go to lib/worker/shared_socket_rendezvous.js.
const assert = require('assert');
const { debuglog } = require('util');
const { wrapConnection } = require('./connection_handle');
const { CloseReports } = require('./close_reports');

const debug = debuglog('rcluster');

// The kinds of message the native Channel passes to its callback, defined
// once in src/worker.rs and exported by the addon; each kind names what the
// callback's other arguments are for it.
const { ChannelMessageKind } = require('../native');
const { handBackIdle } = require('./keep_alive_handback');

class ChannelClient {
  /**
   * `fd`: the worker's end of the channel. `onSharedSocket(listenerId, fd)`:
   * a SCHED_NONE socket arrived (fd undefined if it could not be received).
   * `onClosed()`: the channel hung up (lib/worker/retirement.js).
   * `Channel`: the native addon's, unless a test gives its own.
   */
  constructor(fd, { workerId, onSharedSocket, onClosed = () => {}, Channel = require('../native').Channel }) {
    this.workerId = workerId;
    this.onSharedSocket = onSharedSocket;
    this.onClosed = onClosed;
    // Rotation memberships by the primary's listener id.
    this.memberships = new Map();
    // Round-robin servers that keep the worker alive (not unref()'d).
    this.refs = 0;
    // Closes of dispatched connections not yet reported, by listener id
    // (lib/worker/close_reports.js).
    this.closeReports = new CloseReports(this);
    this.channel = new Channel(fd, (kind, id, fds, extra) => this.onMessage(kind, id, fds, extra));
  }

  // `id` and `extra` mean what `kind` says (src/worker.rs ChannelMessageKind):
  // each case below hands them on under that name.
  onMessage(kind, id, fds, extra) {
    switch (kind) {
      // (listenerId, fds) and, from a PROXY header, (..., [address, port, family]).
      case ChannelMessageKind.Dispatch: return this.onDispatch(id, fds);
      case ChannelMessageKind.DispatchFrom: return this.onDispatch(id, fds, extra);
      // (mark): how many connections this worker had taken by now.
      case ChannelMessageKind.ConfirmRead: return this.scheduleReadConfirmation(id);
      // (listenerId, fds): the socket, or none if it could not be received.
      case ChannelMessageKind.Shared: return this.onSharedSocket(id, fds[0]);
      // (listenerId): nothing more comes for it, so the membership can be forgotten.
      case ChannelMessageKind.Left: return this.forget(id);
      case ChannelMessageKind.Closed:
        debug('worker %d: the channel to the primary closed', this.workerId);
        return this.onClosed();
      // cluster.bus (lib/bus/bus.js): (count, [], records), or (peer).
      case ChannelMessageKind.Bus:
      case ChannelMessageKind.PeerGone:
      case ChannelMessageKind.BusDropped:
        return require('../bus/bus').onChannelMessage(ChannelMessageKind, kind, id, extra);
    }
  }

  forget(listenerId) {
    this.closeReports.forget(listenerId);
    return this.memberships.delete(listenerId);
  }

  // Connections taken in this turn were acknowledged at once (that frees the
  // primary's window for this worker), but they are confirmed as read only
  // after the event-loop turn that follows this one: an immediate set from an
  // immediate runs after the next poll phase, where the sockets just wrapped
  // have their waiting bytes read. Until then the primary keeps its copies,
  // and if this worker dies (SIGKILLed while its JS spins), it serves again,
  // elsewhere, the connections nobody read (docs/DESIGN.md §11). A connection
  // closed meanwhile stays open in the primary only that long. `mark`: how
  // many this worker had taken by now; those taken in a later turn wait for
  // theirs.
  // Close reports due by then go in the same message.
  scheduleReadConfirmation(mark) {
    setImmediate(() => setImmediate(() => this.channel.confirmRead(mark, this.closeReports.take())));
  }

  /**
   * This worker is replaced and `server` is about to close: its idle
   * keep-alive connections go back to the primary (lib/worker/keep_alive_handback.js).
   */
  handBackIdle(server) {
    let moved = 0;
    for (const [listenerId, membership] of this.memberships) {
      if (membership.server === server && !membership.closing) moved += handBackIdle(server, listenerId, this.channel);
    }
    if (moved > 0) debug('worker %d: handed %d idle keep-alive connections back', this.workerId, moved);
    return moved;
  }

  /** My event loop is turning (lib/worker/heartbeat.js). */
  heartbeat() {
    this.channel.heartbeat();
  }

  /**
   * `server` is in the rotation of the primary's listener `listenerId`:
   * dispatched connections go to `handle.onconnection`. `kind`: 'tcp' or 'pipe'.
   */
  join(listenerId, server, handle, kind) {
    this.memberships.set(listenerId, {
      handle,
      server,
      kind,
      closing: false,
      connections: 0, // for NODE_DEBUG only
    });
  }

  /**
   * Out of the rotation of `listenerId` (a server closing, or a listen given
   * up). The primary confirms with LEFT; connections that arrive before it
   * are refused back to the primary, which gives them to another worker.
   * Returns the connections the membership took, for NODE_DEBUG.
   */
  leave(listenerId) {
    this.channel.leave(listenerId);
    const membership = this.memberships.get(listenerId);
    if (membership === undefined) return 0;
    membership.closing = true;
    return membership.connections;
  }

  /** Out of every rotation not already being left. */
  leaveAll() {
    for (const [listenerId, membership] of this.memberships) {
      if (membership.closing) continue;
      membership.closing = true;
      this.channel.leave(listenerId);
    }
  }

  // A listening round-robin server keeps the worker alive, and server.unref()
  // releases it, as Node's fake handle does with a timer; here the channel's
  // poll handle does it.
  ref() {
    this.refs += 1;
    if (this.refs === 1) this.channel.ref();
  }

  unref() {
    this.refs -= 1;
    assert(this.refs >= 0);
    if (this.refs === 0) this.channel.unref();
  }

  // Round-robin connections. Each fd is first wrapped in a native handle,
  // then acknowledged (the primary may close its copy: we own a socket now
  // and have read nothing), and only then given to the server, whose
  // 'connection' listeners may throw. A closing server, or one at
  // maxConnections, refuses: the primary gives the connection to another
  // worker, as Node's round-robin does. `source`: the client a PROXY header
  // named ([address, port, family]), shown as the socket's remote end.
  onDispatch(listenerId, fds, source) {
    const membership = this.memberships.get(listenerId);
    const statuses = new Uint8Array(fds.length);
    const accepted = [];
    if (membership !== undefined && !membership.closing) {
      const server = membership.server;
      for (let i = 0; i < fds.length; i++) {
        // Node 20 treats a maxConnections of 0 as no limit (its net.js and
        // cluster check it for truthiness), so this does too.
        if (server.maxConnections &&
            server._connections + accepted.length >= server.maxConnections) {
          continue;
        }
        const handle = wrapConnection(fds[i], membership.kind);
        if (handle !== null) {
          if (source !== undefined) showPeer(handle, source);
          statuses[i] = 1;
          accepted.push(handle);
        }
      }
    }
    this.channel.reply(statuses);
    this.debugDispatch(listenerId, membership, fds.length, accepted.length);
    if (accepted.length > 0) this.closeReports.track(listenerId, membership.server, accepted);
    let error = null;
    for (const handle of accepted) {
      try {
        membership.handle.onconnection(0, handle);
      } catch (err) {
        error ??= err;
      }
    }
    if (error !== null) throw error;
  }

  // NODE_DEBUG=rcluster: the first connections a listener gets, and every
  // batch this worker refuses (and why), but not each connection it takes.
  debugDispatch(listenerId, membership, offered, taken) {
    if (!debug.enabled) return;
    const id = this.workerId;
    if (membership !== undefined && taken > 0 && membership.connections === 0) {
      debug('worker %d: listener %d: first connection', id, listenerId);
    }
    if (membership !== undefined) membership.connections += taken;
    if (taken < offered) {
      const why = membership === undefined ? 'no such listener here' :
        membership.closing ? 'the server is closing' : 'server.maxConnections reached';
      debug('worker %d: listener %d: refused %d of %d connections (%s); the primary passes them on',
            id, listenerId, offered - taken, offered, why);
    }
  }
}

// net.Socket asks its handle for remoteAddress/remotePort/remoteFamily
// (getpeername); behind a PROXY-protocol load balancer the answer is the
// client the header named, as if there were no proxy.
function showPeer(handle, [address, port, family]) {
  handle.getpeername = (out) => {
    out.address = address;
    out.port = port;
    out.family = family;
    return 0;
  };
}

module.exports = { ChannelClient, ChannelMessageKind };
