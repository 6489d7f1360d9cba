'use strict';
// The cluster module as the agent sees it (setupPrimary({ agent })):
// cluster.isAgent is true, isPrimary and isWorker false. The agent has
// cluster.bus (bus peer 'agent') and cluster.shared like every process of the
// cluster, and cluster.agent.ready() to say the workers may start (so does
// process.send('ready')). It is given no connections: a server it opens
// listens on a socket of its own, as with { exclusive: true }. An uncaught
// exception is printed and reported to the primary ('agentError'), and the
// agent carries on; it exits when the primary disconnects it or exits.
const fs = require('fs');
const { inspect } = require('util');
const { role } = require('../role');
const { sendHelper } = require('../internal_messages');
const { Act } = require('../protocol');
const { uvErrno } = require('../uv_constants');
const builtin = require('../builtin');
const sharedState = require('../bus/shared');
const busModule = require('../bus/bus');

// Node's own cluster object, as in the primary and workers (lib/builtin.js).
const cluster = builtin.claim(false);
module.exports = cluster;

cluster.isAgent = true;
cluster.isPrimary = false;
cluster.isMaster = false;
cluster.isWorker = false;
cluster.worker = null;
Object.defineProperty(cluster, 'shared', { configurable: true, enumerable: false, get: () => sharedState.sharedApi() });
Object.defineProperty(cluster, 'bus', { configurable: true, enumerable: false, value: busModule.bus });

let readySent = false;
cluster.agent = Object.freeze({
  /** Workers wait for this: call it once the agent can serve them. */
  ready() {
    if (readySent) return;
    readySent = true;
    sendHelper(process, { act: Act.AgentReady });
  },
});

const UV_ENOTSUP = uvErrno('ENOTSUP');

// Node's net.js asks the cluster for a shared socket whenever isPrimary is
// false. The agent is in no rotation: a net.Server listens on its own
// socket, exactly as the primary's or an { exclusive: true } one does.
cluster._getServer = function(obj, options, cb) {
  if (typeof obj._listen2 === 'function') {
    obj._listen2(options.address, options.port, options.addressType, options.backlog, options.fd, options.flags);
    return;
  }
  // A dgram socket: bind it with { exclusive: true }.
  cb(UV_ENOTSUP, null);
};

cluster._setupAgent = function() {
  const { channelFd, sharedFd, machine } = role();
  sharedState.attach(sharedFd);
  const { Channel, ChannelMessageKind } = require('../native');
  const channel = new Channel(channelFd, (kind, countOrPeer, fds, records) =>
    busModule.onChannelMessage(ChannelMessageKind, kind, countOrPeer, records));
  // The agent lives as long as the primary wants it, whatever its code keeps open.
  channel.ref();
  busModule.setSelf(busModule.AGENT, machine);
  busModule.bus.attach(channel);

  process.on('uncaughtException', (err, origin) => {
    const text = err instanceof Error ? inspect(err) : `Uncaught ${inspect(err)}`;
    try {
      fs.writeSync(2, `rcluster agent: ${origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception'}: ${text}\n`);
    } catch {
      // stderr is gone.
    }
    const error = err instanceof Error ?
      { name: err.name, message: err.message, stack: err.stack, code: err.code } :
      { name: typeof err, message: inspect(err) };
    sendHelper(process, { act: Act.AgentError, error });
  });
  process.once('disconnect', () => {
    channel.close();
    process.exit(0);
  });
};
