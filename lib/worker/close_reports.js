'use strict';
// A worker tells the primary's dispatcher when connections it was dealt
// close, so the dispatcher knows how many each worker holds open: what
// least-connections routing (SCHED_LC) places by, and what cluster.stats()
// shows. Closes are counted per listener and sent in one message per
// listener per event-loop turn, with the server's maxConnections, which the
// dispatcher reads as that worker's cap.

// The channel's count fields are u32; 0 means no cap.
const MAX_U32 = 2 ** 32 - 1;

function capOf(server) {
  const cap = server.maxConnections;
  // Node treats 0 (and anything not a positive number) as no limit.
  if (typeof cap !== 'number' || !(cap > 0)) return 0;
  return cap >= MAX_U32 ? 0 : Math.floor(cap);
}

class CloseReports {
  constructor(client) {
    this.client = client;
    // listener id -> { closed, server, cap: last cap sent }
    this.byListener = new Map();
    this.scheduled = false;
  }

  entry(listenerId, server) {
    let entry = this.byListener.get(listenerId);
    if (entry === undefined) {
      entry = { closed: 0, server, cap: 0 };
      this.byListener.set(listenerId, entry);
    }
    entry.server = server;
    return entry;
  }

  // `handles` were just taken for `listenerId`: each one's close is counted.
  // net.Socket closes its handle however it ends (end, destroy, error, or
  // net.Server refusing it at maxConnections).
  track(listenerId, server, handles) {
    const entry = this.entry(listenerId, server);
    for (const handle of handles) {
      const close = handle.close;
      let counted = false;
      handle.close = (...args) => {
        if (!counted) {
          counted = true;
          entry.closed += 1;
          this.schedule();
        }
        return close.apply(handle, args);
      };
    }
    // A cap set or changed since the last report goes out now, so that the
    // dispatcher stops offering this worker connections it would refuse.
    if (capOf(server) !== entry.cap) this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  flush() {
    this.scheduled = false;
    for (const [listenerId, closed, cap] of this.due()) {
      try {
        this.client.channel.reportClosed(listenerId, closed, cap);
      } catch {
        // The channel failed (not merely closed, which reportClosed
        // ignores): the primary is going away, and counts with it.
        this.byListener.clear();
        return;
      }
    }
  }

  // The reports due now, as [listenerId, closed, cap] triples, counted as
  // sent: for a read confirmation to carry in its own message
  // (channel.confirmRead), so that under churn, where connections close in
  // the turn after they came, the primary wakes once for both. Undefined
  // when none is due.
  take() {
    let flat;
    for (const [listenerId, closed, cap] of this.due()) {
      (flat ??= []).push(listenerId, closed, cap);
    }
    return flat;
  }

  * due() {
    for (const [listenerId, entry] of this.byListener) {
      const cap = capOf(entry.server);
      if (entry.closed === 0 && cap === entry.cap) continue;
      const closed = Math.min(entry.closed, MAX_U32);
      entry.closed -= closed;
      entry.cap = cap;
      yield [listenerId, closed, cap];
    }
  }

  // Nothing more is counted for a listener this worker left.
  forget(listenerId) {
    this.byListener.delete(listenerId);
  }
}

module.exports = { CloseReports, capOf };
