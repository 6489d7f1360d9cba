'use strict';
// Worker output. Without --prefix, --time or log files the workers write
// straight to the primary's stdout and stderr (inherited descriptors: nothing
// is buffered, and a terminal stays a terminal). Otherwise their output is
// piped through the primary, attached once per worker however it was forked
// (a scale, a restart, a reload): each line is tagged with its worker ([w3],
// by slot) and/or a timestamp as it arrives; a partial line is written once
// its end comes, or after a short wait. A stream given a log file goes there
// only (lib/cli/log_files.js), every line tagged with its worker, as one file
// holds all of them. Colour only on a terminal, and never with NO_COLOR set
// (https://no-color.org).
const { openLogFiles, reopenLogFiles, stamper } = require('./log_files');

const COLOURS = [36, 32, 33, 35, 34, 31];
const PARTIAL_FLUSH_MS = 100;

function useColour(stream) {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '') && process.env.TERM !== 'dumb';
}

class Logs {
  /**
   * `app.logs`: `{ out, err }`, absolute paths or null (lib/cli/settings.js).
   * Opening a file that cannot be opened throws (a UsageError).
   */
  constructor(app, stdout, stderr, onError = () => {}) {
    this.app = app;
    this.stdout = stdout;
    this.stderr = stderr;
    this.stamp = stamper(app);
    this.paths = { out: app.logs?.out ?? null, err: app.logs?.err ?? null };
    this.files = openLogFiles(this.paths, onError);
    this.tagged = Boolean(app.prefix || this.stamp !== null);
    this.attached = new WeakSet();
  }

  /** Takes `worker`'s piped output, if it has any; once per worker. */
  attach(worker, slot) {
    if (this.attached.has(worker)) return;
    this.attached.add(worker);
    const label = Number.isInteger(slot) ? `w${slot}` : `#${worker.id}`;
    const { stdout, stderr } = worker.process;
    if (stdout) this.route(stdout, this.files.out, this.stdout, label, slot);
    if (stderr) this.route(stderr, this.files.err, this.stderr, label, slot);
  }

  route(from, file, terminal, label, slot) {
    if (file !== null) return this.lines(from, (lines) => file.write(this.fileLines(lines, label)));
    if (!this.tagged) return from.on('data', (chunk) => terminal.write(chunk));
    return this.lines(from, (lines) => {
      const head = this.tag(terminal, label, slot);
      terminal.write(lines.map((l) => `${head}${l}\n`).join(''));
    });
  }

  fileLines(lines, label) {
    const head = this.stamp === null ? `[${label}] ` : `${this.stamp()} [${label}] `;
    return lines.map((l) => `${head}${l}\n`).join('');
  }

  tag(out, label, slot) {
    const colour = useColour(out);
    let s = '';
    if (this.stamp !== null) s += colour ? `\x1b[2m${this.stamp()}\x1b[0m ` : `${this.stamp()} `;
    if (this.app.prefix) {
      s += colour ? `\x1b[${COLOURS[(Number.isInteger(slot) ? slot : 0) % COLOURS.length]}m[${label}]\x1b[0m ` : `[${label}] `;
    }
    return s;
  }

  // `write(lines)` with the whole lines of `from` as they come, without
  // their ends; a partial line once its end comes, or after a short wait.
  lines(from, write) {
    let rest = '';
    let timer = null;
    const flush = () => {
      timer = null;
      if (rest !== '') {
        write([rest]);
        rest = '';
      }
    };
    from.setEncoding('utf8');
    from.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      if (lines.length > 0) write(lines);
      if (timer !== null) clearTimeout(timer);
      timer = rest === '' ? null : setTimeout(flush, PARTIAL_FLUSH_MS);
    });
    from.on('end', () => {
      if (timer !== null) clearTimeout(timer);
      flush();
    });
  }

  /** Where rcluster's own lines go besides stderr: the error (or merged) file, or null. */
  get ownFile() {
    return this.files.err;
  }

  /** SIGUSR2: each file opened anew at its path; the errors of those that could not be. */
  reopen() {
    return reopenLogFiles(this.files);
  }
}

/**
 * The primary's own messages, on stderr: `rcluster: ...`. configure()
 * adds a timestamp to each (--time, log_date_format) and a log file each is
 * written to as well.
 */
function primaryLog(stream = process.stderr) {
  const colour = useColour(stream);
  let stamp = null;
  let file = null;
  const write = (level, msg) => {
    const kind = level === 'info' ? '' : `${level === 'warn' ? 'warning' : level}: `;
    const at = stamp === null ? '' : stamp();
    const head = colour ? (level === 'error' ? '\x1b[31mrcluster:\x1b[0m' : level === 'warn' ? '\x1b[33mrcluster:\x1b[0m' : '\x1b[2mrcluster:\x1b[0m') : 'rcluster:';
    stream.write(`${at === '' ? '' : colour ? `\x1b[2m${at}\x1b[0m ` : `${at} `}${head} ${kind}${msg}\n`);
    if (file !== null) file.write(`${at === '' ? '' : `${at} `}rcluster: ${kind}${msg}\n`);
  };
  return {
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
    /** `stamp`: () => string, or null; `file`: a LogFile (lib/cli/log_files.js), or null. */
    configure(options) {
      if (options.stamp !== undefined) stamp = options.stamp;
      if (options.file !== undefined) file = options.file;
    },
  };
}

module.exports = { Logs, primaryLog, useColour };
