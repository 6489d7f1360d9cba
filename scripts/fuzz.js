'use strict';
// Every decoder of untrusted input, fed seeded mutated and random input
// (docs/SECURITY.md): the Rust decoders' hostile_* tests and the JS
// decoders' *-fuzz tests, with RCLUSTER_FUZZ_INPUTS inputs per surface, then
// one table of what each surface tried. `npm test` runs the same tests with
// their default counts; this is the longer run the figures in docs/SECURITY.md come from.
//
//   npm run fuzz [-- --inputs N] [-- --seed S]
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const env = { ...process.env, RCLUSTER_FUZZ_INPUTS: option('inputs', '100000') };
if (option('seed') !== undefined) env.RCLUSTER_FUZZ_SEED = option('seed');

const rustTests = fs.readdirSync(path.join(root, 'core', 'tests'))
  .filter((f) => /^hostile_.*\.rs$/.test(f)).map((f) => ['--test', f.slice(0, -3)]).flat();
const jsTests = fs.readdirSync(path.join(root, '__test__', 'adversary'))
  .filter((f) => f.endsWith('-fuzz.test.js')).map((f) => path.join('__test__', 'adversary', f));

const runs = [
  ['cargo', ['test', '-p', 'rcluster-core', ...rustTests, '--', '--nocapture', '--test-threads=1']],
  [process.execPath, ['--test', '--test-concurrency=1', ...jsTests]],
];

const surfaces = new Map(); // label -> inputs
let failed = false;
for (const [cmd, argv] of runs) {
  const r = spawnSync(cmd, argv, { cwd: root, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const out = `${r.stdout}\n${r.stderr}`;
  // cargo prints a test's output after its name ("test x ... fuzz ..."), TAP after "# ".
  for (const m of out.matchAll(/(?:^|^# |\.\.\. )fuzz ([^:\n]+): (\d+) (?:inputs|regions)/gm)) surfaces.set(m[1].trim(), Number(m[2]));
  if (r.status !== 0) {
    failed = true;
    process.stderr.write(out);
  }
}

console.log(`| surface | inputs tried | crashes / throws |`);
console.log(`| --- | ---: | ---: |`);
for (const [label, n] of surfaces) console.log(`| ${label} | ${n.toLocaleString('en-US')} | ${failed ? 'see above' : 0} |`);
console.log(`\nRCLUSTER_FUZZ_INPUTS=${env.RCLUSTER_FUZZ_INPUTS}, seed ${env.RCLUSTER_FUZZ_SEED ?? 'default'}: ${failed ? 'FAILED' : 'every surface passed'}`);
process.exit(failed ? 1 : 0);
