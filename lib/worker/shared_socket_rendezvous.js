'use strict';
// A SCHED_NONE (or UDP) listen gets two answers from the primary on two
// channels: the listening socket's fd on the native channel (SHARED), and the
// reply to its queryServer on Node's IPC channel. Either may come first; this
// is where they meet, by the primary's listener id. node:cluster sends both in
// one message, so it needs no such thing.
//
// An fd of `undefined` is an answer too: the socket could not be received
// (this process is out of descriptors), and the listen fails with EMFILE.
class SharedSocketRendezvous {
  constructor() {
    this.arrived = new Map(); // listener id -> fd (or undefined), reply not seen yet
    this.waiting = new Map(); // listener id -> callback, fd not arrived yet
  }

  /** The native channel delivered the listener's socket. */
  socketArrived(listenerId, fd) {
    const waiter = this.waiting.get(listenerId);
    if (waiter === undefined) {
      this.arrived.set(listenerId, fd);
    } else {
      this.waiting.delete(listenerId);
      waiter(fd);
    }
  }

  /** The IPC reply came: `fn(fd)` runs now if the socket is here, else on its arrival. */
  whenSocket(listenerId, fn) {
    if (this.arrived.has(listenerId)) {
      const fd = this.arrived.get(listenerId);
      this.arrived.delete(listenerId);
      fn(fd);
    } else {
      this.waiting.set(listenerId, fn);
    }
  }
}

module.exports = { SharedSocketRendezvous };
