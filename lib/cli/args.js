'use strict';
// The command line: `rcluster [options] SCRIPT [-- ARGS]` runs an app;
// `rcluster status|reload|scale N|stop [--json] [--control PATH]` talks to a
// running one; `rcluster help [COMMAND]`.
const { BY_FLAG } = require('./options');
const { UsageError } = require('../errors');
const { looksLikeConfig } = require('./config');

const COMMANDS = new Set(['status', 'reload', 'scale', 'stop', 'help']);
// Options of the control commands.
const CONTROL_FLAGS = new Set(['json', 'control', 'watch', 'interval']);

/**
 * `{ command, options, script?, args, configFile?, only?, envName? }`.
 * `options`: what the flags set, by setting name (lib/cli/options.js), not
 * yet checked against each other or merged with a config file.
 */
function parseArgs(argv) {
  const out = { command: 'run', options: {}, args: [], positional: [] };
  let i = 0;
  if (argv.length > 0 && COMMANDS.has(argv[0])) {
    out.command = argv[0];
    i = 1;
  }
  const control = out.command !== 'run' && out.command !== 'help';
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      out.args = argv.slice(i + 1);
      break;
    }
    if (arg === '-h' || arg === '--help') {
      out.help = true;
      continue;
    }
    if (arg === '-v' || arg === '--version') {
      out.version = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d+$/.test(arg)) {
      // The script ends rcluster's options: what follows is the app's.
      // A config file in place of the script (`rcluster ecosystem.config.js
      // --only api`) is followed by more of rcluster's options.
      if (out.command === 'run' && out.positional.length === 0 && !looksLikeConfig(arg)) {
        out.positional.push(arg);
        out.args = argv.slice(i + 1).filter((a, j) => !(j === 0 && a === '--'));
        break;
      }
      out.positional.push(arg);
      continue;
    }
    let [flag, value] = arg.startsWith('--') ? splitEq(arg.slice(2)) : [arg.slice(1), undefined];
    if (flag === 'i') flag = 'instances';
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new UsageError(`--${flag} needs a value`);
      return argv[++i];
    };
    if (control) {
      if (!CONTROL_FLAGS.has(flag)) throw new UsageError(`unknown option for '${out.command}': ${arg} (see rcluster help ${out.command})`);
      if (flag === 'json' || (flag === 'watch' && value === undefined)) out[flag] = true;
      else out[flag] = next();
      continue;
    }
    if (flag === 'config' || flag === 'only' || flag === 'env') {
      out[flag === 'config' ? 'configFile' : flag === 'env' ? 'envName' : 'only'] = next();
      continue;
    }
    const negated = flag.startsWith('no-') && BY_FLAG.get(flag.slice(3))?.takes === 'bool';
    const option = BY_FLAG.get(negated ? flag.slice(3) : flag);
    if (option === undefined) throw new UsageError(`unknown option: ${arg} (see rcluster --help)`);
    if (option.takes === 'bool') {
      out.options[option.name] = negated ? false : value === undefined ? true : option.check(value, `--${flag}`);
    } else if (option.takes === 'optional') {
      out.options[option.name] = option.check(value === undefined ? true : value, `--${flag}`);
    } else {
      out.options[option.name] = option.check(next(), `--${flag}`);
    }
  }
  return out;
}

function splitEq(s) {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
}

module.exports = { parseArgs, COMMANDS };
