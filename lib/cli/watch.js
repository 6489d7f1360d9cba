'use strict';
// --watch: a rolling reload when watched files change, once per burst of
// changes (debounced by watch_delay). The platform's file watching
// (fs.watch: inotify, FSEvents), never polling. node_modules and .git are
// ignored unless a watched path is inside one; ignore_watch adds names or
// paths.
//
// Directories are what is watched, never files: a file saved by rename (sed
// -i, most editors, Kubernetes ConfigMaps) is a new inode under the same
// name, and a watch on the file would follow the old one and miss every later
// save. A single file is watched through its directory. On Linux a folder
// is watched one directory at a time, each subdirectory as it appears
// (fs.watch's `recursive` there is built on watches that follow a file's
// inode, and loses a renamed-over file); FSEvents (macOS) and Windows watch
// a whole tree by path themselves.
const fs = require('fs');
const path = require('path');

const ALWAYS_IGNORED = ['node_modules', '.git'];
const NATIVE_RECURSIVE = process.platform === 'darwin' || process.platform === 'win32';

function isInside(child, parent) {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Starts watching; returns `close()`. `onChange(files)` after each burst. */
function watchPaths(paths, { delay, ignore = [], cwd, onChange, onError }) {
  const watchers = new Map(); // directory -> FSWatcher
  let pending = new Set();
  let timer = null;
  let closed = false;
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
      // An editor's temporary file, gone by now, is not news; a deletion
      // alone still is.
      const all = [...pending];
      const present = all.filter((f) => fs.existsSync(f));
      const files = present.length > 0 ? present : all;
      pending = new Set();
      onChange(files);
    }, delay);
  };

  // One directory, and (`root` given) its subdirectories under `root`.
  // `only`: the one name in it that matters (a watched file).
  const watchDir = (dir, root, only, recursive = false) => {
    if (closed || watchers.has(dir)) return;
    let watcher;
    try {
      watcher = fs.watch(dir, { persistent: false, recursive }, (event, name) => {
        if (name === null || name === undefined) return changed(dir);
        const file = path.join(dir, String(name));
        if (only !== null) {
          if (String(name) === only || String(name).startsWith('..')) changed(file);
          return;
        }
        if (ignored(file, root)) return;
        // A directory created or moved in is watched from now on; one gone
        // has its watcher closed by its own error or here.
        if (event === 'rename' && !recursive) {
          let stat = null;
          try {
            stat = fs.statSync(file);
          } catch {
            unwatchUnder(file);
          }
          if (stat !== null && stat.isDirectory()) walk(file, root);
        }
        changed(file);
      });
    } catch (err) {
      // Gone between its listing and now, or out of watches (ENOSPC: the
      // inotify limit): said once per directory, the rest still watched.
      if (err.code !== 'ENOENT') onError(new Error(`cannot watch ${dir}: ${err.code || err.message}`));
      return;
    }
    watcher.on('error', (err) => {
      // The directory itself went away.
      unwatchUnder(dir);
      if (err.code !== 'ENOENT' && err.code !== 'EPERM') onError(err);
    });
    watchers.set(dir, watcher);
  };

  const unwatchUnder = (dir) => {
    for (const [d, w] of watchers) {
      if (isInside(d, dir)) {
        w.close();
        watchers.delete(d);
      }
    }
  };

  const walk = (dir, root) => {
    watchDir(dir, root, null);
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const sub = path.join(dir, e.name);
      if (!ignored(sub, root)) walk(sub, root);
    }
  };

  for (const p of paths) {
    let stat;
    try {
      stat = fs.statSync(p);
    } catch (err) {
      onError(new Error(`cannot watch ${p}: ${err.code || err.message}`));
      continue;
    }
    if (stat.isDirectory() && NATIVE_RECURSIVE) watchDir(p, p, null, true);
    else if (stat.isDirectory()) walk(p, p);
    else watchDir(path.dirname(p), path.dirname(p), path.basename(p));
  }
  return {
    close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}

module.exports = { watchPaths };
