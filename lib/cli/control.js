'use strict';
// The control socket: `rcluster status|reload|scale|stop` talk to the running
// primary over a unix socket. One JSON request per connection, one JSON
// reply, both newline-terminated.
//
// Another local user must neither give the primary orders nor feed its
// owner's `rcluster status` a reply, and nothing on the socket may cost the
// primary more than a bounded amount:
// - by default the socket lives in a directory only its owner can use
//   (controlDir), so no one else can put a file where the client looks;
// - the primary replaces nothing at its path but a stale socket of its own
//   (prepare): a file, a symlink, a directory or another user's socket is an
//   ERR_RCLUSTER_CONTROL_UNSAFE error, never deleted;
// - both ends read the other's uid from the kernel (SO_PEERCRED, through the
//   addon's peerCredentials) and refuse anyone but their own uid and root;
// - a request line is at most LIMITS.line bytes and must come within
//   LIMITS.idle; at most LIMITS.connections are served at once; a reply is at
//   most LIMITS.reply bytes. A refused line counts as `controlLine` in
//   lib/rejections.js (the rcluster command's primary is the cluster's).
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const native = require('../native');
const { reject } = require('../rejections');
const { codedError } = require('../errors');
const { printable } = require('./status_view');

const LIMITS = Object.freeze({
  /** Bytes of a request line, newline excluded. Requests are a few dozen bytes. */
  line: 64 * 1024,
  /** ms a connection may take to send its line. */
  idle: 5000,
  /** Control connections served at once; more are closed at once. */
  connections: 32,
  /** Bytes of a reply the client reads (a status of thousands of workers fits). */
  reply: 8 * 1024 * 1024,
});

// How long a connection may stay after its reply, for the peer to read it.
const LINGER_MS = 1000;

// Longest path a unix socket address holds (sun_path, NUL included).
const MAX_SOCKET_PATH = 107;

function unsafe(file, why) {
  return codedError(Error, 'ERR_RCLUSTER_CONTROL_UNSAFE', `control socket path ${file} is not safe to use: ${why} (left as it is)`,
                    { path: file });
}

function lstatOrNull(file) {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw err;
  }
}

function kind(st) {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a regular file';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

// `dir` as a directory only this uid can use: created 0700 if absent;
// refused if it is a symlink, not a directory, someone else's, or open to
// group or others (anyone who can write it can put a socket of theirs where
// the client looks, or remove ours).
function privateDir(dir, { create }) {
  const uid = process.geteuid();
  let st = lstatOrNull(dir);
  if (st === null) {
    if (!create) return dir;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    st = fs.lstatSync(dir);
  }
  if (!st.isDirectory()) throw unsafe(dir, `it is ${kind(st)}, not a directory`);
  if (st.uid !== uid) throw unsafe(dir, `the directory is owned by uid ${st.uid}, not by this user (uid ${uid})`);
  if ((st.mode & 0o077) !== 0) throw unsafe(dir, `the directory has mode 0${(st.mode & 0o777).toString(8)}: others can use it (it must be 0700)`);
  return dir;
}

/**
 * The directory default control sockets go in: `$XDG_RUNTIME_DIR/rcluster`
 * when XDG_RUNTIME_DIR is a 0700 directory of this user, else
 * `<tmpdir>/rcluster-<uid>`; checked (and with `create`, created) by privateDir.
 */
function controlDir({ create = false, env = process.env } = {}) {
  const uid = process.geteuid();
  const xdg = env.XDG_RUNTIME_DIR;
  if (typeof xdg === 'string' && path.isAbsolute(xdg)) {
    const st = lstatOrNull(xdg);
    if (st !== null && st.isDirectory() && st.uid === uid && (st.mode & 0o777) === 0o700) {
      return privateDir(path.join(xdg, 'rcluster'), { create });
    }
  }
  return privateDir(path.join(os.tmpdir(), `rcluster-${uid}`), { create });
}

// A file name for an app's name: letters, digits, '.', '_' and '-' as they
// are, every other byte as %XX, so that two names never share a file and
// the name can be read back (nameOfSocket). '%' itself is escaped.
function encodeName(name) {
  return [...Buffer.from(name, 'utf8')].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9._-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

const SOCKET_SUFFIX = '.sock';

/**
 * The control socket of the app named `name`: `<controlDir()>/<name>.sock`,
 * so that `rcluster status NAME` finds it from any directory and a second
 * app of the same name finds the first one's in its way. A name too long
 * for a unix socket path is cut, with a hash of the whole name.
 */
function controlPathFor(name, options = {}) {
  if (typeof name !== 'string' || name === '') throw codedError(TypeError, 'ERR_INVALID_ARG_TYPE', 'an app name is a non-empty string');
  const dir = controlDir(options);
  const room = MAX_SOCKET_PATH - Buffer.byteLength(dir) - 1 - SOCKET_SUFFIX.length;
  let base = encodeName(name);
  if (base.startsWith('.')) base = `%2E${base.slice(1)}`;
  if (base.length > room) {
    const hash = crypto.createHash('sha256').update(name).digest('hex').slice(0, 16);
    if (room < hash.length + 2) {
      throw codedError(Error, 'ENAMETOOLONG', `the control socket directory ${dir} is too long a path for a unix socket (give --control PATH)`);
    }
    base = `${base.slice(0, room - hash.length - 1).replace(/%[0-9A-F]?$/, '')}~${hash}`;
  }
  return path.join(dir, `${base}${SOCKET_SUFFIX}`);
}

/** The app name a socket file of controlDir() was made for (cut names come back cut). */
function nameOfSocket(file) {
  const base = path.basename(file, SOCKET_SUFFIX).replace(/~[0-9a-f]{16}$/, '');
  try {
    return decodeURIComponent(base);
  } catch {
    return base;
  }
}

/**
 * The control sockets in controlDir(): the paths of the sockets of this
 * user there, whether or not a primary still answers on them (a killed one
 * leaves its socket). Nothing else in the directory is listed, and nothing
 * is followed: the directory itself is checked as privateDir checks it
 * (throws ERR_RCLUSTER_CONTROL_UNSAFE when it fails the check).
 */
function listControlSockets(options = {}) {
  // A directory someone else could use is an error (ERR_RCLUSTER_CONTROL_UNSAFE), not "no app".
  const dir = controlDir(options);
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
    throw err;
  }
  const uid = process.geteuid();
  return names.filter((n) => n.endsWith(SOCKET_SUFFIX)).sort().map((n) => path.join(dir, n)).filter((file) => {
    const st = lstatOrNull(file);
    return st !== null && st.isSocket() && st.uid === uid;
  });
}

/**
 * `dir` with its symbolic links resolved, as a primary reports the
 * directory it started in and `rcluster status` compares it with its own;
 * a directory gone meanwhile is compared as written.
 */
function realDir(dir) {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

// Whether a process answers on the socket at `file`.
function probe(file) {
  return new Promise((resolve) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// Clears the way for listening on `file`: nothing there, or a stale socket
// of this user's, which is removed. Anything else stays and is an error.
async function prepare(file) {
  const st = lstatOrNull(file);
  if (st === null) return;
  if (!st.isSocket()) throw unsafe(file, `it is ${kind(st)}, not a socket`);
  const uid = process.geteuid();
  if (st.uid !== uid) throw unsafe(file, `it is a socket of uid ${st.uid}, not of this user (uid ${uid})`);
  if (await probe(file)) {
    throw codedError(Error, 'EADDRINUSE', `another rcluster is running with control socket ${file} (use --control PATH)`, { path: file });
  }
  // A stale socket from a primary that was killed: still the same one?
  const again = lstatOrNull(file);
  if (again === null) return;
  if (again.ino !== st.ino || again.dev !== st.dev) throw unsafe(file, 'it was replaced while being checked');
  fs.unlinkSync(file);
}

/** `{ pid, uid, gid }` of the peer of a connected unix `socket`, or null if it cannot be known. */
function peerOf(socket) {
  // On Unix, a net.Socket's libuv handle gives its descriptor as `fd`. It is
  // read and used on the JS thread while the socket is open, and only the JS
  // thread closes it: the number cannot be closed, or reused by another
  // socket, in between. Anything unexpected (no handle, no fd, no addon)
  // is "unknown", which both ends refuse.
  const fd = socket._handle?.fd;
  if (!Number.isInteger(fd) || fd < 0 || typeof native.peerCredentials !== 'function') return null;
  try {
    return native.peerCredentials(fd);
  } catch {
    return null;
  }
}

// This user and root may use a control socket. Root can read this user's
// memory and files anyway, and `sudo rcluster status --control PATH` is
// how an operator looks at a service that runs as its own user.
function trusted(uid) {
  return uid === process.geteuid() || uid === 0;
}

// A reply that refuses or reports a failure.
function errorReply(code, message) {
  return { ok: false, error: { code, message } };
}

/**
 * The reply to one request line (a Buffer or string, newline excluded): a
 * handler's result, or a coded error. Never throws; a line that is not a
 * request is counted as a refused `controlLine`.
 */
async function answerLine(line, handlers) {
  let request;
  try {
    request = JSON.parse(Buffer.isBuffer(line) ? line.toString('utf8') : String(line));
  } catch {
    reject('controlLine', () => `not JSON: ${String(line).slice(0, 80)}`);
    return errorReply('ERR_RCLUSTER_CONTROL_BAD_REQUEST', 'a request is one line of JSON: {"cmd": "status"}');
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request) || typeof request.cmd !== 'string') {
    reject('controlLine', 'not an object with a string cmd');
    return errorReply('ERR_RCLUSTER_CONTROL_BAD_REQUEST', 'a request is an object with a string cmd');
  }
  if (!Object.hasOwn(handlers, request.cmd)) {
    reject('controlLine', () => `unknown command ${request.cmd.slice(0, 80)}`);
    return errorReply('ERR_RCLUSTER_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(request.cmd.slice(0, 80))}`);
  }
  try {
    return { ok: true, result: await handlers[request.cmd](request) };
  } catch (err) {
    return errorReply(typeof err?.code === 'string' ? err.code : undefined, String(err?.message ?? err));
  }
}

function serialize(reply) {
  try {
    return `${JSON.stringify(reply)}\n`;
  } catch (err) {
    return `${JSON.stringify(errorReply('ERR_RCLUSTER_CONTROL_REPLY', `the reply could not be serialized: ${err.message}`))}\n`;
  }
}

// One control connection: a line of at most `limits.line` bytes within
// `limits.idle` ms of connecting (a deadline, not an inactivity timer: a
// byte now and then does not keep it open), one reply, then the end.
// Nothing is buffered beyond the limit, and nothing after the line is read.
function serveConnection(socket, handlers, limits) {
  let chunks = [];
  let size = 0;
  let reading = true;
  const stopReading = () => {
    reading = false;
    chunks = null;
    clearTimeout(deadline);
    socket.removeListener('data', onData);
    socket.pause();
  };
  const answer = (reply) => {
    if (socket.destroyed) return;
    // The reply, then the end of what this side sends. The peer may still be
    // writing (a line over the limit): closing now would fail its writes
    // with EPIPE before it reads the reply. Nothing more is read; the
    // connection is destroyed when the peer closes, or LINGER_MS later.
    socket.end(serialize(reply), () => {
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
    });
  };
  const refuse = (detail, code, message) => {
    reject('controlLine', detail);
    stopReading();
    answer(errorReply(code, message));
  };
  const onData = (chunk) => {
    if (!reading) return;
    const nl = chunk.indexOf(0x0a);
    const take = nl < 0 ? chunk.length : nl;
    if (size + take > limits.line) {
      refuse(`a line longer than ${limits.line} bytes`, 'ERR_RCLUSTER_CONTROL_LINE_TOO_LONG', `a request line is at most ${limits.line} bytes`);
      return;
    }
    chunks.push(nl < 0 ? chunk : chunk.subarray(0, nl));
    size += take;
    if (nl < 0) return;
    const line = Buffer.concat(chunks, size);
    stopReading();
    answerLine(line, handlers).then(answer);
  };
  const deadline = setTimeout(() => {
    if (reading) refuse(`no complete line within ${limits.idle} ms`, 'ERR_RCLUSTER_CONTROL_TIMEOUT', `no complete request line within ${limits.idle} ms`);
  }, limits.idle);
  deadline.unref();
  socket.on('data', onData);
  socket.on('end', () => {
    if (!reading) return;
    // A connection that sent nothing (a second primary's probe, a client
    // that gave up) is no hostile input; part of a line is.
    if (size === 0) {
      stopReading();
      socket.destroy();
    } else {
      refuse('the connection ended inside a line', 'ERR_RCLUSTER_CONTROL_BAD_REQUEST', 'the connection ended before a complete request line');
    }
  });
  socket.once('close', () => {
    if (reading) stopReading();
  });
}

/**
 * Serves `handlers[cmd](request)` (each returns a value or a promise) on
 * `file`. Throws when another primary answers there (EADDRINUSE), or when
 * something other than a stale socket of this user's is in the way
 * (ERR_RCLUSTER_CONTROL_UNSAFE).
 */
async function serveControl(file, handlers, limits = LIMITS) {
  await prepare(file);
  let open = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    const peer = peerOf(socket);
    if (peer === null || !trusted(peer.uid)) {
      reject('controlLine', peer === null ? 'a connection whose peer is unknown' : `a connection from uid ${peer.uid} (pid ${peer.pid})`);
      socket.destroy();
      return;
    }
    if (open >= limits.connections) {
      // Told why (a user's `rcluster status` during a flood says so), with
      // nothing read; the line fits the socket's buffer, so the close that
      // follows is at once.
      reject('controlLine', `more than ${limits.connections} control connections at once`);
      socket.end(serialize(errorReply('ERR_RCLUSTER_CONTROL_BUSY', `more than ${limits.connections} control connections at once; try again`)), () => socket.destroy());
      return;
    }
    open++;
    socket.once('close', () => {
      open--;
    });
    serveConnection(socket, handlers, limits);
  });
  // The socket is created by the listen below (bind is synchronous): under
  // this umask it is 0600 from its first moment.
  const umask = process.umask(0o177);
  const listening = new Promise((resolve, reject2) => {
    server.once('error', reject2);
    server.once('listening', resolve);
  });
  try {
    server.listen(file);
  } finally {
    process.umask(umask);
  }
  await listening;
  const st = fs.lstatSync(file);
  if (!st.isSocket() || st.uid !== process.geteuid()) {
    server.close();
    throw unsafe(file, `it is ${kind(st)} of uid ${st.uid} right after listening on it`);
  }
  if ((st.mode & 0o777) !== 0o600) fs.chmodSync(file, 0o600);
  server.unref();
  const close = () => {
    server.close();
    // Only the socket this primary made: not one that took its place.
    const now = lstatOrNull(file);
    if (now !== null && now.ino === st.ino && now.dev === st.dev) {
      try {
        fs.unlinkSync(file);
      } catch {
        // Gone already.
      }
    }
  };
  process.once('exit', close);
  return { server, close };
}

function clientError(code, message, extra) {
  return codedError(Error, code, message, extra, clientError);
}

/**
 * Sends one request to the primary at `file`; resolves to `{ result, peer }`.
 * Nothing is sent before the server is known to run as this user or root;
 * the reply is bounded in size and time.
 */
function request(file, message, timeout = 15000, limits = LIMITS) {
  return new Promise((resolve, reject2) => {
    const socket = net.connect(file);
    const chunks = [];
    let size = 0;
    let peer = null;
    let settled = false;
    const settle = (err, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject2(err);
      else resolve(value);
    };
    const timer = setTimeout(() => {
      settle(clientError('ETIMEDOUT', `no complete answer from ${file} within ${timeout / 1000} s${peer ? ` (primary pid ${peer.pid})` : ''}`));
    }, timeout);
    socket.on('connect', () => {
      peer = peerOf(socket);
      if (peer === null) {
        settle(clientError('ERR_RCLUSTER_CONTROL_UNTRUSTED', `cannot tell who serves the control socket ${file}: not talking to it`));
        return;
      }
      if (!trusted(peer.uid)) {
        settle(clientError('ERR_RCLUSTER_CONTROL_UNTRUSTED', `the control socket ${file} is served by uid ${peer.uid} (pid ${peer.pid}), not by this user (uid ${process.geteuid()}) or root: not talking to it`, { peer }));
        return;
      }
      socket.write(`${JSON.stringify(message)}\n`);
    });
    socket.on('data', (d) => {
      size += d.length;
      if (size > limits.reply) {
        settle(clientError('ERR_RCLUSTER_BAD_REPLY', `the answer from ${file} is larger than ${limits.reply} bytes: not read`));
        return;
      }
      chunks.push(d);
    });
    socket.on('error', (err) => settle(err));
    socket.on('end', () => {
      if (peer === null || settled) return;
      const reply = parseReply(Buffer.concat(chunks, size));
      if (size === 0) settle(clientError('ERR_RCLUSTER_BAD_REPLY', `${file} closed the connection without an answer (at its limit of control connections?)`));
      else if (reply === null) settle(clientError('ERR_RCLUSTER_BAD_REPLY', `not an answer from ${file} (${size} bytes that are not one JSON reply line)`));
      else if (reply.ok) settle(null, { result: reply.result, peer });
      else settle(clientError(reply.code, reply.message));
    });
    socket.on('close', () => settle(clientError('ERR_RCLUSTER_BAD_REPLY', `${file} closed the connection without an answer`)));
  });
}

// `{ ok: true, result }`, `{ ok: false, code, message }` with printable
// text, or null when `bytes` is not one reply line.
function parseReply(bytes) {
  const text = bytes.toString('utf8');
  if (!text.endsWith('\n') || text.indexOf('\n') !== text.length - 1) return null;
  let reply;
  try {
    reply = JSON.parse(text);
  } catch {
    return null;
  }
  if (reply === null || typeof reply !== 'object' || typeof reply.ok !== 'boolean') return null;
  if (reply.ok) return { ok: true, result: reply.result };
  const error = reply.error;
  if (error === null || typeof error !== 'object' || typeof error.message !== 'string') return null;
  return {
    ok: false,
    code: typeof error.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(error.code) ? error.code : 'ERR_RCLUSTER_CONTROL_FAILED',
    message: printable(error.message, 500),
  };
}

module.exports = {
  serveControl, request, answerLine, parseReply, controlPathFor, nameOfSocket, listControlSockets, controlDir, realDir, LIMITS,
};
