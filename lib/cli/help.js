'use strict';
// rcluster --help and rcluster help COMMAND.
const { OPTIONS, flagOf } = require('./options');

function optionLines() {
  return OPTIONS.filter((o) => o.flag !== false).map((o) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${flagOf(o)}${o.takes === 'value' ? ` ${o.arg}` : o.takes === 'optional' ? `[=${o.arg}]` : ''}`;
    return `  ${flag.padEnd(40)} ${o.help}`;
  }).join('\n');
}

const TOPICS = {
  run: () => `Usage: rcluster [options] SCRIPT [-- APP ARGS]
       rcluster [options] ecosystem.config.js | rcluster.config.js

Runs SCRIPT, unmodified (CommonJS or ES module), in one worker per CPU, with
rcluster as the primary: every require('cluster') in the app is rcluster, and
connections are spread over the workers by rcluster's native dispatcher. Runs
in the foreground, as containers, systemd and Kubernetes want.

Options:
${optionLines()}
      --config FILE                        settings from FILE (default: ./rcluster.config.{js,cjs,mjs,json})
      --only NAME                          the app NAME of an ecosystem file (default: its first)
      --env NAME                           add the file's env_NAME variables
  -h, --help                               this help (rcluster help COMMAND for the others)
  -v, --version                            rcluster's version

Each worker gets NODE_APP_INSTANCE (0..n-1, kept by its replacements), as under PM2.

Signals:
  SIGHUP              rolling reload, one worker at a time
  SIGTTIN / SIGTTOU   one worker more / fewer
  SIGTERM / SIGINT    graceful shutdown (workers drain up to --kill-timeout); a second one stops at once

Exit codes:
  0    stopped on request, every worker drained in time
  1    the app could not be kept running (a crash loop, or no worker left)
  2    bad command line or config value
  3    stopped on request, but workers were killed at the deadline
  128+N  stopped at once by a second signal N (130 for SIGINT, 143 for SIGTERM)

Commands for a running app: rcluster status | reload | scale N | stop (rcluster help COMMAND).
`,
  status: () => `Usage: rcluster status [--json] [--watch] [--control PATH]

Shows the workers of the running app (id, slot, pid, state, uptime, restarts,
open and total connections, requests, RSS, CPU, event-loop delay) and its
listeners (accepted, pending, expired).

  --json          the data as JSON, for scripts
  --watch         refresh every second (in place on a terminal)
  --interval MS   how often --watch refreshes (default 1000)
  --control PATH  the app's control socket (default: the one of the app in the
                  current directory, in $XDG_RUNTIME_DIR/rcluster/ or
                  $TMPDIR/rcluster-UID/, a directory only you can use)

The control socket answers only its owner and root, and this command talks
only to a primary run by you or root (the kernel says who is at the other
end); what it prints from the answer is escaped.
`,
  reload: () => `Usage: rcluster reload [--json] [--control PATH]

Replaces every worker with a fresh one, one at a time, without refusing a
connection (the same as SIGHUP to the primary). Waits until it is done.
`,
  scale: () => `Usage: rcluster scale N [--json] [--control PATH]

Runs N workers: forks the missing ones, or retires the highest slots (they
finish their requests, then exit; SIGKILL at the shutdown deadline).
`,
  stop: () => `Usage: rcluster stop [--json] [--control PATH]

Graceful shutdown of the running app (the same as SIGTERM to the primary).
Waits until it has stopped.
`,
  help: () => 'Usage: rcluster help [run|status|reload|scale|stop]\n',
};

function helpText(topic = 'run') {
  return (TOPICS[topic] ?? TOPICS.run)();
}

module.exports = { helpText, TOPICS };
