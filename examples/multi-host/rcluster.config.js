// The settings of every host, read by `npx rcluster` in this directory (or
// `rcluster --config rcluster.config.js`). What differs between hosts and
// sites comes from the environment:
//
//   LB_ADDRESSES   the balancer's address(es) or CIDR(s), comma-separated:
//                  the PROXY protocol is read from them, and only them
//                  (unset: none is read, as behind a Kubernetes Service)
//   REDIS_URL      the Redis every host shares, redis://HOST:PORT (required)
//   HEALTH_ADDR    where /health listens, HOST:PORT (default 0.0.0.0:9000);
//                  the balancer checks it, so it must reach it
//   DRAIN_DELAY    ms a stopping host keeps serving while /health says 503,
//                  so the balancer stops sending first (default 5000)
//   INSTANCES      workers (default max: one per CPU)
//   PORT, HOST_ID  read by app.js: its port (3000) and its name in answers
'use strict';

function required(name) {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set (see the comment at the top of rcluster.config.js)`);
  return value;
}

module.exports = {
  name: process.env.APP_NAME || 'multi-host',
  script: 'app.js',
  instances: process.env.INSTANCES || 'max',
  // Readiness (/health, /health/ready) and liveness (/health/live) for the
  // balancer, on a port of their own, without the PROXY protocol.
  health: process.env.HEALTH_ADDR || '0.0.0.0:9000',
  // Longer than the balancer takes to see /health fail: HAProxy's
  // inter 1s + fastinter 500ms x (fall 2 - 1) + a check's timeout, about
  // 2.5 s at worst in haproxy.cfg; 5 s leaves room.
  drainDelay: Number(process.env.DRAIN_DELAY || 5000),
  // HAProxy sends PROXY v2 (send-proxy-v2): the workers see the client's
  // address in req.socket.remoteAddress. A connection from anyone else is
  // refused, as is one whose header is missing.
  ...(process.env.LB_ADDRESSES && {
    routing: { proxyProtocol: { trusted: process.env.LB_ADDRESSES.split(/[\s,]+/).filter(Boolean) } },
  }),
  // Broadcasts and shared counters across the hosts.
  bus: { redis: required('REDIS_URL') },
};
