'use strict';
// A client of a listener that reads the PROXY protocol: v2 headers built by
// hand, and raw loopback exchanges that send bytes (in chunks, with gaps) and
// collect everything the server sent before it closed.
const net = require('node:net');

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2Header(ipv6, source, port) {
  const address = ipv6
    ? Buffer.concat([ipv6ToBytes(source), ipv6ToBytes('::1'), u16(port), u16(80)])
    : Buffer.concat([Buffer.from(source.split('.').map(Number)), Buffer.from([127, 0, 0, 1]), u16(port), u16(80)]);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, ipv6 ? 0x21 : 0x11]), u16(address.length), address]);
}

function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function ipv6ToBytes(text) {
  const [head, tail = ''] = text.split('::');
  const parts = (s) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const h = parts(head);
  const t = parts(tail);
  const words = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return Buffer.concat(words.map(u16));
}

// Sends `chunks` (with `gap` ms between them) and resolves with everything
// the server sent before closing.
function exchange(port, chunks, { gap = 0, timeout = 8000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeout} ms; got ${JSON.stringify(data)}`));
    }, timeout);
    socket.setEncoding('utf8');
    socket.on('data', (d) => { data += d; });
    socket.on('error', () => {}); // a reset counts as closed
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('connect', async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0 && gap > 0) await new Promise((r) => setTimeout(r, gap));
        if (!socket.destroyed) socket.write(chunk);
      }
    });
  });
}

module.exports = { V2_SIGNATURE, v2Header, exchange };
