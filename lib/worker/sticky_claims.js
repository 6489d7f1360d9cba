'use strict';
// cluster.worker.stick(value), in a worker: under SCHED_STICKY with
// setupPrimary({ routing: { sticky: { query } or { cookie } } }), tells the
// primary's dispatcher that connections whose first request carries `value`
// (a session id this worker made) are this worker's. A handshake has no
// session id yet and is placed in turn; the worker that answers it says so
// here, before its answer can reach the client, and from then on the
// session's requests come to it on any new connection. For socket.io, as
// the id is made:
//
//   const generateId = io.engine.generateId.bind(io.engine);
//   io.engine.generateId = async (req) => {
//     const id = await generateId(req);
//     cluster.worker.stick(id);
//     return id;
//   };
const { nodeError, describeReceived } = require('../errors');

function stick(channel, value) {
  if (typeof value !== 'string') {
    throw nodeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      `The "value" argument must be of type string. Received ${describeReceived(value)}`, stick);
  }
  channel.channel.stick(value);
}

module.exports = { stick };
