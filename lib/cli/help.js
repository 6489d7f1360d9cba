'use strict';
// rcluster --help and rcluster help COMMAND.
const { OPTIONS, flagOf } = require('./options');

function optionLines() {
  return OPTIONS.filter((o) => o.flag !== false).map((o) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${flagOf(o)}${o.takes === 'value' ? ` ${o.arg}` : o.takes === 'optional' ? `[=${o.arg}]` : ''}`;
    return `  ${flag.padEnd(40)} ${o.help}`;
  }).join('\n');
}

const APP = `  NAME            the app (its --name, its ecosystem name, else its script's
                  name); default: the app started in the current directory,
                  else the only one running (rcluster ls lists them)
  --control PATH  the app's control socket instead of NAME`;

const TOPICS = {
  run: () => `Usage: rcluster [options] SCRIPT [options] [APP WORDS] [-- APP ARGS]
       rcluster [options] ecosystem.config.js | rcluster.config.js [options]
       rcluster start SCRIPT|CONFIG [options]       (the same, in PM2's words)

Runs SCRIPT, unmodified (CommonJS or ES module), in one worker per CPU, with
rcluster as the primary: every require('cluster') in the app is rcluster, and
connections are spread over the workers by rcluster's native dispatcher. Runs
in the foreground, as containers, systemd and Kubernetes want.

rcluster's options may come before or after the script. After the script,
plain words are the app's arguments, in order, and everything after -- is
the app's as it is:
  rcluster server.mjs -i 4 -- --port 80        4 workers; the app gets --port 80
  rcluster node_modules/.bin/next start -i 2   next start, in 2 workers
An option after the script that rcluster does not know is an error that says
so: the app's options go after --.

Options:
${optionLines()}
      --config FILE                        settings from FILE (default: ./rcluster.config.{js,cjs,mjs,json})
      --only NAME                          the app NAME of an ecosystem file (default: its first)
      --env NAME                           add the file's env_NAME variables
  -h, --help                               this help (rcluster help COMMAND for the others)
  -v, --version                            rcluster's version

Each worker gets NODE_APP_INSTANCE (0..n-1, kept by its replacements), as under PM2.
The app's control socket is named after the app (--name): one app of a name
runs at a time per user; a second one given that name is refused, naming the
first; one named after its script becomes NAME-2.

Signals:
  SIGHUP              rolling reload: the new workers replace the old once they stayed up 3 s
  SIGUSR2             reopen the log files (logrotate)
  SIGTTIN / SIGTTOU   one worker more / fewer
  SIGTERM / SIGINT    graceful shutdown: /health answers 503 and the app serves on for
                      --drain-delay (SIGINT: only a delay given), then the workers drain
                      up to --kill-timeout; a second one stops at once

Exit codes:
  0    stopped on request, every worker drained in time
  1    the app could not be kept running (a crash loop, or no worker left)
  2    bad command line or config value
  3    stopped on request, but workers were killed at the deadline
  128+N  stopped at once by a second signal N (130 for SIGINT, 143 for SIGTERM)

Commands for running apps (rcluster help COMMAND):
  rcluster ls                   every running app of yours (PM2: list)
  rcluster status [NAME]        its workers; --watch refreshes (PM2: monit)
  rcluster reload [NAME]        graceful rolling reload (PM2: restart, reload)
  rcluster scale [NAME] N       N workers (PM2: scale)
  rcluster stop [NAME]          graceful shutdown (PM2: stop, delete)
  rcluster logs [NAME]          the app's log files (PM2: logs)
PM2 commands with no equivalent here (save, startup, resurrect, kill, flush,
describe, ...) are refused with what to do instead.
`,
  status: () => `Usage: rcluster status [NAME] [--json] [--watch] [--control PATH]
       rcluster monit [NAME]        (status --watch)

Shows the workers of the running app (id, slot, pid, state, uptime, restarts,
open and total connections, requests, RSS, CPU, event-loop delay) and its
listeners (accepted, pending, expired).

${APP}
  --json          the data as JSON, for scripts
  --watch         refresh every second (in place on a terminal)
  --interval MS   how often --watch refreshes (default 1000)

Control sockets are in $XDG_RUNTIME_DIR/rcluster/ or $TMPDIR/rcluster-UID/,
a directory only you can use, one per app: NAME.sock. The control socket
answers only its owner and root, and this command talks only to a primary
run by you or root (the kernel says who is at the other end); what it prints
from the answer is escaped.
`,
  ls: () => `Usage: rcluster ls [--json]
       rcluster list [--json]

Lists every running app of yours: name, primary pid, workers, uptime, the
directory it was started in, and its control socket. Sockets left by a
primary that was killed are skipped.

  --json          the list as JSON, for scripts
`,
  reload: () => `Usage: rcluster reload [NAME] [--json] [--control PATH]
       rcluster restart [NAME]       (the same: graceful, no connection refused)

Replaces every worker with a fresh one without refusing a connection (the
same as SIGHUP to the primary). The new workers start one at a time while
the old ones serve; once every new one is ready and has stayed up for its
probation (3 s), the old ones drain and go. Waits until it is done.
When a new worker fails (it exits, is not ready in time, or dies during the
probation), the reload is rolled back: the new workers go, the old workers
serve on, and this command says why on stderr and exits 1 (with --json too,
after printing the result).

${APP}
  all             every running app, one after the other
  --json          the result as JSON: { ok: true, replaced } or
                  { ok: false, reason, old, replacement, code, signal, ... }
`,
  scale: () => `Usage: rcluster scale [NAME] N [--json] [--control PATH]

Runs N workers: forks the missing ones, or retires the highest slots (they
finish their requests, then exit; SIGKILL at the shutdown deadline).

${APP}
`,
  stop: () => `Usage: rcluster stop [NAME] [--json] [--control PATH]
       rcluster delete [NAME]        (the same)

Graceful shutdown of the running app (the same as SIGTERM to the primary:
its --drain-delay first, then the drain). Waits until it has stopped.

${APP}
  all             every running app, one after the other
`,
  logs: () => `Usage: rcluster logs [NAME] [--lines N] [--follow] [--control PATH]

Prints the last N lines (default 15) of the app's log files (--log FILE,
ecosystem out_file / error_file), stdout's then stderr's; with --follow, then
what is written to them until Ctrl-C, across rotations (a file renamed away
or truncated is read again from the start of the new one). An app that
writes no log files has its output where its terminal or service manager
sends it (journalctl, docker logs): this command says so and exits 1.

${APP}
  -n, --lines N   how many lines of each file (default 15)
  -f, --follow    keep printing what is added
`,
  help: () => 'Usage: rcluster help [run|ls|status|reload|scale|stop|logs]\n',
};

function helpText(topic = 'run') {
  return (TOPICS[topic] ?? TOPICS.run)();
}

module.exports = { helpText, TOPICS };
