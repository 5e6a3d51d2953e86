#!/usr/bin/env node
'use strict';

// `npm test`: builds the engine if a source changed, then runs every suite:
// JavaScript lint and format (Biome), Rust unit tests, the release workflow's lint, the TypeScript typings check,
// binding tests (__test__/) and the Express end-to-end tests (test/), each
// against real Redis servers the tests start themselves.
// `npm run test:valkey` (`--valkey`): the binding and Express suites against
// Valkey 9 servers instead (scripts/valkey.js fetches valkey-server).

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { valkeyServer } = require('./valkey');

const root = path.join(__dirname, '..');

function run(command, args) {
  console.log(`\n$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status || 1);
}

function testFiles(dir) {
  return fs
    .readdirSync(path.join(root, dir))
    .filter((name) => name.endsWith('.test.js'))
    .sort()
    .map((name) => path.join(dir, name));
}

run(process.execPath, ['scripts/build.js', '--if-needed']);
if (process.argv.includes('--valkey')) {
  // `npm run test:valkey`: the binding and Express suites again, on Valkey 9.
  process.env.REDIS_SERVER = valkeyServer();
  run(process.env.REDIS_SERVER, ['--version']);
} else {
  // JavaScript lint and format (biome.json), the twin of cargo fmt + clippy: a failure says what to change.
  run(process.execPath, [require.resolve('@biomejs/biome/bin/biome', { paths: [root] }), 'ci', '.']);
  run('cargo', ['test', '--locked']);
  run(process.execPath, ['scripts/lint-workflows.js']);
  // TypeScript's package exports hide bin/tsc from require.resolve; find it beside package.json.
  const typescript = path.dirname(require.resolve('typescript/package.json', { paths: [root] }));
  // Three programs: req.session's type is the program's, so the per-key API, the express-session
  // entry point, and both beside @types/express-session each compile on their own.
  for (const project of ['test/types', 'test/types/express-session', 'test/types/together']) {
    run(process.execPath, [path.join(typescript, 'bin', 'tsc'), '-p', project]);
  }
}
// The spec reporter: a line a test (and what it measured), the detail of a failure at the end.
run(process.execPath, ['--test', '--test-reporter=spec', ...testFiles('__test__'), ...testFiles('test')]);
