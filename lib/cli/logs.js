'use strict';
// Worker output. Without --prefix or --time the workers write straight to the
// primary's stdout and stderr (inherited descriptors: nothing is buffered,
// and a terminal stays a terminal). With them, each line is tagged with its
// worker ([w3], by slot) and/or a timestamp as it arrives; a partial line is
// written once its end comes, or after a short wait. Colour only on a
// terminal, and never with NO_COLOR set (https://no-color.org).
const COLOURS = [36, 32, 33, 35, 34, 31];
const PARTIAL_FLUSH_MS = 100;

function useColour(stream) {
  return Boolean(stream.isTTY) && !('NO_COLOR' in process.env && process.env.NO_COLOR !== '') && process.env.TERM !== 'dumb';
}

class Logs {
  constructor(app, stdout, stderr) {
    this.app = app;
    this.stdout = stdout;
    this.stderr = stderr;
    this.tagged = app.prefix || app.time;
  }

  attach(worker, slot) {
    if (!this.tagged) return;
    const label = Number.isInteger(slot) ? `w${slot}` : `#${worker.id}`;
    const { stdout, stderr } = worker.process;
    if (stdout) this.pipe(stdout, this.stdout, label, slot);
    if (stderr) this.pipe(stderr, this.stderr, label, slot);
  }

  tag(out, label, slot) {
    const colour = useColour(out);
    let s = '';
    if (this.app.time) s += colour ? `\x1b[2m${new Date().toISOString()}\x1b[0m ` : `${new Date().toISOString()} `;
    if (this.app.prefix) {
      s += colour ? `\x1b[${COLOURS[(Number.isInteger(slot) ? slot : 0) % COLOURS.length]}m[${label}]\x1b[0m ` : `[${label}] `;
    }
    return s;
  }

  pipe(from, out, label, slot) {
    let rest = '';
    let timer = null;
    const flush = () => {
      timer = null;
      if (rest !== '') {
        out.write(`${this.tag(out, label, slot)}${rest}\n`);
        rest = '';
      }
    };
    from.setEncoding('utf8');
    from.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      if (lines.length > 0) out.write(lines.map((l) => `${this.tag(out, label, slot)}${l}\n`).join(''));
      if (timer !== null) clearTimeout(timer);
      timer = rest === '' ? null : setTimeout(flush, PARTIAL_FLUSH_MS);
    });
    from.on('end', () => {
      if (timer !== null) clearTimeout(timer);
      flush();
    });
  }
}

/** The primary's own messages, on stderr: `rcluster: ...`. */
function primaryLog(stream = process.stderr) {
  const colour = useColour(stream);
  const write = (level, msg) => {
    const head = colour ? (level === 'error' ? '\x1b[31mrcluster:\x1b[0m' : level === 'warn' ? '\x1b[33mrcluster:\x1b[0m' : '\x1b[2mrcluster:\x1b[0m') : 'rcluster:';
    stream.write(`${head} ${level === 'info' ? '' : `${level === 'warn' ? 'warning' : level}: `}${msg}\n`);
  };
  return { info: (m) => write('info', m), warn: (m) => write('warn', m), error: (m) => write('error', m) };
}

module.exports = { Logs, primaryLog, useColour };
