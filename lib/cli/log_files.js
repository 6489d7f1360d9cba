'use strict';
// Log files (--log, --out-file, --error-file; PM2's log_file, out_file,
// error_file) and the timestamps of log lines (--time, log_date_format).
//
// A file is opened in append mode, created 0640 (its directory 0750 if it is
// missing), and written synchronously, whole lines at a time: every line goes
// through this one process, so lines of two workers never interleave, and
// nothing is held in a buffer. That is what makes the reopen on SIGUSR2
// (logrotate's postrotate) exact: after `mv out.log out.log.1; kill -USR2`,
// every line written before the signal is in out.log.1, every line after it
// in a new out.log, none in both.
const fs = require('fs');
const path = require('path');
const { UsageError } = require('../errors');

const FILE_MODE = 0o640;
const DIR_MODE = 0o750;

class LogFile {
  constructor(file, onError) {
    this.path = file;
    this.onError = onError;
    this.failing = false;
    this.fd = LogFile.open(file);
  }

  static open(file) {
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: DIR_MODE });
      return fs.openSync(file, 'a', FILE_MODE);
    } catch (err) {
      throw new UsageError(`cannot open log file ${file}: ${err.code || err.message}`);
    }
  }

  /** `text`: one or more whole lines. */
  write(text) {
    try {
      fs.writeSync(this.fd, text);
      this.failing = false;
    } catch (err) {
      // A full disk or a removed mount: said once until a write succeeds
      // again; the app keeps running.
      if (this.failing) return;
      this.failing = true;
      this.onError(new Error(`cannot write to ${this.path}: ${err.code || err.message}`));
    }
  }

  /** The same path opened anew (after a rotation moved the old file away). */
  reopen() {
    const fd = LogFile.open(this.path);
    const old = this.fd;
    this.fd = fd;
    fs.closeSync(old);
  }
}

/**
 * `{ out, err }`: the file each stream of the workers goes to (the same
 * LogFile for both when they share a path), or null for the terminal.
 */
function openLogFiles(paths, onError) {
  const out = paths.out === null ? null : new LogFile(paths.out, onError);
  const err = paths.err === null ? null : paths.err === paths.out ? out : new LogFile(paths.err, onError);
  return { out, err };
}

/**
 * Reopens each file at its path; returns the errors of those that could
 * not be (each keeps writing to the file it had).
 */
function reopenLogFiles(files) {
  const errors = [];
  for (const f of new Set([files.out, files.err])) {
    if (f === null) continue;
    try {
      f.reopen();
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

// log_date_format: moment.js's tokens as PM2 users write them, in local
// time. [text] is literal.
const DATE_TOKENS = /\[([^\]]*)\]|YYYY|YY|MM|DD|HH|mm|ss|SSS|ZZ|Z/g;
const pad = (n, w = 2) => String(n).padStart(w, '0');

function offset(date, sep) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const a = Math.abs(minutes);
  return `${sign}${pad(Math.floor(a / 60))}${sep}${pad(a % 60)}`;
}

/** `date` written as `format` says (YYYY MM DD HH mm ss SSS Z ZZ YY, [literal]). */
function formatDate(date, format) {
  return format.replace(DATE_TOKENS, (token, literal) => {
    if (literal !== undefined) return literal;
    switch (token) {
      case 'YYYY': return String(date.getFullYear());
      case 'YY': return pad(date.getFullYear() % 100);
      case 'MM': return pad(date.getMonth() + 1);
      case 'DD': return pad(date.getDate());
      case 'HH': return pad(date.getHours());
      case 'mm': return pad(date.getMinutes());
      case 'ss': return pad(date.getSeconds());
      case 'SSS': return pad(date.getMilliseconds(), 3);
      case 'ZZ': return offset(date, '');
      default: return offset(date, ':');
    }
  });
}

/**
 * The timestamp of a log line now, or null when lines are not stamped:
 * log_date_format's, else with --time an ISO 8601 time in UTC.
 */
function stamper({ time, logDateFormat }) {
  if (logDateFormat !== undefined) return () => formatDate(new Date(), logDateFormat);
  if (time) return () => new Date().toISOString();
  return null;
}

module.exports = { openLogFiles, reopenLogFiles, formatDate, stamper };
