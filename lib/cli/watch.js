'use strict';
// --watch: a rolling reload when watched files change, once per burst of
// changes (debounced by watch_delay). The platform's file watching
// (fs.watch: inotify, FSEvents), never polling. node_modules and .git are
// ignored unless a watched path is inside one; ignore_watch adds names or
// paths. A single file is watched through its directory, so that a file
// replaced by rename (editors, Kubernetes ConfigMaps) is still seen.
const fs = require('fs');
const path = require('path');

const ALWAYS_IGNORED = ['node_modules', '.git'];

function isInside(child, parent) {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Starts watching; returns `close()`. `onChange(files)` after each burst. */
function watchPaths(paths, { delay, ignore = [], cwd, onChange, onError }) {
  const watchers = [];
  let pending = new Set();
  let timer = null;
  const ignoredPaths = ignore.filter((p) => p.includes('/')).map((p) => path.resolve(cwd, p));
  const ignoredNames = ignore.filter((p) => !p.includes('/'));

  const ignored = (file, root) => {
    const segments = path.relative(root, file).split(path.sep);
    for (const name of ALWAYS_IGNORED) {
      if (segments.includes(name) && !root.split(path.sep).includes(name)) return true;
    }
    if (segments.some((s) => ignoredNames.includes(s))) return true;
    return ignoredPaths.some((p) => isInside(file, p));
  };

  const changed = (file) => {
    pending.add(file);
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const files = [...pending];
      pending = new Set();
      onChange(files);
    }, delay);
  };

  for (const p of paths) {
    let stat;
    try {
      stat = fs.statSync(p);
    } catch (err) {
      onError(new Error(`cannot watch ${p}: ${err.code || err.message}`));
      continue;
    }
    const dir = stat.isDirectory() ? p : path.dirname(p);
    const only = stat.isDirectory() ? null : path.basename(p);
    const watcher = fs.watch(dir, { recursive: stat.isDirectory(), persistent: false }, (event, name) => {
      if (name === null || name === undefined) return changed(dir);
      const file = path.join(dir, String(name));
      if (only !== null && path.basename(file) !== only && !String(name).startsWith('..')) return;
      if (ignored(file, dir)) return;
      changed(file);
    });
    watcher.on('error', (err) => onError(err));
    watchers.push(watcher);
  }
  return {
    close() {
      if (timer !== null) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

module.exports = { watchPaths };
