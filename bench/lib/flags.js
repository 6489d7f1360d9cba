'use strict';
// Command-line flag reading shared by bench/chaos.js and bench/soak.js.

/**
 * Calls onFlag(flag, value) for each flag of argv in order; `value()` takes
 * the flag's argument (the next word). Stops early when onFlag returns true.
 */
function eachFlag(argv, onFlag) {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (onFlag(flag, value) === true) return;
  }
}

/** `text` as a number >= min, or an error naming the flag. */
function numberFlag(flag, text, min) {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`${flag} needs a number >= ${min}, got ${text}`);
  return n;
}

module.exports = { eachFlag, numberFlag };
