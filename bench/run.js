'use strict';

// `npm run bench`: every benchmark, then the report.
//
//   node bench/run.js [--quick]
//   node bench/run.js --soak        (npm run soak: steps 1, 2 and bench/soak.js only)
//
// 1. installs the benchmark peers into bench/node_modules if missing
//    (bench/package.json: they are kept out of the package's own dependencies);
// 2. builds the addon if its sources changed;
// 3. runs bench/engine.js, bench/http.js, bench/memory.js, bench/observed.js,
//    bench/failover.js, then bench/report.js.
// --quick is passed to the benchmarks (short runs, for development).
// Stops at the first step that fails, with its exit code.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const passThrough = process.argv.includes('--quick') ? ['--quick'] : [];

function step(title, command, args) {
  console.log(`\n== ${title}: ${[command, ...args].join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) {
    console.error(`bench: could not run ${command}: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error(`bench: ${title} failed (${result.signal || `exit code ${result.status}`})`);
    process.exit(result.status || 1);
  }
}

function npm() {
  return process.platform === 'win32' ? 'npm.cmd' : 'npm';
}

if (!fs.existsSync(path.join(__dirname, 'node_modules'))) {
  // `npm ci`: exactly the versions of bench/package-lock.json, so runs compare.
  step('installing the benchmark peers', npm(), ['ci', '--prefix', 'bench']);
}
step('building the addon if needed', process.execPath, ['scripts/build.js', '--if-needed']);
if (process.argv.includes('--soak')) {
  step('soak run', process.execPath, ['bench/soak.js']);
  process.exit(0);
}
step('engine benchmark', process.execPath, ['bench/engine.js', ...passThrough]);
step('HTTP benchmark', process.execPath, ['bench/http.js', ...passThrough]);
step('memory benchmark', process.execPath, ['bench/memory.js', ...passThrough]);
step('what watching costs', process.execPath, ['bench/observed.js', ...passThrough]);
step('Sentinel failover, side by side', process.execPath, ['bench/failover.js', ...(passThrough.length ? ['--runs', '1'] : [])]);
step('report', process.execPath, ['bench/report.js']);
console.log('\nbench: done, see bench/results/latest.md and bench/results/latest.svg');
