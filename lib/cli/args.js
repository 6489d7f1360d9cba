'use strict';
// The command line: `rcluster [options] SCRIPT [options] [APP WORDS] [-- APP ARGS]`
// runs an app; `rcluster status|reload|scale|stop|logs [NAME]` talks to a
// running one, `rcluster ls` lists them; `rcluster help [COMMAND]`. PM2's
// command words are taken in rcluster's meaning (PM2_WORDS), or refused with
// what to do instead (PM2_ONLY): a command word is never run as a script.
const { BY_FLAG } = require('./options');
const { UsageError } = require('../errors');
const { looksLikeConfig } = require('./config');

const COMMANDS = new Set(['status', 'reload', 'scale', 'stop', 'logs', 'ls', 'help']);

// PM2's words for rcluster's commands: `[command, what the word adds]`.
const PM2_WORDS = new Map([
  ['list', ['ls']],
  ['monit', ['status', { watch: true }]],
  ['delete', ['stop']],
  ['restart', ['reload']],
  ['start', ['run']],
]);

// PM2 commands rcluster has no equivalent of, and what to do instead.
const SERVICE = 'rcluster keeps no list of apps to bring back: run each app under systemd, a container runtime or another service manager, which starts it at boot and keeps it running (see docs/operations.md)';
const PM2_ONLY = new Map([
  ['save', SERVICE],
  ['dump', SERVICE],
  ['resurrect', SERVICE],
  ['startup', SERVICE],
  ['unstartup', SERVICE],
  ['kill', 'rcluster has no daemon to kill: each app is its own process; stop one with `rcluster stop NAME` (rcluster ls lists them)'],
  ['ping', 'rcluster has no daemon: `rcluster ls` lists the running apps'],
  ['flush', 'rcluster does not empty log files: truncate or rotate them yourself (logrotate; rcluster reopens its log files on SIGUSR2)'],
  ['reloadLogs', 'send SIGUSR2 to the app\'s primary to reopen its log files (`rcluster ls` shows its pid)'],
  ['describe', 'use `rcluster status NAME` (--json for every field)'],
  ['show', 'use `rcluster status NAME` (--json for every field)'],
  ['info', 'use `rcluster status NAME` (--json for every field)'],
  ['prettylist', 'use `rcluster ls --json`'],
  ['jlist', 'use `rcluster ls --json`'],
  ['env', 'rcluster does not show an app\'s environment: it is in the config or ecosystem file that started it (env, env_NAME)'],
  ['update', 'rcluster has no daemon to update: install the new version (npm i -g rcluster) and restart each app with it'],
  ['updatePM2', 'rcluster has no daemon to update: install the new version (npm i -g rcluster) and restart each app with it'],
  ['install', 'rcluster has no modules: install packages with npm'],
  ['uninstall', 'rcluster has no modules: remove packages with npm'],
  ['module:install', 'rcluster has no modules: install packages with npm'],
  ['deploy', 'rcluster does not deploy: deploy with your own tool, then `rcluster reload NAME`'],
  ['link', 'rcluster has no hosted dashboard: serve Prometheus metrics with --metrics HOST:PORT'],
  ['unlink', 'rcluster has no hosted dashboard: serve Prometheus metrics with --metrics HOST:PORT'],
  ['plus', 'rcluster has no hosted dashboard: serve Prometheus metrics with --metrics HOST:PORT'],
  ['dashboard', 'rcluster has no dashboard: `rcluster status --watch`, or Prometheus metrics with --metrics HOST:PORT'],
  ['reset', 'rcluster\'s counters are the running primary\'s: they start again when the app is started again'],
  ['sendSignal', 'send the signal to the app\'s primary: kill -SIGNAL PID (`rcluster ls` shows its pid; SIGHUP reloads, SIGTTIN/SIGTTOU scale)'],
  ['trigger', 'rcluster has no actions: use the app\'s own endpoints'],
  ['serve', 'rcluster does not serve static files: run a static server as the app'],
  ['report', 'use `rcluster status --json` and `rcluster ls --json`'],
  ['stopall', 'stop each app with `rcluster stop NAME` (rcluster ls lists them)'],
]);

/** Whether `word` is a command, ours or PM2's: never a script to run. */
function isCommandWord(word) {
  return COMMANDS.has(word) || PM2_WORDS.has(word) || PM2_ONLY.has(word);
}

// Options of each command that talks to a running app.
const CONTROL_FLAGS = {
  status: new Set(['json', 'control', 'watch', 'interval']),
  reload: new Set(['json', 'control']),
  scale: new Set(['json', 'control']),
  stop: new Set(['json', 'control']),
  logs: new Set(['control', 'lines', 'follow']),
  ls: new Set(['json']),
};
const SWITCHES = new Set(['json', 'follow']);
const SHORT = { i: 'instances', f: 'follow', n: 'lines' };

// An argument that is not an option: a word, `-`, or a negative number
// (`-i -1`'s value, or an app's argument).
const isWord = (arg) => !arg.startsWith('-') || arg === '-' || /^-\d+$/.test(arg);

/**
 * `{ command, options, script?, args, positional, configFile?, only?, envName?, word? }`.
 * `options`: what the flags set, by setting name (lib/cli/options.js), not
 * yet checked against each other or merged with a config file. `word`: the
 * PM2 word typed, when it was one.
 */
function parseArgs(argv) {
  const out = { command: 'run', options: {}, args: [], positional: [] };
  let i = 0;
  const first = argv[0];
  if (first !== undefined && PM2_ONLY.has(first)) {
    throw new UsageError(`'${first}' is a PM2 command rcluster has no equivalent of: ${PM2_ONLY.get(first)}`);
  }
  if (first !== undefined && COMMANDS.has(first)) {
    out.command = first;
    i = 1;
  } else if (first !== undefined && PM2_WORDS.has(first)) {
    const [command, extra] = PM2_WORDS.get(first);
    out.command = command;
    out.word = first;
    Object.assign(out, extra);
    i = 1;
  }
  if (out.command === 'run' || out.command === 'help') return parseRun(argv, i, out);
  return parseControl(argv, i, out);
}

function parseControl(argv, i, out) {
  const allowed = CONTROL_FLAGS[out.command];
  const typed = out.word ?? out.command;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      out.help = true;
      continue;
    }
    if (arg === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (isWord(arg)) {
      out.positional.push(arg);
      continue;
    }
    let [flag, value] = arg.startsWith('--') ? splitEq(arg.slice(2)) : [arg.slice(1), undefined];
    flag = SHORT[flag] ?? flag;
    if (!allowed.has(flag)) throw new UsageError(`unknown option for '${typed}': ${arg} (see rcluster help ${out.command})`);
    if (SWITCHES.has(flag) || (flag === 'watch' && value === undefined)) {
      out[flag] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`--${flag} needs a value`);
      value = argv[++i];
    }
    out[flag] = value;
  }
  return out;
}

function parseRun(argv, i, out) {
  // Set once the script is read: from then on a word is the app's.
  let script = null;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      out.args.push(...argv.slice(i + 1));
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
    if (isWord(arg)) {
      if (script !== null || out.command === 'help') {
        if (script !== null) out.args.push(arg);
        else out.positional.push(arg);
        continue;
      }
      // A config file in place of the script (`rcluster ecosystem.config.js
      // --only api`) is followed by more of rcluster's options, and no app words.
      if (isCommandWord(arg)) {
        throw new UsageError(`'${arg}' is an rcluster command, not a script here (commands come first: rcluster ${arg} ...; to run a file of that name, write ./${arg})`);
      }
      out.positional.push(arg);
      if (!looksLikeConfig(arg)) script = arg;
      continue;
    }
    let [flag, value] = arg.startsWith('--') ? splitEq(arg.slice(2)) : [arg.slice(1), undefined];
    if (flag === 'i') flag = 'instances';
    const next = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) throw new UsageError(`--${flag} needs a value`);
      return argv[++i];
    };
    if (flag === 'config' || flag === 'only' || flag === 'env') {
      out[flag === 'config' ? 'configFile' : flag === 'env' ? 'envName' : 'only'] = next();
      continue;
    }
    const negated = flag.startsWith('no-') && BY_FLAG.get(flag.slice(3))?.takes === 'bool';
    const option = BY_FLAG.get(negated ? flag.slice(3) : flag);
    if (option === undefined) {
      if (script !== null) {
        // After the script, an option rcluster does not know is most likely
        // the app's: said so, rather than guessed either way.
        const app = [script, ...out.args].map(shellWord).join(' ');
        const rest = argv.slice(i).map(shellWord).join(' ');
        throw new UsageError(`unknown option ${arg} after the script: to pass it to the app, put it after -- (rcluster ${app} -- ${rest}); rcluster's own options may come before or after the script`);
      }
      throw new UsageError(`unknown option: ${arg} (see rcluster --help)`);
    }
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

// `word` as a shell reads it back, for a command line shown in a message.
function shellWord(word) {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, '\'\\\'\'')}'`;
}

function splitEq(s) {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
}

module.exports = { parseArgs, isCommandWord, COMMANDS, PM2_WORDS, PM2_ONLY };
